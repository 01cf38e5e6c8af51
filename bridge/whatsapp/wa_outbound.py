"""Neutral content → waE2E protobuf messages. Pure builders: no client, no I/O.

The engine resolves addresses to JIDs, converts and uploads media, then calls these
to build exactly what goes to ``send_message``. Timestamps are arguments, so the
output is a function of the input alone.

Text bodies are already WhatsApp markup: they go out unchanged, as a plain
``conversation`` unless a quote or mentions need an ``extendedTextMessage``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from neonize.proto.Neonize_pb2 import UploadResponse
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa
from neonize.utils.enum import MediaType

from bridge.errors import InvalidInput
from bridge.model import (
    ContactCard,
    ContactList,
    Location,
    Media,
    MediaKind,
    Quote,
    Text,
    default_filename,
)
from bridge.whatsapp import jid as jids

VOICE_MIMETYPE = "audio/ogg; codecs=opus"
STICKER_MIMETYPE = "image/webp"

_UPLOAD_TYPES = {
    MediaKind.IMAGE: MediaType.MediaImage,
    MediaKind.STICKER: MediaType.MediaImage,
    MediaKind.VIDEO: MediaType.MediaVideo,
    MediaKind.AUDIO: MediaType.MediaAudio,
    MediaKind.VOICE: MediaType.MediaAudio,
    MediaKind.DOCUMENT: MediaType.MediaDocument,
}


def upload_media_type(kind: MediaKind) -> MediaType:
    """The media type WhatsApp encrypts and stores a file of this kind as."""
    return _UPLOAD_TYPES[kind]


def quote_context(quote: Quote, *, participant: str) -> wa.ContextInfo:
    """The ContextInfo of a reply to ``quote``; ``participant`` is its author's JID
    (ours when we quote our own message)."""
    quoted = wa.Message(conversation=quote.text) if quote.text else None
    return wa.ContextInfo(stanzaID=quote.wa_id, participant=participant, quotedMessage=quoted)


def mention_jids(mentions: Iterable[str]) -> list[str]:
    """JID strings of mentioned E.164 phones (digits as given)."""
    return [jids.jid_to_str(jids.phone_jid(phone)) for phone in mentions]


def text_message(text: Text, *, context: wa.ContextInfo | None = None) -> wa.Message:
    """A text: ``conversation``, or ``extendedTextMessage`` when quoting or mentioning."""
    mentioned = mention_jids(text.mentions)
    if context is None and not mentioned:
        return wa.Message(conversation=text.body)
    info = wa.ContextInfo()
    if context is not None:
        info.CopyFrom(context)
    info.mentionedJID.extend(mentioned)
    return wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text=text.body, contextInfo=info))


def media_message(
    media: Media,
    upload: UploadResponse,
    *,
    mimetype: str,
    now: float,
    context: wa.ContextInfo | None = None,
    duration: int | None = None,
    ident: str = "file",
) -> wa.Message:
    """The message for an uploaded file. ``mimetype`` and ``duration`` describe the
    bytes actually uploaded (after any conversion); ``ident`` names nameless documents."""
    common: dict[str, Any] = {
        "URL": upload.url,
        "directPath": upload.DirectPath,
        "mediaKey": upload.MediaKey,
        "fileEncSHA256": upload.FileEncSHA256,
        "fileSHA256": upload.FileSHA256,
        "fileLength": upload.FileLength,
        "mimetype": mimetype,
        "mediaKeyTimestamp": int(now),
    }
    if context is not None:
        common["contextInfo"] = context
    seconds = duration if duration is not None else media.duration
    kind = media.media_kind
    if kind is MediaKind.IMAGE:
        part = wa.ImageMessage(
            caption=media.caption, width=media.width, height=media.height, **common
        )
        return wa.Message(imageMessage=part)
    if kind is MediaKind.VIDEO:
        video = wa.VideoMessage(
            caption=media.caption,
            gifPlayback=media.gif,
            seconds=seconds,
            width=media.width,
            height=media.height,
            **common,
        )
        return wa.Message(videoMessage=video)
    if kind in (MediaKind.AUDIO, MediaKind.VOICE):
        audio = wa.AudioMessage(PTT=kind is MediaKind.VOICE, seconds=seconds, **common)
        return wa.Message(audioMessage=audio)
    if kind is MediaKind.DOCUMENT:
        name = media.filename or default_filename(kind, mimetype, ident)
        document = wa.DocumentMessage(fileName=name, title=name, caption=media.caption, **common)
        return wa.Message(documentMessage=document)
    if kind is MediaKind.STICKER:
        sticker = wa.StickerMessage(width=media.width, height=media.height, **common)
        return wa.Message(stickerMessage=sticker)
    raise InvalidInput(f"cannot send media of kind {kind!r}")


def location_message(location: Location, *, context: wa.ContextInfo | None = None) -> wa.Message:
    """A (static) location pin; a live location goes out as its current position."""
    part = wa.LocationMessage(
        degreesLatitude=location.lat,
        degreesLongitude=location.lon,
        name=location.name,
        address=location.address,
        contextInfo=context,
    )
    return wa.Message(locationMessage=part)


def _contact_part(card: ContactCard) -> wa.ContactMessage:
    return wa.ContactMessage(displayName=card.display_name, vcard=card.vcard)


def contact_message(card: ContactCard, *, context: wa.ContextInfo | None = None) -> wa.Message:
    part = _contact_part(card)
    if context is not None:
        part.contextInfo.CopyFrom(context)
    return wa.Message(contactMessage=part)


def contacts_message(contacts: ContactList, *, context: wa.ContextInfo | None = None) -> wa.Message:
    part = wa.ContactsArrayMessage(
        displayName=contacts.display_name,
        contacts=[_contact_part(card) for card in contacts.cards],
        contextInfo=context,
    )
    return wa.Message(contactsArrayMessage=part)


def message_key(*, chat: str, target: str, target_sender: str | None) -> MessageKey:
    """The key of message ``target`` in ``chat`` (JID strings); ``target_sender``
    None means the message is ours. Like whatsmeow's ``BuildMessageKey``."""
    key = MessageKey(remoteJID=chat, fromMe=target_sender is None, ID=target)
    if target_sender is not None and not chat.endswith("@" + jids.USER_SERVER):
        key.participant = target_sender
    return key


