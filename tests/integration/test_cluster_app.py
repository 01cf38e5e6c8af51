"""Two whole bridges (the real composition root, the sim engine) with
``cluster.enabled`` on one PostgreSQL schema (docs/cluster.md#ownership-and-fencing):
sessions spread over them, ``/health`` names the instance and what it owns while
showing every session, a clean stop hands the sessions over at once and the new owner
tells ops once, and only the leader runs the singletons."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bridge.clock import FakeClock
from bridge.db.database import Database
from bridge.db.migrate import migrate
from tests.conftest import PG_TEST_URL, _connect_postgres
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CONFIG, CoreHarness, until

pytestmark = pytest.mark.postgres

KEYS = {"acme/sales", "acme/support", "globex/main"}
OPS = "!ops-acme"


def cluster_config(name: str) -> str:
    return CONFIG.replace(
        'database: {{url: "sqlite::memory:"}}', f'database: {{{{url: "{PG_TEST_URL}"}}}}'
    ).replace(
        "data_dir: data",
        f"data_dir: data-{name}\n"
        f"cluster: {{{{enabled: true, instance_id: {name}, lease_seconds: 15}}}}",
    )


class Instance(CoreHarness):
    def __init__(self, tmp_path: Path, db: Database, name: str, clock: FakeClock) -> None:
        super().__init__(
            tmp_path, db, frontends=[FakeFrontend("matrix")], config=cluster_config(name)
        )
        self.name = name
        self.clock = clock
        self.bridge = self._new_bridge()

    def owned(self) -> frozenset[str]:
        assert self.bridge.cluster is not None
        return self.bridge.cluster.owned()

    def connected(self) -> set[str]:
        statuses = self.bridge.sessions.statuses()
        return {k for k in self.owned() if str(statuses[k]) == "CONNECTED"}

    async def health(self) -> dict[str, object]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.bridge.web.port}/health") as resp:
                body: dict[str, object] = await resp.json()
                return body

    def ops_notices(self) -> list[str]:
        fe = self.frontends["matrix"]
        assert isinstance(fe, FakeFrontend)
        return [c.args["text"] for c in fe.of("notice") if c.place and c.place.room == OPS]


@pytest.fixture
async def schema_dbs() -> AsyncIterator[tuple[Database, Database]]:
    schema = f"zapbridge_test_{secrets.token_hex(6)}"
    a, b = await _connect_postgres(schema), await _connect_postgres(schema)
    await migrate(a)
    try:
        yield a, b
    finally:
        await a.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await a.close()
        await b.close()


async def test_two_instances_share_the_sessions_and_a_clean_stop_hands_them_over(
    tmp_path: Path, schema_dbs: tuple[Database, Database]
) -> None:
    clock = FakeClock()
    a = Instance(tmp_path, schema_dbs[0], "a", clock)
    b = Instance(tmp_path, schema_dbs[1], "b", clock)
    await a.bridge.start()
    try:
        assert a.owned() == KEYS and a.bridge.ownership.is_leader()
        await until(lambda: a.connected() == KEYS, what="a runs every session", clock=clock)
        await b.bridge.start()
        assert b.owned() == frozenset() and not b.bridge.ownership.is_leader()
        # a's next pass hands one session over; b's takes it and runs it
        await until(lambda: len(b.connected()) == 1, what="b runs one session", clock=clock)
        assert len(a.owned()) == 2 and a.owned().isdisjoint(b.owned())
        health = await b.health()
        assert health["instance"] == "b" and health["owned"] == sorted(b.owned())

        async def everything_connected() -> bool:
            sessions = (await b.health())["sessions"]
            assert isinstance(sessions, dict) and set(sessions) == KEYS  # a's too
            return all(s == "CONNECTED" for s in sessions.values())

        await until(
            everything_connected, what="every session CONNECTED on b's /health", clock=clock
        )
        seen = await b.bridge.cluster_sessions.seen()
        assert {k: s.owner for k, s in seen.items()} == {
            k: ("b" if k in b.owned() else "a") for k in KEYS
        }
        moved_from_a = sorted(a.owned())
        await a.bridge.stop()
        b.bridge.ownership.wake()  # what a NOTIFY would do
        await until(lambda: b.connected() == KEYS, what="b runs every session", clock=clock)
        assert b.bridge.ownership.is_leader()
        await b.settle()
        notices = [n for n in b.ops_notices() if n.startswith("🔀")]
        expected = [
            f"🔀 {k.split('/')[1]} moved from a to b after a stopped"
            for k in moved_from_a
            if k.startswith("acme/")
        ]
        assert expected and sorted(notices) == sorted(expected)  # once each
    finally:
        await b.bridge.stop()
        await a.bridge.stop()
