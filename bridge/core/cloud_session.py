"""What the core knows of Cloud API sessions (``engine: cloud``, docs/configuration.md):
their settings, and the customer-service window WhatsApp enforces on them.

Meta lets a business send free-form messages to a customer only within 24 hours of
the customer's last message; after that, only approved templates (``!template``,
docs/commands.md). The window is tracked per ticket, from the newest customer
message stored on it: a ticket the customer never wrote on (one moved by
``!transfer``) has no window open.
"""

from __future__ import annotations

from bridge.clock import Clock
from bridge.config import Config, SessionConfig
from bridge.core import cloud_texts
from bridge.core.tickets import TicketView
from bridge.db.messages import MessageRepository

WINDOW_SECONDS = 24 * 60 * 60
"""How long after the customer's last message free-form messages may be sent."""


def is_cloud(config: Config, session: SessionConfig) -> bool:
    return config.engine_of(session) == "cloud"


class CustomerWindow:
    """Whether an attendant's free-form message may go to a ticket's customer."""

    def __init__(self, config: Config, messages: MessageRepository, *, clock: Clock) -> None:
        self._config = config
        self._messages = messages
        self._clock = clock

    async def refusal(self, ticket: TicketView) -> str | None:
        """Why a free-form message to ``ticket``'s customer would be refused by
        WhatsApp (the attendant's answer); None when it may go (the window is open,
        or the session is not on the Cloud API)."""
        session = self._config.session_for_key(ticket.session_key)
        if session is None or not is_cloud(self._config, session):
            return None
        last = await self._messages.last_inbound_at(ticket.id)
        if last is not None and self._clock.now() < last + WINDOW_SECONDS:
            return None
        return cloud_texts.window_closed(None if last is None else last + WINDOW_SECONDS)
