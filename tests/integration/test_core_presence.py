"""Presence through the core on both database engines (docs/presence.md): the whole
bridge on the sim engine with a recording fake frontend playing the Matrix side
(``FrontendInbox.thread_read`` / ``thread_typing``). Who counts, what is marked read
and when, coalescing, stale typing, and the presence budget apart from messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import Attendant, ChatAddress, ThreadRead, ThreadTyping
from bridge.core.operations import ChatPresence
from bridge.core.ordering_keys import ticket_key
from bridge.core.presence import WHATSAPP_PRESENCE
from bridge.core.presence_deliveries import STALE_SECONDS
from bridge.db.database import Database
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CONFIG, CoreHarness, until

SESSION = "acme/sales"
BOB = Attendant("@bob:localhost", "Bob")
PRESENCE_KEY = ticket_key(1, WHATSAPP_PRESENCE)


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


def fake(core: CoreHarness) -> FakeFrontend:
    fe = core.frontends["matrix"]
    return fe


def thread(core: CoreHarness) -> ChatAddress:
    call = next(c for c in fake(core).of("thread") if c.args["card"].ticket_id == 1)
    assert call.place is not None
    return call.place


async def shown(core: CoreHarness, wa_id: str) -> str:
    """The fake frontend's event showing the customer's message ``wa_id``."""
    repos = core.bridge.repos
    row = await repos.messages.find_by_wa_id(core.bridge.session_ids[SESSION], wa_id)
    assert row is not None
    ref = await repos.message_refs.get(row.id, "matrix")
    assert ref is not None
    return ref.event_id


async def read(
    core: CoreHarness, event: str, *, who: Attendant = BOB, place: ChatAddress | None = None
) -> None:
    await core.bridge.relay.thread_read(
        ThreadRead(frontend="matrix", place=place or thread(core), event_id=event, attendant=who)
    )


async def typing(core: CoreHarness, on: bool, *, who: Attendant = BOB) -> None:
    await core.bridge.relay.thread_typing(
        ThreadTyping(frontend="matrix", place=thread(core), event_id="", attendant=who, typing=on)
    )


def marked(core: CoreHarness) -> list[str]:
    return list(core.sim.presence(SESSION)["read"])


def typed(core: CoreHarness) -> list[str]:
    return [t["state"] for t in core.sim.presence(SESSION)["typing"]]


def updates(core: CoreHarness, kind: str, outcome: str) -> float:
    """``zapbridge_presence_updates_total`` for ``kind`` and ``outcome``."""
    value = core.bridge.metrics.registry.get_sample_value(
        "zapbridge_presence_updates_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


def thread_notices(core: CoreHarness) -> list[object]:
    return [c for c in fake(core).of("notice") if c.place == thread(core)]


async def pending_presence(core: CoreHarness) -> int:
    return len(await core.bridge.repos.outbox.pending_for_key(PRESENCE_KEY))


async def test_a_receipt_marks_read_up_to_the_message_read_once(core: CoreHarness) -> None:
    first = await core.customer(text="Oi")
    second = await core.customer(text="Tudo bem?")
    await read(core, await shown(core, first))
    await core.settle()
    assert marked(core) == [first]  # not the one after it

    await read(core, await shown(core, second))
    await read(core, await shown(core, second))
    await read(core, await shown(core, first))
    await core.settle()
    assert marked(core) == [first, second]
    acks = await core.db.fetch("SELECT ack FROM messages WHERE direction = 'in' ORDER BY id")
    assert [row["ack"] for row in acks] == ["read", "read"]


async def test_a_receipt_on_the_card_marks_every_message_shown(core: CoreHarness) -> None:
    first = await core.customer(text="Oi")
    second = await core.customer(text="Tudo bem?")
    root = thread(core).thread_root
    assert root is not None
    await read(core, root)
    await core.settle()
    assert marked(core) == [first, second]


async def test_strangers_and_other_places_count_for_nothing(core: CoreHarness) -> None:
    first = await core.customer(text="Oi")
    event = await shown(core, first)
    await read(core, event, who=Attendant("@eve:localhost", "Eve"))
    await read(core, event, place=ChatAddress(thread(core).room, None))  # the room's timeline
    await read(core, event, place=ChatAddress(thread(core).room, "$not-a-thread"))
    await typing(core, True, who=Attendant("@eve:localhost", "Eve"))
    await core.settle()
    assert marked(core) == []
    assert typed(core) == []
    assert (
        await core.db.fetchval(
            "SELECT COUNT(*) FROM outbox WHERE destination = $1", WHATSAPP_PRESENCE
        )
        == 0
    )

    await read(core, event, who=Attendant("@alice:localhost", "Alice"))  # an admin counts
    await core.settle()
    assert marked(core) == [first]


async def test_typing_shows_and_stops_and_not_on_a_closed_ticket(core: CoreHarness) -> None:
    await core.customer(text="Oi")
    await typing(core, True)
    await core.settle()
    await typing(core, False)
    await core.settle()
    assert typed(core) == ["composing", "paused"]
    assert core.sim.presence(SESSION)["typing"][0]["to"] == "+5511987654321"

    await fake(core).attendant(thread(core), "@bob:localhost", "!close")
    await core.settle()
    await typing(core, True)
    await core.settle()
    assert typed(core) == ["composing", "paused"]


async def test_while_disconnected_receipts_and_typing_coalesce(core: CoreHarness) -> None:
    first = await core.customer(text="Oi")
    second = await core.customer(text="Tudo bem?")
    await core.sim.fault(SESSION, "disconnect", 0)
    await until(
        lambda: str(core.bridge.sessions.statuses()[SESSION]) != "CONNECTED",
        what="disconnected",
    )
    await read(core, await shown(core, second))
    await read(core, await shown(core, first))  # covered by the mark waiting
    await read(core, await shown(core, second))  # the same again
    await typing(core, True)
    await typing(core, True)  # the same change again
    assert await pending_presence(core) == 2  # one mark, one typing change

    await core.wait_sessions(clock=core.clock)  # reconnects on the fake clock
    await until(lambda: typed(core) == ["composing"], what="typing", clock=core.clock)
    assert marked(core) == [first, second]
    assert await pending_presence(core) == 0


async def test_a_mark_that_cannot_go_is_dropped_not_a_dead_letter(core: CoreHarness) -> None:
    first = await core.customer(text="Oi")
    await core.sim.fault(SESSION, "disconnect", 30)
    await until(
        lambda: str(core.bridge.sessions.statuses()[SESSION]) != "CONNECTED",
        what="disconnected",
    )
    notices_before = len(thread_notices(core))
    await read(core, await shown(core, first))
    await typing(core, True)
    await until(lambda: pending_presence(core), what="queued")

    async def given_up() -> bool:  # the outbox's four attempts, on the fake clock
        return await pending_presence(core) == 0

    await until(given_up, what="given up", clock=core.clock)
    assert await core.db.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'dead'") == 0
    assert len(thread_notices(core)) == notices_before  # nothing told in the thread
    assert marked(core) == [] and typed(core) == []
    assert updates(core, "read", "dropped") == 1 and updates(core, "typing", "dropped") == 1

    await core.clock.advance(30)
    await core.wait_sessions(clock=core.clock)
    await read(core, await shown(core, first))  # the next receipt marks what is left
    await until(lambda: marked(core) == [first], what="marked", clock=core.clock)


async def test_a_typing_change_stale_when_its_turn_comes_is_dropped(core: CoreHarness) -> None:
    await core.customer(text="Oi")
    out = core.bridge.outgoing
    async with out.transaction():
        stale = ChatPresence(1, "composing", core.clock.now() - STALE_SECONDS - 1)
        await out.enqueue(WHATSAPP_PRESENCE, key=PRESENCE_KEY, operation=stale)
        fresh = ChatPresence(1, "paused", core.clock.now() - STALE_SECONDS + 1)
        await out.enqueue(WHATSAPP_PRESENCE, key=PRESENCE_KEY, operation=fresh)
    await core.settle()
    assert typed(core) == ["paused"]
    assert await pending_presence(core) == 0


BUDGET = CONFIG.replace("send_per_minute: 6000", "send_per_minute: 1").replace(
    "send_burst: 1000", "send_burst: 2\n  presence_per_minute: 1\n  presence_burst: 2"
)


@pytest.fixture
async def paced(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")], config=BUDGET)
    await harness.start()
    yield harness
    await harness.stop()


async def test_a_burst_of_typing_spends_no_message_token(paced: CoreHarness) -> None:
    """Two message tokens: the greeting takes one, the attendant's reply the other,
    at once (the fake clock does not move), however much typing came between; the
    presence budget (two tokens) shows the first two changes and drops the rest."""
    await paced.customer(text="Oi")
    for n in range(20):
        await typing(paced, n % 2 == 0)
        await paced.settle()
    assert typed(paced) == ["composing", "paused"]
    assert updates(paced, "typing", "sent") == 2
    assert updates(paced, "typing", "dropped") == 18
    await fake(paced).attendant(thread(paced), "@bob:localhost", "Olá, Maria")
    await paced.settle()
    assert [m["text"] for m in paced.outbound()][-1].endswith("Olá, Maria")
