"""The journal of refused items (bridge/journal/replay.py) over a scripted handler:
kept when the database refuses, replayed in order when it is back and at start, set
aside when only one item is refused, counted and reported when it cannot be kept."""

from __future__ import annotations

import asyncio
import errno
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.errors import DatabaseError
from bridge.journal import Journal, JournalStore, Limits
from bridge.journal import store as store_module
from bridge.metrics import Metrics
from tests.harness.core import until


class IntCodec:
    def encode(self, item: int) -> dict[str, Any]:
        return {"n": item}

    def decode(self, body: dict[str, Any]) -> int:
        if not isinstance(body.get("n"), int):
            raise ValueError("not an item")
        return int(body["n"])

    def lane(self, item: int) -> str:
        return "one"  # a single lane: the global order is the lane's order


@dataclass
class Database:
    """The handler's side: takes items unless down; may refuse one item for good."""

    down: bool = False
    poison: set[int] = field(default_factory=set)
    broken: set[int] = field(default_factory=set)  # a bug: not a database error
    taken: list[int] = field(default_factory=list)
    probes: int = 0

    async def handle(self, item: int) -> None:
        await asyncio.sleep(0)
        if self.down:
            raise DatabaseError("connection refused")
        if item in self.poison:
            raise DatabaseError("value too long for column")
        if item in self.broken:
            raise RuntimeError("relay bug")
        self.taken.append(item)

    async def probe(self) -> None:
        self.probes += 1
        if self.down:
            raise DatabaseError("connection refused")


@dataclass
class Listener:
    backlog: list[tuple[str, int, bool]] = field(default_factory=list)
    losses: list[tuple[str, str]] = field(default_factory=list)

    async def on_journal_backlog(self, name: str, *, pending: int, over: bool) -> None:
        self.backlog.append((name, pending, over))

    async def on_journal_loss(self, name: str, *, reason: str) -> None:
        self.losses.append((name, reason))


@dataclass
class Kit:
    journal: Journal[int]
    db: Database
    clock: FakeClock
    metrics: Metrics
    listener: Listener
    set_aside: list[tuple[int, str]]
    directory: Path

    def metric(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"journal": "test"})
        return value or 0.0

    async def deliver_all(self, items: range | list[int]) -> None:
        for item in items:
            await self.journal.deliver(item)


def make(directory: Path, db: Database | None = None, **limits: Any) -> Kit:
    db = db or Database()
    clock = FakeClock()
    metrics = Metrics()
    listener = Listener()
    set_aside: list[tuple[int, str]] = []

    async def on_failed(item: int, exc: Exception) -> None:
        set_aside.append((item, str(exc)))

    journal: Journal[int] = Journal(
        "test",
        JournalStore(directory),
        IntCodec(),
        handler=db.handle,
        probe=db.probe,
        clock=clock,
        rng=random.Random(1),
        metrics=metrics,
        on_failed=on_failed,
        listener=listener,
        limits=Limits(**limits),
    )
    return Kit(journal, db, clock, metrics, listener, set_aside, directory)


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    k = make(tmp_path / "journal")
    await k.journal.start()
    yield k
    await k.journal.stop()


async def replayed(kit: Kit) -> None:
    await until(lambda: not kit.journal.holding, what="journal drained", clock=kit.clock)


async def test_items_go_straight_to_the_handler_while_the_database_takes_them(kit: Kit) -> None:
    await kit.deliver_all(range(3))
    assert kit.db.taken == [0, 1, 2]
    assert not list(kit.directory.glob("*.jnl"))  # nothing written
    assert kit.metric("zapbridge_inbound_journaled_total") == 0


async def test_refused_items_are_kept_then_replayed_in_order_behind_the_older_ones(
    kit: Kit,
) -> None:
    await kit.journal.deliver(0)
    kit.db.down = True
    await kit.deliver_all(range(1, 6))  # each returns: kept on disk
    assert kit.db.taken == [0]
    assert kit.journal.pending == 5
    assert kit.metric("zapbridge_inbound_journaled_total") == 5
    assert kit.metric("zapbridge_journal_pending") == 5
    kit.db.down = False
    await kit.deliver_all(range(6, 9))  # the database is back, but older items wait
    await replayed(kit)
    assert kit.db.taken == list(range(9))  # once each, in order
    assert kit.metric("zapbridge_journal_pending") == 0
    assert kit.metric("zapbridge_inbound_journaled_total") == 8
    assert kit.metric("zapbridge_inbound_dropped_total") == 0
    assert not list(kit.directory.glob("*.jnl"))  # consumed and removed
    await kit.deliver_all([9])  # and straight to the handler again
    assert kit.db.taken[-1] == 9 and not kit.journal.holding


