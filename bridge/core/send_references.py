"""A send's reference: which of our messages a Cloud API status is about when Meta's
answer to the send never reached us (docs/cloud.md, "Sending twice").

The Cloud API takes no message id from the sender, but echoes a string of ours
(``biz_opaque_callback_data``) in every status of the message. The reference is
``zb1:<message row id>:<derived id>``: the row id makes the look-up one by primary
key, and the derived id (:func:`~bridge.whatsapp.engine.derived_message_id`, from the
session key, the row id and the row's creation time) is checked against the row it
names, so a reference of another row, session or install attaches nothing.
"""

from __future__ import annotations

from bridge.db.messages import MessageRow
from bridge.whatsapp.engine import derived_message_id

PREFIX = "zb1"


def chosen_id(session_key: str, message: MessageRow) -> str:
    """The WhatsApp id ``message`` is sent with where the engine can choose it: the
    same on every attempt, so a send repeated after a crash (sent, but its ``wa_id``
    not yet stored) is dropped by the recipient instead of arriving twice."""
    return derived_message_id(session_key, message_id=message.id, created_at=message.created_at)


def reference_for(session_key: str, message: MessageRow) -> str:
    """The reference a Cloud API send of ``message`` carries."""
    return f"{PREFIX}:{message.id}:{chosen_id(session_key, message)}"


def message_of(reference: str) -> int | None:
    """The message row id a reference names; None for a string of another shape."""
    prefix, _, rest = reference.partition(":")
    row_id, _, _derived = rest.partition(":")
    if prefix != PREFIX or not row_id.isascii() or not row_id.isdigit():
        return None
    return int(row_id)


def names(reference: str, session_key: str, message: MessageRow) -> bool:
    """Whether ``reference`` is the one ``message`` of ``session_key`` was sent with."""
    return reference == reference_for(session_key, message)
