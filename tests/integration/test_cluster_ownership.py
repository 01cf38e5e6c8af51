"""Session ownership across instances on one PostgreSQL schema
(docs/cluster.md#ownership-and-fencing). Each instance is an ``Ownership`` over its
own database pool; the tests drive its passes (``tick``) and move one fake clock,
which is both the database's clock (injected into the lease repository) and the
instances' local clock."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.cluster.ownership import How, Ownership
from bridge.db.database import Database
from bridge.db.leases import LeaseRepository, session_lease
from bridge.db.migrate import migrate
from tests.conftest import _connect_postgres

pytestmark = pytest.mark.postgres

LEASE = 15.0
KEYS = [f"acme/s{n}" for n in range(7)]


@dataclass
class Recorder:
    """What an instance's listener was told."""

    gains: list[tuple[str, int, str | None, How]] = field(default_factory=list)
    losses: list[tuple[str, str]] = field(default_factory=list)
    leading: list[bool] = field(default_factory=list)

    async def on_gain(self, key: str, token: int, previous_holder: str | None, how: How) -> None:
        self.gains.append((key, token, previous_holder, how))

    async def on_lose(self, key: str, why: str) -> None:
        self.losses.append((key, why))

    async def on_leader(self, leading: bool) -> None:
        self.leading.append(leading)


@pytest.fixture
async def pools() -> AsyncIterator[list[Database]]:
    """Four pools over one fresh, migrated schema."""
    schema = f"zapbridge_test_{secrets.token_hex(6)}"
    dbs = [await _connect_postgres(schema) for _ in range(4)]
    await migrate(dbs[0])
    try:
        yield dbs
    finally:
        await dbs[0].execute(f'DROP SCHEMA "{schema}" CASCADE')
        for db in dbs:
            await db.close()


def instance(db: Database, clock: FakeClock, name: str, keys: list[str] = KEYS) -> Ownership:
    return Ownership(
        LeaseRepository(db, clock=clock.now),
        session_keys=keys,
        instance_id=name,
        lease_seconds=LEASE,
        clock=clock,
        listener=Recorder(),
    )


def recorder(o: Ownership) -> Recorder:
    listener: Any = o._listener
    return listener  # type: ignore[no-any-return]


async def rounds(clock: FakeClock, instances: list[Ownership], n: int) -> None:
    for _ in range(n):
        for o in instances:
            await o.tick()
        await clock.advance(LEASE / 3)


async def test_sessions_spread_and_a_clean_stop_hands_them_over(pools: list[Database]) -> None:
    clock = FakeClock()
    a = instance(pools[0], clock, "a")
    await a.tick()
    assert a.owned() == frozenset(KEYS) and a.is_leader()
    b = instance(pools[1], clock, "b")
    await rounds(clock, [a, b], 3)
    assert a.owned().isdisjoint(b.owned()) and a.owned() | b.owned() == frozenset(KEYS)
    assert sorted([len(a.owned()), len(b.owned())]) == [3, 4]
    moved = [g for g in recorder(b).gains]
    assert moved and {how for *_, how in moved} == {"rebalanced"}
    await a.stop()
    assert a.owned() == frozenset() and not a.is_leader()
    await b.tick()  # at once: no lease to wait out
    assert b.owned() == frozenset(KEYS) and b.is_leader()
    assert {how for *_, how in recorder(b).gains[len(moved) :]} == {"stopped"}


async def test_a_dead_instances_sessions_move_within_the_lease(pools: list[Database]) -> None:
    clock = FakeClock()
    a, b = instance(pools[0], clock, "a"), instance(pools[1], clock, "b")
    await rounds(clock, [a, b], 3)
    lost = a.owned()
    assert lost
    # a dies (no release, no more passes)
    for _ in range(4):  # 4 × lease/3 > lease
        await clock.advance(LEASE / 3)
        await b.tick()
    assert b.owned() == frozenset(KEYS)
    assert {(how, prev) for _, _, prev, how in recorder(b).gains if _ in lost} <= {("lost", "a")}
    assert not a.owns(next(iter(lost)))  # its own belief lapsed too


async def test_a_paused_instance_stops_believing_before_its_lease_can_move(
    pools: list[Database],
) -> None:
    clock = FakeClock()
    a = instance(pools[0], clock, "a", ["acme/sales"])
    await a.tick()
    token = a.token("acme/sales")
    assert token == 1
    await clock.advance(LEASE - LEASE / 5)  # a's local deadline; the database's is later
    assert not a.owns("acme/sales")
    b = instance(pools[1], clock, "b", ["acme/sales"])
    await b.tick()
    assert not b.owns("acme/sales")  # not before the database lets go
    await clock.advance(LEASE / 5)
    await b.tick()
    assert b.token("acme/sales") == 2
    assert not await a.confirm("acme/sales")  # woken: fenced out
    assert await b.confirm("acme/sales")
    await a.tick()  # its pass drops the session and does not take it back
    assert recorder(a).losses == [("acme/sales", "its lease could not be renewed in time")]
    assert not a.owns("acme/sales")