def reaction_message(
    *, chat: str, target: str, target_sender: str | None, emoji: str, now_ms: int
) -> wa.Message:
    """A reaction to ``target``; an empty ``emoji`` removes ours."""
    part = wa.ReactionMessage(
        key=message_key(chat=chat, target=target, target_sender=target_sender),
        text=emoji,
        senderTimestampMS=now_ms,
    )
    return wa.Message(reactionMessage=part)


def edit_message(*, chat: str, target: str, text: str, now_ms: int) -> wa.Message:
    """An edit of our message ``target`` (like whatsmeow's ``BuildEdit``)."""
    protocol = wa.ProtocolMessage(
        key=message_key(chat=chat, target=target, target_sender=None),
        type=wa.ProtocolMessage.MESSAGE_EDIT,
        editedMessage=wa.Message(conversation=text),
        timestampMS=now_ms,
    )
    inner = wa.Message(protocolMessage=protocol)
    return wa.Message(editedMessage=wa.FutureProofMessage(message=inner))


def revoke_message(*, chat: str, target: str) -> wa.Message:
    """Deletion for everyone of our message ``target`` (like whatsmeow's ``BuildRevoke``)."""
    protocol = wa.ProtocolMessage(
        key=message_key(chat=chat, target=target, target_sender=None),
        type=wa.ProtocolMessage.REVOKE,
    )
    return wa.Message(protocolMessage=protocol)
