"""Who a stored message is from, besides customers and attendants (``messages.sender``
holds a customer's address or an attendant's user id otherwise), and the names they
are shown under in threads and transcripts."""

from __future__ import annotations

BOT = "bot"  # messages.sender of auto replies
PHONE = "phone"  # messages.sender of messages typed on the phone itself
BOT_NAME = "zapbridge"
PHONE_NAME = "WhatsApp phone"
