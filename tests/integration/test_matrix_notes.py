"""Internal notes on a real Synapse (docs/tickets.md, "Internal notes"): what bob
writes as a note in a Matrix thread never reaches the sim's outbound, and notes are
mirrored between Matrix and a second frontend (a recording FakeFrontend named
``slack``) as notes: an ``m.notice`` from the bridge on Matrix.

Absence is proven behind a barrier: a normal message sent after the notes reaches
the customer, and a ticket's WhatsApp deliveries keep their order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bridge.core.frontend import AuthorKind, ChatAddress
from bridge.db import migrate
from bridge.model import Edit, Text
from tests.conftest import open_test_database
from tests.fakes.frontend import FakeFrontend
from tests.harness.synapse import Homeserver, MatrixBridge, MatrixUser, bob, synapse, until

__all__ = ["bob", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e5274ea30000000049454e44ae426082"
)
BOT = "@whatsappbot:localhost"
Event = dict[str, Any]


@pytest_asyncio.fixture(loop_scope="session")
async def both(synapse: Homeserver, tmp_path: Path) -> AsyncIterator[MatrixBridge]:
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db, beside=[FakeFrontend("slack")])
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


def fake_of(bridge: MatrixBridge) -> FakeFrontend:
    fake = bridge.bridge.frontends["slack"]
    assert isinstance(fake, FakeFrontend)
    return fake


async def open_ticket(bridge: MatrixBridge, bob: MatrixUser) -> tuple[str, str]:
    await bridge.customer(text="Oi, preciso de ajuda")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    return room, root


def threaded(content: Event, root: str) -> Event:
    relation = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    return {**content, "m.relates_to": {**relation, "m.in_reply_to": {"event_id": root}}}


def fake_thread(fake: FakeFrontend) -> ChatAddress:
    call = next(c for c in fake.of("thread") if c.args["card"].ticket_id == 1)
    assert call.place is not None
    return call.place


async def barrier(bridge: MatrixBridge, bob: MatrixUser, room: str, root: str, word: str) -> None:
    """A normal message after the notes reaches the customer: what came before it
    for WhatsApp has been delivered."""
    await bob.send(room, threaded({"msgtype": "m.text", "body": word}, root))
    await bridge.outbound(lambda m: m.get("text", "").endswith(word))


async def test_notes_typed_on_matrix_stay_internal_and_are_mirrored(
    both: MatrixBridge, bob: MatrixUser
) -> None:
    fake = fake_of(both)
    room, root = await open_ticket(both, bob)
    html = {"format": "org.matrix.custom.html", "formatted_body": "<b>// interno um</b>"}
    await bob.send(room, threaded({"msgtype": "m.text", "body": "// interno um", **html}, root))
    await bob.send(room, threaded({"msgtype": "m.text", "body": "   //interno dois"}, root))
    await bob.send(room, threaded({"msgtype": "m.text", "body": "!note interno três"}, root))
    url = await bob.upload(PNG, "image/png", "defeito.png")
    image = {
        "msgtype": "m.image",
        "body": "// interno quatro",
        "filename": "defeito.png",
        "url": url,
        "info": {"mimetype": "image/png", "size": len(PNG)},
    }
    await bob.send(room, threaded(image, root))
    await barrier(both, bob, room, root, "Vou verificar")

    sent = both.sim.outbound("acme/sales")
    assert all("interno" not in str(m) for m in sent), sent
    assert [m["kind"] for m in sent if m.get("kind") == "image"] == []

    def mirrored() -> list[Any]:
        root_there = fake_thread(fake).thread_root
        assert root_there is not None
        posts = fake.posts_in(root_there)
        return [p.args["content"] for p in posts if p.args["author"].kind is AuthorKind.NOTE]

    notes = await until(lambda: len(mirrored()) == 4 and mirrored(), what="notes mirrored")
    assert notes[:3] == [Text("*interno um*"), Text("interno dois"), Text("interno três")]
    assert notes[3].caption == "interno quatro" and notes[3].data == PNG


async def test_an_edit_adding_the_prefix_is_not_sent_and_the_thread_says_so(
    both: MatrixBridge, bob: MatrixUser
) -> None:
    room, root = await open_ticket(both, bob)
    sent_event = await bob.send(room, threaded({"msgtype": "m.text", "body": "Resposta"}, root))
    await both.outbound(lambda m: m.get("text", "").endswith("Resposta"))
    new = {"msgtype": "m.text", "body": "// ela parece brava"}
    edit = {
        "msgtype": "m.text",
        "body": "* // ela parece brava",
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": sent_event},
    }
    await bob.send(room, edit)

    async def told() -> bool:
        events = await bob.messages(room)
        return any(
            e["sender"] == BOT and "notes cannot be taken back" in e["content"].get("body", "")
            for e in events
        )

    await until(told, what="the thread told", clock=both.clock)
    await barrier(both, bob, room, root, "Mais alguma coisa?")
    sent = both.sim.outbound("acme/sales")
    assert all("brava" not in str(m) for m in sent), sent
    assert [m for m in sent if m.get("kind") == "edit"] == []


async def test_a_note_from_the_other_frontend_is_a_notice_on_matrix(
    both: MatrixBridge, bob: MatrixUser
) -> None:
    fake = fake_of(both)
    room, root = await open_ticket(both, bob)
    place = await until(lambda: fake.of("thread") and fake_thread(fake), what="the fake thread")
    before = len(both.sim.outbound("acme/sales"))
    note_event, reply = await fake.attendant(place, "U0BOB", "// ligar *amanhã*", name="Bob")
    assert reply is None

    async def notice() -> Event | None:
        for e in await bob.messages(room):
            if e["sender"] == BOT and e["content"].get("body", "").startswith("📝 Note from Bob"):
                return e
        return None

    shown = await until(notice, what="the note on Matrix", clock=both.clock)
    content = shown["content"]
    assert content["msgtype"] == "m.notice"
    assert content["body"] == "📝 Note from Bob: ligar amanhã"
    assert content["formatted_body"] == "<b>📝 Note from Bob</b>: ligar <strong>amanhã</strong>"
    assert content["m.relates_to"]["event_id"] == root

    await fake.attendant(place, "U0BOB", Edit(note_event, Text("// ligar hoje")), name="Bob")

    async def edited() -> Event | None:
        for e in await bob.messages(room):
            relates = e["content"].get("m.relates_to") or {}
            if relates.get("rel_type") == "m.replace" and relates["event_id"] == shown["event_id"]:
                return e
        return None

    edit = await until(edited, what="the note's edit on Matrix", clock=both.clock)
    assert edit["content"]["m.new_content"]["msgtype"] == "m.notice"
    assert edit["content"]["m.new_content"]["body"] == "📝 Note from Bob: ligar hoje"
    await fake.attendant(place, "U0BOB", "Já volto", name="Bob")  # the barrier
    await both.outbound(lambda m: m.get("text", "").endswith("Já volto"))
    assert [m["text"] for m in both.sim.outbound("acme/sales")[before:]] == ["*Bob:*\nJá volto"]
