"""Phone number normalisation, so one person never gets two tickets.

Canonical form is E.164 (``+5511987654321``). Brazilian mobile numbers carry an
optional ninth digit on WhatsApp: older accounts' JIDs omit it
(``551187654321``), so the canonical form always includes it; both spellings
normalise to the same string.
"""

from __future__ import annotations

import re

from bridge.errors import InvalidInput

_NON_DIGITS = re.compile(r"[^\d]")


def digits_of(raw: str) -> str:
    """The digits of a phone or JID user part (``+55 (11) 98765-4321`` → ``5511987654321``)."""
    user = raw.split("@", 1)[0].split(":", 1)[0].split(".", 1)[0]
    return _NON_DIGITS.sub("", user)


def normalize_phone(raw: str) -> str:
    """E.164 for ``raw`` (a phone as typed, or a WhatsApp JID user part).

    Raises :class:`InvalidInput` when it cannot be a phone number.
    """
    digits = digits_of(raw)
    if not 8 <= len(digits) <= 15:
        raise InvalidInput(f"not a phone number: {raw!r} (expected 8 to 15 digits)")
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
    return bool(re.fullmatch(r"\+[1-9]\d{7,14}", value))
