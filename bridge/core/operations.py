"""What the core asks a destination to do: one frozen dataclass per outbox operation,
and the one codec between them and the JSON stored in ``outbox.payload``.

The stored JSON is the outbox protocol: rows written by an earlier version are
still pending after an upgrade, so a field once written keeps its name and value.
Executors (``bridge.core.deliveries``) dispatch on the type; nothing else reads or
writes the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UnknownOperation(ValueError):
    """A stored payload whose ``op`` names no operation."""


# --- tickets and messages (ordering key: the ticket's, per destination) ------------


@dataclass(frozen=True)
class CreateThread:
    """Open the ticket's thread (with its card) on a frontend."""

    ticket: int


@dataclass(frozen=True)
class UpdateCard:
    """Show the ticket's current state on its card."""

    ticket: int


@dataclass(frozen=True)
class ThreadNotice:
    """A notice in the ticket's thread."""

    ticket: int
    text: str


@dataclass(frozen=True)
class PostMessage:
    """Show a stored message on a frontend; ``received_at`` (a customer's message:
    when the bridge received it) measures the relay latency."""

    message: int
    received_at: float | None = None


@dataclass(frozen=True)
class SendAttendantMessage:
    """Send an attendant's message to the customer, quoting message ``quote`` if any."""

    message: int
    quote: int | None


@dataclass(frozen=True)
class SendBotMessage:
    """Send a message of the bridge's own (an auto reply, a farewell) to the customer."""

    message: int


@dataclass(frozen=True)
class SendTemplate:
    """Send the approved template ``name`` in ``language`` with its body ``params`` to
    the customer (a Cloud API session); message ``message`` is what the thread shows."""

    message: int
    name: str
    language: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class MirrorAction:
    """A reaction, edit or deletion (message ``message``) of message ``target``; to
    WhatsApp, and mirrored to the other frontends."""

    message: int
    target: int


@dataclass(frozen=True)
class MarkReceipt:
    """The customer's phone acknowledged message ``message`` (``status``: an AckStatus)."""

    message: int
    status: str


@dataclass(frozen=True)
class PostTranscript:
    """Post the ticket's transcript, ``ticket-<id>.txt``, into its thread; built from
    the messages stored when it is delivered (bridge/core/transcript.py)."""

    ticket: int


# --- presence (destination ``whatsapp-presence``; docs/presence.md) -------------------


@dataclass(frozen=True)
class MarkRead:
    """Mark read on WhatsApp the customer's messages of ``ticket`` up to message
    ``up_to`` that are not marked yet (an attendant read the thread)."""

    ticket: int
    up_to: int


@dataclass(frozen=True)
class ChatPresence:
    """Show the customer that an attendant is typing (``state`` ``composing``) or
    stopped (``paused``); asked at ``at`` (epoch seconds): dropped when stale."""

    ticket: int
    state: str
    at: float


# --- rooms and the ops channel --------------------------------------------------------


@dataclass(frozen=True)
class EnsureRooms:
    """At start: every control room and ops room the frontend serves."""


@dataclass(frozen=True)
class OpsMessage:
    """The ops notifier's words: ``text`` to the company's ops room (empty: none),
    ``topic`` to the session's control room (None: unchanged)."""

    company: str
    session: str | None
    text: str
    topic: str | None
    severity: str


@dataclass(frozen=True)
class LoginCode:
    """A login QR code (``png``, base64) or pairing code, where ``!login`` was typed."""

    session: str
    room: str
    thread: str | None
    text: str
    png: str | None


Operation = (
    CreateThread
    | UpdateCard
    | ThreadNotice
    | PostMessage
    | SendAttendantMessage
    | SendBotMessage
    | SendTemplate
    | MirrorAction
    | MarkReceipt
    | PostTranscript
    | MarkRead
    | ChatPresence
    | EnsureRooms
    | OpsMessage
    | LoginCode
)


