"""The outbox worker's own housekeeping, on an in-memory repository and a fake clock."""

from __future__ import annotations

import asyncio
import random

from bridge.clock import FakeClock
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

    async def prune_done(self, *, before: float) -> int:
        self.pruned_before.append(before)
        return 3


async def test_delivered_rows_are_pruned_periodically() -> None:
    clock = FakeClock(start=100_000.0)
    repo = MemoryOutbox()
    worker = OutboxWorker(
        repo,  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(1),
        max_attempts=3,
        base_delay=1,
        max_delay=10,
    )
    await worker.start()
    async with asyncio.timeout(5):
        await worker.wait_idle()
    await clock.settle()
    assert repo.pruned_before == [100_000.0 - OutboxWorker.KEEP_DONE_SECONDS]
    await clock.advance(OutboxWorker.PRUNE_EVERY_SECONDS + 1)
    assert len(repo.pruned_before) == 2
    await worker.stop()
