"""Internal notes end to end on both database engines (docs/tickets.md, "Internal
notes"): the sim engine's outbound proves nothing reaches WhatsApp, two recording
fake frontends show the note mirrored as a note."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core import notes
from bridge.core.frontend import AuthorKind, ChatAddress
from bridge.db.database import Database
from bridge.model import Deletion, Edit, Media, MediaKind, Reaction, Text
from tests.fakes.frontend import Call, FakeFrontend
from tests.harness.core import CoreHarness

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def both(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix"), FakeFrontend("slack")])
    await harness.start()
    await harness.customer(text="Oi, meu pedido não chegou")
    yield harness
    await harness.stop()


def thread_of(fe: FakeFrontend) -> ChatAddress:
    call = next(c for c in fe.of("thread") if c.args["card"].ticket_id == 1)
    assert call.place is not None
    return call.place


def note_posts(fe: FakeFrontend) -> list[Call]:
    root = thread_of(fe).thread_root
    assert root is not None
    return [p for p in fe.posts_in(root) if p.args["author"].kind is AuthorKind.NOTE]


async def stored_kinds(core: CoreHarness) -> list[str]:
    return [row.kind for row in await core.bridge.repos.messages.list_by_ticket(1)]


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("// ligar para ela amanhã", "ligar para ela amanhã"),
        ("//ligar", "ligar"),
        ("   \t //  ligar", "ligar"),
        ("\n//ligar", "ligar"),
        ("*//ligar amanhã*", "*ligar amanhã*"),
        ("_ // ligar_", "_ligar_"),
        ("> //citação interna", ">citação interna"),
        ("~`//x`~", "~`x`~"),
        ("!note ligar amanhã", "ligar amanhã"),
        ("  !NOTE   *ligar*\nsegunda linha", "*ligar*\nsegunda linha"),
    ],
)
async def test_a_note_stays_among_staff_and_is_mirrored_as_a_note(
    both: CoreHarness, typed: str, shown: str
) -> None:
    matrix, slack = both.frontends["matrix"], both.frontends["slack"]
    before = len(both.outbound())
    event, reply = await slack.attendant(thread_of(slack), "U0BOB", typed, name="Bob")
    await both.settle()
    assert reply is None
    assert len(both.outbound()) == before  # nothing reached WhatsApp
    [mirror] = note_posts(matrix)
    assert mirror.args["content"] == Text(shown)
    assert mirror.args["author"].name == "Bob"
    assert note_posts(slack) == []  # not echoed where it was written
    row = await both.bridge.repos.messages.find_by_ref(
        "slack", room_id=thread_of(slack).room, event_id=event
    )
    assert row is not None and row.is_note and row.wa_id is None
    ticket = await both.bridge.tickets.get(1)
    assert ticket.status == "pending" and ticket.assignee is None  # a note answers no one
    assert await both.bridge.repos.outbox.count_dead() == 0


@pytest.mark.parametrize("typed", ["see http://example.com/x", "a // in the middle", "/ not two"])
async def test_a_prefix_not_at_the_start_is_a_normal_message(both: CoreHarness, typed: str) -> None:
    matrix = both.frontends["matrix"]
    await matrix.attendant(thread_of(matrix), "@bob:localhost", typed, name="Bob")
    await both.settle()
    assert both.outbound()[-1]["text"] == f"*Bob:*\n{typed}"
    assert note_posts(both.frontends["slack"]) == []


@pytest.mark.parametrize("typed", ["//", "  // ", "!note", "*//*"])
async def test_an_empty_note_is_refused_and_nothing_is_stored(
    both: CoreHarness, typed: str
) -> None:
    matrix = both.frontends["matrix"]
    before, kinds = len(both.outbound()), await stored_kinds(both)
    _, reply = await matrix.attendant(thread_of(matrix), "@bob:localhost", typed, name="Bob")
    await both.settle()
    assert reply is not None and reply.text == notes.NOTE_EMPTY and reply.ephemeral
    assert len(both.outbound()) == before
    assert await stored_kinds(both) == kinds
    assert note_posts(both.frontends["slack"]) == []


@pytest.mark.parametrize(
    ("caption", "shown"), [("//", None), ("// foto do defeito", "foto do defeito")]
)
async def test_a_file_with_a_note_caption_stays_internal(
    both: CoreHarness, caption: str, shown: str | None
) -> None:
    matrix, slack = both.frontends["matrix"], both.frontends["slack"]
    before = len(both.outbound())
    media = Media(MediaKind.IMAGE, "image/png", data=PNG, filename="x.png", caption=caption)
    _, reply = await matrix.attendant(thread_of(matrix), "@bob:localhost", media, name="Bob")
    await both.settle()
    assert reply is None
    assert len(both.outbound()) == before
    [mirror] = note_posts(slack)
    content = mirror.args["content"]
    assert isinstance(content, Media) and content.data == PNG and content.caption == shown
    assert await stored_kinds(both) == ["text", "text", "note"]  # Maria, the greeting, the file


async def test_edits_reactions_and_deletions_of_a_note_stay_internal(both: CoreHarness) -> None:
    matrix, slack = both.frontends["matrix"], both.frontends["slack"]
    before = len(both.outbound())
    note_event, _ = await matrix.attendant(
        thread_of(matrix), "@bob:localhost", "// ligar amanhã", name="Bob"
    )
    await both.settle()
    [mirror] = note_posts(slack)
    place = thread_of(matrix)
    bob = "@bob:localhost"
    await matrix.attendant(place, bob, Edit(note_event, Text("// ligar hoje")), name="Bob")
    await matrix.attendant(place, bob, Edit(note_event, Text("ligar às 10h")), name="Bob")
    await matrix.attendant(place, bob, Reaction(note_event, "👍"), name="Bob")
    await matrix.attendant(place, bob, Deletion(note_event), name="Bob")
    await both.settle()
    assert len(both.outbound()) == before  # no edit, reaction or revoke reached WhatsApp
    edits = [(c.args["target"], c.args["new"], c.args["author"].kind) for c in slack.of("edit")]
    assert edits == [
        (mirror.args["event"], Text("ligar hoje"), AuthorKind.NOTE),  # the prefix is not repeated
        (mirror.args["event"], Text("ligar às 10h"), AuthorKind.NOTE),  # still a note without it
    ]
    assert [c.args["target"] for c in slack.of("react")] == [mirror.args["event"]]
    assert [c.args["target"] for c in slack.of("delete")] == [mirror.args["event"]]
    assert await stored_kinds(both) == ["text", "text", "note", "note", "note", "note", "note"]
    assert await both.bridge.repos.outbox.count_dead() == 0


async def test_an_edit_adding_the_prefix_to_a_sent_message_is_not_relayed_and_says_so(
    both: CoreHarness,
) -> None:
    matrix, slack = both.frontends["matrix"], both.frontends["slack"]
    place = thread_of(matrix)
    sent_event, _ = await matrix.attendant(place, "@bob:localhost", "Vou verificar", name="Bob")
    await both.settle()
    before, kinds = len(both.outbound()), await stored_kinds(both)
    assert both.outbound()[-1]["text"] == "*Bob:*\nVou verificar"
    for new in ("// ela parece brava", "  *!note ela parece brava*"):
        _, reply = await matrix.attendant(
            place, "@bob:localhost", Edit(sent_event, Text(new)), name="Bob"
        )
        await both.settle()
        assert reply is not None and reply.text == notes.NOTE_TOO_LATE
        assert not reply.ephemeral  # said in the thread
    assert len(both.outbound()) == before  # the edit went nowhere
    assert await stored_kinds(both) == kinds
    assert slack.of("edit") == [] and note_posts(slack) == []


async def test_a_reply_quoting_a_note_reaches_the_customer_without_the_quote(
    both: CoreHarness,
) -> None:
    matrix = both.frontends["matrix"]
    place = thread_of(matrix)
    note_event, _ = await matrix.attendant(place, "@bob:localhost", "//segredo", name="Bob")
    await matrix.attendant(
        place, "@bob:localhost", "Já verifiquei", name="Bob", reply_to=note_event
    )
    await both.settle()
    sent = both.outbound()[-1]
    assert sent["text"] == "*Bob:*\nJá verifiquei" and sent.get("quote") is None
    assert all("segredo" not in str(m) for m in both.outbound())


async def test_a_note_row_named_for_whatsapp_is_refused_by_the_executor(
    both: CoreHarness,
) -> None:
    """Defence in depth: were an outbox row ever to ask WhatsApp for a note, the
    executor refuses it (a dead letter) instead of sending it."""
    matrix = both.frontends["matrix"]
    await matrix.attendant(thread_of(matrix), "@bob:localhost", "// interno", name="Bob")
    await both.settle()
    [row] = [r for r in await both.bridge.repos.messages.list_by_ticket(1) if r.is_note]
    before = len(both.outbound())
    for payload in (
        {"op": "send", "message": row.id, "quote": None},
        {"op": "send", "message": row.id},
        {"op": "action", "message": row.id, "target": 1},
    ):
        await both.bridge.repos.outbox.enqueue(
            "whatsapp", ordering_key="t1:whatsapp", payload=payload, now=both.clock.now()
        )
    both.bridge.outbox.wake(["t1:whatsapp"])
    await both.settle()
    assert len(both.outbound()) == before
    dead = await both.bridge.repos.outbox.list_dead()
    assert len(dead) == 3
    assert all("internal note" in (d.last_error or "") for d in dead)


async def test_notes_are_not_counted_as_messages_to_customers(both: CoreHarness) -> None:
    matrix = both.frontends["matrix"]
    await matrix.attendant(thread_of(matrix), "@bob:localhost", "// só entre nós", name="Bob")
    await both.settle()
    stats = await both.bridge.tickets.stats("acme")
    assert (stats.messages_in, stats.messages_out) == (1, 1)  # Maria; the greeting


async def test_a_note_command_outside_a_thread_says_where_it_works(both: CoreHarness) -> None:
    matrix = both.frontends["matrix"]
    _, reply = await matrix.attendant(
        ChatAddress("!control-acme-sales"), "@bob:localhost", "!note oi", name="Bob"
    )
    assert reply is not None and "!note works inside a ticket thread" in reply.text
