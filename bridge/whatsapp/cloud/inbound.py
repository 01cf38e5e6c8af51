"""Meta's Cloud API webhook bodies → engine events. Pure functions, no I/O.

A ``POST /cloud/webhook`` body, its signature checked and its JSON parsed by
:mod:`bridge.whatsapp.cloud.webhook`, is read in two steps:

- :func:`read_changes` reads the envelope (``{"object": "whatsapp_business_account",
  "entry": [{"id", "changes": [{"field": "messages", "value": {…}}]}]}``) and returns
  the ``messages`` changes, each with the number it is for
  (``value.metadata.phone_number_id``), before any event is made. An envelope of the
  wrong shape is refused whole (:class:`RequestRefused`, 400; 413 past the limits
  below). Changes of other fields (template reviews, account updates) and bodies
  for other objects (a Messenger page on the same app) are left out, logged.
- :func:`events_of` turns one change into the events of its session and never
  raises. One message or status that cannot be read becomes an
  :class:`EngineErrorEvent` naming it (its WhatsApp id when it has one); the rest of
  the change is read as usual. A message whose envelope (id, sender, type) reads but
  whose content does not is shown as a placeholder (``unsupported message: image``)
  and reported by an error event too, as the whatsmeow engine does.

Messages (``value.messages[]``) become :class:`MessageEvent`\\ s, in the neutral model:
``text``; ``image``, ``video``, ``audio`` (a voice note when ``voice`` is true),
``document`` and ``sticker`` as :class:`Media` with ``ref={"cloud_media_id": id}``
(the engine downloads it); ``location``; ``contacts`` as contact cards whose vCard
3.0 is written by :func:`bridge.vcard.write`; ``reaction`` (an empty emoji removes
it); a chosen reply button or list row (``interactive``) and a template's
quick-reply button (``button``) as the text of the choice; any other type as
:class:`Unsupported` (``unsupported message: <type>``; for Meta's own ``unsupported``
type, the type it names). ``context.id`` makes the reply's :class:`Quote`. The
sender's profile name (``value.contacts[].profile.name``) names the sender, and the
first message of each sender in a change is preceded by a
:class:`ContactUpdateEvent` carrying it, as with whatsmeow's push names.

Statuses (``value.statuses[]``): ``sent``, ``delivered`` and ``read`` become
:class:`ReceiptEvent`\\ s; ``failed`` a :class:`SendFailedEvent` with Meta's error
code and words (``errors[0]``); others are left out. Both carry the send's
``biz_opaque_callback_data`` as their ``reference`` (docs/cloud.md, "Sending
twice"). Errors of the change itself (``value.errors[]``) become :class:`EngineErrorEvent`\\ s.

Phones: Meta's ``from``, ``wa_id`` and ``recipient_id`` are digits without ``+``;
they are normalised by :func:`bridge.phone.normalize_phone` like every engine's, so
a customer is the same contact whichever engine brought them. Timestamps are
strings of epoch seconds; a missing or implausible one is 0.0 ("unknown": the relay
stamps the message when it arrives).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bridge import vcard
from bridge.errors import InvalidInput, RequestRefused
from bridge.json_fields import JsonFields, Wording, is_integer
from bridge.model import (
    AckStatus,
    AnyContent,
    ContactCard,
    ContactList,
    Location,
    Media,
    MediaKind,
    Message,
    Party,
    Quote,
    Reaction,
    Text,
    Unsupported,
)
from bridge.phone import digits_of, normalize_phone
from bridge.whatsapp.engine import (
    ContactUpdateEvent,
    EngineErrorEvent,
    EngineEvent,
    MessageEvent,
    ReceiptEvent,
    SendFailedEvent,
)

__all__ = ["Change", "CloudFields", "events_of", "read_changes"]

log = logging.getLogger(__name__)

OBJECT = "whatsapp_business_account"
FIELD = "messages"

# --- limits -----------------------------------------------------------------------
# Far above anything Meta sends; a body past them is refused, a field past them
# makes its message unreadable.

MAX_ENTRIES = 1_000  # entry[] of one body
MAX_CHANGES = 1_000  # changes of one body, every entry together
MAX_ITEMS = 1_000  # messages, statuses and errors of one body, together
MAX_TEXT_CHARS = 65_536  # a text or caption (Meta's own limit is 4,096)
MAX_NAME_CHARS = 1_024  # a file, place or contact name, an address, an e-mail
MAX_PUSH_NAME_CHARS = 256  # a profile name is cut to this
MAX_ID_CHARS = 256  # a wamid (about 60 characters) or a media id
MAX_REFERENCE_CHARS = 512  # biz_opaque_callback_data, as Meta takes it
MAX_PHONE_CHARS = 64  # a phone as Meta writes it (digits) or as a card shows it
MAX_TYPE_CHARS = 64  # a message type, status, field or object name
MAX_EMOJI_CHARS = 32  # the longest emoji sequences (flags, families) are about 10
MAX_MIMETYPE_CHARS = 255
MAX_CARDS = 64  # contacts shared in one message
MAX_CARD_ENTRIES = 64  # numbers, and e-mails, of one shared contact
MAX_REASON_CHARS = 200  # Meta's error words, shown to people
MAX_ERROR_CODE = 2**31 - 1
EARLIEST_TIMESTAMP = 1_230_768_000.0  # 2009-01-01: before WhatsApp, a timestamp is wrong
LATEST_TIMESTAMP = 4_102_444_800.0  # 2100-01-01

MEDIA_KINDS = {
    "image": MediaKind.IMAGE,
    "video": MediaKind.VIDEO,
    "audio": MediaKind.AUDIO,
    "document": MediaKind.DOCUMENT,
    "sticker": MediaKind.STICKER,
}
DEFAULT_MIMETYPES = {
    MediaKind.IMAGE: "image/jpeg",
    MediaKind.VIDEO: "video/mp4",
    MediaKind.AUDIO: "audio/mpeg",
    MediaKind.VOICE: "audio/ogg; codecs=opus",
    MediaKind.DOCUMENT: "application/octet-stream",
    MediaKind.STICKER: "image/webp",
}
RECEIPTS = {"sent": AckStatus.SENT, "delivered": AckStatus.DELIVERED, "read": AckStatus.READ}
CHOICES = ("button_reply", "list_reply")  # interactive replies whose title is the choice
NO_REASON = "no reason given"

_ID = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_MIMETYPE = re.compile(r"[!-~]+/[!-~]+(?:[ \t]*;[ -~]*)?")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class CloudFields(JsonFields):
    """Reads one object of a webhook body, naming the field's path
    (``entry[0].changes[0].value.messages[2].image.id``) in every refusal."""

    __slots__ = ()
    wording = Wording(error=InvalidInput, whole="the body")

    def ident(self, key: str) -> str:
        """A WhatsApp message id or media id: printable ASCII without spaces."""
        value = self.string(key, limit=MAX_ID_CHARS, allow_empty=False)
        if _ID.fullmatch(value) is None:
            raise self.unfit(key, "printable ASCII without spaces (a WhatsApp id)")
        return value

    def phone(self, key: str) -> str:
        """A phone as Meta writes it (``16505551234``), normalised to E.164."""
        value = self.string(key, limit=MAX_PHONE_CHARS, allow_empty=False)
        try:
            return normalize_phone(value)
        except InvalidInput:
            raise self.unfit(key, "a phone number with its country code") from None


@dataclass(frozen=True)
class Change:
    """One ``messages`` change of a body: the number it is for and what it holds,
    each object still to be read by :func:`events_of`."""

    phone_number_id: str
    business_phone: str  # metadata.display_phone_number as digits; "" when unknown
    contacts: tuple[CloudFields, ...] = ()
    messages: tuple[CloudFields, ...] = ()
    statuses: tuple[CloudFields, ...] = ()
    errors: tuple[CloudFields, ...] = ()

    @property
    def size(self) -> int:
        return len(self.messages) + len(self.statuses) + len(self.errors)


# --- the envelope -----------------------------------------------------------------


def read_changes(body: object) -> list[Change]:
    """The ``messages`` changes of a parsed webhook body, in order. Raises
    :class:`RequestRefused`: 400 for an envelope of the wrong shape, 413 for more
    than :data:`MAX_CHANGES` changes or :data:`MAX_ITEMS` messages and statuses."""
    try:
        changes, seen = _changes(CloudFields.of(body))
    except RequestRefused:
        raise
    except InvalidInput as exc:
        raise RequestRefused(400, exc.explanation) from None
    if seen > MAX_CHANGES:
        raise RequestRefused(413, f"the body holds more than {MAX_CHANGES} changes")
    if sum(change.size for change in changes) > MAX_ITEMS:
        raise RequestRefused(413, f"the body holds more than {MAX_ITEMS} messages and statuses")
    return changes


def _changes(top: CloudFields) -> tuple[list[Change], int]:
    """The ``messages`` changes and how many changes there were in all."""
    kind = top.string("object", limit=MAX_TYPE_CHARS)
    if kind != OBJECT:
        log.info("a webhook body for %r left out: not WhatsApp's", kind)
        return [], 0
    changes: list[Change] = []
    seen = 0
    for entry in top.objects("entry", limit=MAX_ENTRIES):
        for change in entry.objects("changes", limit=MAX_CHANGES):
            seen += 1
            field = change.string("field", limit=MAX_TYPE_CHARS)
            if field != FIELD:
                log.info("a webhook change of field %r left out: not messages", field)
                continue
            changes.append(_change(change.mapping("value")))
    return changes, seen


def _change(value: CloudFields) -> Change:
    metadata = value.mapping("metadata")
    display = metadata.optional_string("display_phone_number", limit=MAX_PHONE_CHARS) or ""
    return Change(
        phone_number_id=metadata.ident("phone_number_id"),
        business_phone=_digits(display),
        contacts=tuple(value.objects("contacts", limit=MAX_ITEMS)),
        messages=tuple(value.objects("messages", limit=MAX_ITEMS)),
        statuses=tuple(value.objects("statuses", limit=MAX_ITEMS)),
        errors=tuple(value.objects("errors", limit=MAX_ITEMS)),
    )


def _digits(phone: str) -> str:
    try:
        return digits_of(phone)
    except InvalidInput:
        return ""


# --- a change's events ----------------------------------------------------------


def events_of(session: str, change: Change) -> list[EngineEvent]:
    """The events of ``change`` for the session ``session``; never raises."""
    names = _profile_names(change.contacts)
    named: set[str] = set()
    out: list[EngineEvent] = []
    for fields in change.messages:
        out.extend(_message_events(session, fields, change, names, named))
    for fields in change.statuses:
        out.extend(_status_events(session, fields))
    out.extend(_error_event(session, fields) for fields in change.errors)
    return out


def _profile_names(contacts: tuple[CloudFields, ...]) -> dict[str, str]:
    """``wa_id`` → profile name, from ``value.contacts``; an unreadable entry is
    left out (its messages arrive without a name)."""
    names: dict[str, str] = {}
    for contact in contacts:
        try:
            wa_id = contact.string("wa_id", limit=MAX_PHONE_CHARS)
            name = contact.mapping_or_empty("profile").optional_string("name", limit=math.inf)
        except InvalidInput as exc:
            log.info("a webhook contact left out: %s", exc.explanation)
            continue
        if name:
            names[wa_id] = name[:MAX_PUSH_NAME_CHARS]
    return names


def _message_events(
    session: str,
    fields: CloudFields,
    change: Change,
    names: Mapping[str, str],
    named: set[str],
) -> list[EngineEvent]:
    ident = _readable_id(fields)
    try:
        message, problem = _message(fields, change, names)
    except InvalidInput as exc:
        shown = ident or "without an id"
        log.warning("unreadable Cloud API message %s: %s", shown, exc.explanation)
        explanation = f"a WhatsApp message ({shown}) could not be read: {exc.explanation}"
        return [EngineErrorEvent(session, explanation=explanation, event_id=ident or "")]
    out: list[EngineEvent] = []
    sender = message.sender
    if sender.name and sender.address not in named:
        named.add(sender.address)
        out.append(ContactUpdateEvent(session, party=sender))
    out.append(MessageEvent(session, message=message))
    if problem:
        log.warning("message %s from %s: %s", message.wa_id, sender.address, problem)
        explanation = f"message {message.wa_id} from {sender.address} {problem}"
        out.append(EngineErrorEvent(session, explanation=explanation, event_id=message.wa_id or ""))
    return out


def _readable_id(fields: CloudFields) -> str | None:
    try:
        return fields.ident("id")
    except InvalidInput:
        return None


def _message(
    fields: CloudFields, change: Change, names: Mapping[str, str]
) -> tuple[Message, str | None]:
    """The message and what could not be read of it (None when all could)."""
    wa_id = fields.ident("id")
    phone = fields.phone("from")
    kind = fields.string("type", limit=MAX_TYPE_CHARS, allow_empty=False)
    party = Party(phone=phone, name=names.get(fields.string("from")))
    problem = None
    try:
        content = _content(kind, fields)
    except InvalidInput as exc:
        content = Unsupported(type_name=kind)
        problem = f"is shown as a placeholder: {exc.explanation}"
    context = None
    try:
        context = fields.optional_mapping("context")
        quote = _quote(context, change.business_phone)
    except InvalidInput as exc:
        quote = None
        problem = problem or f"is shown without its quote: {exc.explanation}"
    message = Message(
        chat=party,
        sender=party,
        content=content,
        wa_id=wa_id,
        timestamp=_seconds(fields.raw("timestamp")),
        quote=quote,
        forwarded=_forwarded(context),
    )
    return message, problem


def _content(kind: str, fields: CloudFields) -> AnyContent:
    if kind == "text":
        return Text(body=fields.mapping("text").string("body", limit=MAX_TEXT_CHARS))
    if kind in MEDIA_KINDS:
        return _media(kind, fields.mapping(kind))
    if kind == "location":
        return _location(fields.mapping("location"))
    if kind == "contacts":
        return _contacts(fields)
    if kind == "reaction":
        reaction = fields.mapping("reaction")
        emoji = reaction.optional_string("emoji", limit=MAX_EMOJI_CHARS) or ""
        return Reaction(target=reaction.ident("message_id"), emoji=emoji)
    if kind == "interactive":
        return _choice(fields.mapping("interactive"))
    if kind == "button":  # a template's quick-reply button
        return Text(body=fields.mapping("button").string("text", limit=MAX_TEXT_CHARS))
    if kind == "unsupported":  # Meta names what it could not pass on: {"type": "edit"}
        named = fields.mapping_or_empty("unsupported").optional_string(
            "type", limit=MAX_TYPE_CHARS, allow_empty=False
        )
        return Unsupported(type_name=named or kind)
    return Unsupported(type_name=kind)


def _media(kind: str, fields: CloudFields) -> Media:
    media_kind = MEDIA_KINDS[kind]
    if media_kind is MediaKind.AUDIO and fields.optional_boolean("voice"):
        media_kind = MediaKind.VOICE
    mimetype = fields.optional_string("mime_type", limit=MAX_MIMETYPE_CHARS)
    if mimetype is None:
        mimetype = DEFAULT_MIMETYPES[media_kind]
    elif _MIMETYPE.fullmatch(mimetype) is None:
        raise fields.unfit("mime_type", "a media type (type/subtype)")
    filename = None
    if media_kind is MediaKind.DOCUMENT:
        filename = fields.optional_string("filename", limit=MAX_NAME_CHARS) or None
    return Media(
        media_kind=media_kind,
        mimetype=mimetype,
        ref={"cloud_media_id": fields.ident("id")},
        filename=filename,
        caption=fields.optional_string("caption", limit=MAX_TEXT_CHARS) or None,
        sha256=_sha256(fields.raw("sha256")),
    )


def _sha256(value: object) -> str | None:
    """The file's SHA-256 in hex, from Meta's hex or base64; None when neither."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    if _HEX_SHA256.fullmatch(value):
        return value.lower()
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest.hex() if len(digest) == 32 else None