async def test_items_delivered_at_once_keep_their_order(kit: Kit) -> None:
    kit.db.down = True
    await kit.journal.deliver(0)
    await asyncio.gather(*(kit.journal.deliver(n) for n in range(1, 50)))
    kit.db.down = False
    await replayed(kit)
    assert kit.db.taken == list(range(50))


async def test_deliver_returns_only_once_the_item_is_fsynced(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        synced.append(fd)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    kit.db.down = True
    await kit.journal.deliver(1)
    assert synced  # before deliver returned
    [segment] = kit.directory.glob("*.jnl")
    assert b'{"n":1}' in segment.read_bytes()


async def test_the_replay_waits_while_the_database_is_away(kit: Kit) -> None:
    kit.db.down = True
    await kit.deliver_all(range(3))
    await until(lambda: kit.db.probes >= 10, clock=kit.clock, what="ten probes")
    assert kit.db.taken == [] and kit.set_aside == []  # retried, never set aside
    kit.db.down = False
    await replayed(kit)
    assert kit.db.taken == [0, 1, 2]


async def test_an_item_refused_while_the_database_answers_is_set_aside(kit: Kit) -> None:
    kit.db.down = True
    await kit.deliver_all(range(4))
    kit.db.down = False
    kit.db.poison = {1}
    kit.db.broken = {2}
    await replayed(kit)
    assert kit.db.taken == [0, 3]  # the others were not blocked
    assert [item for item, _ in kit.set_aside] == [1, 2]
    assert "value too long" in kit.set_aside[0][1]
    assert kit.metric("zapbridge_inbound_dropped_total") == 0


async def test_what_an_earlier_run_kept_goes_before_new_items(tmp_path: Path) -> None:
    first = make(tmp_path / "j", Database(down=True))
    await first.journal.start()
    await first.deliver_all(range(5))
    await first.journal.stop()  # still refused: kept on disk

    db = Database()
    second = make(tmp_path / "j", db)
    await second.journal.start()
    assert second.journal.holding
    await second.deliver_all(range(5, 8))
    await replayed(second)
    await second.journal.stop()
    assert db.taken == list(range(8))


async def test_a_replay_interrupted_after_handling_hands_over_again(tmp_path: Path) -> None:
    """At least once: the handler must recognise what it took before (the relay does)."""
    first = make(tmp_path / "j", Database(down=True))
    await first.journal.start()
    await first.deliver_all(range(3))
    first.db.down = False
    gate = asyncio.Event()
    handle = first.db.handle

    async def slow_second(item: int) -> None:
        await handle(item)
        if item == 1:
            await gate.wait()  # stopped here: 0 and 1 taken, nothing consumed yet

    first.journal._handler = slow_second  # the crash point
    await until(lambda: first.db.taken == [0, 1], clock=first.clock)
    await first.journal.stop()

    db = Database()
    second = make(tmp_path / "j", db)
    await second.journal.start()
    await replayed(second)
    await second.journal.stop()
    assert db.taken == [0, 1, 2]


async def test_a_journal_that_cannot_be_written_counts_and_reports_the_loss(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    kit.db.down = True
    monkeypatch.setattr(store_module.os, "write", disk_full)
    with pytest.raises(DatabaseError, match=r"not journaled.*No space left"):
        await kit.journal.deliver(1)
    assert kit.metric("zapbridge_inbound_dropped_total") == 1
    assert kit.metric("zapbridge_inbound_journaled_total") == 0
    [(name, reason)] = kit.listener.losses
    assert name == "test" and "No space left" in reason
    monkeypatch.undo()
    assert not kit.journal.holding  # nothing kept: the next item tries the database
    kit.db.down = False
    await kit.journal.deliver(2)
    assert kit.db.taken == [2]


async def test_a_record_that_cannot_be_read_back_is_lost_loudly(kit: Kit) -> None:
    kit.db.down = True
    await kit.deliver_all([1])
    kit.journal._codec = BadDecoder()  # type: ignore[assignment]
    kit.db.down = False
    await replayed(kit)
    assert kit.metric("zapbridge_inbound_dropped_total") == 1
    assert "cannot be read back" in kit.listener.losses[0][1]


class BadDecoder(IntCodec):
    def decode(self, body: dict[str, Any]) -> int:
        raise ValueError("unknown record version")


async def test_past_the_threshold_the_listener_is_told_and_health_degrades(tmp_path: Path) -> None:
    kit = make(tmp_path / "j", Database(down=True), alert_records=3)
    await kit.journal.start()
    await kit.deliver_all(range(3))
    assert kit.listener.backlog == [] and kit.journal.problems() == []
    await kit.journal.deliver(3)
    assert kit.listener.backlog == [("test", 4, True)]
    [problem] = kit.journal.problems()
    assert problem.startswith("journal test: 4 items the database refused")
    kit.db.down = False
    await replayed(kit)
    assert kit.listener.backlog[-1] == ("test", 0, False)
    assert kit.journal.problems() == []
    await kit.journal.stop()


async def test_before_start_and_after_stop_the_handler_answers_alone(tmp_path: Path) -> None:
    kit = make(tmp_path / "j", Database(down=True))
    with pytest.raises(DatabaseError, match="connection refused"):
        await kit.journal.deliver(1)
    await kit.journal.start()
    await kit.journal.stop()
    with pytest.raises(DatabaseError, match="connection refused"):
        await kit.journal.deliver(2)
    assert kit.metric("zapbridge_inbound_dropped_total") == 0


class ParityCodec(IntCodec):
    def lane(self, item: int) -> str:
        return "even" if item % 2 == 0 else "odd"


async def test_lanes_keep_their_own_order_and_do_not_wait_for_each_other(tmp_path: Path) -> None:
    kit = make(tmp_path / "j", Database(down=True))
    kit.journal._codec = ParityCodec()  # type: ignore[assignment]
    await kit.journal.start()
    await kit.deliver_all(range(8))
    gate = asyncio.Event()
    handle = kit.db.handle

    async def slow_zero(item: int) -> None:
        if item == 0:
            await gate.wait()
        await handle(item)

    kit.journal._handler = slow_zero
    kit.db.down = False
    await until(lambda: kit.db.taken == [1, 3, 5, 7], clock=kit.clock, what="the odd lane")
    gate.set()
    await replayed(kit)
    assert [n for n in kit.db.taken if n % 2 == 0] == [0, 2, 4, 6]
    await kit.journal.stop()


class Hanging(Database):
    """A database that does not answer until released (a lock held, a network cut)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.refuse_after = False
        self.calls: list[int] = []

    async def handle(self, item: int) -> None:
        self.calls.append(item)
        if not self.release.is_set():
            await self.release.wait()
            if self.refuse_after:
                raise DatabaseError("database is locked")
        await super().handle(item)


async def test_a_database_that_does_not_answer_in_time_is_kept_waiting(tmp_path: Path) -> None:
    db = Hanging()
    kit = make(tmp_path / "j", db, answer_seconds=0.05)
    await kit.journal.start()
    await asyncio.wait_for(kit.journal.deliver(0), 5)  # returns: kept, still being tried
    assert kit.journal.holding and db.calls == [0]
    await kit.deliver_all([1, 2])  # behind it, without trying the database
    assert db.calls == [0]
    db.release.set()  # the first attempt goes through after all
    await replayed(kit)
    assert db.taken == [0, 1, 2]
    assert db.calls == [0, 1, 2]  # the kept copy of 0 was not handed over again
    await kit.journal.stop()


async def test_a_first_attempt_refused_late_is_replayed_from_the_journal(tmp_path: Path) -> None:
    db = Hanging()
    db.refuse_after = True
    kit = make(tmp_path / "j", db, answer_seconds=0.05)
    await kit.journal.start()
    await kit.deliver_all([0, 1])
    db.release.set()
    await replayed(kit)
    assert db.taken == [0, 1] and db.calls == [0, 0, 1]
    await kit.journal.stop()


async def test_a_first_attempt_still_running_at_stop_is_replayed_at_the_next_start(
    tmp_path: Path,
) -> None:
    db = Hanging()
    kit = make(tmp_path / "j", db, answer_seconds=0.05)
    await kit.journal.start()
    await kit.deliver_all([0])
    await kit.journal.stop()  # the attempt is cancelled; the kept copy stays
    second = make(tmp_path / "j")
    await second.journal.start()
    await replayed(second)
    assert second.db.taken == [0] and db.taken == []
    await second.journal.stop()


async def test_without_a_deadline_the_caller_waits_for_the_handler(tmp_path: Path) -> None:
    """``answer_seconds=None`` (ops alerts: nobody waits on them): refusals are kept,
    a slow handler is simply awaited."""
    db = Hanging()
    kit = make(tmp_path / "j", db, answer_seconds=None)
    await kit.journal.start()
    slow = asyncio.ensure_future(kit.journal.deliver(0))
    await asyncio.sleep(0.1)
    assert not slow.done() and not kit.journal.holding
    db.release.set()
    await slow
    assert db.taken == [0]
    db.down = True
    await kit.deliver_all([1, 2])
    assert kit.journal.pending == 2
    db.down = False
    await replayed(kit)
    assert db.taken == [0, 1, 2]
    await kit.journal.stop()
