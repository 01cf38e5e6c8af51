"""bridge/whatsapp/cloud/outbound.py: neutral content → Graph API message JSON, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import PermanentDeliveryError
from bridge.model import (
    ContactCard,
    ContactList,
    Content,
    Location,
    Media,
    MediaKind,
    Quote,
    Text,
    Unsupported,
)
from bridge.whatsapp.cloud import outbound
from tests.harness.vcards import ANDROID, IOS

TO = "+5511987654321"
ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511987654321"}


def media(kind: MediaKind, **extra: Any) -> Media:
    return Media(media_kind=kind, mimetype=extra.pop("mimetype", "image/jpeg"), data=b"x", **extra)


MESSAGES: list[tuple[str, Content, dict[str, Any]]] = [
    (
        "text keeps its markup",
        Text("*bold* _italic_ ~strike~ ```code```"),
        {
            "type": "text",
            "text": {"body": "*bold* _italic_ ~strike~ ```code```", "preview_url": False},
        },
    ),
    (
        "a link asks for a preview",
        Text("see https://example.com/x"),
        {"type": "text", "text": {"body": "see https://example.com/x", "preview_url": True}},
    ),
    (
        "image with caption",
        media(MediaKind.IMAGE, caption="look"),
        {"type": "image", "image": {"id": "M1", "caption": "look"}},
    ),
    (
        "video without caption",
        media(MediaKind.VIDEO, mimetype="video/mp4"),
        {"type": "video", "video": {"id": "M1"}},
    ),
    (
        "a GIF plays as a video",
        media(MediaKind.VIDEO, mimetype="video/mp4", gif=True, caption="ha"),
        {"type": "video", "video": {"id": "M1", "caption": "ha"}},
    ),
    (
        "audio drops its caption",
        media(MediaKind.AUDIO, mimetype="audio/mpeg", caption="listen"),
        {"type": "audio", "audio": {"id": "M1"}},
    ),
    (
        "a voice note is audio",
        media(MediaKind.VOICE, mimetype="audio/ogg; codecs=opus"),
        {"type": "audio", "audio": {"id": "M1"}},
    ),
    (
        "document with file name and caption",
        media(MediaKind.DOCUMENT, mimetype="application/pdf", filename="a.pdf", caption="c"),
        {"type": "document", "document": {"id": "M1", "caption": "c", "filename": "a.pdf"}},
    ),
    (
        "sticker",
        media(MediaKind.STICKER, mimetype="image/webp", filename="s.webp"),
        {"type": "sticker", "sticker": {"id": "M1"}},
    ),
    (
        "location with name and address",
        Location(-23.5, -46.6, name="Office", address="Av. Paulista"),
        {
            "type": "location",
            "location": {
                "latitude": -23.5,
                "longitude": -46.6,
                "name": "Office",
                "address": "Av. Paulista",
            },
        },
    ),
    (
        "bare location",
        Location(1.0, 2.0),
        {"type": "location", "location": {"latitude": 1.0, "longitude": 2.0}},
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES]
)
def test_message_payload(content: Content, expected: dict[str, Any]) -> None:
    media_id = "M1" if isinstance(content, Media) else None
    assert outbound.message_payload(TO, content, media_id=media_id) == {**ENVELOPE, **expected}


def test_a_quote_becomes_the_context() -> None:
    payload = outbound.message_payload(TO, Text("yes"), quote=Quote("wamid.ABC", sender=TO))
    assert payload["context"] == {"message_id": "wamid.ABC"}


def test_ios_contact_card() -> None:
    payload = outbound.message_payload(TO, ContactCard("Maria Souza", IOS))
    assert payload["type"] == "contacts"
    assert payload["contacts"] == [
        {
            "name": {"formatted_name": "Maria Souza", "first_name": "Maria", "last_name": "Souza"},
            "phones": [
                {"phone": "+55 11 98765-4321", "wa_id": "5511987654321"},
                {"phone": "+55 11 3333-4444", "wa_id": "551133334444"},
                {"phone": "+55 11 2222-1111", "type": "HOME"},
            ],
            "emails": [{"email": "maria@padaria.com.br"}],
            "org": {"company": "Padaria Pão Quente"},
        }
    ]


def test_contact_list_and_android_labels() -> None:
    nameless = "BEGIN:VCARD\nVERSION:3.0\nTEL:+1 555 0100\nEND:VCARD\n"
    cards = (ContactCard("Maria", ANDROID), ContactCard("", nameless))
    payload = outbound.message_payload(TO, ContactList("2 contacts", cards))
    first, second = payload["contacts"]
    assert first["phones"] == [
        {"phone": "+55 11 98765-4321", "type": "CELL", "wa_id": "5511987654321"},
        {"phone": "+55 11 3333-4444", "type": "WORK"},
    ]
    assert first["name"]["formatted_name"] == "Maria"
    # Meta wants formatted_name and one more part: the number stands in for a name
    assert second["name"] == {"formatted_name": "+1 555 0100", "first_name": "+1 555 0100"}


REFUSED: list[tuple[str, str, Content, str]] = [
    ("a group", "1203630@g.us", Text("hi"), "phone numbers only"),
    ("a LID", "123456@lid", Text("hi"), "phone numbers only"),
    ("an empty text", TO, Text("  "), "empty text"),
    ("a long text", TO, Text("a" * 4097), "4097 characters"),
    ("a long caption", TO, media(MediaKind.IMAGE, caption="c" * 1025), "1025 characters"),
    ("an unsupported kind", TO, Unsupported("poll"), "unsupported message"),
    ("an unreadable card", TO, ContactCard("X", "not a vcard"), "could not be read"),
]


@pytest.mark.parametrize(
    ("to", "content", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refusals(to: str, content: Content, words: str) -> None:
    with pytest.raises(PermanentDeliveryError, match=words):
        outbound.message_payload(to, content, media_id="M1")


def test_media_without_upload_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="upload"):
        outbound.message_payload(TO, media(MediaKind.IMAGE))


@pytest.mark.parametrize(
    ("content", "caption"),
    [
        (media(MediaKind.AUDIO, caption="hear"), "hear"),
        (media(MediaKind.STICKER, caption="s"), "s"),
        (media(MediaKind.VOICE, caption=" "), None),
        (media(MediaKind.IMAGE, caption="kept"), None),
        (media(MediaKind.DOCUMENT), None),
    ],
)
def test_detached_caption(content: Media, caption: str | None) -> None:
    assert outbound.detached_caption(content) == caption


@pytest.mark.parametrize(("emoji"), ["👍", ""])
def test_reaction(emoji: str) -> None:
    assert outbound.reaction_payload(TO, target="wamid.T", emoji=emoji) == {
        **ENVELOPE,
        "type": "reaction",
        "reaction": {"message_id": "wamid.T", "emoji": emoji},
    }


TEMPLATES: list[tuple[str, list[str], dict[str, Any]]] = [
    ("no parameters", [], {"name": "hello", "language": {"code": "en_US"}}),
    (
        "two body parameters in order",
        ["Maria", "#42"],
        {
            "name": "hello",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Maria"},
                        {"type": "text", "text": "#42"},
                    ],
                }
            ],
        },
    ),
]


@pytest.mark.parametrize(
    ("params", "expected"), [t[1:] for t in TEMPLATES], ids=[t[0] for t in TEMPLATES]
)
def test_template(params: list[str], expected: dict[str, Any]) -> None:
    payload = outbound.template_payload(TO, name="hello", language="en_US", params=params)
    assert payload == {**ENVELOPE, "type": "template", "template": expected}


@pytest.mark.parametrize("param", ["", "   ", "p" * 1025])
def test_template_refuses_bad_parameters(param: str) -> None:
    with pytest.raises(PermanentDeliveryError, match="template parameter 2"):
        outbound.template_payload(TO, name="t", language="en", params=["ok", param])


def test_read_payload() -> None:
    assert outbound.read_payload("wamid.R") == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.R",
    }
