"""Outbox and processed-events repositories, on both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.db import Repositories
from bridge.db.database import to_sqlite_placeholders
from bridge.db.migrate import migrate
from bridge.db.outbox import NEXT_DUE, OutboxRow
from tests.conftest import open_test_database


async def test_outbox_roundtrip(repos: Repositories) -> None:
    row = await repos.outbox.enqueue(
        "matrix", ordering_key="ticket:1:matrix", payload={"op": "send", "n": [1]}, now=5.0
    )
    assert row == OutboxRow(
        id=row.id,
        destination="matrix",
        ordering_key="ticket:1:matrix",
        payload={"op": "send", "n": [1]},
        status="pending",
        attempts=0,
        next_attempt_at=5.0,
        last_error=None,
        created_at=5.0,
        updated_at=5.0,
    )
    assert await repos.outbox.get(row.id) == row
    assert await repos.outbox.count_pending() == 1


async def test_finish_marks_done_and_hands_out_the_next_of_its_key(repos: Repositories) -> None:
    outbox = repos.outbox
    first, second, third = [
        await outbox.enqueue("slack", ordering_key="k", payload={"n": n}, now=1.0) for n in range(3)
    ]
    await outbox.enqueue("slack", ordering_key="other", payload={}, now=1.0)
    await outbox.mark_retry(third.id, next_at=50.0, error="HTTP 503", now=1.0)
    after = await outbox.finish(first.id, "k", now=2.0)
    assert after is not None and after.id == second.id
    done = await outbox.get(first.id)
    assert done is not None and (done.status, done.updated_at) == ("done", 2.0)
    after = await outbox.finish(second.id, "k", now=3.0)
    assert after is not None and (after.id, after.next_attempt_at) == (third.id, 50.0)  # not due
    assert await outbox.finish(third.id, "k", now=4.0) is None
    assert await outbox.finish(third.id, "k", now=5.0) is None  # done already: no change
    assert (await outbox.get(third.id)).updated_at == 4.0  # type: ignore[union-attr]
    assert await outbox.count_pending() == 1


async def test_outbox_keeps_order_per_key(repos: Repositories) -> None:
    async def enqueue(key: str, name: str) -> int:
        row = await repos.outbox.enqueue("slack", ordering_key=key, payload={"m": name}, now=1.0)
        return row.id

    a1, a2, a3 = [await enqueue("a", name) for name in ("a1", "a2", "a3")]
    b1 = await enqueue("b", "b1")

    async def due(now: float) -> list[int]:
        return [row.id for row in await repos.outbox.next_due(10, now=now)]

    assert await due(0.5) == []  # nothing due yet
    assert await due(2.0) == [a1, b1]  # one per key: its oldest
    assert await repos.outbox.mark_retry(a1, next_at=100.0, error="HTTP 500", now=2.0)
    assert await due(3.0) == [b1]  # a1 waits for its retry and holds a2, a3 back
    assert await repos.outbox.mark_done(b1, now=3.0)
    assert not await repos.outbox.mark_done(b1, now=3.0)
    assert await due(100.0) == [a1]
    assert await repos.outbox.mark_dead(a1, error="HTTP 500 again", now=100.0)
    assert await due(100.0) == [a2]  # a dead letter no longer blocks its key
    dead = await repos.outbox.get(a1)
    assert dead is not None
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 2, "HTTP 500 again")
    assert (await repos.outbox.count_pending(), await repos.outbox.count_dead()) == (2, 1)
    assert [row.id for row in await repos.outbox.list_dead()] == [a1]
    assert await repos.outbox.mark_done(a2, now=101.0)
    assert await due(101.0) == [a3]
    assert await repos.outbox.prune_done(before=50.0) == 1  # b1
    assert await repos.outbox.get(b1) is None


async def test_outbox_limit(repos: Repositories) -> None:
    for key in "abc":
        await repos.outbox.enqueue("slack", ordering_key=key, payload={}, now=1.0)
    assert len(await repos.outbox.next_due(2, now=2.0)) == 2


async def test_processed_events_dedupe(repos: Repositories) -> None:
    assert not await repos.events.seen_before("matrix", "txn1", now=1.0)
    assert await repos.events.seen_before("matrix", "txn1", now=2.0)
    assert not await repos.events.seen_before("slack", "txn1", now=3.0)
    assert await repos.events.prune(before=2.5) == 1
    assert not await repos.events.seen_before("matrix", "txn1", now=4.0)


async def test_processed_events_dedupe_under_concurrency(repos: Repositories) -> None:
    results = await asyncio.gather(
        *(repos.events.seen_before("slack", "Ev0123") for _ in range(30))
    )
    assert results.count(False) == 1


async def test_processed_event_rolled_back_with_its_handling(repos: Repositories) -> None:
    class HandlingFailed(Exception):
        pass

    with pytest.raises(HandlingFailed):
        async with repos.db.transaction():
            assert not await repos.events.seen_before("matrix", "txn9")
            raise HandlingFailed
    assert not await repos.events.seen_before("matrix", "txn9")  # redelivery is processed


async def test_next_for_key_is_the_oldest_pending_row_of_that_key(repos: Repositories) -> None:
    outbox = repos.outbox
    a1 = await outbox.enqueue("matrix", ordering_key="t1:matrix", payload={"n": 1}, now=1.0)
    a2 = await outbox.enqueue("matrix", ordering_key="t1:matrix", payload={"n": 2}, now=2.0)
    await outbox.enqueue("matrix", ordering_key="t2:matrix", payload={"n": 3}, now=3.0)
    assert await outbox.next_for_key("t1:matrix") == a1
    await outbox.mark_retry(a1.id, next_at=99.0, error="later", now=4.0)
    assert (await outbox.next_for_key("t1:matrix")).id == a1.id  # type: ignore[union-attr]
    await outbox.mark_dead(a1.id, error="gave up", now=5.0)
    assert await outbox.next_for_key("t1:matrix") == a2
    await outbox.mark_done(a2.id, now=6.0)
    assert await outbox.next_for_key("t1:matrix") is None


async def test_due_rows_are_found_through_the_pending_index_whatever_analyze_saw(
    tmp_path: Path,
) -> None:
    """SQLite planned a walk over every delivered row after an ANALYZE taken while
    nothing was pending (bench/README.md, "Scale")."""
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        await db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
            "INSERT INTO outbox (destination, ordering_key, payload, status, next_attempt_at, "
            "created_at, updated_at) SELECT 'slack', 'k' || (i % 500), '{}', 'done', 1, 1, 1 "
            "FROM n"
        )
        await db.execute("ANALYZE")
        repo = Repositories.over(db).outbox
        for n in range(3):
            await repo.enqueue("slack", ordering_key=f"k{n}", payload={}, now=1.0)
        sql = "EXPLAIN QUERY PLAN " + to_sqlite_placeholders(NEXT_DUE)
        steps = [str(row["detail"]) for row in await db.fetch(sql, 2.0, 10)]
        assert any("outbox_pending_by_key" in step for step in steps), steps
        walks = [s for s in steps if s.split()[:2] in (["SCAN", "o"], ["SCAN", "outbox"])]
        assert all("USING" in step for step in walks), steps  # no walk over every row
        assert len(await repo.next_due(10, now=2.0)) == 3


async def test_pending_for_key_lists_the_waiting_rows_of_one_key(repos: Repositories) -> None:
    outbox = repos.outbox
    rows = [
        await outbox.enqueue("w", ordering_key="k", payload={"n": n}, now=1.0) for n in range(4)
    ]
    await outbox.enqueue("w", ordering_key="other", payload={"n": 9}, now=1.0)
    await outbox.mark_done(rows[0].id)
    await outbox.mark_dead(rows[3].id, error="x")
    await outbox.mark_retry(rows[2].id, next_at=99.0, error="later")
    waiting = await outbox.pending_for_key("k")
    assert [r.payload["n"] for r in waiting] == [1, 2]  # due or not, oldest first
    assert [r.payload["n"] for r in await outbox.pending_for_key("k", limit=1)] == [1]
    assert await outbox.pending_for_key("nothing") == []