def _location(fields: CloudFields) -> Location:
    return Location(
        lat=fields.number("latitude", bounds=(-90.0, 90.0)),
        lon=fields.number("longitude", bounds=(-180.0, 180.0)),
        name=fields.optional_string("name", limit=MAX_NAME_CHARS) or None,
        address=fields.optional_string("address", limit=MAX_NAME_CHARS) or None,
    )


def _choice(fields: CloudFields) -> Text | Unsupported:
    kind = fields.string("type", limit=MAX_TYPE_CHARS, allow_empty=False)
    if kind in CHOICES:
        return Text(body=fields.mapping(kind).string("title", limit=MAX_TEXT_CHARS))
    return Unsupported(type_name=f"interactive {kind}")


# --- shared contacts ----------------------------------------------------------------


def _contacts(fields: CloudFields) -> ContactCard | ContactList:
    cards = tuple(_card(card) for card in fields.objects("contacts", limit=MAX_CARDS))
    if not cards:
        raise fields.refusal(fields.wording.empty, "contacts")
    if len(cards) == 1:
        return cards[0]
    return ContactList(display_name=f"{len(cards)} contacts", cards=cards)


def _card(fields: CloudFields) -> ContactCard:
    """One of Meta's contact objects as the vCard 3.0 a phone would share."""
    name = fields.mapping_or_empty("name")
    part = {
        key: name.optional_string(key, limit=MAX_NAME_CHARS) or ""
        for key in ("formatted_name", "first_name", "middle_name", "last_name", "prefix", "suffix")
    }
    organization = fields.mapping_or_empty("org").optional_string("company", limit=MAX_NAME_CHARS)
    phones = tuple(
        phone
        for entry in fields.objects("phones", limit=MAX_CARD_ENTRIES)
        if (phone := _card_phone(entry)) is not None
    )
    emails = tuple(
        email
        for entry in fields.objects("emails", limit=MAX_CARD_ENTRIES)
        if (email := entry.optional_string("email", limit=MAX_NAME_CHARS))
    )
    given = " ".join(p for p in (part["first_name"], part["middle_name"], part["last_name"]) if p)
    shown = part["formatted_name"] or given or organization or ""
    if not shown and phones:
        shown = phones[0].number
    structured = tuple(
        part[key] for key in ("last_name", "first_name", "middle_name", "prefix", "suffix")
    )
    card = vcard.VCard(
        name=shown,
        phones=phones,
        emails=emails,
        organization=organization or None,
        structured_name=structured if any(structured) else (),
    )
    return ContactCard(display_name=shown or "contact", vcard=vcard.write(card))


