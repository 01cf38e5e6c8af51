"""neonize events → neutral engine events. Pure functions, no client, no I/O.

Everything WhatsApp sends arrives here as one of neonize's protobufs (``MessageEv``,
``ReceiptEv``, ``HistorySyncEv``, connection events …) and leaves as the neutral
events of :mod:`bridge.whatsapp.engine`. Nothing here raises for bad input: a
message that cannot be read becomes a visible placeholder (``Unsupported``) plus an
:class:`EngineErrorEvent`, or only the error event when not even its envelope is
readable, and a log line says why.

Every field read from a protobuf is checked for what protobufs allow but WhatsApp
should never send (see "Limits" below): an empty or oversized JID or id makes the
message unreadable (an :class:`EngineErrorEvent` that names it); an oversized text,
vCard or name makes its part a placeholder; a missing or implausible timestamp
becomes 0.0 ("unknown": the relay stamps the message when it arrives); an unknown
enum value gets its number as its name; a ban expiry or file size out of range is
treated as unknown or capped.

The content inside a message (text, media, location, …) is read by
:mod:`bridge.whatsapp.wa_inbound_content`; this module reads the envelope around it
(chat, sender, id, quote, timestamp) and the other events.

What is deliberately *not* bridged (returns no event): statuses
(``status@broadcast``), newsletters, and WhatsApp's internal protocol messages
(history-sync notifications, app-state keys, peer-data requests …) — they are
traffic between our own devices, not customer messages. Message kinds the bridge
cannot render become ``Unsupported(type_name=<friendly name>)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from bridge.errors import InvalidInput
from bridge.model import (
    AckStatus,
    AnyContent,
    Message,
    Quote,
    Unsupported,
)
from bridge.phone import normalize_phone
from bridge.whatsapp import jid as jids
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    ContactUpdateEvent,
    DisconnectedEvent,
    EngineErrorEvent,
    EngineEvent,
    LoggedOutEvent,
    MessageEvent,
    OfflineSyncCompletedEvent,
    PairSuccessEvent,
    ReceiptEvent,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.wa_inbound_content import (
    MAX_ID_CHARS,
    enum_name,
    parse_content,
    text_of,
    unwrap,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """Who "we" are on WhatsApp: the user parts of our phone JID and of our LID."""

    phone_user: str | None = None
    lid_user: str | None = None

    def owns(self, jid: neonize.JID) -> bool:
        return bool(jid.User) and jid.User in (self.phone_user, self.lid_user)

    @property
    def jid(self) -> neonize.JID | None:
        if self.phone_user:
            return jids.make_jid(self.phone_user, jids.USER_SERVER)
        if self.lid_user:
            return jids.make_jid(self.lid_user, jids.LID_SERVER)
        return None

    @property
    def phone(self) -> str | None:
        if not self.phone_user:
            return None
        try:
            return normalize_phone(self.phone_user)
        except InvalidInput as exc:
            log.warning("our own WhatsApp id is not a phone: %s", exc)
            return None


NOBODY = Identity()


# --- limits -----------------------------------------------------------------------
# Far above anything WhatsApp sends; beyond them a field is hostile or corrupt.

MAX_PUSH_NAME_CHARS = 256  # a push name is cut to this (WhatsApp allows 25)
MAX_QUOTE_CHARS = 1_024  # the quoted text kept for a reply's preview
MAX_JID_PART_CHARS = 64  # a JID's user or server
MAX_RECEIPT_IDS = 1_024  # message ids acknowledged by one receipt
MAX_REASON_CHARS = 200  # an error text from WhatsApp, shown to people
MAX_BAN_SECONDS = 366 * 24 * 3600  # a longer "temporary" ban expiry is unknown
EARLIEST_TIMESTAMP = 1_230_768_000.0  # 2009-01-01: before WhatsApp, a timestamp is wrong
LATEST_TIMESTAMP = 4_102_444_800.0  # 2100-01-01


def _short(text: str, limit: int = MAX_REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_jid(jid: neonize.JID, what: str) -> None:
    if len(jid.User) > MAX_JID_PART_CHARS or len(jid.Server) > MAX_JID_PART_CHARS:
        raise InvalidInput(f"the {what} is not a WhatsApp JID (too long)")


# --- messages -------------------------------------------------------------------


def _quote(context: wa.ContextInfo | None, me: Identity) -> Quote | None:
    if context is None or not context.stanzaID:
        return None
    if len(context.stanzaID) > MAX_ID_CHARS:
        log.warning("ignoring a quoted message id of %d characters", len(context.stanzaID))
        return None
    text = text_of(unwrap(context.quotedMessage)) if context.HasField("quotedMessage") else None
    return Quote(
        wa_id=context.stanzaID,
        sender=_quoted_sender(context.participant, me),
        text=_short(text.body, MAX_QUOTE_CHARS) if text else "",
    )


def _quoted_sender(participant: str, me: Identity) -> str | None:
    if not participant:
        return None
    try:
        jid = jids.parse_jid(participant)
        if me.owns(jid):
            return None
        return jids.party_of(jid).address
    except (InvalidInput, ValueError) as exc:
        log.warning("quoted message author %r is not a valid JID: %s", _short(participant, 80), exc)
        return participant if len(participant) <= MAX_ID_CHARS else None


def seconds(timestamp: int) -> float:
    """A neonize timestamp in seconds (newer neonize sends milliseconds); 0.0, meaning
    unknown, when it is missing or not between 2009 and 2100."""
    value = timestamp / 1000.0 if timestamp > 100_000_000_000 else float(timestamp)
    if not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
        if timestamp:
            log.debug("ignoring an implausible WhatsApp timestamp %d", timestamp)
        return 0.0
    return value


def _body(ev: neonize.Message) -> wa.Message:
    if ev.HasField("Message") and ev.Message.ListFields():
        return ev.Message
    return ev.Raw


def message_from_event(
    ev: neonize.Message, *, me: Identity = NOBODY
) -> tuple[Message | None, str | None]:
    """The neutral message of a ``MessageEv`` and the problem with it, if any.

    ``(None, None)`` means there is nothing to bridge. Raises :class:`InvalidInput`
    (or ``ValueError``) when the envelope itself (chat, sender, id) is unusable.
    """
    info = ev.Info
    source = info.MessageSource
    chat_jid = source.Chat
    if jids.is_empty(chat_jid):
        raise InvalidInput("the message names no chat")
    _check_jid(chat_jid, "chat")
    if not jids.is_bridgeable_chat(chat_jid):
        log.debug("ignoring message %.128s in %s", info.ID, jids.jid_to_str(chat_jid))
        return None, None
    if not info.ID:
        raise InvalidInput("the message has no id")
    if len(info.ID) > MAX_ID_CHARS:
        raise InvalidInput(f"the message id has {len(info.ID)} characters (not a WhatsApp id)")
    parsed = parse_content(_body(ev))
    if parsed.content is None:
        if ev.UnavailableRequestID:
            log.debug("message %s is not available yet; the phone will resend it", info.ID)
            return None, None
        if not _body(ev).ListFields():
            return _envelope(ev, Unsupported(type_name="empty"), None, me), "it has no content"
        return None, None
    message = _envelope(ev, parsed.content, parsed.context, me)
    return message, parsed.problem


def _envelope(
    ev: neonize.Message, content: AnyContent, context: wa.ContextInfo | None, me: Identity
) -> Message:
    info = ev.Info
    source = info.MessageSource
    if jids.is_empty(source.Sender):
        raise InvalidInput("the message names no sender")
    for alt, what in (
        (source.Sender, "sender"),
        (source.SenderAlt, "sender"),
        (source.RecipientAlt, "recipient"),
    ):
        _check_jid(alt, what)
    from_me = source.IsFromMe or me.owns(source.Sender)
    name = _push_name(info.Pushname)
    sender = jids.party_of(jids.non_ad(source.Sender), alt=source.SenderAlt, name=name)
    if jids.is_group(source.Chat):
        chat = jids.party_of(source.Chat)
    elif from_me:
        chat = jids.party_of(source.Chat, alt=source.RecipientAlt)
    else:
        chat = jids.party_of(source.Chat, alt=source.SenderAlt, name=name)
    return Message(
        chat=chat,
        sender=sender,
        content=content,
        wa_id=info.ID,
        timestamp=seconds(info.Timestamp),
        quote=_quote(context, me),
        from_me=from_me,
        forwarded=bool(context and context.isForwarded),
        extra={
            "chat_jid": jids.jid_to_str(source.Chat),
            "sender_jid": jids.jid_to_str(jids.non_ad(source.Sender)),
        },
    )


def _push_name(name: str) -> str | None:
    """A push name, cut to :data:`MAX_PUSH_NAME_CHARS`; None when empty."""
    return _short(name, MAX_PUSH_NAME_CHARS) or None


def contact_update(session: str, message: Message) -> ContactUpdateEvent | None:
    """What a message teaches about its sender: push name, LID ↔ phone."""
    sender = message.sender
    if message.from_me or sender.is_group:
        return None
    if sender.name or (sender.phone and sender.lid):
        return ContactUpdateEvent(session=session, party=sender)
    return None


def translate_message(
    session: str, ev: neonize.Message, *, me: Identity = NOBODY, history: bool = False
) -> list[EngineEvent]:
    """The engine events of one ``MessageEv``; never raises."""
    try:
        message, problem = message_from_event(ev, me=me)
    except (InvalidInput, ValueError) as exc:
        ident = _short(ev.Info.ID, MAX_ID_CHARS) or "without an id"
        log.warning("unreadable WhatsApp message %r: %s", ident, exc)
        explanation = f"a WhatsApp message ({ident}) could not be read: {exc}"
        return [EngineErrorEvent(session=session, explanation=explanation, event_id=ident)]
    if message is None:
        return []
    out: list[EngineEvent] = []
    update = contact_update(session, message)
    if update is not None:
        out.append(update)
    out.append(MessageEvent(session=session, message=message, history=history))
    if problem:
        log.warning("message %s from %s: %s", message.wa_id, message.sender.address, problem)
        out.append(
            EngineErrorEvent(
                session=session,
                explanation=(
                    f"message {message.wa_id} from {message.sender.address} is shown as a "
                    f"placeholder: {problem}"
                ),
                event_id=message.wa_id or "",
            )
        )
    return out


# --- history sync ---------------------------------------------------------------


def history_message_event(
    chat: neonize.JID, web: WebMessageInfo, *, me: Identity = NOBODY
) -> neonize.Message:
    """A history-sync message dressed as a live ``MessageEv``.

    Raises :class:`InvalidInput` when its sender cannot be told.
    """
    from_me = web.key.fromMe
    if from_me:
        sender = me.jid
        if sender is None:
            raise InvalidInput("our own message, but our own WhatsApp id is unknown")
    elif not jids.is_group(chat):
        sender = chat
    else:
        participant = web.participant or web.key.participant
        if not participant:
            raise InvalidInput("a group message without a participant")
        sender = jids.parse_jid(participant)
    return neonize.Message(
        Info=neonize.MessageInfo(
            MessageSource=neonize.MessageSource(
                Chat=chat, Sender=sender, IsFromMe=from_me, IsGroup=jids.is_group(chat)
            ),
            ID=web.key.ID,
            Pushname=web.pushName,
            Timestamp=int(seconds(web.messageTimestamp) * 1000),
        ),
        Message=web.message,
    )


def translate_history(
    session: str, ev: neonize.HistorySync, *, me: Identity = NOBODY
) -> list[EngineEvent]:
    """Contacts and messages of a history sync, messages as ``MessageEvent(history=True)``."""
    data = ev.Data
    out: list[EngineEvent] = []
    for mapping in data.phoneNumberToLidMappings:
        out.extend(_mapping_update(session, mapping.pnJID, mapping.lidJID))
    for pushname in data.pushnames:
        out.extend(_pushname_update(session, pushname.ID, pushname.pushname))
    for conversation in data.conversations:
        out.extend(_conversation_events(session, conversation, me))
    return out


def _mapping_update(session: str, pn: str, lid: str) -> list[EngineEvent]:
    try:
        party = jids.party_of(jids.parse_jid(pn), alt=jids.parse_jid(lid))
    except (InvalidInput, ValueError) as exc:
        log.warning("history sync: unusable LID mapping %r ↔ %r: %s", pn, lid, exc)
        return []
    return [ContactUpdateEvent(session=session, party=party)] if party.lid else []


def _pushname_update(session: str, jid_text: str, name: str) -> list[EngineEvent]:
    if not name or len(jid_text) > 2 * MAX_JID_PART_CHARS:
        return []
    try:
        jid = jids.parse_jid(jid_text)
        if jids.is_group(jid):
            return []
        party = jids.party_of(jid, name=_push_name(name))
    except (InvalidInput, ValueError) as exc:
        log.debug("history sync: skipping push name of %r: %s", jid_text, exc)
        return []
    return [ContactUpdateEvent(session=session, party=party)]


def _conversation_events(session: str, conversation: Any, me: Identity) -> list[EngineEvent]:
    try:
        chat = jids.parse_jid(conversation.ID)
    except InvalidInput as exc:
        log.warning("history sync: skipping conversation %r: %s", conversation.ID, exc)
        return []
    if not jids.is_bridgeable_chat(chat):
        return []
    out: list[EngineEvent] = []
    for item in conversation.messages:
        web = item.message
        if not web.HasField("message"):
            continue  # a system stub (group created, number changed …), not a message
        try:
            ev = history_message_event(chat, web, me=me)
        except (InvalidInput, ValueError) as exc:
            log.warning("history sync: skipping message %s: %s", web.key.ID, exc)
            continue
        out.extend(translate_message(session, ev, me=me, history=True))
    return out


# --- receipts ---------------------------------------------------------------------

_RECEIPT_STATUS = {
    neonize.Receipt.DELIVERED: AckStatus.DELIVERED,
    neonize.Receipt.READ: AckStatus.READ,
    neonize.Receipt.PLAYED: AckStatus.READ,
}


def translate_receipt(session: str, ev: neonize.Receipt) -> ReceiptEvent | None:
    """Delivered / read receipts for our messages; other receipt kinds give None."""
    status = _RECEIPT_STATUS.get(ev.Type)
    ids = tuple(i for i in ev.MessageIDs[:MAX_RECEIPT_IDS] if 0 < len(i) <= MAX_ID_CHARS)
    if status is None or not ids:
        return None
    if len(ev.MessageIDs) > MAX_RECEIPT_IDS:
        log.warning(
            "a receipt for %d messages: only the first %d are read",
            len(ev.MessageIDs),
            MAX_RECEIPT_IDS,
        )
    source = ev.MessageSource
    try:
        _check_jid(source.Chat, "chat")
        _check_jid(source.SenderAlt, "sender")
        alt = None if jids.is_group(source.Chat) else source.SenderAlt
        chat = jids.party_of(jids.non_ad(source.Chat), alt=alt)
    except (InvalidInput, ValueError) as exc:
        log.warning("ignoring a receipt in an unusable chat: %s", exc)
        return None
    return ReceiptEvent(
        session=session,
        chat=chat,
        ids=ids,
        status=status,
        timestamp=seconds(ev.Timestamp),
    )


# --- connection -------------------------------------------------------------------

_LOGOUT_REASONS = {
    neonize.LOGGED_OUT: "the device was unlinked from the phone",
    neonize.MAIN_DEVICE_GONE: "the phone's WhatsApp account is gone (re-registered or deleted)",
    neonize.UNKNOWN_LOGOUT: "WhatsApp ended the session",
}
# ConnectFailure reasons that whatsmeow also reports as their own event (LoggedOut,
# TemporaryBan, ClientOutdated): mapping them here too would report them twice.
_FAILURES_WITH_OWN_EVENT = frozenset(
    {*_LOGOUT_REASONS, neonize.TEMP_BANNED, neonize.CLIENT_OUTDATED}
)


def _reason_name(reason: int) -> str:
    return enum_name(neonize.ConnectFailureReason, reason)


def translate_connection(
    session: str, ev: ProtoMessage, *, me: Identity = NOBODY
) -> EngineEvent | None:
    """The engine event of a connection-level neonize event, None when there is none."""
    if isinstance(ev, neonize.Connected):
        return ConnectedEvent(session=session, phone=me.phone)
    if isinstance(ev, neonize.Disconnected):
        return DisconnectedEvent(session=session, reason="the connection to WhatsApp was lost")
    if isinstance(ev, neonize.LoggedOut):
        default = f"logged out by WhatsApp ({_reason_name(ev.Reason)})"
        reason = _LOGOUT_REASONS.get(ev.Reason, default)
        return LoggedOutEvent(session=session, reason=reason)
    if isinstance(ev, neonize.TemporaryBan):
        code = enum_name(neonize.TemporaryBan.TempBanReason, ev.Code) if ev.Code else "UNKNOWN"
        return TemporaryBanEvent(session=session, code=code, expires_in=_ban_seconds(ev.Expire))
    if isinstance(ev, neonize.ClientOutdated):
        return ClientOutdatedEvent(session=session)
    if isinstance(ev, neonize.StreamReplaced):
        return StreamReplacedEvent(session=session)
    if isinstance(ev, neonize.ConnectFailure):
        if ev.Reason in _FAILURES_WITH_OWN_EVENT:
            return None
        detail = f": {_short(ev.Message)}" if ev.Message else ""
        return DisconnectedEvent(
            session=session,
            reason=f"WhatsApp refused the connection ({_reason_name(ev.Reason)}{detail})",
        )
    if isinstance(ev, neonize.OfflineSyncCompleted):
        return OfflineSyncCompletedEvent(session=session, count=max(ev.Count, 0))
    if isinstance(ev, neonize.PairStatus):
        return _pair_status(session, ev)
    return None


def _ban_seconds(expire: int) -> float | None:
    """A ban's expiry in seconds; None (unknown) when missing or over a year."""
    if not 0 < expire <= MAX_BAN_SECONDS:
        if expire:
            log.warning("ignoring an implausible ban expiry of %d s", expire)
        return None
    return float(expire)


def _pair_status(session: str, ev: neonize.PairStatus) -> EngineEvent:
    if ev.Status == neonize.PairStatus.SUCCESS:
        try:
            return PairSuccessEvent(session=session, phone=normalize_phone(ev.ID.User))
        except InvalidInput as exc:
            return EngineErrorEvent(session=session, explanation=f"paired, but {exc}")
    detail = _short(ev.Error) or "no reason given"
    return EngineErrorEvent(session=session, explanation=f"pairing with the phone failed: {detail}")
