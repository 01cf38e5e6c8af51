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
    Reaction,
    Receipt,
    Text,
    Unsupported,
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


def test_contact_card_lists_its_phones() -> None:
    assert ContactCard("Ana", VCARD).phones == ("+55 11 98888-7777",)


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