def _card_phone(fields: CloudFields) -> vcard.Phone | None:
    number = fields.optional_string("phone", limit=MAX_PHONE_CHARS) or ""
    waid = fields.optional_string("wa_id", limit=MAX_PHONE_CHARS) or None
    label = fields.optional_string("type", limit=MAX_TYPE_CHARS) or None
    if waid is not None and not (waid.isascii() and waid.isdigit()):
        raise fields.unfit("wa_id", "digits (a WhatsApp id)")
    number = number or (f"+{waid}" if waid else "")
    if not number:
        return None
    return vcard.Phone(number=number, label=label.capitalize() if label else None, waid=waid)


# --- the envelope of a message ------------------------------------------------------


def _quote(context: CloudFields | None, business_phone: str) -> Quote | None:
    """The message replied to; its author is None when it is ours (the business)."""
    if context is None or not context.has("id"):
        return None
    target = context.ident("id")
    author = context.optional_string("from", limit=MAX_PHONE_CHARS)
    if author is None or _digits(author) == business_phone:
        return Quote(wa_id=target)
    return Quote(wa_id=target, sender=context.phone("from"))


def _forwarded(context: CloudFields | None) -> bool:
    if context is None:
        return False
    return any(context.raw(key) is True for key in ("forwarded", "frequently_forwarded"))


