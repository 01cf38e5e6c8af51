"""Neutral content ⇄ Matrix event content. Pure functions: no network, no state.

To Matrix (:func:`text_content`, :func:`media_content`, …) each returns
``(event_type, content)``; the frontend adds the thread relation
(:func:`with_thread`) and sends it. From Matrix, :func:`parse_event` turns a raw
event (the JSON of an appservice transaction) into an :class:`Inbound`: neutral
content, or a :class:`PendingMedia` the frontend completes with the downloaded
bytes, plus where the event sits (thread root) and what it quotes.

Media captions follow the spec (v1.10): ``body`` is the caption and ``filename``
the file's name when there is a caption; otherwise ``body`` is the file name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from html import escape
from typing import Any

from bridge import formatting, vcard
from bridge.matrix.fields import Fields
from bridge.model import (
    AnyContent,
    ContactCard,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Reaction,
    Text,
    Unsupported,
    default_filename,
)

JSON = dict[str, Any]
PhoneResolver = Callable[[str], "tuple[str, str] | None"]  # phone → (user id, name)
UserResolver = Callable[[str], "str | None"]

MESSAGE = "m.room.message"
STICKER = "m.sticker"
REACTION = "m.reaction"
REDACTION = "m.room.redaction"
HTML_FORMAT = "org.matrix.custom.html"
VOICE_KEY = "org.matrix.msc3245.voice"
AUDIO_KEY = "org.matrix.msc1767.audio"

_MSGTYPE = {
    MediaKind.IMAGE: "m.image",
    MediaKind.VIDEO: "m.video",
    MediaKind.AUDIO: "m.audio",
    MediaKind.VOICE: "m.audio",
    MediaKind.DOCUMENT: "m.file",
    MediaKind.STICKER: "m.image",  # the content of an m.sticker event
}


def _no_phone(_: str) -> tuple[str, str] | None:
    return None


def _no_user(_: str) -> str | None:
    return None


# --- to Matrix ----------------------------------------------------------------


def text_content(
    text: Text, *, msgtype: str = "m.text", mention_resolver: PhoneResolver = _no_phone
) -> JSON:
    """WhatsApp markup → ``m.text``/``m.notice`` with ``formatted_body`` when needed."""
    plain, html = formatting.whatsapp_to_matrix(text.body, mention_resolver=mention_resolver)
    content: JSON = {"msgtype": msgtype, "body": plain}
    if html is not None:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = html
    return content


def labelled_text(
    name: str,
    text: Text,
    *,
    mention_resolver: PhoneResolver = _no_phone,
    msgtype: str = "m.text",
) -> JSON:
    """An attendant's words mirrored by the bot: ``<b>Name</b>: text``."""
    plain, html = formatting.whatsapp_to_matrix(text.body, mention_resolver=mention_resolver)
    return {
        "msgtype": msgtype,
        "body": f"{name}: {plain}",
        "format": HTML_FORMAT,
        "formatted_body": f"<b>{escape(name)}</b>: {html if html is not None else escape(plain)}",
    }


def note_label(name: str) -> str:
    """Who wrote an internal note, as its mirror shows it (an ``m.notice``):
    ``📝 Note from Ana`` (docs/tickets.md, "Internal notes")."""
    return f"📝 Note from {name}"


def media_content(media: Media, url: str, *, ident: str = "file") -> tuple[str, JSON]:
    """A media event for the uploaded ``url`` (``mxc://``); stickers are ``m.sticker``."""
    filename = media.filename or default_filename(media.media_kind, media.mimetype, ident)
    info: JSON = {"mimetype": media.mimetype}
    size = media.byte_size
    if size is not None:
        info["size"] = size
    if media.width and media.height:
        info["w"], info["h"] = media.width, media.height
    if media.duration is not None and media.media_kind in (
        MediaKind.VIDEO,
        MediaKind.AUDIO,
        MediaKind.VOICE,
    ):
        info["duration"] = media.duration * 1000  # Matrix: milliseconds
    if media.media_kind is MediaKind.STICKER:
        return STICKER, {"body": media.caption or filename, "url": url, "info": info}
    content: JSON = {"msgtype": _MSGTYPE[media.media_kind], "url": url, "info": info}
    if media.caption:
        content["body"], content["filename"] = media.caption, filename
    else:
        content["body"] = filename
    if media.media_kind is MediaKind.VOICE:
        content[VOICE_KEY] = {}
        audio: JSON = {}
        if media.duration is not None:
            audio["duration"] = media.duration * 1000
        content[AUDIO_KEY] = audio
    return MESSAGE, content