def encode(operation: Operation) -> dict[str, Any]:
    """``operation`` as its stored JSON object."""
    match operation:
        case CreateThread(ticket=ticket):
            return {"op": "thread", "ticket": ticket}
        case UpdateCard(ticket=ticket):
            return {"op": "card", "ticket": ticket}
        case ThreadNotice(ticket=ticket, text=text):
            return {"op": "notice", "ticket": ticket, "text": text}
        case PostMessage(message=message, received_at=None):
            return {"op": "post", "message": message}
        case PostMessage(message=message, received_at=received_at):
            return {"op": "post", "message": message, "received_at": received_at}
        case SendAttendantMessage(message=message, quote=quote):
            return {"op": "send", "message": message, "quote": quote}
        case SendBotMessage(message=message):
            return {"op": "send", "message": message}
        case SendTemplate(message=message, name=name, language=language, params=params):
            return {
                "op": "template",
                "message": message,
                "name": name,
                "language": language,
                "params": list(params),
            }
        case MirrorAction(message=message, target=target):
            return {"op": "action", "message": message, "target": target}
        case MarkReceipt(message=message, status=status):
            return {"op": "receipt", "message": message, "status": status}
        case PostTranscript(ticket=ticket):
            return {"op": "transcript", "ticket": ticket}
        case MarkRead(ticket=ticket, up_to=up_to):
            return {"op": "read", "ticket": ticket, "up_to": up_to}
        case ChatPresence(ticket=ticket, state=state, at=at):
            return {"op": "typing", "ticket": ticket, "state": state, "at": at}
        case EnsureRooms():
            return {"op": "rooms"}
        case OpsMessage():
            return {
                "op": "ops",
                "company": operation.company,
                "session": operation.session,
                "text": operation.text,
                "topic": operation.topic,
                "severity": operation.severity,
            }
        case LoginCode():
            return {
                "op": "login",
                "session": operation.session,
                "room": operation.room,
                "thread": operation.thread,
                "text": operation.text,
                "png": operation.png,
            }


def op_name(payload: Mapping[str, Any]) -> str:
    """The operation's name in a stored payload ("" when it has none)."""
    return str(payload.get("op", ""))


def decode(payload: Mapping[str, Any]) -> Operation:
    """The operation stored as ``payload``. Raises :class:`UnknownOperation` for an
    unknown ``op``, ``ValueError`` naming the field for a missing or mistyped one."""
    fields = _Fields(payload)
    match op_name(payload):
        case "thread":
            return CreateThread(fields.integer("ticket"))
        case "card":
            return UpdateCard(fields.integer("ticket"))
        case "notice":
            return ThreadNotice(fields.integer("ticket"), fields.string("text"))
        case "post":
            return PostMessage(fields.integer("message"), fields.optional_number("received_at"))
        case "send" if "quote" in payload:
            return SendAttendantMessage(fields.integer("message"), fields.optional_integer("quote"))
        case "send":
            return SendBotMessage(fields.integer("message"))
        case "template":
            return SendTemplate(
                fields.integer("message"),
                name=fields.string("name"),
                language=fields.string("language"),
                params=fields.strings("params"),
            )
        case "action":
            return MirrorAction(fields.integer("message"), fields.integer("target"))
        case "receipt":
            return MarkReceipt(fields.integer("message"), fields.string("status"))
        case "transcript":
            return PostTranscript(fields.integer("ticket"))
        case "read":
            return MarkRead(fields.integer("ticket"), fields.integer("up_to"))
        case "typing":
            at = fields.optional_number("at")
            if at is None:
                raise ValueError("'typing' has no 'at'")
            return ChatPresence(fields.integer("ticket"), fields.string("state"), at)
        case "rooms":
            return EnsureRooms()
        case "ops":
            return OpsMessage(
                company=fields.string("company"),
                session=fields.optional_string("session"),
                text=fields.string("text"),
                topic=fields.optional_string("topic"),
                severity=fields.string("severity"),
            )
        case "login":
            return LoginCode(
                session=fields.string("session"),
                room=fields.string("room"),
                thread=fields.optional_string("thread"),
                text=fields.string("text"),
                png=fields.optional_string("png"),
            )
        case name:
            raise UnknownOperation(f"unknown operation {name!r}")


class _Fields:
    """Typed reads of a payload's fields, each a ``ValueError`` when it does not fit."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self._payload = payload

    def _get(self, name: str) -> object:
        if name not in self._payload:
            raise ValueError(f"{op_name(self._payload)!r} has no {name!r}")
        return self._payload[name]

    def _wrong(self, name: str, wanted: str) -> ValueError:
        return ValueError(f"{op_name(self._payload)!r} needs {wanted} as {name!r}")

    def integer(self, name: str) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(name, "an integer")
        return value

    def optional_integer(self, name: str) -> int | None:
        return None if self._payload.get(name) is None else self.integer(name)

    def optional_number(self, name: str) -> float | None:
        value = self._payload.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(name, "a number")
        return value

    def string(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise self._wrong(name, "a string")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._wrong(name, "a list of strings")
        return tuple(value)

    def optional_string(self, name: str) -> str | None:
        return None if self._payload.get(name) is None else self.string(name)
