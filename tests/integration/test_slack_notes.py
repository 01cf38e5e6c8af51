"""Internal notes on the whole bridge with the Slack frontend (the strict SlackFake,
Socket Mode) and the sim engine: nothing marked internal reaches WhatsApp
(docs/tickets.md, "Internal notes")."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.core.frontend import ChatAddress
from bridge.db.database import Database
from bridge.model import Edit, Text
from tests.fakes.frontend import FakeFrontend
from tests.fakes.slack import SlackFake
from tests.harness.slack import ADMIN, BOB, SALES, SlackHarness

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def bridge(tmp_path: Path, db: Database) -> AsyncIterator[SlackHarness]:
    async with SlackFake() as fake:
        harness = SlackHarness(tmp_path, db, fake)
        await harness.start()
        await harness.customer(text="Oi, meu pedido não chegou")
        yield harness
        await harness.stop()


async def attendant_says(h: SlackHarness, text: str, **kw: Any) -> dict[str, Any]:
    event = h.fake.user_message(SALES, BOB, text, thread_ts=h.thread_root(), **kw)
    await h.event(event)
    return event


async def stored(h: SlackHarness, event: dict[str, Any]) -> Any:
    return await h.bridge.repos.messages.find_by_ref("slack", room_id=SALES, event_id=event["ts"])


def changed(h: SlackHarness, event: dict[str, Any], text: str, ts: str) -> dict[str, Any]:
    keys = ("type", "user", "text", "ts", "thread_ts", "team", "client_msg_id")
    before = {k: event[k] for k in keys if k in event}
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": SALES,
        "hidden": True,
        "ts": ts,
        "message": {**before, "text": text, "thread_ts": h.thread_root()},
        "previous_message": before,
    }


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("// ligar amanhã", "ligar amanhã"),
        ("   *// ligar amanhã*", "*ligar amanhã*"),
        ("!note ligar amanhã", "ligar amanhã"),
        ("*!note ligar amanhã*", "*ligar amanhã*"),
    ],
)
async def test_a_note_typed_in_slack_never_reaches_whatsapp(
    bridge: SlackHarness, typed: str, kept: str
) -> None:
    before = len(bridge.outbound())
    event = await attendant_says(bridge, typed)
    assert len(bridge.outbound()) == before
    row = await stored(bridge, event)
    assert row is not None and row.is_note and row.content["body"] == kept
    assert bridge.fake.calls_of("chat.postEphemeral") == []  # nothing to tell
    texts = [m.get("text", "") for m in bridge.replies()]
    assert not any("not bridged" in t for t in texts), texts
    assert (await bridge.bridge.tickets.get(1)).status == "pending"


@pytest.mark.parametrize("comment", ["// foto do defeito", "!note foto do defeito"])
async def test_a_file_with_a_note_comment_stays_internal(
    bridge: SlackHarness, comment: str
) -> None:
    before = len(bridge.outbound())
    file = bridge.fake.host_file("defeito.png", PNG, "image/png")
    event = await attendant_says(bridge, comment, files=[file])
    assert len(bridge.outbound()) == before
    row = await stored(bridge, event)
    assert row is not None and row.is_note
    assert row.content["caption"] == "foto do defeito"


async def test_editing_a_note_keeps_it_internal(bridge: SlackHarness) -> None:
    note = await attendant_says(bridge, "// ligar amanhã")
    before = len(bridge.outbound())
    await bridge.event(changed(bridge, note, "// ligar hoje", "1800000000.000100"))
    await bridge.event(changed(bridge, note, "ligar hoje às 10h", "1800000000.000200"))
    assert len(bridge.outbound()) == before
    kinds = [r.kind for r in await bridge.bridge.repos.messages.list_by_ticket(1)]
    assert kinds[-3:] == ["note", "note", "note"]


async def test_an_edit_adding_the_prefix_is_not_sent_and_the_thread_is_told(
    bridge: SlackHarness,
) -> None:
    reply = await attendant_says(bridge, "Vou verificar")
    assert bridge.outbound()[-1]["text"] == "*Bob Silva:*\nVou verificar"
    before = len(bridge.outbound())
    await bridge.event(changed(bridge, reply, "// ela parece brava", "1800000000.000300"))
    assert len(bridge.outbound()) == before
    assert all("brava" not in str(m) for m in bridge.outbound())
    told = [m["text"] for m in bridge.replies()]
    assert any("notes cannot be taken back" in t for t in told), told


async def test_a_note_from_the_other_frontend_is_shown_as_a_note_on_slack(
    tmp_path: Path, db: Database
) -> None:
    matrix = FakeFrontend("matrix")
    async with SlackFake() as fake:
        h = SlackHarness(tmp_path, db, fake, beside=[matrix])
        await h.start()
        try:
            await h.customer(text="Oi")
            call = next(c for c in matrix.of("thread") if c.args["card"].ticket_id == 1)
            place = call.place
            assert isinstance(place, ChatAddress)
            before = len(h.outbound())
            event, reply = await matrix.attendant(place, ADMIN, "// ligar *amanhã*", name="Alice")
            await h.settle()
            assert reply is None
            [shown] = [m for m in h.replies() if m.get("username") == "Alice (internal note)"]
            assert shown["text"] == "📝 _Note (internal, not sent to WhatsApp)_\nligar *amanhã*"
            await matrix.attendant(place, ADMIN, Edit(event, Text("// ligar hoje")), name="Alice")
            await h.settle()
            [edited] = [m for m in h.replies() if m["ts"] == shown["ts"]]
            assert edited["text"] == "📝 _Note (internal, not sent to WhatsApp)_\nligar hoje"
            await matrix.attendant(place, ADMIN, "Já volto", name="Alice")
            await h.settle()
            assert [m["text"] for m in h.outbound()[before:]] == ["*Alice:*\nJá volto"]
        finally:
            await h.stop()
