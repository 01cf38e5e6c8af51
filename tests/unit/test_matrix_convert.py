"""Neutral content ⇄ Matrix event content (bridge.matrix.convert): pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.matrix import convert
from bridge.matrix.fields import MalformedEvent
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
from tests.harness.vcards import ANDROID, ANDROID_21, FOLDED, IOS

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
    assert convert.contact_text(card)["body"] == "Contact: Ana — +5511911112222"
    vcf = convert.contact_file(card)
    assert (vcf.filename, vcf.mimetype) == ("Ana.vcf", "text/vcard")
    assert convert.unsupported_content(Unsupported("poll"))["body"].endswith(
        "unsupported message: poll"
    )


@pytest.mark.parametrize(
    ("card", "body"),
    [
        (
            ContactCard("Maria Souza", IOS),
            "Contact: Maria Souza (Padaria Pão Quente) — Celular: +55 11 98765-4321,"
            " Trabalho: +55 11 3333-4444, Home: +55 11 2222-1111, maria@padaria.com.br",
        ),
        (
            ContactCard("Maria Souza", ANDROID),
            "Contact: Maria Souza — Mobile: +55 11 98765-4321, Work: +55 11 3333-4444",
        ),
        (
            ContactCard("João", ANDROID_21),
            "Contact: João — Mobile: +5511912345678, Home: +551122223333",
        ),
        (ContactCard("Maria", FOLDED), "Contact: Maria — Celular: +55 11 98765-4321"),
        (ContactCard("Ana", "BEGIN:VCARD\nFN:Ana\nEND:VCARD"), "Contact: Ana — no phone number"),
        (
            ContactCard("Ana", "BEGIN:VCARD\nFN:Ana"),
            "Contact: Ana — contact card could not be read",
        ),
    ],
)
def test_a_shared_contact_shows_every_number_with_its_label(card: ContactCard, body: str) -> None:
    assert convert.contact_text(card) == {"msgtype": "m.text", "body": body}
    vcf = convert.contact_file(card)  # the raw card goes along, readable or not
    assert vcf.data == card.vcard.encode() and vcf.mimetype == "text/vcard"


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


# --- malformed events: every field read by type ------------------------------------

HTML = "org.matrix.custom.html"
REPLACE = {"rel_type": "m.replace", "event_id": "$t"}


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"msgtype": "m.text", "body": "x", "m.relates_to": "junk"}, "content.m.relates_to"),
        ({"msgtype": "m.text", "body": ["x"]}, "content.body"),
        ({"msgtype": 7, "body": "x"}, "content.msgtype"),
        (
            {
                "msgtype": "m.text",
                "body": "x",
                "m.relates_to": {"rel_type": "m.thread", "event_id": 1},
            },
            "content.m.relates_to.event_id",
        ),
        (
            {"msgtype": "m.text", "body": "x", "m.relates_to": {**THREAD, "is_falling_back": "no"}},
            "content.m.relates_to.is_falling_back",
        ),
        (
            {"msgtype": "m.text", "body": "x", "m.relates_to": {**THREAD, "m.in_reply_to": []}},
            "content.m.relates_to.m.in_reply_to",
        ),
        (
            {"msgtype": "m.text", "body": "x", "format": HTML, "formatted_body": {"b": 1}},
            "content.formatted_body",
        ),
        ({"msgtype": "m.image", "body": "a", "url": "mxc://s/m", "info": 3}, "content.info"),
        ({"msgtype": "m.image", "body": "a", "url": ["mxc://s/m"]}, "content.url"),
        (
            {"msgtype": "m.text", "body": "* x", "m.new_content": "x", "m.relates_to": REPLACE},
            "content.m.new_content",
        ),
    ],
)
def test_a_field_of_the_wrong_type_is_named(content: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedEvent) as refused:
        convert.parse_event(_event("m.room.message", content))
    assert refused.value.explanation.startswith(f"{field} is ")


def test_a_malformed_event_outside_what_the_bridge_reads_is_ignored() -> None:
    assert convert.parse_event(_event("m.room.topic", "junk")) is None  # type: ignore[arg-type]
    assert convert.parse_event({"type": "com.example", "content": {"m.relates_to": 1}}) is None
    with pytest.raises(MalformedEvent, match=r"^content is a list"):
        convert.parse_event({"type": "m.room.message", "content": []})
    with pytest.raises(MalformedEvent, match=r"^the event is a string"):
        convert.parse_event("junk")  # type: ignore[arg-type]


def test_loose_metadata_and_odd_locations() -> None:
    content = {
        "msgtype": "m.image",
        "body": "a.png",
        "url": "mxc://s/m",
        "info": {"size": "12", "w": 1.5, "h": -3, "duration": True, "mimetype": "image/png"},
    }
    parsed = convert.parse_event(_event("m.room.message", content))
    assert parsed is not None and isinstance(parsed.content, convert.PendingMedia)
    assert (parsed.content.size, parsed.content.width, parsed.content.height) == (None,) * 3
    for uri in ("geo:nan,1", "geo:91,0", "geo:1e999,0", "geo:x,y", "geo:1"):
        location = {"msgtype": "m.location", "body": "?", "geo_uri": uri}
        assert convert.parse_event(_event("m.room.message", location)) is None, uri


def test_nul_and_lone_surrogates_become_replacement_characters() -> None:
    content = {"msgtype": "m.text", "body": "a\x00b\ud800c", "m.relates_to": {**THREAD}}
    parsed = convert.parse_event(_event("m.room.message", content))
    assert parsed is not None and parsed.content == Text("ab\ufffdc")


_ODD = st.sampled_from(["", "\x00", "\ud800", "\udfff x", "mxc://s/m", "geo:1,2", "$t", "!"])
_STRINGS = st.text(max_size=30) | _ODD | st.builds(str.__add__, _ODD, st.text(max_size=10))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_STRINGS, inner, max_size=3),
    max_leaves=10,
)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value or any JSON value at all."""
    return valid | _JSON


