"""The outbox worker's own housekeeping, on an in-memory repository and a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import random

from bridge.clock import FakeClock
from bridge.core.operations import LoginCode, encode
from bridge.core.ordering_keys import LoginKey
from bridge.core.outbox import OutboxWorker
from bridge.db.delivery_records import DeliveryRecord
from bridge.db.outbox import OutboxRow
from bridge.metrics import Metrics


class MemoryOutbox:
    """Just enough of OutboxRepository for the worker's idle loop."""

    batches_statements = False

    def __init__(self) -> None:
        self.pruned_before: list[float] = []

    async def next_due(self, limit: int = 100, *, now: float | None = None) -> list[OutboxRow]:
        return []

    async def count_pending(self) -> int:
        return 0

    async def count_dead(self) -> int:
        return 2

    async def prune_done(self, *, before: float) -> int:
        self.pruned_before.append(before)
        return 3


async def test_delivered_rows_and_registered_tables_are_pruned_periodically() -> None:
    clock = FakeClock(start=100_000.0)
    repo = MemoryOutbox()
    metrics = Metrics()
    worker = OutboxWorker(
        repo,  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(1),
        max_attempts=3,
        base_delay=1,
        max_delay=10,
        metrics=metrics,
    )
    other: list[float] = []

    async def prune_other(now: float) -> int:
        other.append(now)
        return 0

    worker.on_prune("other rows", prune_other)
    await worker.start()
    async with asyncio.timeout(5):
        await worker.wait_idle()
    await clock.settle()
    assert repo.pruned_before == [100_000.0 - OutboxWorker.KEEP_DONE_SECONDS]
    assert other == [100_000.0]
    assert "zapbridge_outbox_dead 2.0" in metrics.render().decode()
    await clock.advance(OutboxWorker.PRUNE_EVERY_SECONDS + 1)
    assert len(repo.pruned_before) == 2 and len(other) == 2
    await worker.stop()


async def test_only_the_leader_counts_the_backlog_and_prunes_delivered_rows() -> None:
    """With several instances the cluster-wide figures and the delivered rows' clean-up
    run on the leader alone (docs/cluster.md); leadership may come later. Registered
    hooks (this instance's media files) run on every instance."""
    clock = FakeClock(start=100_000.0)
    repo = MemoryOutbox()
    metrics = Metrics()
    leading = False
    worker = OutboxWorker(
        repo,  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(1),
        max_attempts=3,
        base_delay=1,
        max_delay=10,
        metrics=metrics,
        leader=lambda: leading,
    )
    local: list[float] = []

    async def prune_local(now: float) -> int:
        local.append(now)
        return 0

    worker.on_prune("media files", prune_local)
    await worker.start()
    async with asyncio.timeout(5):
        await worker.wait_idle()
    await clock.settle()
    assert repo.pruned_before == [] and local == [100_000.0]
    assert "zapbridge_outbox_dead 2.0" not in metrics.render().decode()
    leading = True
    await clock.advance(OutboxWorker.PRUNE_EVERY_SECONDS + 1)
    assert len(repo.pruned_before) == 1 and len(local) == 2
    assert "zapbridge_outbox_dead 2.0" in metrics.render().decode()
    await worker.stop()


class RacingOutbox:
    """One pending row whose pass (``next_due``) is slow: the keyed drain started by
    ``wake(keys)`` delivers and finishes it while the pass is still reading."""

    batches_statements = False

    def __init__(self) -> None:
        self.row = OutboxRow(
            id=1,
            destination="matrix",
            ordering_key=str(LoginKey("acme/sales", "matrix")),
            payload=encode(
                LoginCode(session="acme/sales", room="!ctl", thread=None, text="QR", png="iVBO")
            ),
            status="pending",
            attempts=0,
            next_attempt_at=0.0,
            last_error=None,
            created_at=0.0,
            updated_at=0.0,
        )
        self.pass_started = asyncio.Event()
        self.release_pass = asyncio.Event()
        self.finished = asyncio.Event()

    async def next_due(self, limit: int = 100, *, now: float | None = None) -> list[OutboxRow]:
        snapshot = [self.row] if self.row.status == "pending" else []
        self.pass_started.set()
        await self.release_pass.wait()  # read before the drain marked it done
        return snapshot

    async def next_for_key(self, ordering_key: str) -> OutboxRow | None:
        return self.row if self.row.status == "pending" else None

    async def finish(
        self,
        outbox_id: int,
        ordering_key: str,
        *,
        now: float | None = None,
        record: DeliveryRecord | None = None,
    ) -> OutboxRow | None:
        self.row = dataclasses.replace(self.row, status="done")
        self.finished.set()
        return None

    async def count_pending(self) -> int:
        return 0

    async def count_dead(self) -> int:
        return 0

    async def prune_done(self, *, before: float) -> int:
        return 0


async def test_a_row_a_keyed_drain_delivered_during_a_pass_is_not_delivered_again() -> None:
    """A pass reads due rows while a drain woken by key delivers one of them: the pass
    must not start that stale row again (it posted a second QR image, and would send
    a WhatsApp message twice through an engine that cannot choose message ids)."""
    clock = FakeClock()
    repo = RacingOutbox()
    worker = OutboxWorker(
        repo,  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(1),
        max_attempts=3,
        base_delay=1,
        max_delay=10,
        metrics=Metrics(),
    )
    delivered: list[int] = []

    async def executor(row: OutboxRow) -> None:
        delivered.append(row.id)

    worker.register("matrix", executor)
    await worker.start()
    async with asyncio.timeout(5):
        await repo.pass_started.wait()  # the pass holds its snapshot of row 1
        worker.wake([repo.row.ordering_key])  # the relay's commit wakes the key
        await repo.finished.wait()  # delivered and marked done by the keyed drain
        repo.release_pass.set()
        await clock.settle()
        await worker.wait_idle()
    await clock.settle()
    await worker.stop()
    assert delivered == [1]
