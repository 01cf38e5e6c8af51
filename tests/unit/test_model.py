"""The neutral model: one test per kind, round-trips through the JSON form."""

from __future__ import annotations

import json

import pytest

from bridge.model import (
    AckStatus,
    ContactCard,
    ContactList,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Message,
    Party,
    Quote,
    Reaction,
    Receipt,
    Text,
    Unsupported,
    clean_text,
    cleaned,
    content_from_dict,
    content_to_dict,
    default_filename,
)

VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nTEL;type=CELL:+55 11 98888-7777\nEND:VCARD"

KINDS = [
    Text("*oi* _tudo_ bem?", mentions=("+5511987654321",)),
    Media(MediaKind.IMAGE, "image/jpeg", data=b"\xff\xd8jpeg", caption="foto", width=2, height=3),
    Media(MediaKind.VIDEO, "video/mp4", data=b"mp4", gif=True, duration=4),
    Media(MediaKind.AUDIO, "audio/mpeg", data=b"mp3", duration=61),
    Media(MediaKind.VOICE, "audio/ogg; codecs=opus", ref={"direct_path": "/v/t62", "key": "a2V5"}),
    Media(MediaKind.DOCUMENT, "application/pdf", data=b"%PDF", filename="boleto.pdf"),
    Media(MediaKind.STICKER, "image/webp", data=b"RIFFwebp"),
    Location(-23.55, -46.63, name="Paulista", address="Av. Paulista, 1000"),
    Location(1.0, 2.0, live=True),
    ContactCard("Ana", VCARD),
    ContactList("2 contacts", (ContactCard("Ana", VCARD), ContactCard("Bia", VCARD))),
    Unsupported("poll"),
    Reaction("3EB0AA", "👍"),
    Reaction("3EB0AA", ""),
    Edit("3EB0AA", Text("corrigido")),
    Deletion("3EB0AA"),
    Receipt(("3EB0AA", "3EB0BB"), AckStatus.READ),
]


@pytest.mark.parametrize("content", KINDS, ids=lambda c: c.kind)
def test_every_kind_round_trips_through_json(content: object) -> None:
    encoded = json.loads(json.dumps(content_to_dict(content)))  # type: ignore[arg-type]
    assert encoded["type"] == content.kind  # type: ignore[attr-defined]
    assert content_from_dict(encoded) == content


def test_unknown_content_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown content type 'poll'"):
        content_from_dict({"type": "poll"})


def test_media_needs_bytes_or_a_download_ref() -> None:
    with pytest.raises(ValueError, match="data or a download ref"):
        Media(MediaKind.IMAGE, "image/png")


def test_media_byte_size_prefers_the_bytes() -> None:
    assert Media(MediaKind.IMAGE, "image/png", data=b"12345", size=99).byte_size == 5
    assert Media(MediaKind.IMAGE, "image/png", ref={"k": 1}, size=99).byte_size == 99


def test_location_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Location(91.0, 0.0)


def test_unsupported_has_a_visible_placeholder() -> None:
    assert Unsupported("poll").placeholder == "unsupported message: poll"


@pytest.mark.parametrize(
    ("kind", "mime", "expected"),
    [
        (MediaKind.VOICE, "audio/ogg; codecs=opus", "voice-X1.ogg"),
        (MediaKind.STICKER, "image/webp", "sticker-X1.webp"),
        (MediaKind.IMAGE, "image/jpeg", "image-X1.jpg"),
        (MediaKind.VIDEO, "video/mp4", "video-X1.mp4"),
        (MediaKind.DOCUMENT, "application/x-weird", "document-X1.x-weird"),
    ],
)
def test_default_filenames_follow_the_contract(kind: MediaKind, mime: str, expected: str) -> None:
    assert default_filename(kind, mime, "X1") == expected


def test_party_address_and_message_kind_label() -> None:
    person = Party(phone="+5511987654321", name="Maria")
    group = Party(group="120363@g.us", name="Loja")
    lid = Party(lid="987654")
    assert (person.address, group.address, lid.address) == (
        "+5511987654321",
        "120363@g.us",
        "987654@lid",
    )
    assert group.is_group and not person.is_group
    voice = Media(MediaKind.VOICE, "audio/ogg", data=b"x")
    assert Message(chat=person, sender=person, content=voice).kind_label == "voice"
    assert Message(chat=person, sender=person, content=Text("a")).kind_label == "text"
    with pytest.raises(ValueError, match="phone, a LID or a group"):
        Party(name="nobody")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Maria", "Maria"),
        ("Ma\x00ria", "Maria"),
        ("tab\tnew\nline\r\n", "tab\tnew\nline\r\n"),  # kept: they are text
        ("".join(map(chr, range(32))), "\t\n\r"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("\x7f\x85\u200b", "\x7f\x85\u200b"),  # DEL, C1 and zero-width space are kept
        ("a\ud800b", "a\ufffdb"),
        ("\udfff", "\ufffd"),
        ("\ud83d\ude00", "😀"),  # a surrogate pair is its character
        ("x\ud83d\ude00\udc00\x00y", "x😀\ufffdy"),
        ("", ""),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    clean.encode("utf-8")  # every database and UTF-8 can hold it


def test_clean_text_returns_clean_text_itself() -> None:
    text = "já está limpo 😀" * 100
    assert clean_text(text) is text


def test_cleaned_reaches_every_string_of_a_message() -> None:
    group = Party(group="1203@g.us", name="Clientes\x00 VIP")
    card = ContactCard("Ana\x00", VCARD + "\x00")
    message = Message(
        chat=group,
        sender=Party(phone="+5511987654321", lid="123", name="\ud800Maria"),
        content=ContactList("2 contatos\x01", (card, card)),
        wa_id="3EB0\x00",
        quote=Quote("3EB0\x02", sender="+5511900000001", text="oi\x03"),
        extra={"chat_jid\x00": "1203@g.us\x00"},
    )
    clean = cleaned(message)
    assert clean.chat.name == "Clientes VIP"
    assert clean.sender.name == "\ufffdMaria"
    assert clean.content == ContactList("2 contatos", (ContactCard("Ana", VCARD),) * 2)
    assert (clean.wa_id, clean.quote) == ("3EB0", Quote("3EB0", sender="+5511900000001", text="oi"))
    assert clean.extra == {"chat_jid": "1203@g.us"}
    assert message.chat.name == "Clientes\x00 VIP"  # the original is unchanged (frozen)


def test_cleaned_covers_locations_media_edits_and_refs() -> None:
    location = Location(1.0, 2.0, name="Pa\x00ulista", address="Av.\x1f 1000")
    assert cleaned(location) == Location(1.0, 2.0, name="Paulista", address="Av. 1000")
    media = Media(MediaKind.VOICE, "audio/ogg\x00", ref={"direct_path": "/v\x00", "n": [1, "\x00"]})
    assert cleaned(media) == Media(
        MediaKind.VOICE, "audio/ogg", ref={"direct_path": "/v", "n": [1, ""]}
    )
    edit = Edit("3EB0\x00", Text("novo\x00", mentions=("+55\x00",)))
    assert cleaned(edit) == Edit("3EB0", Text("novo", mentions=("+55",)))
    assert cleaned(Reaction("X", "\x00👍")) == Reaction("X", "👍")
    assert cleaned(Unsupported("poll\x00")) == Unsupported("poll")


@pytest.mark.parametrize("content", KINDS, ids=lambda c: c.kind)
def test_cleaned_returns_clean_objects_themselves(content: object) -> None:
    assert cleaned(content) is content
