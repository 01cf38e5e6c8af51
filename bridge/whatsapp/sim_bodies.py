"""The ``/sim`` request bodies (docs/sim.md), read and checked at the edge.

Pure functions: a parsed JSON body in, a typed value out, or :class:`InvalidInput`
naming the field (``media.data_b64 is not valid base64``). Every field is checked
by type and by range; past these functions the sim trusts what it holds. Unknown
fields are ignored (the contract may grow).

Limits, so that one body costs bounded time and memory however it is shaped (a
real WhatsApp message stays far inside them):

- texts (``text``, ``caption``) up to :data:`MAX_TEXT_CHARS`, vCards up to
  :data:`MAX_VCARD_CHARS`, names (push name, file name, group name, contact name,
  location name and address, the send-failure ``error``) up to
  :data:`MAX_NAME_CHARS`;
- ids (``id``, ``quote``, ``target``, a receipt's ``id``): 1 to :data:`MAX_ID_CHARS`
  printable ASCII characters without spaces, as WhatsApp ids are;
- a group ``id`` is a group JID (``1203…@g.us``), ``avatar_url`` an http(s) URL of
  at most :data:`MAX_URL_CHARS`, a mimetype ``type/subtype`` in ASCII;
- a ``lid`` is a LID JID: 1 to :data:`MAX_LID_DIGITS` ASCII digits and ``@lid``
  (``123456789012345@lid``); ``from`` may be left out when ``lid`` is given (WhatsApp
  hides the phone), never both;
- numbers are finite: ``lat`` -90…90, ``lon`` -180…180, ``width``/``height`` up to
  :data:`MAX_DIMENSION`, ``duration`` up to :data:`MAX_DURATION_SECONDS`, a fault's
  ``seconds`` 0…:data:`MAX_FAULT_SECONDS`, ``fail_sends`` ``count``
  0…:data:`MAX_FAIL_SENDS`.

Text may hold any character JSON can carry, NUL included, as WhatsApp's may: the
session manager cleans it (:func:`bridge.model.clean_text`) like every engine's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bridge.errors import InvalidInput
from bridge.json_fields import JsonFields, Wording, is_integer
from bridge.model import (
    AckStatus,
    AnyContent,
    ContactCard,
    Deletion,
    Edit,
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
from bridge.phone import normalize_phone

MEDIA_KINDS = tuple(k.value for k in MediaKind)
INBOUND_KINDS = (
    "text",
    *MEDIA_KINDS,
    "location",
    "contact",
    "reaction",
    "edit",
    "revoke",
    "unsupported",
)
FAULT_KINDS = ("disconnect", "logout", "ban", "outdated", "stream_replaced")
RECEIPT_STATUSES = (AckStatus.DELIVERED.value, AckStatus.READ.value)

MAX_TEXT_CHARS = 65_536  # WhatsApp's own limit for a message's text
MAX_VCARD_CHARS = 65_536
MAX_NAME_CHARS = 1_024
MAX_TYPE_NAME_CHARS = 64
MAX_EMOJI_CHARS = 32  # the longest emoji sequences (flags, families) are about 10
MAX_ID_CHARS = 128
MAX_LID_DIGITS = 24  # WhatsApp's LIDs have about 15
MAX_URL_CHARS = 2_048
MAX_MIMETYPE_CHARS = 255
MAX_DIMENSION = 100_000  # pixels
MAX_DURATION_SECONDS = 7 * 24 * 3600
MAX_FAULT_SECONDS = 30 * 24 * 3600  # 30 days: longer than any temporary ban
MAX_FAIL_SENDS = 1_000

DEFAULT_MIMETYPES = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/mpeg",
    "voice": "audio/ogg; codecs=opus",
    "document": "application/octet-stream",
    "sticker": "image/webp",
}
DEFAULT_SEND_ERROR = "sim: send failed"

_ID = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_GROUP_JID = re.compile(r"[0-9]+(?:-[0-9]+)?@g\.us")
_LID_JID = re.compile(rf"([0-9]{{1,{MAX_LID_DIGITS}}})@lid")  # [0-9]: ASCII digits only
_MIMETYPE = re.compile(r"[!-~]+/[!-~]+(?:[ \t]*;[ -~]*)?")


class Fields(JsonFields):
    """Reads one JSON object of a body, naming the exact field path in every complaint
    (the default :class:`~bridge.json_fields.Wording` is this one)."""

    __slots__ = ()
    wording = Wording(error=InvalidInput)

    def text(self, key: str, *, limit: float, allow_empty: bool = False) -> str:
        """A required string, not empty unless ``allow_empty``."""
        return self.string(key, limit=limit, allow_empty=allow_empty)

    def ident(self, key: str) -> str:
        """A WhatsApp message id: printable ASCII without spaces."""
        value = self.text(key, limit=MAX_ID_CHARS)
        if _ID.fullmatch(value) is None:
            raise self.unfit(key, "printable ASCII without spaces (a WhatsApp id)")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, limit=math.inf)  # compared, never shown
        if value not in choices:
            raise self.unfit(key, f"one of {', '.join(choices)}")
        return value


def _object(body: Any) -> Fields:
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    return Fields(body)


# --- inbound ------------------------------------------------------------------


def _read_media(fields: Fields, kind: str) -> Media:
    media = fields.mapping("media")
    raw = media.text("data_b64", limit=math.inf)  # bounded by the body's limit
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: not ASCII
        raise InvalidInput(f"{media.where('data_b64')} is not valid base64") from exc
    if not data:
        raise InvalidInput(f"{media.where('data_b64')} holds no bytes")
    return Media(
        media_kind=MediaKind(kind),
        mimetype=_read_mimetype(media) or DEFAULT_MIMETYPES[kind],
        data=data,
        filename=media.optional_string("filename", limit=MAX_NAME_CHARS),
        caption=media.optional_string("caption", limit=MAX_TEXT_CHARS),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        width=media.optional_integer("width", bounds=(0, MAX_DIMENSION)),
        height=media.optional_integer("height", bounds=(0, MAX_DIMENSION)),
        duration=media.optional_integer("duration", bounds=(0, MAX_DURATION_SECONDS)),
    )


def _read_mimetype(media: Fields) -> str | None:
    value = media.optional_string("mimetype", limit=MAX_MIMETYPE_CHARS)
    if value and _MIMETYPE.fullmatch(value) is None:
        raise media.unfit("mimetype", "an ASCII type/subtype")
    return value


def _read_location(fields: Fields) -> Location:
    loc = fields.mapping("location")
    return Location(
        lat=loc.number("lat", bounds=(-90, 90)),
        lon=loc.number("lon", bounds=(-180, 180)),
        name=loc.optional_string("name", limit=MAX_NAME_CHARS),
        address=loc.optional_string("address", limit=MAX_NAME_CHARS),
    )


def _read_content(fields: Fields, kind: str) -> AnyContent:
    if kind == "text":
        return Text(fields.text("text", limit=MAX_TEXT_CHARS))
    if kind in MEDIA_KINDS:
        return _read_media(fields, kind)
    if kind == "location":
        return _read_location(fields)
    if kind == "contact":
        card = fields.mapping("contact")
        return ContactCard(
            display_name=card.text("display_name", limit=MAX_NAME_CHARS),
            vcard=card.text("vcard", limit=MAX_VCARD_CHARS),
        )
    if kind == "reaction":
        emoji = fields.text("emoji", limit=MAX_EMOJI_CHARS, allow_empty=True)
        return Reaction(target=fields.ident("target"), emoji=emoji)
    if kind == "edit":
        return Edit(
            target=fields.ident("target"), new=Text(fields.text("text", limit=MAX_TEXT_CHARS))
        )
    if kind == "revoke":
        return Deletion(target=fields.ident("target"))
    return Unsupported(type_name=fields.text("type", limit=MAX_TYPE_NAME_CHARS))


def _read_phone(fields: Fields, key: str) -> str:
    raw = fields.text(key, limit=MAX_NAME_CHARS)
    try:
        return normalize_phone(raw)
    except InvalidInput as exc:
        raise InvalidInput(f"{fields.where(key)}: {exc.explanation}") from exc


def _read_lid(fields: Fields) -> str | None:
    """The digits of the optional ``lid`` (``123456789012345@lid``)."""
    if not fields.has("lid"):
        return None
    match = _LID_JID.fullmatch(fields.text("lid", limit=MAX_ID_CHARS))
    if match is None:
        raise fields.unfit(
            "lid", f"a LID such as 123456789012345@lid (1 to {MAX_LID_DIGITS} digits)"
        )
    return match.group(1)


def _read_sender(fields: Fields) -> Party:
    """The customer: ``from`` (E.164) and/or ``lid``; ``from`` only when no ``lid``."""
    name = fields.optional_string("push_name", limit=MAX_NAME_CHARS)
    lid = _read_lid(fields)
    if lid is not None and not fields.has("from"):
        return Party(lid=lid, name=name)
    if not fields.has("from"):
        raise InvalidInput("from is required when there is no lid")
    return Party(phone=_read_phone(fields, "from"), lid=lid, name=name)


def _read_group(fields: Fields) -> Party:
    group = fields.mapping("group")
    jid = group.text("id", limit=MAX_ID_CHARS)
    if _GROUP_JID.fullmatch(jid) is None:
        raise group.unfit("id", "a group JID such as 1203…@g.us")
    return Party(group=jid, name=group.optional_string("name", limit=MAX_NAME_CHARS))


def read_inbound_id(body: Any) -> str | None:
    """The optional ``id`` of an inbound body (an extension: replay a delivery)."""
    fields = _object(body)
    return fields.ident("id") if fields.has("id") else None


def message_from_inbound(
    body: Any,
    *,
    wa_id: str,
    timestamp: float,
    quote_of: Callable[[str], Quote],
) -> Message:
    """The neutral message for a ``/sim`` inbound ``body``.

    ``quote_of`` turns a quoted id into a :class:`Quote` (with the author and text
    when the sim knows the message). Raises :class:`InvalidInput` naming the field.
    """
    fields = _object(body)
    sender = _read_sender(fields)
    content = _read_content(fields, fields.choice("kind", INBOUND_KINDS))
    chat = _read_group(fields) if fields.has("group") else sender
    quote = quote_of(fields.ident("quote")) if fields.has("quote") else None
    return Message(
        chat=chat, sender=sender, content=content, wa_id=wa_id, timestamp=timestamp, quote=quote
    )


def read_avatar_url(body: Any) -> str | None:
    """The optional ``avatar_url`` of an inbound body (an extension): http(s) only."""
    fields = _object(body)
    if not fields.has("avatar_url"):
        return None
    url = fields.text("avatar_url", limit=MAX_URL_CHARS)
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or _ID.fullmatch(url) is None:
        raise fields.unfit("avatar_url", "an http(s) URL (printable ASCII, no spaces)")
    return url


# --- the other bodies ------------------------------------------------------------


# Names the arguments of the sim's own API (check_fault, check_fail_sends) in
# refusals worded as the bodies' are.
_ARGUMENTS = Fields({})


def read_scan(body: Any) -> str:
    """The E.164 ``phone`` of a scan body."""
    return _read_phone(_object(body), "phone")


@dataclass(frozen=True)
class ReceiptRequest:
    wa_id: str
    status: AckStatus


def read_receipt(body: Any) -> ReceiptRequest:
    fields = _object(body)
    return ReceiptRequest(fields.ident("id"), AckStatus(fields.choice("status", RECEIPT_STATUSES)))


@dataclass(frozen=True)
class FaultRequest:
    kind: str
    seconds: int | float  # as given: the answer echoes it


def read_fault(body: Any) -> FaultRequest:
    fields = _object(body)
    kind = fields.choice("kind", FAULT_KINDS)
    return FaultRequest(kind, check_fault(kind, fields.raw("seconds", 0)))


def check_fault(kind: str, seconds: Any) -> int | float:
    """``seconds`` of a fault ``kind``, checked: a finite number 0…MAX_FAULT_SECONDS."""
    if kind not in FAULT_KINDS:
        raise _ARGUMENTS.unfit("kind", f"one of {', '.join(FAULT_KINDS)}")
    _ARGUMENTS.checked_number("seconds", seconds, bounds=(0, MAX_FAULT_SECONDS))
    return seconds


@dataclass(frozen=True)
class FailSendsRequest:
    count: int
    error: str


def check_fail_sends(count: Any, error: Any) -> FailSendsRequest:
    """``count`` (an integer 0…MAX_FAIL_SENDS) and ``error`` (a string), checked."""
    if not is_integer(count, (0, MAX_FAIL_SENDS)):
        raise _ARGUMENTS.unfit("count", f"an integer from 0 to {MAX_FAIL_SENDS}")
    if not isinstance(error, str) or len(error) > MAX_NAME_CHARS:
        raise _ARGUMENTS.unfit("error", f"a string of at most {MAX_NAME_CHARS} characters")
    return FailSendsRequest(count, error)


def read_fail_sends(body: Any) -> FailSendsRequest:
    fields = _object(body)
    error = fields.optional_string("error", limit=MAX_NAME_CHARS)
    return check_fail_sends(fields.raw("count"), DEFAULT_SEND_ERROR if error is None else error)
