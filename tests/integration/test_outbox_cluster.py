"""The outbox with several instances on one PostgreSQL schema (docs/cluster.md, "Outbox
across instances"): two workers, each on its own Database, claims in the database and
wake-ups over LISTEN/NOTIFY. PostgreSQL only."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.clock import SystemClock
from bridge.core.outbox import OutboxWorker
from bridge.core.outbox_claims import DatabaseClaims
from bridge.db import Database, migrate
from bridge.db.database import PostgresDatabase
from bridge.db.notify import Notifier
from bridge.db.outbox import OutboxRepository, OutboxRow
from bridge.db.outbox_claims import OutboxClaimRepository
from bridge.errors import DeliveryError
from tests.conftest import _connect_postgres, open_test_database
from tests.harness.core import until

pytestmark = pytest.mark.postgres

SESSION = "acme/sales"
NEVER = 3600.0  # a poll interval no test reaches


@dataclass
class Owner:
    """The sessions an instance owns (the cluster's OwnershipView, reduced)."""

    sessions: set[str] = field(default_factory=set)

    def owns(self, session_key: str) -> bool:
        return session_key in self.sessions

    def owned(self) -> frozenset[str]:
        return frozenset(self.sessions)


class Halting(DatabaseClaims):
    """Claims of an instance that dies: its stop releases nothing."""

    async def stop(self) -> None:
        await self.halt()


@dataclass
class Instance:
    name: str
    db: Database
    worker: OutboxWorker
    notifier: Notifier
    claims: OutboxClaimRepository
    owner: Owner


Delivered = list[tuple[str, str, int]]  # (instance, ordering key, row id)


@dataclass
class Cluster:
    schema: str
    instances: list[Instance] = field(default_factory=list)
    delivered: Delivered = field(default_factory=list)
    failed: Delivered = field(default_factory=list)
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def instance(
        self,
        name: str,
        *,
        poll: float = NEVER,
        seconds: float = 30.0,
        owns: set[str] | None = None,
        halting: bool = False,
        gate: Callable[[OutboxRow], asyncio.Event | None] = lambda _row: None,
        fails: Callable[[OutboxRow], bool] = lambda _row: False,
    ) -> Instance:
        db = await _connect_postgres(self.schema)
        self.stack.push_async_callback(db.close)
        assert isinstance(db, PostgresDatabase)
        clock = SystemClock()
        notifier = Notifier(
            db, clock=clock, rng=random.Random(1), reconnect_initial=0.05, reconnect_max=0.2
        )
        claims = OutboxClaimRepository(db, holder=name, seconds=seconds)
        owner = Owner(set(owns or ()))
        strategy = (Halting if halting else DatabaseClaims)(
            claims, owner=owner, notifier=notifier, clock=clock
        )
        worker = OutboxWorker(
            OutboxRepository(db),
            clock=clock,
            rng=random.Random(2),
            max_attempts=5,
            base_delay=0.05,
            max_delay=0.2,
            poll_seconds=poll,
            claims=strategy,
        )

        async def record(row: OutboxRow) -> None:
            event = gate(row)
            if event is not None:
                await event.wait()
            await asyncio.sleep(random.random() / 1000)  # let the instances interleave
            if fails(row):
                self.failed.append((name, row.ordering_key, row.id))
                raise DeliveryError("refused, for the test")
            self.delivered.append((name, row.ordering_key, row.id))

        worker.register("slack", record)
        worker.register("whatsapp", record)
        await notifier.start()
        self.stack.push_async_callback(notifier.stop)
        async with asyncio.timeout(5):
            await notifier.wait_connected()
        await worker.start()
        self.stack.push_async_callback(worker.stop)
        async with asyncio.timeout(5):
            await worker.wait_idle()  # its first pass is over: rows from now on are woken
        found = Instance(name, db, worker, notifier, claims, owner)
        self.instances.append(found)
        return found

    def of(self, key: str) -> list[int]:
        return [row_id for _, k, row_id in self.delivered if k == key]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with open_test_database("postgres", tmp_path) as db:
        await migrate(db)
        schema = str(await db.fetchval("SELECT current_schema()"))
        made = Cluster(schema)
        async with made.stack:
            yield made


async def enqueue(
    db: Database, key: str, count: int, *, destination: str = "slack", session: str | None = None
) -> list[int]:
    repo = OutboxRepository(db)
    rows = [
        await repo.enqueue(destination, ordering_key=key, payload={"n": n}, session_key=session)
        for n in range(count)
    ]
    return [row.id for row in rows]


async def test_two_instances_racing_deliver_each_row_once_in_order_per_key(
    cluster: Cluster,
) -> None:
    a = await cluster.instance("a", poll=0.05)
    b = await cluster.instance("b", poll=0.05)
    keys = [f"t{n}:slack" for n in range(8)]
    expected: dict[str, list[int]] = {key: [] for key in keys}
    for round_ in range(6):  # rows keep coming while both drain, and both are woken
        for key in keys:
            expected[key] += await enqueue((a, b)[round_ % 2].db, key, 3)
        a.worker.wake(keys)
        b.worker.wake(keys)
        await asyncio.sleep(0.01)
    total = sum(len(ids) for ids in expected.values())
    await until(lambda: len(cluster.delivered) >= total, limit=20, what="every row")
    await asyncio.sleep(0.2)  # a second delivery of a row would show up now
    assert len(cluster.delivered) == total  # once each
    for key in keys:
        assert cluster.of(key) == expected[key]  # in id order per key
    assert {name for name, _, _ in cluster.delivered} == {"a", "b"}  # both took part
    assert await a.db.fetchval("SELECT COUNT(*) FROM outbox_claims") == 0  # all released


async def test_a_dead_instance_s_keys_move_after_the_visibility_timeout(
    cluster: Cluster,
) -> None:
    stuck = asyncio.Event()  # never set: instance a hangs on its first row, then dies
    a = await cluster.instance(
        "a", seconds=1.0, halting=True, gate=lambda row: stuck if row.payload["n"] == 0 else None
    )
    b = await cluster.instance("b", poll=0.1, seconds=1.0)
    ids = await enqueue(a.db, "t1:slack", 4)
    a.worker.wake(["t1:slack"])
    await until(lambda: a.claims.holder_of("t1:slack"), what="a's claim")
    await a.worker.stop()  # dies mid-drain: the claim stays
    assert await b.claims.holder_of("t1:slack") == "a"
    b.worker.wake(["t1:slack"])  # a's claim has not expired: b leaves the key alone
    await asyncio.sleep(0.3)
    assert cluster.of("t1:slack") == []
    await until(lambda: cluster.of("t1:slack") == ids, limit=5, what="b to take over")
    assert {name for name, _, _ in cluster.delivered} == {"b"}


async def test_a_row_waiting_for_its_retry_holds_its_key_on_every_instance(
    cluster: Cluster,
) -> None:
    """a's first attempt at the key's first row fails: a releases the key, and until
    the retry comes due neither instance sends the rows behind it."""
    a = await cluster.instance("a", fails=lambda row: row.payload["n"] == 0 and not cluster.failed)
    await cluster.instance("b", poll=0.02)
    ids = await enqueue(a.db, "t3:slack", 3)
    a.worker.wake(["t3:slack"])
    await until(lambda: cluster.failed, what="the failed attempt")
    await until(lambda: cluster.of("t3:slack") == ids, what="every row, after the retry")
    assert [row_id for _, _, row_id in cluster.failed] == ids[:1]


async def test_whatsapp_rows_run_only_on_the_owner_of_their_session(cluster: Cluster) -> None:
    await cluster.instance("owner", owns={SESSION})
    other = await cluster.instance("other")
    ids = await enqueue(other.db, "t5:whatsapp", 3, destination="whatsapp", session=SESSION)
    other.worker.wake(["t5:whatsapp"])  # committed on the other instance: announced
    await until(lambda: cluster.of("t5:whatsapp") == ids, what="the owner's sends")
    assert {name for name, _, _ in cluster.delivered} == {"owner"}  # no poll: a NOTIFY
    # a pass over the whole outbox on the other instance skips them too
    more = await enqueue(other.db, "t5:whatsapp", 2, destination="whatsapp", session=SESSION)
    other.worker.wake()
    await until(lambda: cluster.of("t5:whatsapp") == ids + more, what="the owner's sends")
    assert {name for name, _, _ in cluster.delivered} == {"owner"}


async def test_a_session_moving_to_another_owner_moves_its_rows(cluster: Cluster) -> None:
    first = await cluster.instance("first", owns={SESSION})
    second = await cluster.instance("second", poll=0.05)
    first.owner.sessions.clear()  # the session moved (bridge/cluster): first sends no more
    ids = await enqueue(first.db, "t6:whatsapp", 2, destination="whatsapp", session=SESSION)
    first.worker.wake(["t6:whatsapp"])
    await asyncio.sleep(0.2)
    assert cluster.of("t6:whatsapp") == []
    second.owner.sessions.add(SESSION)
    await until(lambda: cluster.of("t6:whatsapp") == ids, what="the new owner's sends")
    assert {name for name, _, _ in cluster.delivered} == {"second"}


async def test_a_key_held_elsewhere_is_announced_to_its_holder(cluster: Cluster) -> None:
    """A row committed on b while a drains its key: b cannot claim it, announces it,
    and a delivers it after the rows it holds, with no poll anywhere."""
    gate = asyncio.Event()
    a = await cluster.instance("a", gate=lambda row: gate if row.payload["n"] == 0 else None)
    b = await cluster.instance("b")
    first = await enqueue(a.db, "t7:slack", 1)
    a.worker.wake(["t7:slack"])
    await until(lambda: a.claims.holder_of("t7:slack"), what="a's claim")
    later = await enqueue(b.db, "t7:slack", 2)
    b.worker.wake(["t7:slack"])
    gate.set()
    await until(lambda: cluster.of("t7:slack") == first + later, what="every row of the key")
    assert {name for name, _, _ in cluster.delivered} == {"a"}


async def test_a_clean_stop_hands_the_keys_over_at_once(cluster: Cluster) -> None:
    gate = asyncio.Event()
    a = await cluster.instance("a", gate=lambda _row: gate)
    await cluster.instance("b")  # never polls: it hears of the stop
    ids = await enqueue(a.db, "t8:slack", 2)
    a.worker.wake(["t8:slack"])
    await until(lambda: a.claims.holder_of("t8:slack"), what="a's claim")
    await a.worker.stop()
    await until(lambda: cluster.of("t8:slack") == ids, what="b to deliver")
    assert {name for name, _, _ in cluster.delivered} == {"b"}


async def test_the_listener_reconnects_after_its_connection_is_killed(cluster: Cluster) -> None:
    a = await cluster.instance("a", owns={SESSION})
    b = await cluster.instance("b")
    resumed: list[str] = []
    a.notifier.on_resumed(lambda: resumed.append("resumed"))
    pid = a.notifier.server_pid
    assert pid is not None
    assert await b.db.fetchval("SELECT pg_terminate_backend($1)", pid)
    await until(lambda: a.notifier.connections == 2, what="a second listening connection")
    assert resumed == ["resumed"]
    async with asyncio.timeout(5):
        await a.notifier.wait_connected()
    ids = await enqueue(b.db, "t9:whatsapp", 1, destination="whatsapp", session=SESSION)
    b.worker.wake(["t9:whatsapp"])  # only a NOTIFY can reach a (it never polls)
    await until(lambda: cluster.of("t9:whatsapp") == ids, what="a woken after reconnecting")


async def test_notifications_are_scoped_by_schema(cluster: Cluster, tmp_path: Path) -> None:
    a = await cluster.instance("a")
    heard: list[str] = []
    await a.notifier.listen("news", heard.append)
    async with open_test_database("postgres", tmp_path) as elsewhere:
        assert isinstance(elsewhere, PostgresDatabase)
        stranger = Notifier(elsewhere, clock=SystemClock(), rng=random.Random(3))
        await stranger.start()
        try:
            await stranger.notify("news", "not for a")
        finally:
            await stranger.stop()
    b = await cluster.instance("b")
    await b.notifier.notify("news", "for a")
    await until(lambda: heard, what="the notification")
    assert heard == ["for a"]
