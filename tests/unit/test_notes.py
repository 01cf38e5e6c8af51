"""What counts as an internal note (docs/tickets.md, "Internal notes")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core import notes
from bridge.db.messages import MessageRow
from bridge.model import Edit, Location, Media, MediaKind, Reaction, Text


@pytest.mark.parametrize(
    ("text", "prefix", "body"),
    [
        ("// ligar", "//", "ligar"),
        ("  \t//ligar", "//", "ligar"),
        ("*//ligar*", "//", "*ligar*"),
        ("* // ligar*", "//", "*ligar*"),
        ("_~//x~_", "//", "_~x~_"),
        ("> //x", "//", ">x"),
        ("```//x```", "//", "```x```"),
        ("!note ligar", "//", "ligar"),
        ("*!note ligar*", "//", "*ligar*"),
        ("//", "//", ""),
        ("*//*", "//", ""),
        ("!note", "//", ""),
        ("#int ligar", "#int", "ligar"),
        ("// ligar", "#int", None),  # another prefix configured: a normal message
        ("!note ligar", "#int", "ligar"),  # !note works whatever the prefix
        ("http://x", "//", None),
        ("ligar // amanhã", "//", None),
        ("/ligar", "//", None),
        ("!notes", "//", None),
        ("", "//", None),
    ],
)
def test_note_body(text: str, prefix: str, body: str | None) -> None:
    assert notes.note_body(text, prefix=prefix) == body


def test_note_of_texts_files_and_the_rest() -> None:
    assert notes.note_of(Text("// oi", mentions=("U1",)), prefix="//") == Text(
        "oi", mentions=("U1",)
    )
    assert notes.note_of(Text("oi"), prefix="//") is None
    image = Media(MediaKind.IMAGE, "image/png", data=b"x", caption="// defeito")
    assert notes.note_of(image, prefix="//") == Media(
        MediaKind.IMAGE, "image/png", data=b"x", caption="defeito"
    )
    bare = Media(MediaKind.IMAGE, "image/png", data=b"x", caption="//")
    assert notes.note_of(bare, prefix="//") == Media(MediaKind.IMAGE, "image/png", data=b"x")
    assert notes.note_of(Media(MediaKind.IMAGE, "image/png", data=b"x"), prefix="//") is None
    assert notes.note_of(Location(1.0, 2.0, name="//x"), prefix="//") is None
    assert notes.note_of(Reaction("$e", "👍"), prefix="//") is None
    assert notes.note_of(Edit("$e", Text("// x")), prefix="//") is None  # the relay's to judge


@given(st.text(alphabet=" \t\n*_~`>"), st.text())
def test_marks_and_spaces_never_hide_the_prefix(lead: str, rest: str) -> None:
    assert notes.note_body(f"{lead}//{rest}", prefix="//") is not None


def row(kind: str) -> MessageRow:
    return MessageRow(1, 1, 1, "out", kind, None, "@bob:localhost", {}, None, 0.0, None, 0.0)


def test_is_note() -> None:
    assert row("note").is_note
    assert not row("text").is_note
    assert not row("edit").is_note


def test_an_action_on_a_note_loses_a_repeated_prefix() -> None:
    assert notes.action_on_note(Edit("$e", Text("// hoje")), prefix="//") == Edit(
        "$e", Text("hoje")
    )
    assert notes.action_on_note(Edit("$e", Text("hoje")), prefix="//") == Edit("$e", Text("hoje"))
    assert notes.action_on_note(Reaction("$e", "👍"), prefix="//") == Reaction("$e", "👍")
