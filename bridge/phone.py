"""Phone number normalisation, so one person never gets two tickets.

Canonical form is E.164 (``+5511987654321``). Brazilian mobile numbers carry an
optional ninth digit on WhatsApp: older accounts' JIDs omit it
(``551187654321``), so the canonical form always includes it; both spellings
normalise to the same string.

What is accepted (everything else is :class:`InvalidInput`, never a second contact):

- a phone as a person types it: decimal digits of any script (Arabic-Indic
  ``٥٥١١…``, full-width ``５５１１…`` …, read as the ASCII digits they stand for),
  one leading ``+``, and the separators ``-``, ``.``, ``/``, ``(``, ``)`` and spaces
  (their full-width forms, any Unicode space or dash, and the invisible
  direction marks that copying a number out of right-to-left text brings along);
- a WhatsApp JID or its user part: ``5511987654321[.agent][:device]@server``.

Letters, a ``+`` anywhere but first, and any other character make it not a phone.
"""

from __future__ import annotations

import re
import unicodedata

from bridge.errors import InvalidInput

MIN_DIGITS, MAX_DIGITS = 8, 15
MAX_INPUT_CHARS = 100  # a phone, with every separator, or a JID is far shorter

_SEPARATORS = frozenset(" -./()\u2212")  # U+2212: the minus sign, often typed for "-"
_DASHES = "Pd"  # the Unicode category of dashes
# Bidirectional marks and isolates: invisible, carried along by copy and paste.
_DIRECTION_MARKS = frozenset(
    "\u200e\u200f\u061c"  # LRM, RLM, ALM
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, overrides
    "\u2066\u2067\u2068\u2069"  # isolates
)
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_JID_USER = re.compile(r"([0-9]+)(?:\.[0-9]+)?(?::[0-9]+)?")


def digits_of(raw: str) -> str:
    """The ASCII digits of a phone or of a JID's user part
    (``+55 (11) 98765-4321`` → ``5511987654321``, ``123@lid`` → ``123``).

    Raises :class:`InvalidInput` when ``raw`` holds anything else (letters, …).
    """
    if len(raw) > MAX_INPUT_CHARS:
        raise _not_a_phone(raw, f"longer than {MAX_INPUT_CHARS} characters")
    if "@" in raw:
        return _jid_digits(raw)
    return _typed_digits(raw)


def _jid_digits(raw: str) -> str:
    user, _, server = raw.strip().partition("@")
    match = _JID_USER.fullmatch(user)
    if match is None or not server or not server.isascii():
        raise _not_a_phone(raw, "a JID's user part is ASCII digits")
    return match.group(1)


def _typed_digits(raw: str) -> str:
    digits: list[str] = []
    seen_plus = False
    for char in raw:
        if char.isdecimal():  # any script's decimal digit (category Nd)
            digits.append(str(unicodedata.decimal(char)))
        elif _separator(char):
            continue
        elif _is_plus(char) and not digits and not seen_plus:
            seen_plus = True
        else:
            raise _not_a_phone(raw, f"{_describe(char)} is not part of a phone number")
    return "".join(digits)


def _separator(char: str) -> bool:
    if char in _SEPARATORS or char in _DIRECTION_MARKS or char.isspace():
        return True
    if unicodedata.category(char) == _DASHES:
        return True
    return unicodedata.normalize("NFKC", char) in _SEPARATORS  # full-width （）．／


def _is_plus(char: str) -> bool:
    return unicodedata.normalize("NFKC", char) == "+"  # "+" or full-width "＋"


def _describe(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X})" if char.isprintable() else f"U+{ord(char):04X}"


def _not_a_phone(raw: str, why: str) -> InvalidInput:
    shown = raw if len(raw) <= 40 else raw[:39] + "…"
    return InvalidInput(f"not a phone number: {shown!r} ({why})")


def normalize_phone(raw: str) -> str:
    """E.164 for ``raw`` (a phone as typed, or a WhatsApp JID or its user part):
    always ``+`` and 8 to 15 ASCII digits, the first not ``0``.

    Raises :class:`InvalidInput` when it cannot be a phone number.
    """
    digits = digits_of(raw)
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise _not_a_phone(raw, f"expected {MIN_DIGITS} to {MAX_DIGITS} digits")
    if digits.startswith("0"):
        raise _not_a_phone(raw, "an international number starts with its country code, not 0")
    return "+" + _with_brazil_ninth_digit(digits)


def _with_brazil_ninth_digit(digits: str) -> str:
    # +55 DD NNNNNNNN where the subscriber number starts 6-9 is a mobile number
    # written without the ninth digit: add it.
    if digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        return digits[:4] + "9" + digits[4:]
    return digits


def whatsapp_variants(e164: str) -> tuple[str, ...]:
    """Digit strings WhatsApp may know this number by (with and without the 9)."""
    digits = digits_of(e164)
    if digits.startswith("55") and len(digits) == 13 and digits[4] == "9":
        return (digits, digits[:4] + digits[5:])
    return (digits,)


def is_valid_e164(value: str) -> bool:
    return _E164.fullmatch(value) is not None
