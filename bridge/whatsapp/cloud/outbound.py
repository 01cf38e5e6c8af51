"""Neutral content → the Graph API's message JSON (pure; no I/O).

Each function returns the body of ``POST /{phone_number_id}/messages`` as Meta's
reference documents it (docs/cloud.md): ``messaging_product: "whatsapp"``,
``recipient_type: "individual"``, ``to`` (the customer's digits), ``type`` and the
object of that type, and ``context.message_id`` for a reply.

- Text keeps its WhatsApp markup: the Cloud API reads the same ``*bold*``
  ``_italic_`` ``~strike~`` markup as the phones; a link asks for a preview.
- Media is sent by the id of an upload; voice notes go as ``audio`` and GIFs as
  ``video`` (the Cloud API has neither type). Audio and stickers take no caption:
  :func:`detached_caption` gives it back, for the engine to send as a text after.
- A contact card becomes Meta's ``contacts`` object (a name, numbers with their
  ``wa_id``, emails, company), read with :mod:`bridge.vcard`.
- Reactions name their target; an empty emoji removes the reaction.
- Templates take their body parameters in order (``{{1}}``, ``{{2}}``, …).
- A send's reference (:func:`with_reference`) rides in ``biz_opaque_callback_data``,
  which Meta echoes in every status of that message (docs/cloud.md, "Sending twice").

What the Cloud API cannot send (groups, LIDs, edits, deletions, unsupported kinds)
is refused with a :class:`~bridge.errors.PermanentDeliveryError` saying so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bridge import vcard
from bridge.errors import InvalidInput, PermanentDeliveryError
from bridge.model import (
    ContactCard,
    ContactList,
    Content,
    Location,
    Media,
    MediaKind,
    Quote,
    Text,
)
from bridge.phone import is_valid_e164

JsonDict = dict[str, Any]

MAX_TEXT_CHARS = 4096  # a text message's body
MAX_CAPTION_CHARS = 1024  # a media caption
MAX_TEMPLATE_PARAM_CHARS = 1024  # one body parameter of a template
MAX_REFERENCE_CHARS = 512  # biz_opaque_callback_data

_MEDIA_TYPES: dict[MediaKind, str] = {
    MediaKind.IMAGE: "image",
    MediaKind.VIDEO: "video",
    MediaKind.AUDIO: "audio",
    MediaKind.VOICE: "audio",
    MediaKind.DOCUMENT: "document",
    MediaKind.STICKER: "sticker",
}
_CAPTIONED = frozenset({"image", "video", "document"})
# a number's label (bridge.vcard's words) → Meta's phone type
_PHONE_TYPES = {
    "CELL": "CELL",
    "MOBILE": "CELL",
    "MAIN": "MAIN",
    "IPHONE": "IPHONE",
    "HOME": "HOME",
    "WORK": "WORK",
}
_LINK = re.compile(r"https?://", re.IGNORECASE)


def recipient(to: str) -> str:
    """The digits Meta takes in ``to``, from an E.164 phone (``+5511…`` → ``5511…``)."""
    if not is_valid_e164(to):
        raise PermanentDeliveryError(
            f"the Cloud API sends to phone numbers only, not to {to!r} (groups and LIDs "
            "are not reachable through it)"
        )
    return to.removeprefix("+")


def _envelope(to: str, kind: str, body: JsonDict, quote: Quote | None = None) -> JsonDict:
    payload: JsonDict = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(to),
        "type": kind,
        kind: body,
    }
    if quote is not None:
        payload["context"] = {"message_id": quote.wa_id}
    return payload


def with_reference(payload: JsonDict, reference: str | None) -> JsonDict:
    """``payload`` carrying ``reference`` as its ``biz_opaque_callback_data`` (none when
    ``reference`` is None); a reference longer than Meta takes is refused."""
    if reference is None:
        return payload
    if not reference or len(reference) > MAX_REFERENCE_CHARS:
        raise PermanentDeliveryError(
            f"a send's reference must be 1 to {MAX_REFERENCE_CHARS} characters"
        )
    return {**payload, "biz_opaque_callback_data": reference}


def message_payload(
    to: str, content: Content, *, media_id: str | None = None, quote: Quote | None = None
) -> JsonDict:
    """The message for ``content``; media need the ``media_id`` of their upload."""
    if isinstance(content, Text):
        return _envelope(to, "text", text_object(content.body), quote)
    if isinstance(content, Media):
        if media_id is None:
            raise ValueError("a media message needs the id of its upload")
        kind = media_type(content)
        return _envelope(to, kind, media_object(content, media_id), quote)
    if isinstance(content, Location):
        return _envelope(to, "location", location_object(content), quote)
    if isinstance(content, ContactCard):
        return _contacts_message(to, (content,), quote)
    if isinstance(content, ContactList):
        return _contacts_message(to, content.cards, quote)
    raise PermanentDeliveryError(f"a {content.kind} message cannot be sent through the Cloud API")


def text_object(body: str) -> JsonDict:
    if not body.strip():
        raise PermanentDeliveryError("WhatsApp does not take an empty text message")
    if len(body) > MAX_TEXT_CHARS:
        raise PermanentDeliveryError(
            f"the text has {len(body)} characters; the Cloud API takes up to {MAX_TEXT_CHARS}"
        )
    return {"body": body, "preview_url": _LINK.search(body) is not None}


def media_type(media: Media) -> str:
    """The Graph message type of ``media``: GIFs play as ``video``."""
    if media.gif and media.media_kind in (MediaKind.VIDEO, MediaKind.IMAGE):
        return "video"
    return _MEDIA_TYPES[media.media_kind]


def media_object(media: Media, media_id: str) -> JsonDict:
    kind = media_type(media)
    body: JsonDict = {"id": media_id}
    if media.caption and kind in _CAPTIONED:
        if len(media.caption) > MAX_CAPTION_CHARS:
            raise PermanentDeliveryError(
                f"the caption has {len(media.caption)} characters; the Cloud API takes up "
                f"to {MAX_CAPTION_CHARS}"
            )
        body["caption"] = media.caption
    if kind == "document" and media.filename:
        body["filename"] = media.filename
    return body


def detached_caption(media: Media) -> str | None:
    """The caption of an audio file or a sticker, which the Cloud API cannot carry."""
    if media.caption and media.caption.strip() and media_type(media) not in _CAPTIONED:
        return media.caption
    return None


def location_object(location: Location) -> JsonDict:
    body: JsonDict = {"latitude": location.lat, "longitude": location.lon}
    if location.name:
        body["name"] = location.name
    if location.address:
        body["address"] = location.address
    return body


def _contacts_message(to: str, cards: Sequence[ContactCard], quote: Quote | None) -> JsonDict:
    payload = _envelope(to, "contacts", {}, quote)
    payload["contacts"] = [contact_object(card) for card in cards]
    return payload


def contact_object(card: ContactCard) -> JsonDict:
    """Meta's contact: ``name`` (``formatted_name`` and one more part, as required),
    ``phones`` with their ``wa_id``, ``emails``, ``org``."""
    try:
        read = vcard.read(card.vcard)
    except InvalidInput as exc:
        raise PermanentDeliveryError(
            f"the contact card could not be read: {exc.explanation}"
        ) from exc
    formatted = card.display_name.strip() or read.name or _first_number(read) or "contact"
    family, given = (*read.structured_name, "", "")[:2]
    name: JsonDict = {"formatted_name": formatted, "first_name": given or formatted}
    if family:
        name["last_name"] = family
    contact: JsonDict = {"name": name}
    phones = [_phone_object(phone) for phone in read.phones]
    if phones:
        contact["phones"] = phones
    if read.emails:
        contact["emails"] = [{"email": email} for email in read.emails]
    if read.organization:
        contact["org"] = {"company": read.organization}
    return contact


def _first_number(card: vcard.VCard) -> str:
    return card.phones[0].number if card.phones else ""


def _phone_object(phone: vcard.Phone) -> JsonDict:
    body: JsonDict = {"phone": phone.number}
    kind = _PHONE_TYPES.get((phone.label or "").upper())
    if kind is not None:
        body["type"] = kind
    if phone.waid:
        body["wa_id"] = phone.waid
    return body


def reaction_payload(to: str, *, target: str, emoji: str) -> JsonDict:
    """A reaction to ``target``; the empty ``emoji`` removes ours."""
    return _envelope(to, "reaction", {"message_id": target, "emoji": emoji})


def template_payload(
    to: str, *, name: str, language: str, params: Sequence[str], quote: Quote | None = None
) -> JsonDict:
    """The approved template ``name`` in ``language`` with its body ``params``."""
    body: JsonDict = {"name": name, "language": {"code": language}}
    for index, param in enumerate(params, start=1):
        if not param.strip() or len(param) > MAX_TEMPLATE_PARAM_CHARS:
            raise PermanentDeliveryError(
                f"template parameter {index} must be 1 to {MAX_TEMPLATE_PARAM_CHARS} characters"
            )
    if params:
        parameters = [{"type": "text", "text": param} for param in params]
        body["components"] = [{"type": "body", "parameters": parameters}]
    return _envelope(to, "template", body, quote)


def read_payload(message_id: str) -> JsonDict:
    """Mark the customer's message ``message_id`` (and those before it) as read."""
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
