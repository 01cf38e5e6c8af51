from __future__ import annotations

import pytest

from bridge.errors import InvalidInput
from bridge.phone import is_valid_e164, normalize_phone, whatsapp_variants


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+55 (11) 98765-4321", "+5511987654321"),
        ("5511987654321@s.whatsapp.net", "+5511987654321"),
        ("5511987654321:12@s.whatsapp.net", "+5511987654321"),
        # Brazil: the optional ninth digit of mobiles is always added
        ("551187654321", "+5511987654321"),
        ("551187654321@s.whatsapp.net", "+5511987654321"),
        # a Brazilian landline (starts 2-5) keeps 8 digits
        ("551133334444", "+551133334444"),
        ("+1 415 555 2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected
    assert is_valid_e164(expected)


@pytest.mark.parametrize("raw", ["", "abc", "123", "+1234567890123456"])
def test_not_a_phone_is_a_clear_error(raw: str) -> None:
    with pytest.raises(InvalidInput, match="not a phone number"):
        normalize_phone(raw)


def test_whatsapp_variants_of_a_brazilian_mobile() -> None:
    assert whatsapp_variants("+5511987654321") == ("5511987654321", "551187654321")
    assert whatsapp_variants("+14155552671") == ("14155552671",)