def _seconds(value: object) -> float:
    """Epoch seconds from Meta's string (or a number); 0.0 when unknown."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        number = float(int(value))
    elif is_integer(value, (0, LATEST_TIMESTAMP)):
        number = float(value)
    else:
        return 0.0
    return number if EARLIEST_TIMESTAMP <= number <= LATEST_TIMESTAMP else 0.0


# --- statuses and errors ------------------------------------------------------------


def _status_events(session: str, fields: CloudFields) -> list[EngineEvent]:
    try:
        event = _status(session, fields)
    except InvalidInput as exc:
        ident = _readable_id(fields)
        shown = ident or "without an id"
        log.warning("unreadable Cloud API status of %s: %s", shown, exc.explanation)
        explanation = f"a WhatsApp status ({shown}) could not be read: {exc.explanation}"
        return [EngineErrorEvent(session, explanation=explanation, event_id=ident or "")]
    return [] if event is None else [event]


def _status(session: str, fields: CloudFields) -> EngineEvent | None:
    wa_id = fields.ident("id")
    status = fields.string("status", limit=MAX_TYPE_CHARS)
    chat = Party(phone=fields.phone("recipient_id"))
    reference = fields.optional_string("biz_opaque_callback_data", limit=MAX_REFERENCE_CHARS)
    reference = reference or None  # an empty one is none
    if status == "failed":
        errors = fields.objects("errors", limit=MAX_ITEMS)
        reason, code = _reason(errors[0]) if errors else (NO_REASON, None)
        return SendFailedEvent(
            session, chat=chat, message_id=wa_id, reason=reason, code=code, reference=reference
        )
    ack = RECEIPTS.get(status)
    if ack is None:
        log.info("status %r of message %s left out: not bridged", status, wa_id)
        return None
    timestamp = _seconds(fields.raw("timestamp"))
    return ReceiptEvent(
        session, chat=chat, ids=(wa_id,), status=ack, timestamp=timestamp, reference=reference
    )


def _reason(fields: CloudFields) -> tuple[str, int | None]:
    """Meta's words for an error (title, message, details, each said once) and its
    code."""
    code = fields.optional_integer("code", bounds=(0, MAX_ERROR_CODE))
    said = [
        fields.optional_string("title"),
        fields.optional_string("message"),
        fields.mapping_or_empty("error_data").optional_string("details"),
    ]
    words: list[str] = []
    for text in said:
        text = " ".join((text or "").split())
        if text and text not in words:
            words.append(text)
    reason = ": ".join(words) or NO_REASON
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return reason, code


def _error_event(session: str, fields: CloudFields) -> EngineErrorEvent:
    try:
        reason, code = _reason(fields)
    except InvalidInput as exc:
        reason, code = f"unreadable ({exc.explanation})", None
    said = f"the Cloud API reports error {code}" if code is not None else "the Cloud API reports"
    log.warning("%s: %s", said, reason)
    return EngineErrorEvent(session, explanation=f"{said}: {reason}")
