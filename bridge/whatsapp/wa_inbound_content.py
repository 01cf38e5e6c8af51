"""The content of a WhatsApp ``waE2E.Message`` → neutral content. Pure functions.

:func:`parse_content` reads what a message holds (text, media, location, contacts,
reactions, edits, deletions …) for :mod:`bridge.whatsapp.wa_inbound`, which adds
the envelope (chat, sender, id, quote). A part that is present but cannot be used
(no media key, a field over its limit below, an edit without text …) becomes an
``Unsupported`` placeholder and the problem is returned with it; message kinds the
bridge cannot render become ``Unsupported(type_name=<friendly name>)``.

Media stays lazy: :class:`Media` carries a ``ref`` (direct path, keys and hashes,
base64 for bytes) that :func:`download_message` turns back into the protobuf
whatsmeow's ``DownloadAny`` needs, even after a restart.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from bridge import vcard
from bridge.errors import InvalidInput
from bridge.model import (
    AnyContent,
    ContactCard,
    ContactList,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Reaction,
    Text,
    Unsupported,
)
from bridge.whatsapp import jid as jids

log = logging.getLogger(__name__)


class _Unreadable(InvalidInput):
    """A message part is present but cannot be used (no media key, bad coordinates…): the
    part becomes a placeholder (:func:`parse_content`)."""


# --- limits -----------------------------------------------------------------------
# Far above anything WhatsApp sends; beyond them a part is hostile or corrupt.

MAX_TEXT_CHARS = 65_536  # a text or caption (WhatsApp's own limit)
MAX_VCARD_CHARS = 256 * 1024  # a vCard may carry a photo
MAX_FIELD_CHARS = 4_096  # a name, file name, mimetype, address, emoji …
MAX_ID_CHARS = 128  # a message id (WhatsApp's are 16 to 32)
MAX_CARDS = 256  # contacts shared in one message
MAX_MENTIONS = 256  # mentions read from one message
MAX_JSON_INT = 2**53 - 1  # the largest integer every JSON reader keeps exactly

_TEXT_FIELDS = frozenset({"body", "caption"})


def _check_sizes(content: AnyContent) -> None:
    """Raises :class:`_Unreadable` when a string or a list of ``content`` is too long."""
    if isinstance(content, ContactList) and len(content.cards) > MAX_CARDS:
        raise _Unreadable(f"it shares {len(content.cards)} contacts, over {MAX_CARDS}")
    parts: list[Any] = [content]
    while parts:
        part = parts.pop()
        for name, value in vars(part).items():
            if isinstance(value, str):
                _check_length(name, value)
            elif isinstance(value, tuple):
                parts.extend(v for v in value if hasattr(v, "__dataclass_fields__"))
            elif hasattr(value, "__dataclass_fields__"):
                parts.append(value)


def _check_length(name: str, value: str) -> None:
    if name in _TEXT_FIELDS:
        limit = MAX_TEXT_CHARS
    elif name == "vcard":
        limit = MAX_VCARD_CHARS
    else:
        limit = MAX_FIELD_CHARS
    if len(value) > limit:
        raise _Unreadable(f"its {name} has {len(value)} characters, over {limit}")


def _message_id(value: str, what: str) -> str:
    """``value`` when it can be a WhatsApp message id, else :class:`_Unreadable`."""
    if not value:
        raise _Unreadable(f"{what} names no message")
    if len(value) > MAX_ID_CHARS:
        raise _Unreadable(f"{what} names a message id of {len(value)} characters")
    return value


def enum_name(enum: Any, value: int) -> str:
    """The name of ``value`` in a protobuf ``enum``, or the number when it has none."""
    try:
        return str(enum.Name(value))
    except ValueError:
        return str(value)


# --- messages -------------------------------------------------------------------

# Envelopes around the real content, outermost first. whatsmeow already strips
# most of them from live messages; history-sync messages still carry them.
_WRAPPERS = (
    "deviceSentMessage",
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
    "lottieStickerMessage",
    "botInvokeMessage",
    "groupMentionedMessage",
)
# Fields that ride along with content but are not content themselves.
_COMPANIONS = frozenset(
    {
        "messageContextInfo",
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
    }
)
# Protocol messages a person did something for; the rest is device plumbing.
_VISIBLE_PROTOCOL = frozenset({wa.ProtocolMessage.EPHEMERAL_SETTING})


@dataclass(frozen=True)
class ParsedContent:
    """What a ``waE2E.Message`` holds: ``content`` None means "nothing to bridge";
    ``problem`` is set when ``content`` is a placeholder for an unreadable part."""

    content: AnyContent | None
    context: wa.ContextInfo | None = None
    problem: str | None = None


def unwrap(msg: wa.Message) -> wa.Message:
    """The innermost message inside ephemeral / view-once / edited / … envelopes."""
    for _ in range(8):
        for name in _WRAPPERS:
            if msg.HasField(name) and getattr(msg, name).HasField("message"):
                msg = getattr(msg, name).message
                break
        else:
            return msg
    return msg


def type_name(field: str) -> str:
    """The name a person knows a WhatsApp message type by, as the sim engine and the
    placeholder use it: ``pollCreationMessageV3`` → ``poll``, ``eventMessage`` → ``event``."""
    base = re.sub(r"(Message)?(V\d+)?$", "", field)
    return _FRIENDLY_TYPES.get(base, base) or field


_FRIENDLY_TYPES = {
    "conversation": "text",
    "extendedText": "text",
    "pollCreation": "poll",
    "pollUpdate": "poll vote",
    "groupInvite": "group invite",
    "buttonsResponse": "button reply",
    "listResponse": "list reply",
    "templateButtonReply": "button reply",
    "interactiveResponse": "interactive reply",
    "requestPayment": "payment request",
    "sendPayment": "payment",
    "call": "call",
}


def parse_content(msg: wa.Message) -> ParsedContent:
    """The neutral content of a WhatsApp message (see :class:`ParsedContent`)."""
    msg = unwrap(msg)
    set_fields = [f.name for f, _ in msg.ListFields() if f.name not in _COMPANIONS]
    if not set_fields:
        return ParsedContent(None)
    field = next((f for f in set_fields if f in _PARSERS), set_fields[0])
    parser = _PARSERS.get(field)
    if parser is None:
        return ParsedContent(Unsupported(type_name=type_name(field)))
    part = getattr(msg, field)
    context = _context_of(part)
    try:
        content = parser(part)
        if content is not None:
            _check_sizes(content)
        return ParsedContent(content, context)
    except (InvalidInput, ValueError) as exc:
        unreadable = Unsupported(type_name=type_name(field))
        return ParsedContent(unreadable, context, f"unreadable {field}: {exc}")


def _context_of(part: Any) -> wa.ContextInfo | None:
    if isinstance(part, ProtoMessage) and "contextInfo" in part.DESCRIPTOR.fields_by_name:
        if part.HasField("contextInfo"):
            return part.contextInfo
    return None


def _text(value: str) -> Text:
    return Text(body=value)


def _extended_text(part: wa.ExtendedTextMessage) -> Text:
    return Text(body=part.text, mentions=_mentions(part.contextInfo))


def _mentions(context: wa.ContextInfo) -> tuple[str, ...]:
    phones = (jids.mention_phone(m) for m in context.mentionedJID[:MAX_MENTIONS])
    return tuple(dict.fromkeys(p for p in phones if p))


# Per media field: the message type a download is rebuilt as, and the default mimetype.
_MEDIA_FIELDS: dict[str, tuple[str, str]] = {
    "imageMessage": ("imageMessage", "image/jpeg"),
    "videoMessage": ("videoMessage", "video/mp4"),
    "ptvMessage": ("videoMessage", "video/mp4"),
    "audioMessage": ("audioMessage", "audio/ogg; codecs=opus"),
    "documentMessage": ("documentMessage", "application/octet-stream"),
    "stickerMessage": ("stickerMessage", "image/webp"),
}
_REF_BYTES = ("media_key", "file_enc_sha256", "file_sha256")


def media_ref(message_type: str, part: Any) -> dict[str, Any]:
    """The JSON-serialisable download reference of a media part."""
    if not part.mediaKey:
        raise _Unreadable("it has no media key, so it cannot be downloaded or decrypted")
    if not (part.directPath or part.URL):
        raise _Unreadable("it has no download path")
    if max(len(part.directPath), len(part.URL), len(part.mediaKey)) > MAX_FIELD_CHARS:
        raise _Unreadable("its download path or key is too long")
    return {
        "message_type": message_type,
        "direct_path": part.directPath,
        "url": part.URL,
        "media_key": _b64(part.mediaKey),
        "file_enc_sha256": _b64(part.fileEncSHA256),
        "file_sha256": _b64(part.fileSHA256),
        "file_length": int(part.fileLength),
        "mimetype": part.mimetype,
    }


def download_message(ref: dict[str, Any]) -> wa.Message:
    """The protobuf neonize's ``download_any`` needs, rebuilt from a :func:`media_ref`.

    Raises :class:`InvalidInput` when ``ref`` is not one of ours.
    """
    try:
        message_type = ref["message_type"]
        fields: dict[str, Any] = {
            "directPath": ref.get("direct_path") or "",
            "URL": ref.get("url") or "",
            "mimetype": ref.get("mimetype") or "",
            "fileLength": int(ref.get("file_length") or 0),
        }
        fields["mediaKey"], fields["fileEncSHA256"], fields["fileSHA256"] = (
            base64.b64decode(ref.get(name) or "", validate=True) for name in _REF_BYTES
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"not a WhatsApp media reference: {exc}") from exc
    if message_type not in {t for t, _ in _MEDIA_FIELDS.values()}:
        raise InvalidInput(f"not a WhatsApp media reference: message_type {message_type!r}")
    if not fields["mediaKey"] or not (fields["directPath"] or fields["URL"]):
        raise InvalidInput("the WhatsApp media reference has no media key or no download path")
    msg = wa.Message()
    getattr(msg, message_type).MergeFrom(type(getattr(msg, message_type))(**fields))
    return msg


def _media(field: str, kind: MediaKind, part: Any, **extra: Any) -> Media:
    message_type, default_mime = _MEDIA_FIELDS[field]
    return Media(
        media_kind=kind,
        mimetype=part.mimetype or default_mime,
        ref=media_ref(message_type, part),
        size=min(int(part.fileLength), MAX_JSON_INT) or None,
        sha256=part.fileSHA256.hex() or None,
        **extra,
    )


def _frame(part: wa.ImageMessage | wa.VideoMessage | wa.StickerMessage) -> dict[str, int | None]:
    """The width and height of a picture, video or sticker; None where not given."""
    return {"width": part.width or None, "height": part.height or None}


def _image(part: wa.ImageMessage) -> Media:
    return _media(
        "imageMessage", MediaKind.IMAGE, part, caption=part.caption or None, **_frame(part)
    )


def _video(field: str) -> Callable[[wa.VideoMessage], Media]:
    def parse(part: wa.VideoMessage) -> Media:
        return _media(
            field,
            MediaKind.VIDEO,
            part,
            caption=part.caption or None,
            duration=part.seconds or None,
            gif=part.gifPlayback,
            **_frame(part),
        )

    return parse


def _audio(part: wa.AudioMessage) -> Media:
    kind = MediaKind.VOICE if part.PTT else MediaKind.AUDIO
    return _media("audioMessage", kind, part, duration=part.seconds or None)


def _document(part: wa.DocumentMessage) -> Media:
    return _media(
        "documentMessage",
        MediaKind.DOCUMENT,
        part,
        filename=part.fileName or part.title or None,
        caption=part.caption or None,
    )


def _sticker(part: wa.StickerMessage) -> Media:
    return _media("stickerMessage", MediaKind.STICKER, part, **_frame(part))


def _location(part: wa.LocationMessage) -> Location:
    return Location(
        lat=part.degreesLatitude,
        lon=part.degreesLongitude,
        name=part.name or None,
        address=part.address or None,
        live=part.isLive,
    )


def _live_location(part: wa.LiveLocationMessage) -> Location:
    return Location(
        lat=part.degreesLatitude,
        lon=part.degreesLongitude,
        name=part.caption or None,
        live=True,
    )


def _contact(part: wa.ContactMessage) -> ContactCard:
    if not part.vcard:
        raise _Unreadable("the shared contact has no vCard")
    return ContactCard(display_name=part.displayName or _vcard_name(part.vcard), vcard=part.vcard)


def _vcard_name(text: str) -> str:
    """The contact's name in its vCard (FN, else N), for a card WhatsApp did not name."""
    try:
        return vcard.read(text).name or "contact"
    except InvalidInput:
        return "contact"  # the thread shows the card cannot be read


