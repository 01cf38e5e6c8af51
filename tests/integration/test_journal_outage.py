"""A database outage through the real core, on both engines: PostgreSQL's connections
terminated and new ones refused (a throwaway database), SQLite locked by another
connection. Customer messages, receipts and contact updates that arrive meanwhile are
kept in the journal (the sim answers at once, as whatsmeow acknowledges at once), then
reach the thread once each and in order when the database is back; a bridge stopped
while it holds some replays them at its next start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.core.frontend import AuthorKind
from bridge.db import migrate
from bridge.db.database import Database, SQLiteDatabase
from tests.conftest import ENGINES, PG_TEST_URL
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CUSTOMER, CoreHarness, until
from tests.harness.outage import Outage, PostgresOutage, SQLiteLock, throwaway_database

KEY = "acme/sales"


@dataclass
class Site:
    db: Database
    outage: Outage
    engine: str


@pytest.fixture(params=ENGINES)
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    if request.param == "sqlite":
        path = tmp_path / "zapbridge.db"
        db = await Database.connect(f"sqlite:{path}")
        assert isinstance(db, SQLiteDatabase)
        db.busy_timeout_seconds = 0.2  # a lock outlasting it is a refusal
        await migrate(db)
        try:
            yield Site(db, SQLiteLock(path), "sqlite")
        finally:
            await db.close()
        return
    async with throwaway_database(PG_TEST_URL) as url:
        db = await Database.connect(url)
        await migrate(db)
        try:
            yield Site(db, PostgresOutage(PG_TEST_URL, url), "postgres")
        finally:
            await db.close()


@pytest.fixture
async def core(tmp_path: Path, site: Site) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, site.db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"from": CUSTOMER, "push_name": "Maria", "kind": "text", "text": text, **extra}


def customer_texts(fe: FakeFrontend) -> list[str]:
    return [
        c.args["content"].body
        for c in fe.of("post")
        if c.args["author"].kind is AuthorKind.CUSTOMER
    ]


def metric(core: CoreHarness, name: str) -> float:
    value = core.bridge.metrics.registry.get_sample_value(name, {"journal": "whatsapp"})
    return value or 0.0


async def stored_inbound(db: Database) -> list[str]:
    rows = await db.fetch("SELECT wa_id FROM messages WHERE direction = 'in' ORDER BY id")
    return [row["wa_id"] for row in rows]


async def test_messages_during_an_outage_arrive_once_and_in_order(
    core: CoreHarness, site: Site
) -> None:
    fe = core.frontends["matrix"]
    first = await core.customer(text="m0")
    await core.sim.inbound(KEY, body("hi again", push_name="Maria Silva"))  # a new push name
    await until(lambda: len(customer_texts(fe)) == 2, clock=core.clock)

    await site.outage.begin()
    ids = [await core.sim.inbound(KEY, body(f"m{n}")) for n in range(1, 6)]
    reaction = {"from": CUSTOMER, "kind": "reaction", "target": first, "emoji": "👍"}
    ids.append(await core.sim.inbound(KEY, reaction))
    ids.append(await core.sim.inbound(KEY, body("m6", push_name="Maria S.")))  # + contact update
    journal = core.bridge.event_journal
    # every one answered at once and kept on disk: 7 messages, and 2 contact updates
    # (the push name went back to "Maria" with m1, then to "Maria S.")
    assert journal.pending == 9
    assert metric(core, "zapbridge_inbound_journaled_total") == 9
    assert journal.problems() == []  # far below the alert threshold

    await site.outage.end()
    await until(lambda: not journal.holding, what="journal replayed", clock=core.clock)
    await core.settle()
    assert customer_texts(fe) == ["m0", "hi again", "m1", "m2", "m3", "m4", "m5", "m6"]
    assert [c.args["emoji"] for c in fe.of("react")] == ["👍"]
    stored = await stored_inbound(site.db)
    assert stored[2:] == ids and len(set(stored)) == len(stored)  # once each, in order
    assert await site.db.fetchval("SELECT push_name FROM contacts") == "Maria S."
    assert metric(core, "zapbridge_inbound_dropped_total") == 0
    assert metric(core, "zapbridge_journal_pending") == 0

    # the database takes events directly again
    await core.customer(text="m7")
    assert customer_texts(fe)[-1] == "m7"
    assert metric(core, "zapbridge_inbound_journaled_total") == 9


async def test_a_message_replayed_twice_is_stored_once(core: CoreHarness, site: Site) -> None:
    """The same WhatsApp id again (the phone resent it; or a replay after a crash
    between handling and consuming): the relay recognises it."""
    fe = core.frontends["matrix"]
    await core.customer(text="m0")
    await site.outage.begin()
    await core.sim.inbound(KEY, body("m1", id="3EB0REPEATED000000001"))
    await core.sim.inbound(KEY, body("m1", id="3EB0REPEATED000000001"))
    await site.outage.end()
    await until(lambda: not core.bridge.event_journal.holding, clock=core.clock)
    await core.settle()
    assert customer_texts(fe) == ["m0", "m1"]
    assert (await stored_inbound(site.db)).count("3EB0REPEATED000000001") == 1


async def test_what_a_stopped_bridge_kept_is_replayed_at_its_next_start(
    core: CoreHarness, site: Site
) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="m0")
    await site.outage.begin()
    ids = [await core.sim.inbound(KEY, body(f"m{n}")) for n in range(1, 4)]
    await core.stop()  # the database never came back while it ran
    assert core.bridge.event_journal.pending == 3
    await site.outage.end()

    core.bridge = core._new_bridge()  # the next run, same data_dir
    await core.bridge.start()
    await core.wait_sessions()
    await until(lambda: not core.bridge.event_journal.holding, clock=core.clock)
    await core.settle()
    assert (await stored_inbound(site.db))[1:] == ids
    assert customer_texts(fe)[-3:] == ["m1", "m2", "m3"]


async def test_health_answers_during_an_outage(core: CoreHarness, site: Site) -> None:
    """PostgreSQL refusing connections: ``degraded``, saying so (not a 500). A locked
    SQLite file still answers reads (WAL): ``/health`` stays ``ok``."""
    url = f"http://127.0.0.1:{core.config.http.port}/health"
    async with aiohttp.ClientSession() as http:
        await site.outage.begin()
        try:
            async with http.get(url) as resp:
                assert resp.status == 200
                health = await resp.json()
        finally:
            await site.outage.end()
        if site.engine == "postgres":
            assert health["status"] == "degraded"
            [problem] = health["problems"]
            # the pool's connection died under the health check's query, or the pool
            # saw it closed and the new one was refused (bridge/db/pg_pool.py)
            assert problem.startswith(
                (
                    "the database does not answer: PostgreSQL statement failed",
                    "the database does not answer: cannot connect to postgresql://",
                )
            ), problem
        else:
            assert health["status"] == "ok"
        async with http.get(url) as resp:
            assert (await resp.json())["status"] == "ok"
