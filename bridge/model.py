"""Neutral model: what crosses the core, in both directions.

Engines translate WhatsApp protobufs into these types; frontends translate Matrix
events and Slack payloads into them. Nothing here knows any platform.

Text bodies are kept in WhatsApp markup (``*bold*``, ``_italic_``, ``~strike~``,
`````code````` …): it is the lingua franca of the bridge, lossless toward the
customer; the converters in ``bridge.formatting`` turn it into Matrix HTML or Slack
mrkdwn and back.

Every type here is JSON-serialisable through :func:`content_to_dict` /
:func:`content_from_dict`, so content can be persisted (messages, outbox rows).

Text from outside is cleaned with :func:`clean_text` (one string) or
:func:`cleaned` (every string of a model object) before it is stored, so SQLite and
PostgreSQL store the same thing: PostgreSQL refuses NUL, and neither database (nor
UTF-8) can hold a lone surrogate.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    DOCUMENT = "document"
    STICKER = "sticker"


class AckStatus(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"


# File extensions for media without a name on WhatsApp: `voice-<id>.ogg` …
# (docs/messages.md, "File names").
_DEFAULT_EXT = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "application/pdf": "pdf",
    "text/vcard": "vcf",
}


def default_filename(kind: MediaKind, mimetype: str, ident: str) -> str:
    """The name a nameless WhatsApp file gets: ``voice-<id>.ogg``, ``image-<id>.jpg``…"""
    base = mimetype.split(";", 1)[0].strip().lower()
    ext = _DEFAULT_EXT.get(base) or (base.rsplit("/", 1)[-1] if "/" in base else "bin")
    if kind is MediaKind.VOICE:
        ext = "ogg"
    elif kind is MediaKind.STICKER:
        ext = "webp"
    return f"{kind.value}-{ident}.{ext}"


@dataclass(frozen=True)
class Text:
    """A text message; ``body`` is WhatsApp markup. ``mentions`` are E.164 phones."""

    kind: ClassVar[str] = "text"
    body: str
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredBytes:
    """A file's bytes kept in the media store (``bridge.media_store``), by sha256 (hex)."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Media:
    """A file. ``data`` holds the bytes, ``stored`` names them in the media store, or
    ``ref`` tells the engine how to fetch them.

    ``ref`` is engine-specific and JSON-serialisable (for whatsmeow: the direct
    path, media key and hashes), so a download can be retried after a restart.
    Stored content keeps only the reference (:func:`content_to_dict`).
    """

    kind: ClassVar[str] = "media"
    media_kind: MediaKind
    mimetype: str
    data: bytes | None = None
    ref: dict[str, Any] | None = None
    filename: str | None = None
    caption: str | None = None
    size: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    gif: bool = False
    stored: StoredBytes | None = None

    def __post_init__(self) -> None:
        if self.data is None and self.ref is None and self.stored is None:
            raise ValueError("Media needs data or a download ref (or stored bytes)")

    @property
    def byte_size(self) -> int | None:
        if self.data is not None:
            return len(self.data)
        return self.stored.size if self.stored is not None else self.size


@dataclass(frozen=True)
class Location:
    kind: ClassVar[str] = "location"
    lat: float
    lon: float
    name: str | None = None
    address: str | None = None
    live: bool = False

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"location out of range: {self.lat}, {self.lon}")


@dataclass(frozen=True)
class ContactCard:
    """A shared contact: WhatsApp's display name and the vCard text as it came.
    :mod:`bridge.vcard` reads it (numbers, labels), the same way for every reader."""

    kind: ClassVar[str] = "contact"
    display_name: str
    vcard: str


@dataclass(frozen=True)
class ContactList:
    """Several contacts shared at once (WhatsApp's contactsArrayMessage)."""

    kind: ClassVar[str] = "contacts"
    display_name: str
    cards: tuple[ContactCard, ...]


@dataclass(frozen=True)
class Unsupported:
    """A WhatsApp message kind the bridge cannot render; shown as a placeholder."""

    kind: ClassVar[str] = "unsupported"
    type_name: str

    @property
    def placeholder(self) -> str:
        return f"unsupported message: {self.type_name}"


@dataclass(frozen=True)
class Reaction:
    """A reaction to ``target`` (a WhatsApp id); an empty emoji removes it."""

    kind: ClassVar[str] = "reaction"
    target: str
    emoji: str


@dataclass(frozen=True)
class Edit:
    """New content for the message ``target``."""

    kind: ClassVar[str] = "edit"
    target: str
    new: Text


@dataclass(frozen=True)
class Deletion:
    """The message ``target`` was revoked (deleted for everyone)."""

    kind: ClassVar[str] = "deletion"
    target: str


@dataclass(frozen=True)
class Receipt:
    kind: ClassVar[str] = "receipt"
    targets: tuple[str, ...]
    status: AckStatus


Content = Text | Media | Location | ContactCard | ContactList | Unsupported
Action = Reaction | Edit | Deletion | Receipt
AnyContent = Content | Action

_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (
        Text,
        Media,
        Location,
        ContactCard,
        ContactList,
        Unsupported,
        Reaction,
        Edit,
        Deletion,
        Receipt,
    )
}