def location_content(location: Location) -> JSON:
    """``m.location`` with a ``geo:`` URI; the body names the place when known."""
    uri = f"geo:{location.lat},{location.lon}"
    label = ", ".join(p for p in (location.name, location.address) if p)
    body = f"Location: {label} ({uri})" if label else f"Location: {uri}"
    return {"msgtype": "m.location", "body": body, "geo_uri": uri}


def contact_text(card: ContactCard) -> JSON:
    """A shared contact as readable text, every number with its label (the ``.vcf``
    goes as a separate ``m.file``): ``Contact: Maria Souza — Celular: +55 …``."""
    shown = vcard.describe(card)
    name = f"{shown.name} ({shown.organization})" if shown.organization else shown.name
    body = f"Contact: {name} — {', '.join(shown.entries) or shown.problem}"
    return {"msgtype": "m.text", "body": body}


def contact_file(card: ContactCard) -> Media:
    """The contact's vCard as a file to upload."""
    data = card.vcard.encode()
    name = "".join(c for c in card.display_name if c.isalnum() or c in " -_").strip() or "contact"
    return Media(MediaKind.DOCUMENT, "text/vcard", data=data, filename=f"{name}.vcf")


def unsupported_content(item: Unsupported) -> JSON:
    return {"msgtype": "m.notice", "body": f"⚠️ {item.placeholder}"}


def notice_content(text: str) -> JSON:
    """A bot notice written in WhatsApp markup."""
    return text_content(Text(text), msgtype="m.notice")


def with_thread(
    content: JSON, *, root: str | None, reply_to: str | None = None, latest: str | None = None
) -> JSON:
    """``content`` placed in the thread ``root``.

    ``reply_to`` (a quote) sets ``is_falling_back: false`` and ``m.in_reply_to`` to the
    quoted event; otherwise the reply fallback points at ``latest`` (or the root).
    Outside a thread, ``reply_to`` makes a plain reply."""
    if root is None:
        if reply_to is None:
            return content
        return {**content, "m.relates_to": {"m.in_reply_to": {"event_id": reply_to}}}
    relation: JSON = {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": reply_to is None,
        "m.in_reply_to": {"event_id": reply_to or latest or root},
    }
    return {**content, "m.relates_to": relation}


def reaction_content(target: str, emoji: str) -> JSON:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": emoji}}


def edit_content(target: str, new: JSON) -> JSON:
    """An ``m.replace`` of ``target`` with ``new`` (relations stripped) and a ``* `` fallback."""
    new = {k: v for k, v in new.items() if k != "m.relates_to"}
    fallback = {**new, "body": f"* {new.get('body', '')}"}
    if "formatted_body" in new:
        fallback["formatted_body"] = f"* {new['formatted_body']}"
    return {
        **fallback,
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }


# --- from Matrix ----------------------------------------------------------------


@dataclass(frozen=True)
class PendingMedia:
    """A media event whose bytes are still on the homeserver at ``url``."""

    url: str
    media_kind: MediaKind
    mimetype: str
    filename: str | None
    caption: str | None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None

    def with_data(self, data: bytes) -> Media:
        return Media(
            self.media_kind,
            self.mimetype,
            data=data,
            filename=self.filename,
            caption=self.caption,
            size=len(data),
            width=self.width,
            height=self.height,
            duration=self.duration,
        )


@dataclass(frozen=True)
class Inbound:
    """What an attendant's event means for the core."""

    content: AnyContent | PendingMedia
    thread_root: str | None = None
    reply_to: str | None = None  # the quoted event (not a thread's reply fallback)

    @property
    def is_command(self) -> bool:
        return isinstance(self.content, Text) and self.content.body.startswith("!")


