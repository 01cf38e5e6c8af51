from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import InvalidInput
from bridge.phone import digits_of, is_valid_e164, normalize_phone, whatsapp_variants


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+55 (11) 98765-4321", "+5511987654321"),
        ("5511987654321@s.whatsapp.net", "+5511987654321"),
        ("5511987654321:12@s.whatsapp.net", "+5511987654321"),
        ("5511987654321.0:12@s.whatsapp.net", "+5511987654321"),
        ("5511987654321", "+5511987654321"),  # a JID's user part
        # Brazil: the optional ninth digit of mobiles is always added
        ("551187654321", "+5511987654321"),
        ("551187654321@s.whatsapp.net", "+5511987654321"),
        # a Brazilian landline (starts 2-5) keeps 8 digits
        ("551133334444", "+551133334444"),
        ("+1 415 555 2671", "+14155552671"),
        ("+1.415.555.2671", "+14155552671"),
        ("+1 (415) 555/2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("  +55 11 98765 4321\t", "+5511987654321"),
        # other scripts' digits are the same number, never a second contact
        ("+٥٥١١٩٨٧٦٥٤٣٢١", "+5511987654321"),  # Arabic-Indic
        ("+۵۵۱۱۹۸۷۶۵۴۳۲۱", "+5511987654321"),  # Extended Arabic-Indic (Persian)
        ("+５５ １１ ９８７６５−４３２１", "+5511987654321"),  # full-width, minus sign
        ("＋５５（１１）９８７６５－４３２１", "+5511987654321"),  # full-width + ( ) -
        ("+५५११९८७६५४३२१", "+5511987654321"),  # Devanagari
        ("+55١١98765٤٣٢١", "+5511987654321"),  # mixed
        ("\u200f+٩٦٦ ٥٠ ١٢٣ ٤٥٦٧\u200e", "+966501234567"),  # copied out of Arabic text
        ("+55 11 98765‐4321", "+5511987654321"),  # U+2010 hyphen
        ("+55\u00a011\u202f98765-4321", "+5511987654321"),  # no-break spaces
    ],
)
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected
    assert is_valid_e164(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "123",
        "+1234567890123456",  # 16 digits
        "+55 11 98765-4321 ext",  # letters mixed in
        "+55 11 9876S-4321",
        "+55 11 98765-432l",
        "55+11987654321",  # a + that is not first
        "++5511987654321",
        "tel:+5511987654321",
        "+55 11 98765-4321#",
        "+55\x0011987654321",  # control characters
        "+5511987654321\n+5511900000000",  # two numbers
        "+55 11 ⑨8765-4321",  # a circled digit is not a decimal digit
        "011 98765 4321",  # a trunk prefix, not a country code
        "abc@s.whatsapp.net",
        "55119876٥4321@s.whatsapp.net",  # a JID is ASCII
        "5511987654321@",
        "+" + "1" * 200,  # long input is refused before it is read
    ],
)
def test_not_a_phone_is_a_clear_error(raw: str) -> None:
    with pytest.raises(InvalidInput, match="not a phone number"):
        normalize_phone(raw)


def test_the_error_quotes_a_long_input_only_in_part() -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone("9" * 10_000)
    assert len(caught.value.explanation) < 120


def test_digits_of_a_lid_jid() -> None:
    assert digits_of("123456789012345@lid") == "123456789012345"


def test_whatsapp_variants_of_a_brazilian_mobile() -> None:
    assert whatsapp_variants("+5511987654321") == ("5511987654321", "551187654321")
    assert whatsapp_variants("+14155552671") == ("14155552671",)


def test_is_valid_e164_takes_ascii_digits_only() -> None:
    assert is_valid_e164("+5511987654321")
    assert not is_valid_e164("+٥٥١١٩٨٧٦٥٤٣٢١")
    assert not is_valid_e164("+5511９８７６５４３２１")


_PHONE_ALPHABET = st.characters(codec="utf-8", categories=["Nd", "Zs", "Pd", "Ps", "Pe", "Po"])


@given(st.text(_PHONE_ALPHABET, max_size=40) | st.text(max_size=40))
def test_a_phone_is_ascii_e164_or_refused(raw: str) -> None:
    try:
        phone = normalize_phone(raw)
    except InvalidInput:
        return
    assert is_valid_e164(phone)
    assert phone.isascii()
    assert 8 <= len(phone) - 1 <= 15


_SCRIPTS = [chr(zero) for zero in (0x30, 0x660, 0x6F0, 0x966, 0xFF10, 0x1D7CE)]


@given(
    st.from_regex(r"[1-9][0-9]{7,14}", fullmatch=True),
    st.lists(st.sampled_from(_SCRIPTS), min_size=15, max_size=15),
)
def test_any_script_gives_the_same_number(ascii_digits: str, zeros: list[str]) -> None:
    spelled = "".join(chr(ord(zero) + int(d)) for zero, d in zip(zeros, ascii_digits, strict=False))
    assert normalize_phone("+" + spelled) == normalize_phone("+" + ascii_digits)
