"""Neutral content ⇄ Matrix event content (bridge.matrix.convert): pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.matrix import convert
from bridge.model import (
    ContactCard,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Reaction,
    Text,
    Unsupported,
)

ROOT = "$root"


def _media(kind: MediaKind, mimetype: str, **kw: Any) -> Media:
    return Media(kind, mimetype, data=b"12345", **kw)


@pytest.mark.parametrize(
    ("media", "event_type", "expected"),
    [
        (
            _media(
                MediaKind.IMAGE, "image/png", filename="a.png", caption="foto", width=2, height=3
            ),
            "m.room.message",
            {"msgtype": "m.image", "body": "foto", "filename": "a.png"},
        ),
        (
            _media(MediaKind.DOCUMENT, "application/pdf", filename="boleto.pdf"),
            "m.room.message",
            {"msgtype": "m.file", "body": "boleto.pdf"},
        ),
        (
            _media(MediaKind.VOICE, "audio/ogg", duration=3),
            "m.room.message",
            {"msgtype": "m.audio", "org.matrix.msc3245.voice": {}},
        ),
        (_media(MediaKind.STICKER, "image/webp"), "m.sticker", {"url": "mxc://x/y"}),
    ],
)
def test_media_content(media: Media, event_type: str, expected: dict[str, Any]) -> None:
    kind, content = convert.media_content(media, "mxc://x/y", ident="9")
    assert kind == event_type
    assert expected.items() <= content.items()
    assert content["info"]["mimetype"] == media.mimetype and content["info"]["size"] == 5


def test_voice_has_duration_in_ms_and_caption_less_media_no_filename() -> None:
    _, content = convert.media_content(
        _media(MediaKind.VOICE, "audio/ogg", duration=3), "mxc://x/y"
    )
    assert content["info"]["duration"] == 3000
    assert content["org.matrix.msc1767.audio"] == {"duration": 3000}
    assert "filename" not in content and content["body"].endswith(".ogg")


def test_location_contact_unsupported() -> None:
    loc = convert.location_content(Location(-23.5, -46.6, name="MASP"))
    assert loc["msgtype"] == "m.location" and loc["geo_uri"] == "geo:-23.5,-46.6"
    card = ContactCard("Ana", "BEGIN:VCARD\nFN:Ana\nTEL:+5511911112222\nEND:VCARD")
    assert convert.contact_text(card)["body"] == "Contact: Ana (+5511911112222)"
    vcf = convert.contact_file(card)
    assert (vcf.filename, vcf.mimetype) == ("Ana.vcf", "text/vcard")
    assert convert.unsupported_content(Unsupported("poll"))["body"].endswith(
        "unsupported message: poll"
    )


def test_thread_relation_fallback_and_quote() -> None:
    plain = convert.with_thread({"body": "x"}, root=ROOT, latest="$last")
    assert plain["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": ROOT,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$last"},
    }
    quoted = convert.with_thread({"body": "x"}, root=ROOT, reply_to="$q")
    assert quoted["m.relates_to"]["is_falling_back"] is False
    assert quoted["m.relates_to"]["m.in_reply_to"] == {"event_id": "$q"}


def test_edit_and_reaction_content() -> None:
    edit = convert.edit_content("$t", {"msgtype": "m.text", "body": "novo"})
    assert edit["body"] == "* novo" and edit["m.new_content"] == {
        "msgtype": "m.text",
        "body": "novo",
    }
    assert edit["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$t"}
    assert convert.reaction_content("$t", "👍")["m.relates_to"]["key"] == "👍"


def _event(kind: str, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "content": content, "sender": "@bob:localhost", **extra}


THREAD = {
    "rel_type": "m.thread",
    "event_id": ROOT,
    "is_falling_back": True,
    "m.in_reply_to": {"event_id": "$last"},
}


@pytest.mark.parametrize(
    ("event", "content", "root", "reply_to"),
    [
        (
            _event("m.room.message", {"msgtype": "m.text", "body": "oi", "m.relates_to": THREAD}),
            Text("oi"),
            ROOT,
            None,
        ),
        (
            _event(
                "m.room.message",
                {
                    "msgtype": "m.text",
                    "body": "oi",
                    "m.relates_to": {
                        **THREAD,
                        "is_falling_back": False,
                        "m.in_reply_to": {"event_id": "$q"},
                    },
                },
            ),
            Text("oi"),
            ROOT,
            "$q",
        ),
        (
            _event(
                "m.reaction",
                {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$t", "key": "👍"}},
            ),
            Reaction("$t", "👍"),
            None,
            None,
        ),
        (
            _event(
                "m.room.message",
                {
                    "msgtype": "m.text",
                    "body": "* b",
                    "m.new_content": {"msgtype": "m.text", "body": "b"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$t"},
                },
            ),
            Edit("$t", Text("b")),
            None,
            None,
        ),
        (_event("m.room.redaction", {}, redacts="$t"), Deletion("$t"), None, None),
        (
            _event(
                "m.room.message",
                {"msgtype": "m.location", "body": "Loja", "geo_uri": "geo:1.5,2.5"},
            ),
            Location(1.5, 2.5, name="Loja"),
            None,
            None,
        ),
    ],
)
def test_parse_event(
    event: dict[str, Any], content: Any, root: str | None, reply_to: str | None
) -> None:
    parsed = convert.parse_event(event)
    assert parsed is not None
    assert (parsed.content, parsed.thread_root, parsed.reply_to) == (content, root, reply_to)


def test_parse_media_with_caption_and_voice() -> None:
    image = convert.parse_event(
        _event(
            "m.room.message",
            {
                "msgtype": "m.image",
                "body": "veja",
                "filename": "a.png",
                "url": "mxc://s/m",
                "info": {"mimetype": "image/png", "size": 5, "w": 1, "h": 2},
            },
        )
    )
    assert image is not None and isinstance(image.content, convert.PendingMedia)
    media = image.content.with_data(b"12345")
    assert (media.media_kind, media.caption, media.filename, media.width) == (
        MediaKind.IMAGE,
        "veja",
        "a.png",
        1,
    )
    voice = convert.parse_event(
        _event(
            "m.room.message",
            {
                "msgtype": "m.audio",
                "body": "v.ogg",
                "url": "mxc://s/v",
                "org.matrix.msc3245.voice": {},
                "info": {"mimetype": "audio/ogg", "duration": 4000},
            },
        )
    )
    assert voice is not None and voice.content.media_kind is MediaKind.VOICE  # type: ignore[union-attr]
    assert voice.content.duration == 4 and voice.content.caption is None  # type: ignore[union-attr]


def test_ignored_events() -> None:
    assert convert.parse_event(_event("m.room.topic", {"topic": "x"})) is None
    assert (
        convert.parse_event(_event("m.room.message", {"msgtype": "m.image", "body": "x"})) is None
    )
