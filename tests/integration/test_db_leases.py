"""The lease repository (bridge/db/leases.py), on both engines: acquire, renew,
release and check are atomic and the token rises at every acquisition."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.db.database import Database
from bridge.db.leases import LEADER, InstanceRow, LeaseRepository, LeaseRow, session_lease
from bridge.db.migrate import migrate
from tests.conftest import open_test_database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def leases(db: Database, clock: FakeClock) -> LeaseRepository:
    return LeaseRepository(db, clock=clock.now)


async def test_acquire_renew_release_roundtrip(leases: LeaseRepository, clock: FakeClock) -> None:
    name = session_lease("acme/sales")
    assert name == "session:acme/sales"
    first = await leases.acquire(name, "a", seconds=15)
    assert first == LeaseRow(name, "a", 1, 1000.0, 1015.0, None, None, None)
    assert await leases.get(name) == first
    assert await leases.acquire(name, "b", seconds=15) is None  # held
    assert await leases.acquire(name, "a", seconds=15) is None  # even by itself
    assert await leases.check(name, "a", 1)
    assert not await leases.check(name, "a", 2)
    assert not await leases.check(name, "b", 1)
    await clock.advance(10)
    assert await leases.renew(name, "a", 1, seconds=15) == 1025.0
    assert await leases.renew(name, "b", 1, seconds=15) is None
    assert await leases.release(name, "a", 1)
    assert not await leases.check(name, "a", 1)
    assert not await leases.release(name, "a", 1)  # once
    second = await leases.acquire(name, "b", seconds=15)
    assert second == LeaseRow(name, "b", 2, 1010.0, 1025.0, None, "a", "released")
    assert await leases.renew(name, "a", 1, seconds=15) is None  # a's token is stale


async def test_an_expired_lease_passes_to_another_with_a_higher_token(
    leases: LeaseRepository, clock: FakeClock
) -> None:
    await leases.acquire(LEADER, "a", seconds=15)
    await clock.advance(14.9)
    assert await leases.acquire(LEADER, "b", seconds=15) is None
    await clock.advance(0.1)
    assert not await leases.check(LEADER, "a", 1)
    assert await leases.renew(LEADER, "a", 1, seconds=15) is None  # too late
    taken = await leases.acquire(LEADER, "b", seconds=15)
    assert taken is not None
    assert (taken.token, taken.previous_holder, taken.previous_end) == (2, "a", "expired")
    await clock.advance(20)
    again = await leases.acquire(LEADER, "b", seconds=15)  # its own, after expiry
    assert again is not None and again.token == 3
    assert not await leases.check(LEADER, "b", 2)


async def test_held_lists_live_leases_by_prefix(leases: LeaseRepository, clock: FakeClock) -> None:
    await leases.acquire(session_lease("acme/sales"), "a", seconds=15)
    await leases.acquire(session_lease("acme/support"), "b", seconds=5)
    await leases.acquire(LEADER, "a", seconds=15)
    assert await leases.held("session:") == {"session:acme/sales": "a", "session:acme/support": "b"}
    await clock.advance(6)
    assert await leases.held("session:") == {"session:acme/sales": "a"}
    assert await leases.held() == {"leader": "a", "session:acme/sales": "a"}


async def test_instances_heartbeat_and_leave(leases: LeaseRepository, clock: FakeClock) -> None:
    await leases.heartbeat("a", host="h1", pid=10)
    await clock.advance(5)
    await leases.heartbeat("b", host="h2", pid=20)
    await leases.heartbeat("a", host="h1", pid=10)
    assert await leases.live_instances(within=15) == [
        InstanceRow("a", "h1", 10, 1000.0, 1005.0),
        InstanceRow("b", "h2", 20, 1005.0, 1005.0),
    ]
    await clock.advance(15)  # a beat last at 1005: now 1020
    await leases.heartbeat("b", host="h2", pid=20)
    assert [i.id for i in await leases.live_instances(within=15)] == ["b"]
    await leases.leave("b")
    assert await leases.live_instances(within=15) == []


async def test_the_database_clock_decides_expiry(db: Database) -> None:
    """Without an injected clock, the database's own clock measures leases."""
    leases = LeaseRepository(db)
    before = await leases.now()
    row = await leases.acquire(LEADER, "a", seconds=0.3)
    assert row is not None and before <= row.acquired_at <= before + 5
    assert row.expires_at == pytest.approx(row.acquired_at + 0.3)
    assert await leases.check(LEADER, "a", 1)
    for _ in range(200):  # the lease lapses on the database's clock within 10 s
        if not await leases.check(LEADER, "a", 1):
            break
        await asyncio.sleep(0.05)
    assert not await leases.check(LEADER, "a", 1)
    taken = await leases.acquire(LEADER, "b", seconds=15)
    assert taken is not None and taken.token == 2


@pytest.mark.postgres
async def test_only_one_of_many_concurrent_acquirers_wins(tmp_path: Path) -> None:
    """Ten connections race for one expired lease: exactly one wins, with token 2."""
    async with open_test_database("postgres", tmp_path) as db:
        await migrate(db)
        leases = LeaseRepository(db)
        await leases.acquire(LEADER, "old", seconds=0.0)
        won = await asyncio.gather(
            *(leases.acquire(LEADER, f"i{n}", seconds=15) for n in range(10))
        )
        winners = [row for row in won if row is not None]
        assert [w.token for w in winners] == [2]
        assert await leases.check(LEADER, winners[0].holder, 2)


async def test_next_expiry_in_is_the_first_lease_of_another_to_run_out(
    leases: LeaseRepository, clock: FakeClock
) -> None:
    assert await leases.next_expiry_in("a") is None
    await leases.acquire(session_lease("acme/sales"), "a", seconds=15)
    assert await leases.next_expiry_in("a") is None  # its own do not count
    await leases.acquire(session_lease("acme/support"), "b", seconds=15)
    await clock.advance(2)
    await leases.acquire(LEADER, "c", seconds=5)
    assert await leases.next_expiry_in("a") == 5.0
    await clock.advance(6)
    assert await leases.next_expiry_in("a") == 7.0  # b's, at 1015
    assert await leases.next_expiry_in("b") == 7.0  # a's, at 1015 too


async def test_instances_silent_for_long_are_forgotten(
    leases: LeaseRepository, clock: FakeClock
) -> None:
    await leases.heartbeat("killed", host="h1", pid=1)
    await clock.advance(3600)
    await leases.heartbeat("alive", host="h2", pid=2)
    assert await leases.forget_instances(silent_for=1800) == 1
    assert [i.id for i in await leases.live_instances(within=86_400)] == ["alive"]
