"""Group commit (bridge/db/group_commit.py), on both engines: callers arriving together
share one transaction, each is answered after that commit with its own result or
error, a failure re-runs every member alone, and turned off each call is its own
transaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bridge.db.database import Database
from bridge.db.group_commit import GroupCommitter
from bridge.errors import DatabaseError
from tests.harness.core import until

CREATE_ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
CREATE_CHILDREN = (
    "CREATE TABLE children (id INTEGER PRIMARY KEY, item_id INTEGER "
    "REFERENCES items (id) DEFERRABLE INITIALLY DEFERRED)"
)


class Transactions:
    """Counts the transactions ``db`` opens (its ``_begin``) and records, when each
    is about to commit, which callers had been answered already; ``hold`` (if set)
    keeps the first transaction from committing until it is set."""

    def __init__(self, db: Database) -> None:
        self.begun = 0
        self.committing = asyncio.Event()
        self.hold: asyncio.Event | None = None
        self.answered_at_commit: list[list[bool]] = []
        self.callers: list[asyncio.Task[Any]] = []
        begin = db._begin

        @contextlib.asynccontextmanager
        async def counting_begin() -> AsyncIterator[Any]:
            self.begun += 1
            first = self.begun == 1
            async with begin() as conn:
                yield conn
                self.answered_at_commit.append([task.done() for task in self.callers])
                if first and self.hold is not None:
                    self.committing.set()
                    await self.hold.wait()

        db._begin = counting_begin  # type: ignore[method-assign]

    def start(self, call: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(call)
        self.callers.append(task)
        return task


@pytest.fixture
async def items(raw_db: Database) -> Database:
    await raw_db.execute(CREATE_ITEMS)
    await raw_db.execute(CREATE_CHILDREN)
    return raw_db


def insert(db: Database, item_id: int, ran: list[int]) -> Callable[[], Awaitable[int]]:
    async def work() -> int:
        ran.append(item_id)
        await db.execute("INSERT INTO items (id, name) VALUES ($1, $2)", item_id, f"n{item_id}")
        return item_id * 10

    return work


async def names(db: Database) -> list[str]:
    return [row["name"] for row in await db.fetch("SELECT name FROM items ORDER BY id")]


async def test_concurrent_callers_share_one_transaction_in_arrival_order(items: Database) -> None:
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0.002)
    ran: list[int] = []
    tasks = [txs.start(committer.run(insert(items, n, ran))) for n in (3, 1, 2, 5, 4)]
    async with asyncio.timeout(10):
        results = await asyncio.gather(*tasks)
    assert results == [30, 10, 20, 50, 40]  # each caller its own result
    assert ran == [3, 1, 2, 5, 4]  # bodies in arrival order
    assert txs.begun == 1  # one BEGIN … COMMIT for the five
    assert txs.answered_at_commit == [[False] * 5]  # nobody answered before the commit
    assert await names(items) == ["n1", "n2", "n3", "n4", "n5"]


async def test_a_failing_member_runs_again_alone_and_the_others_commit(items: Database) -> None:
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0.002)
    ran: list[int] = []

    async def failing() -> int:
        ran.append(0)
        await items.execute("INSERT INTO items (id, name) VALUES ($1, $2)", 100, "bad")
        raise ValueError("bad event")

    works = [insert(items, 1, ran), failing, insert(items, 2, ran)]
    tasks = [txs.start(committer.run(work)) for work in works]
    async with asyncio.timeout(10):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad event"
    assert ran[:2] == [1, 0]  # the group, up to the failure
    again = ran[2:]  # its members again alone, in order; the third in a group of its own
    assert sorted(again) == [0, 1, 2] and again.index(1) < again.index(0)
    assert txs.begun == 4  # the rolled-back group, then one each
    assert await names(items) == ["n1", "n2"]  # the failed member's insert is undone


async def test_a_failed_commit_runs_every_member_again_alone(items: Database) -> None:
    """A deferred foreign key fails at COMMIT, not in the body."""
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0.002)
    ran: list[int] = []

    async def dangling() -> int:
        ran.append(0)
        await items.execute("INSERT INTO children (id, item_id) VALUES ($1, $2)", 1, 999)
        return 0

    works = [insert(items, 1, ran), dangling, insert(items, 2, ran)]
    tasks = [txs.start(committer.run(work)) for work in works]
    async with asyncio.timeout(10):
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], DatabaseError)  # its own commit's error
    assert ran == [1, 0, 2, 1, 0, 2]
    assert txs.begun == 4
    assert await names(items) == ["n1", "n2"]
    assert await items.fetch("SELECT id FROM children") == []


async def test_turned_off_each_call_is_its_own_transaction(items: Database) -> None:
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0)
    ran: list[int] = []
    tasks = [txs.start(committer.run(insert(items, n, ran))) for n in (1, 2, 3)]
    async with asyncio.timeout(10):
        assert await asyncio.gather(*tasks) == [10, 20, 30]
    assert txs.begun == 3
    assert await names(items) == ["n1", "n2", "n3"]


async def test_a_lone_caller_does_not_wait_for_the_window(items: Database) -> None:
    """With an hour's window, a caller with nobody committing is answered at once."""
    committer = GroupCommitter(items, window_seconds=3600)
    async with asyncio.timeout(10):
        assert await committer.run(insert(items, 1, [])) == 10
        assert await committer.run(insert(items, 2, [])) == 20
    assert await names(items) == ["n1", "n2"]


