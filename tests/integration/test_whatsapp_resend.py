"""A WhatsApp delivery that reached the phone but was not recorded before a crash is
sent again after the restart with the same id, and the (sim) recipient drops it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import ChatAddress
from bridge.db.database import Database
from bridge.model import Reaction
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CoreHarness


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


async def sent_ids(db: Database) -> dict[int, str]:
    rows = await db.fetch("SELECT id, wa_id FROM messages WHERE direction = 'out' ORDER BY id")
    return {row["id"]: row["wa_id"] for row in rows}


async def test_a_send_resumed_after_a_crash_reaches_the_customer_once(
    core: CoreHarness, db: Database
) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    thread = next(c.place for c in fe.of("thread"))
    assert isinstance(thread, ChatAddress)
    answer, _ = await fe.attendant(thread, "@bob:localhost", "Posso ajudar?", name="Bob")
    await fe.attendant(thread, "@bob:localhost", Reaction(answer, "👍"), name="Bob")
    await core.settle()
    sent = core.outbound()
    assert [e["kind"] for e in sent] == ["text", "text", "reaction"]  # greeting, answer, 👍
    ids = await sent_ids(db)

    # the crash window: every send reached WhatsApp, none was recorded
    await db.execute("UPDATE messages SET wa_id = NULL, ack = NULL WHERE direction = 'out'")
    await db.execute("UPDATE outbox SET status = 'pending' WHERE destination = 'whatsapp'")
    await core.restart()
    await core.clock.advance(10)  # past the backoff of an attempt made while OPENING
    await core.settle()

    assert core.outbound() == sent  # nothing appended: the same ids were dropped
    assert await sent_ids(db) == ids
    assert await core.bridge.repos.outbox.count_pending() == 0