def _contacts(part: wa.ContactsArrayMessage) -> ContactList:
    if len(part.contacts) > MAX_CARDS:
        raise _Unreadable(f"it shares {len(part.contacts)} contacts, over {MAX_CARDS}")
    cards = tuple(_contact(c) for c in part.contacts)
    if not cards:
        raise _Unreadable("the shared contact list is empty")
    name = part.displayName or f"{len(cards)} contacts"
    return ContactList(display_name=name, cards=cards)


def _reaction(part: wa.ReactionMessage) -> Reaction:
    return Reaction(target=_message_id(part.key.ID, "the reaction"), emoji=part.text)


def _protocol(part: wa.ProtocolMessage) -> AnyContent | None:
    if part.type == wa.ProtocolMessage.REVOKE:
        return Deletion(target=_message_id(part.key.ID, "the deletion"))
    if part.type == wa.ProtocolMessage.MESSAGE_EDIT:
        target = _message_id(part.key.ID, "the edit")
        new = text_of(unwrap(part.editedMessage))
        if new is None:
            raise _Unreadable("the edit carries no text")
        return Edit(target=target, new=new)
    if part.type in _VISIBLE_PROTOCOL:
        return Unsupported(type_name="protocolMessage")
    log.debug("ignoring protocol message of type %s", enum_name(wa.ProtocolMessage.Type, part.type))
    return None


def text_of(msg: wa.Message) -> Text | None:
    """The text of a text message, or the caption of a media message."""
    if msg.HasField("conversation"):
        return Text(body=msg.conversation)
    if msg.HasField("extendedTextMessage"):
        return _extended_text(msg.extendedTextMessage)
    for name in ("imageMessage", "videoMessage", "documentMessage"):
        if msg.HasField(name) and getattr(msg, name).caption:
            return Text(body=getattr(msg, name).caption)
    return None


_PARSERS: dict[str, Callable[[Any], AnyContent | None]] = {
    "conversation": _text,
    "extendedTextMessage": _extended_text,
    "imageMessage": _image,
    "videoMessage": _video("videoMessage"),
    "ptvMessage": _video("ptvMessage"),
    "audioMessage": _audio,
    "documentMessage": _document,
    "stickerMessage": _sticker,
    "locationMessage": _location,
    "liveLocationMessage": _live_location,
    "contactMessage": _contact,
    "contactsArrayMessage": _contacts,
    "reactionMessage": _reaction,
    "protocolMessage": _protocol,
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
