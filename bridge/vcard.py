"""vCards, read and written with ``vobject``: what a shared contact holds, bounded.

WhatsApp phones share contacts as vCard 3.0 (iOS and Android alike) with grouped
lines: ``item1.TEL;waid=5511987654321:+55 11 98765-4321`` and
``item1.X-ABLabel:Celular`` label one number; Android may write plain
``TEL;type=CELL;waid=…`` lines, and address-book exports may be vCard 2.1 with
``CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE`` names. :func:`read` turns any of them
into a :class:`VCard` (name, organisation, every number with its label and waid,
emails); :func:`write` produces the vCard 3.0 WhatsApp itself sends, for the
contacts an attendant shares (:func:`contacts_of_file`).

A vCard comes from outside, so reading it is bounded in size and time (measured
in tests/unit/test_vcard.py):

- at most :data:`MAX_VCARD_CHARS` characters and :data:`MAX_TEXT_LINES` line
  breaks (counted before anything else); lines are unfolded here, linearly
  (vobject's own unfolding of quoted-printable soft breaks copies the line so far
  for every folded line: quadratic);
- only the lines read (FN, N, ORG, TEL, EMAIL, X-ABLabel, BEGIN/END/VERSION) reach
  vobject, at most :data:`MAX_LINES` of them and :data:`MAX_READ_CHARS` characters,
  nested at most :data:`MAX_DEPTH` deep, at most :data:`MAX_CARDS` cards: vobject
  costs ~80 µs a line and ~2 µs a character of text, so a photo or a long note is
  never handed to it;
- each of those lines must first have the shape of a vCard line (name, parameters,
  colon). vobject's line pattern backtracks exponentially on a malformed parameter
  list (``A;B==a=a=a…`` without a colon: 74 characters took 12 s); the check here
  uses possessive quantifiers only, so it is linear, and on a line it accepts,
  vobject's pattern matches on its first path.

What cannot be read raises :class:`~bridge.errors.InvalidInput` (never anything
else); a reader then shows :data:`UNREADABLE` and keeps the raw ``.vcf``.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import vobject
from vobject.base import Component, ContentLine, backslashEscape, foldOneLine

from bridge.errors import InvalidInput
from bridge.model import ContactCard, ContactList, Media, MediaKind

log = logging.getLogger(__name__)

# --- limits -----------------------------------------------------------------------
# Far above what a phone shares (a card is ~10 lines, a photo makes it ~100 KB).

MAX_VCARD_CHARS = 256 * 1024  # a whole vCard text or .vcf file (a photo makes it big)
MAX_TEXT_LINES = 10_000  # line breaks in it (a 256 KB photo folded at 75 has 3,500)
MAX_LINES = 512  # lines read (FN, N, ORG, TEL, EMAIL, labels …; a card has ~10)
MAX_READ_CHARS = 16 * 1024  # characters of those lines
MAX_LINE_CHARS = 2_048  # one of those lines (a quoted-printable name of 220 characters)
MAX_DEPTH = 2  # BEGIN:VCARD nesting (vCard 2.1's AGENT may hold one more card)
MAX_CARDS = 64  # cards in one file (more: the file goes as a document)
MAX_ENTRIES = 64  # numbers, and emails, kept of one card
MAX_SHOWN_CHARS = 256  # a name, number, label or email as shown to people

UNREADABLE = "contact card could not be read"
NO_NUMBER = "no phone number"
VCARD_MIMETYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})

# One vCard line as vobject's ``line_re`` reads it (group.name;param=value,…:value),
# written so that nothing backtracks: possessive quantifiers, alternatives that start
# with different characters. Same language as vobject's, see tests/unit/test_vcard.py.
_NAME = r"[A-Za-z0-9_-]++"
_PARAM_VALUE = r'(?:"[^"]*+"|[^";:,=]*+)'
_PARAM = rf";{_NAME}(?:[=,]{_PARAM_VALUE})*+"
_LINE_HEAD = re.compile(rf"(?:{_NAME}\.)?(?P<name>{_NAME});?(?:{_PARAM})*+:")
# What _card reads; vobject never sees the other lines (PHOTO, ADR, NOTE …).
_READ = frozenset({"BEGIN", "END", "VERSION", "FN", "N", "ORG", "TEL", "EMAIL", "X-ABLABEL"})
_BREAKS = re.compile(r"\r\n|\r|\n")
_BLANKS = re.compile(r"[\s\x00-\x1f\x7f]+")
_WAID = re.compile(r"[0-9]{1,20}")
_TEL_URI = re.compile(r"^(?:tel:)+", re.IGNORECASE)
_APPLE_LABEL = re.compile(r"_\$!<(.*)>!\$_")  # Apple's own labels: _$!<Mobile>!$_
_TYPE_WORDS = {
    "CELL": "mobile",
    "IPHONE": "iPhone",
    "MAIN": "main",
    "WORK": "work",
    "HOME": "home",
    "FAX": "fax",
    "PAGER": "pager",
    "CAR": "car",
    "VIDEO": "video",
    "OTHER": "other",
}


@dataclass(frozen=True)
class Phone:
    """One number of a card, as written; ``waid`` is the WhatsApp id phones attach."""

    number: str
    label: str | None = None
    waid: str | None = None

    @property
    def shown(self) -> str:
        """``Celular: +55 11 98765-4321``, or the number alone when it has no label."""
        return f"{self.label}: {self.number}" if self.label else self.number


@dataclass(frozen=True)
class VCard:
    """What one vCard says about a contact (strings cut to :data:`MAX_SHOWN_CHARS`)."""

    name: str  # FN, else built from N; may be empty
    phones: tuple[Phone, ...] = ()
    emails: tuple[str, ...] = ()
    organization: str | None = None
    structured_name: tuple[str, ...] = ()  # N: family, given, additional, prefix, suffix


# --- reading ----------------------------------------------------------------------


def read(text: str) -> VCard:
    """The first vCard of ``text``; raises :class:`InvalidInput` when none is readable."""
    return read_all(text)[0]


def read_all(text: str) -> tuple[VCard, ...]:
    """Every vCard of ``text`` (a ``.vcf`` file may hold several), at least one;
    raises :class:`InvalidInput` (and nothing else) when they cannot be read."""
    if len(text) > MAX_VCARD_CHARS:
        raise InvalidInput(f"the vCard has {len(text)} characters, over {MAX_VCARD_CHARS}")
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    if breaks > MAX_TEXT_LINES:
        raise InvalidInput(f"the vCard has {breaks} line breaks, over {MAX_TEXT_LINES}")
    lines = _checked_lines(text)
    try:
        cards = tuple(_cards(lines))
    except Exception as exc:  # vobject's errors have no common base (LookupError, …)
        raise InvalidInput(f"the vCard cannot be read: {_short(str(exc))}") from exc
    if not cards:
        raise InvalidInput("the text holds no vCard")
    return cards


def _checked_lines(text: str) -> list[str]:
    """The lines of ``text`` that :func:`_card` reads, unfolded and checked: a line
    that is not a vCard line, or names another property (PHOTO, ADR, NOTE …), is
    left out, so vobject never sees it; what is left is bounded."""
    kept: list[str] = []
    size = depth = 0
    for line in _logical_lines(text):
        head = _LINE_HEAD.match(line)
        name = head["name"].upper() if head else ""
        if name not in _READ:
            continue
        if len(line) > MAX_LINE_CHARS:
            raise InvalidInput(f"a {name} line has {len(line)} characters, over {MAX_LINE_CHARS}")
        depth += (name == "BEGIN") - (name == "END")
        if depth > MAX_DEPTH:
            raise InvalidInput(f"the vCard nests more than {MAX_DEPTH} cards deep")
        size += len(line)
        kept.append(line)
    if len(kept) > MAX_LINES or size > MAX_READ_CHARS:
        raise InvalidInput(
            f"the vCard has {len(kept)} lines of {size} characters to read,"
            f" over {MAX_LINES} lines or {MAX_READ_CHARS} characters"
        )
    return kept


def _logical_lines(text: str) -> list[str]:
    """Physical lines joined as vCard 3.0 folds them (a continuation starts with a
    space or tab) and as quoted-printable soft breaks do (``=`` ends the line);
    blank lines dropped. The head of each line (up to its first colon) is
    upper-cased, so ``encoding=quoted-printable`` is decoded as vobject does
    ``ENCODING=QUOTED-PRINTABLE``. Linear in ``len(text)``."""
    lines: list[list[str]] = []
    quoted_printable = soft_break = False
    for physical in _BREAKS.split(text):
        if soft_break and physical:
            lines[-1][-1] = lines[-1][-1][:-1]  # the "=" of the soft break
            lines[-1].append(physical)
        elif physical[:1] in (" ", "\t") and lines:
            lines[-1].append(physical[1:])
        elif physical.strip():
            head, colon, rest = physical.partition(":")
            head = head.upper()
            quoted_printable = "QUOTED-PRINTABLE" in head
            lines.append([head + colon + rest])
        else:
            soft_break = False
            continue
        soft_break = quoted_printable and physical.endswith("=")
    return [_even_backslashes("".join(parts)) for parts in lines]


def _even_backslashes(line: str) -> str:
    """``line`` without a last, lone backslash (escaping nothing: vobject would
    read it as the text ``\\eof``)."""
    trailing = len(line) - len(line.rstrip("\\"))
    return line[:-1] if trailing % 2 else line


def _cards(lines: list[str]) -> Iterator[VCard]:
    count = 0
    for component in vobject.readComponents("\r\n".join(lines)):
        if not isinstance(component, Component) or component.name != "VCARD":
            continue
        count += 1
        if count > MAX_CARDS:
            raise InvalidInput(f"the file holds more than {MAX_CARDS} vCards")
        yield _card(component)


def _card(component: Component) -> VCard:
    labels = {
        (line.group or "").lower(): _label_of(_text(line.value))
        for line in _lines(component, "X-ABLABEL")
        if line.group
    }
    phones = (_phone(line, labels) for line in _lines(component, "TEL"))
    structured = _structured_name(component)
    given_first = (structured[1:2] + structured[2:3] + structured[:1]) if structured else ()
    return VCard(
        name=_first(component, "FN") or _shown(" ".join(p for p in given_first if p)),
        phones=tuple(p for p in phones if p is not None)[:MAX_ENTRIES],
        emails=tuple(e for e in _values(component, "EMAIL") if e)[:MAX_ENTRIES],
        organization=_first(component, "ORG") or None,
        structured_name=structured,
    )


def _values(component: Component, name: str) -> Iterator[str]:
    return (_shown(_text(line.value)) for line in _lines(component, name))


def _first(component: Component, name: str) -> str:
    return next((value for value in _values(component, name) if value), "")


def _lines(component: Component, name: str) -> list[ContentLine]:
    found: list[ContentLine] = component.contents.get(name.lower(), [])
    return found


def _phone(line: ContentLine, labels: dict[str, str | None]) -> Phone | None:
    waids = [w for w in line.params.get("WAID", []) if _WAID.fullmatch(w)]
    waid = waids[0] if waids else None
    number = _shown(_text(line.value))
    number = _TEL_URI.sub("", number) or (f"+{waid}" if waid else "")
    if not number:
        return None
    label = labels.get((line.group or "").lower()) or _type_label(line)
    return Phone(number=number, label=label, waid=waid)


def _type_label(line: ContentLine) -> str | None:
    """``mobile``, ``work fax`` … from TYPE=CELL (or vCard 2.1's bare ``CELL``)."""
    types = [*line.params.get("TYPE", []), *line.singletonparams]
    words: list[str] = []
    for value in types:
        word = _TYPE_WORDS.get(str(value).upper())
        if word and word not in words:
            words.append(word)
    label = " ".join(words)
    return label[:1].upper() + label[1:] if label else None


def _label_of(text: str) -> str | None:
    text = _shown(text)
    while apple := _APPLE_LABEL.fullmatch(text):  # each turn is 8 characters shorter
        text = apple[1].strip()
    return text or None


def _structured_name(component: Component) -> tuple[str, ...]:
    for line in _lines(component, "N"):
        value = line.value
        fields = ("family", "given", "additional", "prefix", "suffix")
        parts = tuple(_shown(_text(getattr(value, f, ""))) for f in fields)
        if any(parts):
            return parts
    return ()


def _text(value: Any) -> str:
    """A line's value as text: lists joined; bytes (a base64 value) and others empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return " ".join(text for text in map(_text, value) if text)
    return ""


def _shown(text: str) -> str:
    """One line of at most :data:`MAX_SHOWN_CHARS`: controls and runs of white space
    become one space."""
    text = _BLANKS.sub(" ", text[: MAX_SHOWN_CHARS * 4]).strip()
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _short(text: str) -> str:
    return _shown(text)[:120]


# --- showing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Description:
    """What the readable text of a shared contact says, on every frontend."""

    name: str
    organization: str | None
    numbers: tuple[str, ...]  # every number with its label: ``Celular: +55 11 …``
    emails: tuple[str, ...]
    problem: str | None  # UNREADABLE, or NO_NUMBER when it has no number nor email

    @property
    def entries(self) -> tuple[str, ...]:
        return self.numbers + self.emails


def describe(card: ContactCard) -> Description:
    """``card`` as people read it; its vCard unreadable gives :data:`UNREADABLE`."""
    name = _shown(card.display_name)
    try:
        details = read(card.vcard)
    except InvalidInput as exc:
        log.debug("the contact card of %r cannot be read: %s", name[:80], exc.explanation)
        return Description(name or "contact", None, (), (), UNREADABLE)
    name = name or details.name or "contact"
    organization = details.organization if details.organization != name else None
    numbers = tuple(phone.shown for phone in details.phones)
    problem = None if numbers or details.emails else NO_NUMBER
    return Description(name, organization, numbers, details.emails, problem)


# --- writing ----------------------------------------------------------------------


def write(card: VCard) -> str:
    """``card`` as the vCard 3.0 WhatsApp sends: ``FN``, ``N``, and for each number
    ``itemN.TEL;waid=…:+…`` with its ``itemN.X-ABLabel``; CRLF line ends, folded at
    75 octets (vobject's own escaping and folding)."""
    structured = card.structured_name or ("", card.name, "", "", "")
    out = io.StringIO()
    _write_line(out, "BEGIN:VCARD")
    _write_line(out, "VERSION:3.0")
    _write_line(out, "N:" + ";".join(backslashEscape(part) for part in structured))
    _write_line(out, "FN:" + backslashEscape(card.name))
    if card.organization:
        _write_line(out, "ORG:" + backslashEscape(card.organization))
    item = 0
    for phone in card.phones:
        item += 1
        waid = f";waid={phone.waid}" if phone.waid and _WAID.fullmatch(phone.waid) else ""
        _write_line(out, f"item{item}.TEL{waid}:{backslashEscape(phone.number)}")
        if phone.label:
            _write_line(out, f"item{item}.X-ABLabel:{backslashEscape(phone.label)}")
    for email in card.emails:
        item += 1
        _write_line(out, f"item{item}.EMAIL;type=INTERNET:{backslashEscape(email)}")
    _write_line(out, "END:VCARD")
    return out.getvalue()


def _write_line(out: io.StringIO, line: str) -> None:
    foldOneLine(out, line)


# --- an attendant's file ----------------------------------------------------------


def contacts_of_file(media: Media) -> ContactCard | ContactList | None:
    """An attendant's file as the contact(s) WhatsApp should show, when it is a vCard:
    a document whose mimetype is a vCard's or whose name ends in ``.vcf``, without a
    caption (a contact card has none), whose bytes are UTF-8 and parse. Each card is
    rewritten by :func:`write`. None otherwise: the file goes as a document."""
    name = media.filename or ""
    mimetype = media.mimetype.split(";", 1)[0].strip().lower()
    if media.media_kind is not MediaKind.DOCUMENT or media.data is None or media.caption:
        return None
    if mimetype not in VCARD_MIMETYPES and not name.lower().endswith(".vcf"):
        return None
    if len(media.data) > MAX_VCARD_CHARS * 4:
        return None
    try:
        cards = read_all(media.data.decode("utf-8-sig"))
    except (UnicodeDecodeError, InvalidInput) as exc:
        log.info("the file %r goes as a document: %s", name[:80], _short(str(exc)))
        return None
    if not all(card.name or card.phones for card in cards):
        log.info("the file %r goes as a document: a card in it has no name nor number", name[:80])
        return None
    fallback = name[:-4] if name.lower().endswith(".vcf") else name
    contacts = tuple(
        ContactCard(display_name=card.name or _shown(fallback) or "contact", vcard=write(card))
        for card in cards
    )
    if len(contacts) == 1:
        return contacts[0]
    return ContactList(display_name=f"{len(contacts)} contacts", cards=contacts)
