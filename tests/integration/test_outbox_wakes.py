"""The outbox worker woken by ordering key: rows are delivered without a pass over the
whole outbox, and a row committed while its key is in flight is not stranded until
the next poll. On both engines, with a fake clock that never reaches the poll."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import pytest

from bridge.clock import FakeClock
from bridge.core.outbox import OutboxWorker
from bridge.db import Repositories
from bridge.db.delivery_records import DeliveryRecord
from bridge.db.outbox import Finish, OutboxRepository, OutboxRow
from tests.harness.core import until

KEY, BUSY = "ticket:1:whatsapp", "ticket:2:whatsapp"


class LateCommits(OutboxRepository):
    """The real repository; ``after_finish`` runs once a ``finish`` has looked for the
    key's next row (a row committed then is one the drain did not see)."""

    after_finish: list[asyncio.Future[None]]

    def __init__(self, repos: Repositories) -> None:
        super().__init__(repos.db)
        self.after_finish = []
        self.passes = 0

    async def finish(
        self,
        outbox_id: int,
        ordering_key: str,
        *,
        now: float | None = None,
        record: DeliveryRecord | None = None,
    ) -> OutboxRow | None:
        found = await super().finish(outbox_id, ordering_key, now=now, record=record)
        if self.after_finish:
            await self.after_finish.pop(0)
        return found

    async def finish_many(self, finishes: Sequence[Finish]) -> list[OutboxRow | None]:
        """PostgreSQL's finishes (bridge/db/batcher.py), with the same hook."""
        found = await super().finish_many(finishes)
        if self.after_finish:
            await self.after_finish.pop(0)
        return found

    async def next_due(self, limit: int = 100, *, now: float | None = None) -> list[OutboxRow]:
        self.passes += 1
        return await super().next_due(limit, now=now)


@pytest.fixture
async def world(repos: Repositories) -> AsyncIterator[tuple[LateCommits, OutboxWorker, list[str]]]:
    repo = LateCommits(repos)
    clock = FakeClock(start=1_000.0)
    worker = OutboxWorker(
        repo,
        clock=clock,
        rng=random.Random(1),
        max_attempts=3,
        base_delay=1,
        max_delay=10,
        poll_seconds=3600,  # never reached: the fake clock does not move
    )
    delivered: list[str] = []
    release_busy = asyncio.Event()

    async def deliver(row: OutboxRow) -> None:
        if row.ordering_key == BUSY:
            await release_busy.wait()  # keeps a drain in flight: no "all drained" pass
        delivered.append(row.payload["n"])

    worker.register("whatsapp", deliver)
    await worker.start()
    async with asyncio.timeout(5):
        await worker.wait_idle()
    yield repo, worker, delivered
    release_busy.set()
    await worker.stop()


async def enqueue(repo: OutboxRepository, key: str, n: str) -> None:
    await repo.enqueue("whatsapp", ordering_key=key, payload={"n": n}, now=1_000.0)


async def delivered_all(delivered: list[str], expected: list[str]) -> None:
    await until(lambda: [n for n in delivered if n in expected] == expected, limit=5, what="rows")


async def test_a_woken_key_is_delivered_without_a_pass(
    world: tuple[LateCommits, OutboxWorker, list[str]],
) -> None:
    repo, worker, delivered = world
    await enqueue(repo, BUSY, "busy")
    worker.wake([BUSY])
    passes = repo.passes
    await enqueue(repo, KEY, "a1")
    await enqueue(repo, KEY, "a2")
    worker.wake([KEY])
    await delivered_all(delivered, ["a1", "a2"])
    assert repo.passes == passes  # found by key, not by reading the whole outbox


async def test_a_row_committed_while_its_key_drains_is_not_stranded(
    world: tuple[LateCommits, OutboxWorker, list[str]],
) -> None:
    repo, worker, delivered = world
    await enqueue(repo, BUSY, "busy")
    worker.wake([BUSY])
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    repo.after_finish.append(gate)
    await enqueue(repo, KEY, "b1")
    worker.wake([KEY])
    await until(lambda: "b1" in delivered, limit=5, what="b1")
    # b1's drain has looked for the next row and found none; b2 commits now, and
    # its wake arrives while the key is still in flight
    await enqueue(repo, KEY, "b2")
    worker.wake([KEY])
    gate.set_result(None)
    await delivered_all(delivered, ["b1", "b2"])  # without a pass: the clock never moved
    assert delivered == ["b1", "b2"]  # in order, once each ("busy" is still held)