_RELATION = st.fixed_dictionaries(
    {},
    optional={
        "rel_type": _maybe(st.sampled_from(["m.thread", "m.replace", "m.annotation"])),
        "event_id": _maybe(st.sampled_from(["$root", "$t"])),
        "key": _JSON,
        "is_falling_back": _JSON,
        "m.in_reply_to": _maybe(st.fixed_dictionaries({}, optional={"event_id": _JSON})),
    },
)
_INFO = st.fixed_dictionaries(
    {}, optional={k: _JSON for k in ("mimetype", "size", "w", "h", "duration")}
)
_CONTENT_FIELDS = {
    "msgtype": _maybe(
        st.sampled_from(["m.text", "m.notice", "m.emote", "m.image", "m.audio", "m.location"])
    ),
    "body": _STRINGS | _JSON,
    "format": _maybe(st.just(HTML)),
    "formatted_body": _maybe(st.just("<b>x</b> <a href='https://matrix.to/#/@wa_1:hs'>m</a>")),
    "m.relates_to": _maybe(_RELATION),
    "url": _maybe(st.just("mxc://s/m")),
    "info": _maybe(_INFO),
    "filename": _JSON,
    "geo_uri": _JSON,
    "redacts": _JSON,
    "org.matrix.msc3245.voice": _JSON,
}
_CONTENT = st.fixed_dictionaries({}, optional=_CONTENT_FIELDS)
_EVENT = st.fixed_dictionaries(
    {
        "type": _maybe(
            st.sampled_from(["m.room.message", "m.sticker", "m.reaction", "m.room.redaction"])
        )
    },
    optional={
        "content": _maybe(_CONTENT | st.builds(lambda c: {"m.new_content": c}, _CONTENT)),
        "redacts": _JSON,
    },
)


@settings(max_examples=1500, deadline=None)
@given(_EVENT | _JSON)
def test_any_event_parses_or_is_refused_as_malformed(event: Any) -> None:
    try:
        parsed = convert.parse_event(event, mention_resolver=lambda user: "+551100000000")
    except MalformedEvent as exc:
        assert exc.explanation and len(exc.explanation) < 200
        return
    if parsed is None:
        return
    for value in (parsed.thread_root, parsed.reply_to, *vars(parsed.content).values()):
        if isinstance(value, str):
            assert "\x00" not in value and not any("\ud800" <= c <= "\udfff" for c in value)


def test_a_note_is_a_notice_naming_its_author() -> None:
    label = convert.note_label("Bob")
    assert label == "📝 Note from Bob"
    content = convert.labelled_text(label, Text("ligar *amanhã*"), msgtype="m.notice")
    assert content["msgtype"] == "m.notice"
    assert content["body"] == "📝 Note from Bob: ligar amanhã"
    assert content["formatted_body"] == "<b>📝 Note from Bob</b>: ligar <strong>amanhã</strong>"
