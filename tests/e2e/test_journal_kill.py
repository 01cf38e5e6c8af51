"""``kill -9`` of a bridge holding journaled messages (``python -m bridge run``, the sim
engine): the next start replays them, once each and in order, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.proc import BridgeProcess
from bridge.db.database import Database
from tests.conftest import ENGINES, PG_TEST_URL
from tests.harness.core import until
from tests.harness.outage import Outage, PostgresOutage, SQLiteLock, throwaway_database

CUSTOMER = "+5511987654321"


@pytest.fixture(params=ENGINES)
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, Outage]]:
    if request.param == "sqlite":
        path = tmp_path / "bridge.db"
        yield f"sqlite:{path}", SQLiteLock(path)
        return
    async with throwaway_database(PG_TEST_URL) as url:
        yield url, PostgresOutage(PG_TEST_URL, url)


def body(n: int) -> dict[str, str]:
    return {
        "from": CUSTOMER,
        "push_name": "Maria",
        "kind": "text",
        "text": f"m{n}",
        "id": f"KILL{n}",
    }


async def stored(url: str) -> list[str]:
    db = await Database.connect(url)
    try:
        rows = await db.fetch("SELECT wa_id FROM messages WHERE direction = 'in' ORDER BY id")
    finally:
        await db.close()
    return [row["wa_id"] for row in rows]


async def test_kill_9_while_messages_are_journaled_then_replayed_at_the_next_start(
    tmp_path: Path, site: tuple[str, Outage]
) -> None:
    url, outage = site
    bridge = BridgeProcess(tmp_path, db_url=url, sessions=1)
    journal = tmp_path / "data" / "journal" / "whatsapp"
    try:
        await bridge.start()
        session = bridge.sessions[0]
        assert await bridge.inbound(session, body(0)) == 200
        await until(lambda: stored(url), limit=30, what="m0 stored")

        await outage.begin()
        try:
            for n in range(1, 6):  # answered 200: kept in the journal (the first one waits
                assert await bridge.inbound(session, body(n)) == 200  # out SQLite's 5 s)
            assert list(journal.glob("*.jnl"))
            bridge.kill()  # no shutdown at all
        finally:
            await outage.end()
        assert await stored(url) == ["KILL0"]

        await bridge.start()  # replays before it takes new events
        assert await bridge.inbound(session, body(6)) == 200
        want = [f"KILL{n}" for n in range(7)]

        async def all_stored() -> bool:
            return await stored(url) == want

        await until(all_stored, limit=30, what="every message stored, once, in order")
        assert not list(journal.glob("*.jnl"))  # consumed
    finally:
        await bridge.stop()