@pytest.mark.parametrize("seed", range(1, 11))
async def test_ownership_is_unique_under_churn(pools: list[Database], seed: int) -> None:
    """A random schedule of starts, clean stops, kills, pauses, resumes, passes and
    clock jumps. After every step: no session is believed owned by two instances,
    at most one passes the fencing check, and tokens only rise. At the end, within a
    lease, every session is owned by a running instance."""
    rng = random.Random(seed)
    clock = FakeClock()
    slots: list[Ownership | None] = [None] * len(pools)
    paused: set[int] = set()
    tokens: dict[str, int] = {}
    born = 0

    def running() -> list[int]:
        return [i for i, o in enumerate(slots) if o is not None and i not in paused]

    for _ in range(120):
        step = rng.choice(["start", "stop", "kill", "pause", "resume", "tick", "tick", "time"])
        free = [i for i, o in enumerate(slots) if o is None]
        if step == "start" and free:
            i = rng.choice(free)
            born += 1
            slots[i] = instance(pools[i], clock, f"i{born}")
            paused.discard(i)
        elif step == "stop" and running():
            i = rng.choice(running())
            await slots[i].stop()  # type: ignore[union-attr]
            slots[i] = None
        elif step == "kill" and any(o is not None for o in slots):
            i = rng.choice([i for i, o in enumerate(slots) if o is not None])
            slots[i] = None  # nothing released
            paused.discard(i)
        elif step == "pause" and running():
            paused.add(rng.choice(running()))
        elif step == "resume" and paused:
            paused.discard(rng.choice(sorted(paused)))
        elif step == "tick" and running():
            for i in rng.sample(running(), rng.randint(1, len(running()))):
                await slots[i].tick()  # type: ignore[union-attr]
        elif step == "time":
            await clock.advance(rng.uniform(0, LEASE * 0.6))
        await check_invariants(pools[0], clock, slots, tokens)

    if not running():
        slots[0] = instance(pools[0], clock, "last")
        paused.discard(0)
    active = [slots[i] for i in running()]
    await rounds(clock, active, 4)  # 4 × lease/3 > lease
    for o in active:
        await o.tick()  # o is not None
    await check_invariants(pools[0], clock, slots, tokens)
    owners = {key: [o.instance_id for o in active if o and o.owns(key)] for key in KEYS}
    assert all(len(who) == 1 for who in owners.values()), owners
    assert max(tokens.values()) > 1  # the schedule did move sessions between instances


async def check_invariants(
    db: Database, clock: FakeClock, slots: list[Ownership | None], tokens: dict[str, int]
) -> None:
    leases = LeaseRepository(db, clock=clock.now)
    for key in KEYS:
        believers = [o for o in slots if o is not None and o.owns(key)]
        assert len(believers) <= 1, (key, [o.instance_id for o in believers])
        passing = [
            o
            for o in slots
            if o is not None
            and o.token(key) is not None
            and await leases.check(session_lease(key), o.instance_id, o.token(key) or 0)
        ]
        assert len(passing) <= 1
        row = await leases.get(session_lease(key))
        if row is not None:
            assert row.token >= tokens.get(key, 0)
            tokens[key] = row.token


async def step(clock: FakeClock, loops: int, seconds: float = 0.5) -> None:
    """Move the clock, then wait (in real time) until every running pass is done and
    its loop sleeps again: the passes talk to a real database, the clock is fake."""
    await clock.advance(seconds)
    for _ in range(5000):
        if clock.pending_sleepers >= loops:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the ownership loops did not go back to sleep")


async def test_running_passes_take_a_dead_instances_sessions_as_its_leases_run_out(
    pools: list[Database],
) -> None:
    """With the passes running (``start``), a survivor does not wait for its next
    regular pass: it looks again when the dead instance's leases run out."""
    clock = FakeClock()
    a, b = instance(pools[0], clock, "a"), instance(pools[1], clock, "b")
    await a.start()
    await step(clock, 1, LEASE / 6)  # b's passes fall between a's
    await b.start()
    try:
        for _ in range(60):
            await step(clock, 2)
        assert len(a.owned()) == 4 and len(b.owned()) == 3
        # a dies: no release, no more passes; its leases were renewed at most a pass ago
        a_lease = await LeaseRepository(pools[0], clock=clock.now).get(
            session_lease(sorted(a.owned())[0])
        )
        assert a_lease is not None
        task = a._task
        assert task is not None
        task.cancel()
        died = clock.now()
        while clock.now() < a_lease.expires_at:
            assert b.owned() != frozenset(KEYS)
            await step(clock, 1, 0.25)
        await step(clock, 1, 0.25)
        assert b.owned() == frozenset(KEYS)
        assert clock.now() - died <= LEASE + 0.5  # its last renew may have come just before
        assert clock.now() - a_lease.expires_at <= 0.5  # not a pass later
    finally:
        await b.stop()
