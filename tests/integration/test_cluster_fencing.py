"""The fencing check (docs/cluster.md#ownership-and-fencing): an instance paused
past its lease, whose session another instance took, sends nothing and writes no
status when it wakes; the session manager follows the leases (adopt, release)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.cluster.ownership import Ownership
from bridge.core.outbox import OutboxWorker
from bridge.core.status_store import FencedStatusStore
from bridge.db.database import Database
from bridge.db.leases import LeaseRepository
from bridge.db.outbox import OutboxRepository, OutboxRow
from bridge.errors import NotOwner
from bridge.model import Text
from bridge.whatsapp.engine import SessionSpec
from bridge.whatsapp.session_ownership import SessionHandover
from bridge.whatsapp.sessions import SessionManager
from bridge.whatsapp.status import SessionStatus
from tests.fakes.fake_engine import FakeEngine
from tests.harness.core import until
from tests.integration.test_cluster_ownership import LEASE, pools  # noqa: F401 (fixture)
from tests.unit.test_sessions import MemoryStore

pytestmark = pytest.mark.postgres

KEY = "acme/sales"
CUSTOMER = "+5511988887777"


@dataclass
class Instance:
    ownership: Ownership
    manager: SessionManager
    engine: FakeEngine
    saved: MemoryStore
    moved: list[tuple[str, str, str]]


async def instance(db: Database, clock: FakeClock, name: str) -> Instance:
    ownership = Ownership(
        LeaseRepository(db, clock=clock.now),
        session_keys=[KEY],
        instance_id=name,
        lease_seconds=LEASE,
        clock=clock,
    )
    saved = MemoryStore()
    manager = SessionManager(
        None,
        specs=[SessionSpec(key=KEY, company="acme", name="sales", device_dir=Path("d"))],
        store=FencedStatusStore(saved, ownership),
        clock=clock,
        rng=random.Random(1),
        metrics=None,
        reconnect_initial=1,
        reconnect_max=10,
        stable_seconds=5,
        stagger_seconds=0,
        send_per_minute=60,
        send_burst=5,
    )
    engine = FakeEngine(
        manager.handle_event, clock=clock, paired=[KEY], phones={KEY: "+5511900000001"}
    )
    manager.attach_engine(engine)
    manager.fence_with(ownership.confirm)
    moved: list[tuple[str, str, str]] = []

    async def on_moved(key: str, previous: str, how: str) -> None:
        moved.append((key, previous, how))

    handover = SessionHandover(manager, on_moved=on_moved)
    ownership.listen(handover)
    await ownership.tick()  # as app.py: the first pass, then the owned sessions start
    await manager.start(only=ownership.owned())
    await clock.settle()
    await manager.flush()
    return Instance(ownership, manager, engine, saved, moved)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_paused_instance_whose_lease_was_taken_sends_nothing_when_it_wakes(
    pools: list[Database],  # noqa: F811
    clock: FakeClock,
) -> None:
    a = await instance(pools[0], clock, "a")
    assert a.manager.status(KEY) is SessionStatus.CONNECTED
    assert await a.manager.send(KEY, CUSTOMER, Text("before"))
    assert [c.args["content"] for c in a.engine.calls_of("send")] == [Text("before")]
    # a is paused: no pass runs while the clock moves past its lease; b starts
    await clock.advance(LEASE + 1)
    b = await instance(pools[1], clock, "b")
    assert b.ownership.owns(KEY) and b.ownership.token(KEY) == 2
    assert b.manager.status(KEY) is SessionStatus.CONNECTED  # adopted from its pairing
    assert b.moved == [(KEY, "a", "lost")]
    saved_before = list(a.saved.saved)
    # a wakes, still believing its session CONNECTED, and tries to send
    with pytest.raises(NotOwner):
        await a.manager.send(KEY, CUSTOMER, Text("after"))
    assert [c.args["content"] for c in a.engine.calls_of("send")] == [Text("before")]
    assert a.engine.calls_of("disconnect", KEY)  # released at once, not logged out
    assert not a.engine.calls_of("logout")
    await a.engine.drop(KEY)  # whatever the engine says next is not a's to write
    await clock.settle()
    assert a.saved.saved == saved_before
    await a.ownership.tick()
    assert not a.ownership.owns(KEY)
    assert await b.manager.send(KEY, CUSTOMER, Text("from b"))
    assert [c.args["content"] for c in b.engine.calls_of("send")] == [Text("from b")]


async def test_a_clean_stop_releases_and_the_survivor_adopts_at_once(
    pools: list[Database],  # noqa: F811
    clock: FakeClock,
) -> None:
    a = await instance(pools[0], clock, "a")
    b = await instance(pools[1], clock, "b")
    assert a.ownership.owns(KEY) and not b.ownership.owns(KEY)
    assert not b.engine.calls_of("connect")  # b does not run what it does not own
    await a.ownership.stop()
    assert a.engine.calls_of("disconnect", KEY) and not a.engine.calls_of("logout")
    await b.ownership.tick()
    await clock.settle()
    assert b.manager.status(KEY) is SessionStatus.CONNECTED
    assert b.moved == [(KEY, "a", "stopped")]


async def test_a_fenced_send_leaves_its_outbox_row_pending_for_the_owner(
    pools: list[Database],  # noqa: F811
    clock: FakeClock,
) -> None:
    """The outbox worker of the instance that woke too late gets a retryable error:
    the row stays pending (not a dead letter), and nothing was sent."""
    a = await instance(pools[0], clock, "a")
    await clock.advance(LEASE + 1)
    b = await instance(pools[1], clock, "b")
    assert b.ownership.owns(KEY)
    repo = OutboxRepository(pools[0])
    row = await repo.enqueue("whatsapp", ordering_key=KEY, payload={"text": "hi"}, now=clock.now())
    worker = OutboxWorker(
        repo, clock=clock, rng=random.Random(1), max_attempts=3, base_delay=1, max_delay=10
    )

    async def deliver(row: OutboxRow) -> None:
        await a.manager.send(KEY, CUSTOMER, Text(row.payload["text"]))

    worker.register("whatsapp", deliver)
    await worker.start()
    try:

        async def retried() -> bool:
            again = await repo.get(row.id)
            return again is not None and again.attempts == 1

        await until(retried, what="the row retried", limit=5)
    finally:
        await worker.stop()
    again = await repo.get(row.id)
    assert again is not None and again.status == "pending"
    assert again.last_error == f"session {KEY} is owned by another instance now"
    assert not a.engine.calls_of("send")
