"""Engine events ↔ JSON-ready dicts, for the journal of events the database refused
(:mod:`bridge.journal`).

Only the events the core persists go through it (:data:`JOURNALED_EVENTS`):
messages, receipts, failed sends, contact updates and engine errors. Replay keeps their order per
session and chat (:func:`event_lane`). A body is ``{"v": 1, "type": …, …}``;
message content uses :func:`bridge.model.content_to_dict`. Media keeps what the event
holds: whatsmeow's download reference (``ref``: the bytes stay on WhatsApp's servers
and are fetched at delivery, as for any message), or the sim's inline bytes (base64).

:func:`decode_event` checks every field by type and raises ``ValueError`` on
anything else: a journal is our own file, but it outlives versions of the code.
"""

from __future__ import annotations

from typing import Any

from bridge.json_fields import JsonFields, Wording
from bridge.model import AckStatus, Message, Party, Quote, content_from_dict, content_to_dict
from bridge.whatsapp.engine import (
    ContactUpdateEvent,
    EngineErrorEvent,
    EngineEvent,
    MessageEvent,
    ReceiptEvent,
    SendFailedEvent,
)

VERSION = 1
JOURNALED_EVENTS = (
    MessageEvent,
    ReceiptEvent,
    SendFailedEvent,
    ContactUpdateEvent,
    EngineErrorEvent,
)
JournaledEvent = (
    MessageEvent | ReceiptEvent | SendFailedEvent | ContactUpdateEvent | EngineErrorEvent
)


class EventCodec:
    """The journal's :class:`~bridge.journal.Codec` of engine events."""

    def encode(self, item: EngineEvent) -> dict[str, Any]:
        return encode_event(item)

    def decode(self, body: dict[str, Any]) -> EngineEvent:
        return decode_event(body)

    def lane(self, item: EngineEvent) -> str:
        return event_lane(item)


def event_lane(event: EngineEvent) -> str:
    """Replay lane: the session and the chat (a reaction, an edit or a receipt is in the
    chat of the message it is about); an engine error has its session's own lane."""
    match event:
        case MessageEvent(message=message):
            return f"{event.session} {message.chat.address}"
        case ReceiptEvent(chat=chat) | SendFailedEvent(chat=chat):
            return f"{event.session} {chat.address}"
        case ContactUpdateEvent(party=party):
            return f"{event.session} {party.address}"
    return event.session


# --- encoding ---------------------------------------------------------------------------


def encode_event(event: EngineEvent) -> dict[str, Any]:
    """A JSON-ready dict of ``event``; ``TypeError`` for an event not journaled."""
    head: dict[str, Any] = {"v": VERSION, "session": event.session}
    match event:
        case MessageEvent(message=message, history=history):
            return {
                **head,
                "type": "message",
                "message": message_to_dict(message),
                "history": history,
            }
        case ReceiptEvent(chat=chat, ids=ids, status=status, timestamp=timestamp):
            return {
                **head,
                "type": "receipt",
                "chat": party_to_dict(chat),
                "ids": list(ids),
                "status": status.value,
                "timestamp": timestamp,
                "reference": event.reference,
            }
        case SendFailedEvent(chat=chat, message_id=message_id, reason=reason, code=code):
            return {
                **head,
                "type": "send_failed",
                "chat": party_to_dict(chat),
                "message_id": message_id,
                "reason": reason,
                "code": code,
                "reference": event.reference,
            }
        case ContactUpdateEvent(party=party, avatar_url=avatar_url):
            return {
                **head,
                "type": "contact",
                "party": party_to_dict(party),
                "avatar_url": avatar_url,
            }
        case EngineErrorEvent(explanation=explanation, event_id=event_id):
            return {**head, "type": "error", "explanation": explanation, "event_id": event_id}
    raise TypeError(f"{type(event).__name__} is not journaled")