@dataclass(frozen=True)
class Party:
    """A WhatsApp participant: a person (phone and/or LID) or a group.

    ``phone`` is normalised E.164 (``+5511987654321``), ``lid`` the LID user part
    (digits), ``group`` the group JID (``1203…@g.us``), ``name`` the push name or
    group subject.
    """

    phone: str | None = None
    lid: str | None = None
    group: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not (self.phone or self.lid or self.group):
            raise ValueError("Party needs a phone, a LID or a group")

    @property
    def address(self) -> str:
        """What an engine sends to: the group JID, else the phone, else ``<lid>@lid``."""
        if self.group:
            return self.group
        if self.phone:
            return self.phone
        return f"{self.lid}@lid"

    @property
    def is_group(self) -> bool:
        return self.group is not None


@dataclass(frozen=True)
class Quote:
    """The message a new message replies to."""

    wa_id: str
    sender: str | None = None  # address of the quoted message's author; None = us
    text: str = ""


@dataclass(frozen=True)
class Message:
    """One WhatsApp message (or action) with its envelope."""

    chat: Party
    sender: Party
    content: AnyContent
    wa_id: str | None = None
    timestamp: float = 0.0
    quote: Quote | None = None
    from_me: bool = False
    forwarded: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind_label(self) -> str:
        """The metrics/logging label: ``text``, ``image``, ``voice``, ``reaction``…"""
        if isinstance(self.content, Media):
            return self.content.media_kind.value
        return self.content.kind


def content_to_dict(content: AnyContent) -> dict[str, Any]:
    """A JSON-ready dict of ``content``, with ``"type"`` naming its kind. Media in the
    media store keep ``"data": {"sha256", "size"}``, never their bytes; other bytes
    are ``{"b64": …}`` (rows written before the store still hold those)."""
    out: dict[str, Any] = {"type": content.kind}
    stored = content.stored if isinstance(content, Media) else None
    for f in fields(content):  # type: ignore[arg-type]
        if f.name == "stored" or (f.name == "data" and stored is not None):
            continue
        out[f.name] = _encode(getattr(content, f.name))
    if stored is not None:
        out["data"] = {"sha256": stored.sha256, "size": stored.size}
    return out


def content_from_dict(data: dict[str, Any]) -> AnyContent:
    """The inverse of :func:`content_to_dict`; raises ``ValueError`` on bad input."""
    try:
        cls = _KINDS[data["type"]]
    except KeyError as exc:
        raise ValueError(f"unknown content type {data.get('type')!r}") from exc
    kwargs = {f.name: data[f.name] for f in fields(cls) if f.name in data}
    return _decode(cls, kwargs)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if hasattr(value, "kind") and hasattr(value, "__dataclass_fields__"):
        return content_to_dict(value)
    return value


def _decode(cls: type, kwargs: dict[str, Any]) -> Any:
    if cls is Media:
        kwargs["media_kind"] = MediaKind(kwargs["media_kind"])
        data = kwargs.get("data")
        if isinstance(data, dict) and "sha256" in data:
            kwargs["data"] = None
            kwargs["stored"] = StoredBytes(str(data["sha256"]), int(data["size"]))
        elif isinstance(data, dict):
            kwargs["data"] = base64.b64decode(data["b64"])
    elif cls is Edit:
        kwargs["new"] = content_from_dict(kwargs["new"])
    elif cls is ContactList:
        kwargs["cards"] = tuple(content_from_dict(c) for c in kwargs["cards"])
    elif cls is Receipt:
        kwargs["targets"] = tuple(kwargs["targets"])
        kwargs["status"] = AckStatus(kwargs["status"])
    elif cls is Text:
        kwargs["mentions"] = tuple(kwargs.get("mentions", ()))
    return cls(**kwargs)


# --- text from outside --------------------------------------------------------

# C0 control characters but tab, newline and carriage return; any surrogate code
# point (a Python string can hold one only when it came from a broken encoding).
_UNCLEAN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROLS: dict[int, None] = dict.fromkeys((*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)))


def clean_text(text: str) -> str:
    """``text`` as every database stores it alike, in time linear in its length:

    - C0 control characters other than tab, newline and carriage return (NUL, ESC,
      …) are **removed**: they are not text, no WhatsApp client shows them, and a
      name or a message reads as the customer sees it (``Ma\\x00ria`` → ``Maria``);
    - a lone surrogate becomes **U+FFFD** (the replacement character), Unicode's
      mark for a broken encoding: a character was there and could not be read,
      and the reader should see that; a surrogate *pair* becomes its character.

    Everything else, including other invisible characters, is kept as it is.
    """
    if _UNCLEAN.search(text) is None:
        return text
    text = text.translate(_CONTROLS)
    if _SURROGATE.search(text) is not None:
        # UTF-16 pairs surrogates back into characters and replaces the lone ones
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def cleaned(value: T) -> T:
    """``value`` with :func:`clean_text` applied to every string in it: in frozen
    dataclasses (a :class:`Message`, its content, parties and quote; an engine event),
    tuples, lists and dicts (keys too). Bytes, numbers and other values pass as they
    are; ``value`` itself is returned when nothing needed cleaning."""
    result: T = _cleaned(value)
    return result


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, tuple | list):
        items = [_cleaned(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if isinstance(value, dict):
        pairs = [(_cleaned(k), _cleaned(v)) for k, v in value.items()]
        if all(k is ok and v is ov for (k, v), (ok, ov) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in fields(value):
            old = getattr(value, f.name)
            new = _cleaned(old)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value