async def test_groups_are_capped_at_max_group(items: Database) -> None:
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0.002, max_group=2)
    ran: list[int] = []
    tasks = [txs.start(committer.run(insert(items, n, ran))) for n in (1, 2, 3, 4, 5)]
    async with asyncio.timeout(10):
        assert await asyncio.gather(*tasks) == [10, 20, 30, 40, 50]
    assert ran == [1, 2, 3, 4, 5]
    assert txs.begun == 3


async def test_a_call_inside_a_transaction_joins_it(items: Database) -> None:
    committer = GroupCommitter(items, window_seconds=3600)
    with pytest.raises(ValueError):
        async with items.transaction():
            assert await committer.run(insert(items, 1, [])) == 10
            raise ValueError("undo all")
    assert await names(items) == []


async def test_a_cancelled_caller_not_yet_run_is_left_out(items: Database) -> None:
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0.002)
    ran: list[int] = []
    first = txs.start(committer.run(insert(items, 1, ran)))
    second = txs.start(committer.run(insert(items, 2, ran)))
    await asyncio.sleep(0)  # both queued; the group's task has not run yet
    second.cancel()
    async with asyncio.timeout(10):
        assert await first == 10
    with pytest.raises(asyncio.CancelledError):
        await second
    assert ran == [1]
    assert await names(items) == ["n1"]


async def test_while_a_group_commits_the_next_one_waits_for_more(pg_raw_db: Database) -> None:
    """PostgreSQL (on SQLite the next group cannot begin before the commit): a group
    begun while another commits takes a caller arriving after its queue ran dry, and
    commits once the other commit ended."""
    db = pg_raw_db
    await db.execute(CREATE_ITEMS)
    txs = Transactions(db)
    txs.hold = asyncio.Event()
    committer = GroupCommitter(db, window_seconds=3600)
    ran: list[int] = []
    lane = committer._lanes[0]  # the one keyless callers share
    first = txs.start(committer.run(insert(db, 1, ran)))
    try:
        async with asyncio.timeout(10):
            await txs.committing.wait()  # the first group is committing, held there
            second = txs.start(committer.run(insert(db, 2, ran)))
            await until(lambda: ran == [1, 2], limit=10)
            await until(lambda: not lane._changed.is_set(), limit=10)  # waiting for more
            third = txs.start(committer.run(insert(db, 3, ran)))
            await until(lambda: ran == [1, 2, 3], limit=10)
            assert not second.done() and not third.done()
            txs.hold.set()
            assert await asyncio.gather(first, second, third) == [10, 20, 30]
    finally:
        txs.hold.set()  # never leave a transaction open: dropping the schema waits for it
    assert txs.begun == 2  # the second and third shared a transaction
    assert await names(db) == ["n1", "n2", "n3"]


async def test_a_lone_failing_caller_runs_once(items: Database) -> None:
    """A group of one ran alone already: its error goes to its caller, no run again."""
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0.002)
    runs: list[int] = []

    async def failing() -> int:
        runs.append(1)
        raise ValueError("bad event")

    async with asyncio.timeout(10):
        with pytest.raises(ValueError, match="bad event"):
            await committer.run(failing)
    assert runs == [1] and txs.begun == 1


def gated(db: Database, item_id: int, ran: list[int], gate: asyncio.Event) -> Callable[[], Any]:
    async def work() -> int:
        ran.append(item_id)
        await gate.wait()
        await db.execute("INSERT INTO items (id, name) VALUES ($1, $2)", item_id, f"n{item_id}")
        return item_id * 10

    return work


async def test_a_caller_arriving_while_its_lane_is_busy_joins_the_group(items: Database) -> None:
    txs = Transactions(items)
    committer = GroupCommitter(items, window_seconds=0.002)
    ran: list[int] = []
    gate = asyncio.Event()
    first = txs.start(committer.run(gated(items, 1, ran, gate), lane="chat"))
    async with asyncio.timeout(10):
        await until(lambda: ran == [1], limit=10)  # the first body runs, held
        second = txs.start(committer.run(insert(items, 2, ran), lane="chat"))
        third = txs.start(committer.run(insert(items, 3, ran), lane="chat"))
        gate.set()
        assert await asyncio.gather(first, second, third) == [10, 20, 30]
    assert ran == [1, 2, 3] and txs.begun == 1


async def test_callers_of_other_lanes_run_side_by_side(pg_raw_db: Database) -> None:
    """PostgreSQL (on SQLite the second group would wait for the lock): the second
    caller's work, in another lane, commits while the first group's still runs."""
    db = pg_raw_db
    await db.execute(CREATE_ITEMS)
    txs = Transactions(db)
    committer = GroupCommitter(db, window_seconds=0.002, lanes=2)
    ran: list[int] = []
    gate = asyncio.Event()
    first = txs.start(committer.run(gated(db, 1, ran, gate), lane=0))  # hash(0) % 2 == 0
    async with asyncio.timeout(10):
        await until(lambda: ran == [1], limit=10)
        second = txs.start(committer.run(insert(db, 2, ran), lane=1))
        assert await second == 20  # committed while the first group still runs
        assert not first.done()
        gate.set()
        assert await first == 10
    assert txs.begun == 2
    assert await names(db) == ["n1", "n2"]