def message_to_dict(message: Message) -> dict[str, Any]:
    return {
        "chat": party_to_dict(message.chat),
        "sender": party_to_dict(message.sender),
        "content": content_to_dict(message.content),
        "wa_id": message.wa_id,
        "timestamp": message.timestamp,
        "quote": quote_to_dict(message.quote) if message.quote else None,
        "from_me": message.from_me,
        "forwarded": message.forwarded,
        "extra": message.extra,
    }


def party_to_dict(party: Party) -> dict[str, Any]:
    return {"phone": party.phone, "lid": party.lid, "group": party.group, "name": party.name}


def quote_to_dict(quote: Quote) -> dict[str, Any]:
    return {"wa_id": quote.wa_id, "sender": quote.sender, "text": quote.text}


# --- decoding ---------------------------------------------------------------------------


class _Record(JsonFields):
    """The fields of one object of a journaled event, each object read apart: a
    refusal is a ValueError naming the field alone (``timestamp must be a number``)."""

    __slots__ = ()
    wording = Wording(
        error=ValueError, missing="{field} must be {expected}", boolean="true or false"
    )


def decode_event(body: dict[str, Any]) -> EngineEvent:
    """The inverse of :func:`encode_event`; ``ValueError`` on anything else."""
    if body.get("v") != VERSION:
        raise ValueError(f"unknown event record version {body.get('v')!r}")
    record = _Record(body)
    session = record.string("session")
    kind = body.get("type")
    if kind == "message":
        return MessageEvent(
            session,
            message=message_from_dict(record.mapping("message").data),
            history=record.boolean("history"),
        )
    if kind == "receipt":
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("receipt ids must be a list of strings")
        try:
            status = AckStatus(record.string("status"))
        except ValueError as exc:
            raise ValueError(f"unknown receipt status {body.get('status')!r}") from exc
        return ReceiptEvent(
            session,
            chat=_party(record, "chat"),
            ids=tuple(ids),
            status=status,
            timestamp=record.number("timestamp"),
            reference=record.optional_string("reference"),  # absent before failed sends
        )
    if kind == "send_failed":
        return SendFailedEvent(
            session,
            chat=_party(record, "chat"),
            message_id=record.string("message_id"),
            reason=record.string("reason"),
            code=record.optional_integer("code", bounds=(0, 2**31 - 1)),
            reference=record.optional_string("reference"),
        )
    if kind == "contact":
        return ContactUpdateEvent(
            session,
            party=_party(record, "party"),
            avatar_url=record.optional_string("avatar_url"),
        )
    if kind == "error":
        return EngineErrorEvent(
            session,
            explanation=record.string("explanation"),
            event_id=record.string("event_id"),
        )
    raise ValueError(f"unknown event type {kind!r}")


def message_from_dict(data: dict[str, Any]) -> Message:
    record = _Record(data)
    extra = data.get("extra")
    if not isinstance(extra, dict):
        raise ValueError("message extra must be an object")
    try:
        content = content_from_dict(record.mapping("content").data)
    except (KeyError, TypeError) as exc:  # a field missing or of another shape
        raise ValueError(f"message content unreadable: {exc!r}") from exc
    return Message(
        chat=_party(record, "chat"),
        sender=_party(record, "sender"),
        content=content,
        wa_id=record.optional_string("wa_id"),
        timestamp=record.number("timestamp"),
        quote=_optional_quote(data.get("quote")),
        from_me=record.boolean("from_me"),
        forwarded=record.boolean("forwarded"),
        extra=extra,
    )


def party_from_dict(data: dict[str, Any]) -> Party:
    record = _Record(data)
    return Party(
        phone=record.optional_string("phone"),
        lid=record.optional_string("lid"),
        group=record.optional_string("group"),
        name=record.optional_string("name"),
    )


def quote_from_dict(data: dict[str, Any]) -> Quote:
    record = _Record(data)
    wa_id, sender = record.string("wa_id"), record.optional_string("sender")
    return Quote(wa_id=wa_id, sender=sender, text=record.string("text"))


def _party(record: _Record, key: str) -> Party:
    return party_from_dict(record.mapping(key).data)


def _optional_quote(value: Any) -> Quote | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("quote must be an object or null")
    return quote_from_dict(value)