def parse_event(event: JSON, *, mention_resolver: UserResolver = _no_user) -> Inbound | None:
    """An attendant's raw event → :class:`Inbound`; None for what the bridge ignores.
    Raises :class:`~bridge.matrix.fields.MalformedEvent` (and nothing else) when a
    field it reads has the wrong type."""
    fields = Fields.of(event)
    kind = fields.text("type")
    if kind not in (REDACTION, REACTION, STICKER, MESSAGE):
        return None
    content = fields.obj("content")
    if kind == REDACTION:
        target = fields.text("redacts") or content.text("redacts")
        return Inbound(Deletion(target)) if target else None
    if kind == REACTION:
        relation = content.obj("m.relates_to")
        target = relation.text("event_id")
        if relation.text("rel_type") != "m.annotation" or not target:
            return None
        return Inbound(Reaction(target, relation.text("key") or ""))
    if kind == STICKER:
        media = _pending_media(content, MediaKind.STICKER)
        return _placed(media, content) if media else None
    relation = content.obj("m.relates_to")
    edited = relation.text("event_id")
    if relation.text("rel_type") == "m.replace" and edited:
        new = content.obj("m.new_content") or content
        text = _text_of(new, mention_resolver)
        return Inbound(Edit(edited, text)) if text else None
    body = _message_content(content, mention_resolver)
    return _placed(body, content) if body is not None else None


def thread_root_of(content: Fields) -> str | None:
    """The thread an event's content places it in (``m.thread``), if any."""
    relation = content.obj("m.relates_to")
    return relation.text("event_id") if relation.text("rel_type") == "m.thread" else None


def _placed(body: AnyContent | PendingMedia, content: Fields) -> Inbound:
    relation = content.obj("m.relates_to")
    reply = relation.obj("m.in_reply_to").text("event_id")
    root = thread_root_of(content)
    if root is not None:
        quoted = None if relation.flag("is_falling_back", default=True) else reply
        return Inbound(body, thread_root=root, reply_to=quoted)
    return Inbound(body, reply_to=reply)


def _message_content(content: Fields, resolver: UserResolver) -> AnyContent | PendingMedia | None:
    msgtype = content.text("msgtype")
    if msgtype in ("m.text", "m.notice", "m.emote"):
        return _text_of(content, resolver)
    if msgtype == "m.location":
        return _location_of(content)
    kind = _MEDIA_KINDS.get(msgtype or "")
    if kind is None:
        return _text_of(content, resolver)  # unknown msgtypes: their body, if any
    if kind is MediaKind.AUDIO and content.has(VOICE_KEY):
        kind = MediaKind.VOICE
    return _pending_media(content, kind)


_MEDIA_KINDS = {
    "m.image": MediaKind.IMAGE,
    "m.video": MediaKind.VIDEO,
    "m.audio": MediaKind.AUDIO,
    "m.file": MediaKind.DOCUMENT,
}


def _text_of(content: Fields, resolver: UserResolver) -> Text | None:
    body = content.text("body")
    if not body:
        return None
    html = content.text("formatted_body") if content.text("format") == HTML_FORMAT else None
    text = formatting.matrix_to_whatsapp(body, html, mention_resolver=resolver)
    if content.text("msgtype") == "m.emote":
        text = f"_{text}_"
    return Text(text)


def _location_of(content: Fields) -> Location | None:
    uri = content.text("geo_uri") or ""
    if not uri.startswith("geo:"):
        return None
    try:
        lat, lon = (float(x) for x in uri[4:].split(";", 1)[0].split(",")[:2])
    except ValueError:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # also refuses nan
        return None
    return Location(lat, lon, name=content.text("body") or None)


def _pending_media(content: Fields, kind: MediaKind) -> PendingMedia | None:
    url = content.text("url")
    if url is None or not url.startswith("mxc://"):
        return None  # encrypted files (``file``) are not bridged: rooms are unencrypted
    info = content.obj("info")
    body = content.text("body")
    filename = content.text("filename")
    caption = body if filename and body and body != filename else None
    duration = info.metadata_int("duration")
    return PendingMedia(
        url=url,
        media_kind=kind,
        mimetype=info.text("mimetype") or "application/octet-stream",
        filename=filename or body,
        caption=None if kind is MediaKind.STICKER else caption,
        size=info.metadata_int("size"),
        width=info.metadata_int("w"),
        height=info.metadata_int("h"),
        duration=duration // 1000 if duration is not None else None,
    )


def relabel_caption(media: Media, name: str) -> Media:
    """Media an attendant sent elsewhere, shown by the bot: the caption names them."""
    caption = f"{name}: {media.caption}" if media.caption else name
    return replace(media, caption=caption)
