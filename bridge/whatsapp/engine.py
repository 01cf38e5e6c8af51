"""The WhatsApp engine interface and its events.

An engine speaks WhatsApp for many sessions (phone numbers). It knows nothing of
tickets, Matrix or Slack: it turns protocol traffic into the events below, handed
to one async handler, and performs sends on request. The session manager
(``bridge.whatsapp.sessions``) owns session status, reconnects and pacing.

A session is named by its key ``"<company>/<session>"``.
Addresses (``to``, ``chat``) are E.164 phones (``+5511987654321``), group JIDs
(``1203…@g.us``) or LIDs (``123…@lid``): see :attr:`bridge.model.Party.address`.

Outbound operations take an optional ``message_id``: the WhatsApp id the caller
wants the new message to carry (:func:`derived_message_id` makes one per outbox
message, the same on every retry and after a restart). WhatsApp recipients drop a
second message with an id they already have, so an engine that honours it makes a
resent delivery harmless. An engine that cannot choose ids ignores it and says so
in its module docstring; the id it returns is the one to record either way. The
Cloud API engine takes it as the send's *reference* instead, a string Meta echoes
in the statuses of that message (``reference`` of :class:`ReceiptEvent` and
:class:`SendFailedEvent`; docs/cloud.md, "Sending twice").
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import PermanentDeliveryError
from bridge.model import AckStatus, Content, Media, Message, Party, Quote


def session_key(company: str, name: str) -> str:
    return f"{company}/{name}"


MESSAGE_ID_PREFIX = "3EB0"  # whatsmeow's GenerateMessageID: "3EB0" + 18 uppercase hex digits


def derived_message_id(key: str, *, message_id: int, created_at: float) -> str:
    """A stable WhatsApp message id for our stored message ``message_id`` of session
    ``key``, in whatsmeow's format (``3EB0`` + 18 uppercase hex digits).

    The same row always gives the same id (so a resent delivery carries the id of the
    first attempt); the session key and the row's creation time make ids of different
    sessions, or of another install whose row numbers start over, differ in practice
    (72 bits of SHA-256).
    """
    seed = f"zapbridge/{key}/{message_id}/{created_at!r}".encode()
    return MESSAGE_ID_PREFIX + hashlib.sha256(seed).hexdigest()[:18].upper()


@dataclass(frozen=True)
class SessionSpec:
    """What an engine needs to run one session."""

    key: str
    company: str
    name: str
    device_dir: Path  # where a per-session device store may live (SQLite engines)
    database_url: str | None = None  # the bridge's PostgreSQL URL, when it uses one


# --- events ---------------------------------------------------------------


@dataclass(frozen=True)
class EngineEvent:
    session: str


@dataclass(frozen=True)
class QRCodeEvent(EngineEvent):
    """A login QR code; ``expires_in`` seconds until the next one replaces it."""

    code: str
    expires_in: float


@dataclass(frozen=True)
class PairCodeEvent(EngineEvent):
    """A phone pairing code to type on the phone (``!login phone +55…``)."""

    code: str
    phone: str


@dataclass(frozen=True)
class PairSuccessEvent(EngineEvent):
    phone: str


@dataclass(frozen=True)
class ConnectedEvent(EngineEvent):
    phone: str | None = None


@dataclass(frozen=True)
class DisconnectedEvent(EngineEvent):
    reason: str
    transient: bool = True


@dataclass(frozen=True)
class LoggedOutEvent(EngineEvent):
    """The session cannot go on until a human acts. ``action`` says what to do when
    the engine knows better than the default (link the device again): the Cloud API's
    refused token (docs/cloud.md)."""

    reason: str = "logged out from the phone"
    action: str | None = None


@dataclass(frozen=True)
class TemporaryBanEvent(EngineEvent):
    code: str
    expires_in: float | None  # seconds, when WhatsApp says


@dataclass(frozen=True)
class ClientOutdatedEvent(EngineEvent):
    pass


@dataclass(frozen=True)
class StreamReplacedEvent(EngineEvent):
    pass


@dataclass(frozen=True)
class MessageEvent(EngineEvent):
    """A message or action; ``history`` is True for offline/history sync."""

    message: Message
    history: bool = False


@dataclass(frozen=True)
class ReceiptEvent(EngineEvent):
    """WhatsApp's news of messages ``ids``; ``reference`` is what the send of the one
    message passed as ``message_id`` and the provider echoes (the Cloud API's
    ``biz_opaque_callback_data``), None for engines that echo nothing."""

    chat: Party
    ids: tuple[str, ...]
    status: AckStatus
    timestamp: float
    reference: str | None = None


@dataclass(frozen=True)
class ContactUpdateEvent(EngineEvent):
    """A push name (or avatar) learned for a contact; LID ↔ phone when both known."""

    party: Party
    avatar_url: str | None = None


@dataclass(frozen=True)
class OfflineSyncCompletedEvent(EngineEvent):
    count: int = 0


@dataclass(frozen=True)
class EngineErrorEvent(EngineEvent):
    """Something from WhatsApp could not be understood; the session keeps running.
    The core sets it aside and reports it (``bridge.core.quarantine``), under
    ``event_id`` (the WhatsApp message id, when known)."""

    explanation: str
    event_id: str = ""


@dataclass(frozen=True)
class SendFailedEvent(EngineEvent):
    """WhatsApp says one of our messages was not delivered (the Cloud API's status
    ``failed``): ``message_id`` is its WhatsApp id, ``reason`` the provider's words
    and ``code`` its error code (131047: the customer-service window is closed);
    ``reference`` as in :class:`ReceiptEvent`."""

    chat: Party
    message_id: str
    reason: str
    code: int | None = None
    reference: str | None = None


EventHandler = Callable[[EngineEvent], Awaitable[None]]


# --- the interface ----------------------------------------------------------


class Engine(abc.ABC):
    """One engine serves many sessions; events go to ``handler``."""

    name: str = "engine"

    def __init__(self, handler: EventHandler) -> None:
        self._handler = handler

    async def emit(self, event: EngineEvent) -> None:
        await self._handler(event)

    @abc.abstractmethod
    async def is_paired(self, spec: SessionSpec) -> bool:
        """Whether the session has a stored device (it can connect without a login)."""

    @abc.abstractmethod
    async def connect(self, spec: SessionSpec) -> None:
        """Open the connection of a paired session; ``ConnectedEvent`` follows.

        Raises :class:`bridge.errors.EngineError` when the attempt fails at once.
        """

    @abc.abstractmethod
    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        """Start a login: QR codes arrive as ``QRCodeEvent`` (or, with ``phone``, one
        ``PairCodeEvent``), then ``PairSuccessEvent`` and ``ConnectedEvent``."""

    @abc.abstractmethod
    async def disconnect(self, key: str) -> None:
        """Close the connection, keeping the device (``stop``)."""

    @abc.abstractmethod
    async def logout(self, key: str) -> None:
        """Unlink the device; the session needs a new login afterwards."""

    @abc.abstractmethod
    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        """Send ``content`` to ``to``; return the new message's WhatsApp id.

        ``message_id``: the id to give the message, when the engine can (see the
        module docstring); a repeated id is then dropped by the recipient.
        """

    @abc.abstractmethod
    async def react(
        self,
        key: str,
        to: str,
        *,
        target: str,
        target_sender: str | None,
        emoji: str,
        message_id: str | None = None,
    ) -> str:
        """React to ``target`` (``target_sender`` None when it is our own message)."""

    @abc.abstractmethod
    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        """Edit our message ``target``."""

    @abc.abstractmethod
    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        """Delete our message ``target`` for everyone."""

    @abc.abstractmethod
    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        """Send read receipts for ``ids`` in ``chat``."""

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        """Show ``to`` that we are typing (``state`` ``composing``) or stopped
        (``paused``); False when the engine cannot (docs/presence.md)."""
        return False

    @abc.abstractmethod
    async def download(self, key: str, media: Media) -> bytes:
        """The bytes of ``media`` (from ``media.data`` or its download ``ref``)."""

    async def send_template(
        self,
        key: str,
        to: str,
        *,
        name: str,
        language: str,
        params: Sequence[str],
        message_id: str | None = None,
    ) -> str:
        """Send the approved template ``name``; only the Cloud API engine can."""
        raise PermanentDeliveryError(
            "message templates are a Cloud API feature: this session's engine cannot send them"
        )

    async def account_facts(self, key: str) -> dict[str, str]:
        """What the provider reports about the number (the Cloud API: quality rating,
        messaging limit), for ``!status``; nothing by default."""
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine-wide resources."""
