"""The outbox worker's own housekeeping, on an in-memory repository and a fake clock."""

from __future__ import annotations

import asyncio
import random

from bridge.clock import FakeClock
from bridge.core.metrics import Metrics
from bridge.core.outbox import OutboxWorker
from bridge.db.outbox import OutboxRow


class MemoryOutbox:
    """Just enough of OutboxRepository for the worker's idle loop."""

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
