"""bridge.vcard: vCards shaped as iOS and Android WhatsApp send them, malformed and
hostile ones (a clear placeholder, never an exception but InvalidInput, bounded
time), the writer (WhatsApp's own shape, stable when re-read), and an attendant's
.vcf file turned into contact cards."""

from __future__ import annotations

import time

import pytest
import vobject.base
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import vcard
from bridge.errors import InvalidInput
from bridge.model import ContactCard, ContactList, Media, MediaKind
from bridge.vcard import Phone, VCard
from tests.harness.vcards import ANDROID, ANDROID_21, FOLDED, IOS

NO_FN = "BEGIN:VCARD\nVERSION:3.0\nN:Souza;Maria;;;\nTEL:+5511911112222\nEND:VCARD\n"
NO_NUMBER = "BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nEND:VCARD\n"

MARIA = Phone("+55 11 98765-4321", "Celular", "5511987654321")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            IOS,
            VCard(
                name="Maria Souza",
                phones=(
                    MARIA,
                    Phone("+55 11 3333-4444", "Trabalho", "551133334444"),
                    Phone("+55 11 2222-1111", "Home"),
                ),
                emails=("maria@padaria.com.br",),
                organization="Padaria Pão Quente",
                structured_name=("Souza", "Maria", "", "", ""),
            ),
            id="ios",
        ),
        pytest.param(
            ANDROID,
            VCard(
                name="Maria Souza",
                phones=(
                    Phone("+55 11 98765-4321", "Mobile", "5511987654321"),
                    Phone("+55 11 3333-4444", "Work"),
                ),
                structured_name=("Souza", "Maria", "", "", ""),
            ),
            id="android",
        ),
        pytest.param(
            ANDROID_21,
            VCard(
                name="João Conceição da Silva",
                phones=(Phone("+5511912345678", "Mobile"), Phone("+551122223333", "Home")),
                structured_name=("Conceição", "João", "", "", ""),
            ),
            id="android 2.1 quoted-printable",
        ),
        pytest.param(
            FOLDED,
            VCard(
                name="Maria da Conceição Souza de Albuquerque e Silva Sobrinha Neta Filha",
                phones=(MARIA,),
            ),
            id="folded",
        ),
        pytest.param(
            NO_FN,
            VCard(
                name="Maria Souza",
                phones=(Phone("+5511911112222"),),
                structured_name=("Souza", "Maria", "", "", ""),
            ),
            id="no FN, only N",
        ),
        pytest.param(NO_NUMBER, VCard(name="Ana"), id="no number"),
        pytest.param(
            "begin:vcard\nversion:3.0\nfn:Ana\ntel;type=cell:+5511911112222\nend:vcard",
            VCard(name="Ana", phones=(Phone("+5511911112222", "Mobile"),)),
            id="lower case",
        ),
        pytest.param(
            "BEGIN:VCARD\nFN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Jo=C3=A3o\n"
            "TEL;waid=5511912345678:\nEND:VCARD",
            VCard(name="João", phones=(Phone("+5511912345678", None, "5511912345678"),)),
            id="no VERSION, a waid without its number",
        ),
        pytest.param(
            "BEGIN:VCARD\nFN:Ana\\\nTEL;VALUE=uri:tel:+5511911112222\nEND:VCARD",
            VCard(name="Ana", phones=(Phone("+5511911112222"),)),
            id="a lone backslash, a tel: URI",
        ),
    ],
)
def test_phone_shaped_vcards_are_read(text: str, expected: VCard) -> None:
    assert vcard.read(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "holds no vCard", id="empty"),
        pytest.param("hello", "holds no vCard", id="not a vCard"),
        pytest.param("BEGIN:VCARD\nFN:Ana\nTEL:+5511911112222", "never closed", id="no END"),
        pytest.param("END:VCARD\n", "never opened", id="END first"),
        pytest.param(
            "BEGIN:VCARD\nFN;CHARSET=NOPE;ENCODING=QUOTED-PRINTABLE:Jo=C3=A3o\nEND:VCARD",
            "unknown encoding",
            id="unknown charset",
        ),
        pytest.param(
            "BEGIN:VCARD\nFN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Jo=E3o\nEND:VCARD",
            "cannot be read",
            id="quoted-printable that is not UTF-8",
        ),
        pytest.param("BEGIN:VCALENDAR\nEND:VCALENDAR", "holds no vCard", id="a calendar"),
        pytest.param("BEGIN:VCARD\n" * 3, "nests more than 2", id="nested"),
        pytest.param("x" * (vcard.MAX_VCARD_CHARS + 1), "characters, over", id="too long"),
        pytest.param("\n" * (vcard.MAX_TEXT_LINES + 1), "line breaks, over", id="too many lines"),
        pytest.param(
            "BEGIN:VCARD\nFN:" + "a" * vcard.MAX_LINE_CHARS + "\nEND:VCARD",
            "a FN line has",
            id="a line too long",
        ),
        pytest.param(
            "BEGIN:VCARD\n" + "TEL:1\n" * vcard.MAX_LINES + "END:VCARD",
            "lines of",
            id="too many lines to read",
        ),
        pytest.param(
            "BEGIN:VCARD\nFN:a\nEND:VCARD\n" * (vcard.MAX_CARDS + 1),
            "more than 64 vCards",
            id="too many cards",
        ),
    ],
)
def test_malformed_vcards_raise_invalid_input_only(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        vcard.read(text)


def test_lines_the_bridge_does_not_read_never_reach_vobject() -> None:
    """A photo, an unknown property or a garbage line are left out (vobject would
    refuse the garbage line); the numbers are still read."""
    text = "BEGIN:VCARD\nFN:Ana\nthis is not a vCard line\nNOTE:x\nTEL:+5511911112222\nEND:VCARD"
    assert vcard.read(text) == VCard(name="Ana", phones=(Phone("+5511911112222"),))


# --- hostile input: bounded time ----------------------------------------------------

_REDOS = "TEL;B=" + "=a" * 22  # vobject's own pattern: 12 s for these 50 characters


def _card(lines: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\n{lines}\r\nEND:VCARD\r\n"


def _filled(prefix: str, unit: str, suffix: str, size: int = vcard.MAX_VCARD_CHARS - 100) -> str:
    return prefix + unit * ((size - len(prefix) - len(suffix)) // len(unit)) + suffix


_LINE = vcard.MAX_LINE_CHARS - 8
HOSTILE = {
    "vobject's exponential line, alone": _card(_REDOS),
    "vobject's exponential line, 256 KB": _card(_filled("TEL;B=", "=a", "")),
    "ambiguous parameters with a colon, 256 KB": _card(_filled("TEL;B", "=a,", ":x")),
    "unclosed quotes, 256 KB": _card(_filled("TEL;B", '="', "")),
    "a photo, 256 KB": _card(_filled("PHOTO;ENCODING=b:", "QUFB", "")),
    "blank lines, at the limit": "\n" * vcard.MAX_TEXT_LINES,
    "folds, at the limit": _card("FN:" + "\r\n x" * (vcard.MAX_TEXT_LINES - 10)),
    "TEL lines, at the limit": _card("\r\n".join(["TEL:+5511911112222"] * 500)),
    "N separators, at the limit": _card("\r\n".join(["N:" + ";," * (_LINE // 2)] * 7)),
    "TEL parameters, at the limit": _card("\r\n".join(["TEL" + ";B=a" * (_LINE // 4) + ":1"] * 7)),
    "64 cards": _card("FN:a\r\nTEL:1\r\nEND:VCARD\r\nBEGIN:VCARD") * 32,
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_vcards_are_read_or_refused_quickly(text: str) -> None:
    """Measured on the 2-core development machine: 40 ms at worst, 55 ms while other
    tests ran (``python -m tests.unit.test_vcard`` prints every case); vobject alone
    spends 12 to 15 s on the first one, and doubles with every ``=a`` added."""
    started = time.perf_counter()
    try:
        vcard.read_all(text)
    except InvalidInput:
        pass
    assert time.perf_counter() - started < 1.0


_LINE_ALPHABET = st.text(alphabet='aB1._-;:=,"x \\', max_size=14)


@settings(max_examples=3000, deadline=None)
@given(_LINE_ALPHABET)
def test_the_line_check_accepts_exactly_what_vobject_reads(line: str) -> None:
    """The linear check has the same language as vobject's backtracking pattern."""
    ours = vcard._LINE_HEAD.match(line) is not None
    assert ours == (vobject.base.line_re.match(line) is not None)


# --- fuzz -------------------------------------------------------------------------

_NAMES = st.sampled_from(
    [
        *("BEGIN", "END", "VERSION", "FN", "N", "ORG", "TEL", "EMAIL", "X-ABLabel", "PHOTO"),
        *("item1.TEL", "item1.X-ABLabel", "item2.TEL", "NOTE", "", "BEGIN:VCARD", "END:VCARD"),
    ]
)
_PARAMS = st.sampled_from(
    [
        *("", ";waid=5511987654321", ";type=CELL", ";CELL;PREF", ";ENCODING=QUOTED-PRINTABLE"),
        *(";CHARSET=UTF-8", ";CHARSET=bogus", ";ENCODING=b", ';X="a:b"', ";=", ';"', ";;"),
    ]
)
_VALUES = st.lists(st.sampled_from([*'aZ9 ;:,=\\"\r\n\t', "=C3", "ç", "\x00"])).map("".join)
_LINES = st.tuples(_NAMES, _PARAMS, st.sampled_from([":", ""]), _VALUES).map("".join)
_VCARDISH = st.lists(_LINES, max_size=20).map(
    lambda lines: "\r\n".join(["BEGIN:VCARD", *lines, "END:VCARD"])
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), _VCARDISH))
def test_any_text_reads_or_raises_invalid_input_and_writes_back_stably(text: str) -> None:
    started = time.perf_counter()
    try:
        cards = vcard.read_all(text)
    except InvalidInput:
        cards = ()
    shown = vcard.describe(ContactCard("Ana", text))
    assert time.perf_counter() - started < 1.0
    assert shown.name == "Ana" and (shown.problem == vcard.UNREADABLE) == (not cards)
    for card in cards:
        written = vcard.write(card)
        again = vcard.read(written)
        assert (again.name, again.phones, again.emails) == (card.name, card.phones, card.emails)
        assert vcard.write(again) == written


# --- the readable text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (
            ContactCard("Maria Souza", IOS),
            vcard.Description(
                "Maria Souza",
                "Padaria Pão Quente",
                (
                    "Celular: +55 11 98765-4321",
                    "Trabalho: +55 11 3333-4444",
                    "Home: +55 11 2222-1111",
                ),
                ("maria@padaria.com.br",),
                None,
            ),
        ),
        (
            ContactCard("", NO_FN),
            vcard.Description("Maria Souza", None, ("+5511911112222",), (), None),
        ),
        (ContactCard("Ana", NO_NUMBER), vcard.Description("Ana", None, (), (), vcard.NO_NUMBER)),
        (ContactCard("Ana", "garbage"), vcard.Description("Ana", None, (), (), vcard.UNREADABLE)),
        (ContactCard("", ""), vcard.Description("contact", None, (), (), vcard.UNREADABLE)),
    ],
)
def test_describe_names_every_number_with_its_label(
    card: ContactCard, expected: vcard.Description
) -> None:
    assert vcard.describe(card) == expected


# --- the writer ---------------------------------------------------------------------


def test_the_writer_sends_whatsapps_own_shape() -> None:
    assert vcard.write(vcard.read(IOS)) == (
        "BEGIN:VCARD\r\n"
        "VERSION:3.0\r\n"
        "N:Souza;Maria;;;\r\n"
        "FN:Maria Souza\r\n"
        "ORG:Padaria Pão Quente\r\n"
        "item1.TEL;waid=5511987654321:+55 11 98765-4321\r\n"
        "item1.X-ABLabel:Celular\r\n"
        "item2.TEL;waid=551133334444:+55 11 3333-4444\r\n"
        "item2.X-ABLabel:Trabalho\r\n"
        "item3.TEL:+55 11 2222-1111\r\n"
        "item3.X-ABLabel:Home\r\n"
        "item4.EMAIL;type=INTERNET:maria@padaria.com.br\r\n"
        "END:VCARD\r\n"
    )


def test_the_writer_escapes_and_folds() -> None:
    card = VCard(name="Souza, Maria; " + "x" * 80, phones=(Phone("+1", "a;b"),))
    written = vcard.write(card)
    assert "FN:Souza\\, Maria\\; x" in written and "item1.X-ABLabel:a\\;b" in written
    assert all(len(line.encode()) <= 75 for line in written.split("\r\n"))
    assert vcard.read(written).name == card.name
    assert vcard.read(written).phones == card.phones


# --- an attendant's file ----------------------------------------------------------------


def _file(data: bytes, mimetype: str = "text/vcard", name: str | None = "maria.vcf") -> Media:
    return Media(MediaKind.DOCUMENT, mimetype, data=data, filename=name)


def test_an_attendants_vcf_becomes_a_normalised_contact_card() -> None:
    card = vcard.contacts_of_file(_file(ANDROID_21.encode("utf-8-sig")))
    assert isinstance(card, ContactCard)
    assert card.display_name == "João Conceição da Silva"
    assert card.vcard == vcard.write(vcard.read(ANDROID_21))
    assert "item1.X-ABLabel:Mobile\r\n" in card.vcard


@pytest.mark.parametrize(
    ("mimetype", "name"),
    [("text/x-vcard", None), ("application/octet-stream", "Contato.VCF"), ("text/vcard", "x")],
)
def test_a_vcard_is_known_by_its_mimetype_or_its_name(mimetype: str, name: str | None) -> None:
    assert isinstance(vcard.contacts_of_file(_file(IOS.encode(), mimetype, name)), ContactCard)


def test_several_cards_in_one_file_become_a_contact_list() -> None:
    contacts = vcard.contacts_of_file(_file((IOS + ANDROID_21).encode()))
    assert isinstance(contacts, ContactList)
    assert contacts.display_name == "2 contacts"
    assert [c.display_name for c in contacts.cards] == ["Maria Souza", "João Conceição da Silva"]


def test_a_nameless_card_is_named_after_its_file() -> None:
    text = "BEGIN:VCARD\nTEL:+5511911112222\nEND:VCARD"
    card = vcard.contacts_of_file(_file(text.encode(), name="Loja.vcf"))
    assert isinstance(card, ContactCard) and card.display_name == "Loja"


@pytest.mark.parametrize(
    "media",
    [
        pytest.param(_file(b"BEGIN:VCARD\nFN:Ana\nTEL:+1"), id="does not parse"),
        pytest.param(_file(b"BEGIN:VCARD\nFN:Jo\xe3o\nEND:VCARD"), id="not UTF-8"),
        pytest.param(_file(b"BEGIN:VCARD\nEND:VCARD"), id="no name nor number"),
        pytest.param(_file(IOS.encode(), "application/pdf", "a.pdf"), id="not a vCard file"),
        pytest.param(
            Media(MediaKind.DOCUMENT, "text/vcard", data=IOS.encode(), caption="veja"),
            id="with a caption",
        ),
        pytest.param(Media(MediaKind.IMAGE, "text/vcard", data=IOS.encode()), id="an image"),
        pytest.param(_file(b"x" * (vcard.MAX_VCARD_CHARS * 4 + 1)), id="too big"),
    ],
)
def test_other_files_go_as_documents(media: Media) -> None:
    assert vcard.contacts_of_file(media) is None


if __name__ == "__main__":  # the figures in the docstring above
    for what, text in HOSTILE.items():
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            try:
                vcard.read_all(text)
            except InvalidInput:
                pass
            best = min(best, time.perf_counter() - started)
        print(f"{what:45s} {len(text):>7} chars {best * 1000:7.1f} ms")
