"""The homeserver watch of :mod:`bridge.matrix.catchup` with a fake clock and a
scripted ping: when catch-ups run, with which "since", and that they never stack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bridge.clock import FakeClock
from bridge.matrix.catchup import RETRY_LIMIT, RETRY_SECONDS, HomeserverWatch, PushLog
from tests.harness.core import until

START = 1_000.0
INTERVAL = 2.0


class ScriptedPing:
    """Answers the pings from a script of up/down; the last answer repeats."""

    def __init__(self, *answers: bool) -> None:
        self.script = list(answers)
        self.last = answers[-1]
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        if self.script:
            self.last = self.script.pop(0)
        return self.last

    def then(self, *answers: bool) -> None:
        """From the next ping on, answer ``answers`` (the last one repeating)."""
        self.script = list(answers)


class RecordedCatchUp:
    """Records each catch-up's "since"; ``hold`` keeps the next ones running."""

    def __init__(self) -> None:
        self.since: list[float] = []
        self.running = 0
        self.most_at_once = 0
        self.cancelled = False
        self.results: list[bool] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, since: float) -> bool:
        self.since.append(since)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.running -= 1
        return self.results.pop(0) if self.results else True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def catch_up() -> RecordedCatchUp:
    return RecordedCatchUp()


@pytest.fixture
def ping() -> ScriptedPing:
    return ScriptedPing(True)


@pytest.fixture
async def watch(
    clock: FakeClock, ping: ScriptedPing, catch_up: RecordedCatchUp
) -> AsyncIterator[HomeserverWatch]:
    watch = HomeserverWatch(ping=ping, catch_up=catch_up, clock=clock, interval=INTERVAL)
    await watch.start()
    yield watch
    catch_up.release.set()
    await watch.stop()


async def test_a_homeserver_always_up_needs_no_catch_up(
    watch: HomeserverWatch, clock: FakeClock, ping: ScriptedPing, catch_up: RecordedCatchUp
) -> None:
    await clock.advance(60)
    assert ping.calls >= 30
    assert catch_up.since == []


async def test_down_then_up_runs_one_catch_up_since_the_first_failed_ping(
    watch: HomeserverWatch, clock: FakeClock, ping: ScriptedPing, catch_up: RecordedCatchUp
) -> None:
    await clock.advance(INTERVAL)  # pings at START and START + 2 answered
    ping.then(False, False, False, True)  # down at +4, +6, +8; up at +10
    await clock.advance(30)
    assert catch_up.since == [START + 2 * INTERVAL]
    assert watch.runs == 1


async def test_a_flapping_homeserver_does_not_stack_catch_ups(
    watch: HomeserverWatch, clock: FakeClock, ping: ScriptedPing, catch_up: RecordedCatchUp
) -> None:
    catch_up.release.clear()  # the first catch-up takes long
    ping.then(False, True, False, True, False, False, True)
    await clock.advance(30)
    # down at +2, up at +4: its catch-up runs; down at +6 and +10, each followed by a
    # recovery while it runs: those two wait, merged into one
    assert catch_up.since == [START + INTERVAL]
    catch_up.release.set()
    await clock.advance(30)
    assert catch_up.since == [START + INTERVAL, START + 3 * INTERVAL]  # the earliest
    assert catch_up.most_at_once == 1


async def test_a_failed_catch_up_is_retried_a_few_seconds_later(
    watch: HomeserverWatch, clock: FakeClock, ping: ScriptedPing, catch_up: RecordedCatchUp
) -> None:
    catch_up.results = [False]
    ping.then(False, True)  # down at +2, up at +4: the catch-up fails
    await clock.advance(INTERVAL * 2 + 1)
    assert catch_up.since == [START + INTERVAL]
    await clock.advance(RETRY_SECONDS)
    assert catch_up.since == [START + INTERVAL] * 2  # the failed window, again
    await clock.advance(RETRY_SECONDS * 3)
    assert len(catch_up.since) == 2  # it worked: no more


async def test_a_catch_up_failing_again_and_again_waits_for_the_next_recovery(
    watch: HomeserverWatch, clock: FakeClock, ping: ScriptedPing, catch_up: RecordedCatchUp
) -> None:
    catch_up.results = [False] * (RETRY_LIMIT + 1)
    ping.then(False, True)
    await clock.advance(INTERVAL * 2 + 1 + RETRY_SECONDS * (RETRY_LIMIT + 2))
    assert len(catch_up.since) == RETRY_LIMIT + 1  # the first run and its retries
    ping.then(False, True)  # the next recovery covers the failed window too
    await clock.advance(INTERVAL * 3)
    assert len(catch_up.since) == RETRY_LIMIT + 2
    assert catch_up.since[-1] == START + INTERVAL


async def test_a_catch_up_that_raises_does_not_stop_the_watch(
    clock: FakeClock, ping: ScriptedPing
) -> None:
    since: list[float] = []

    async def failing(at: float) -> bool:
        since.append(at)
        raise RuntimeError("boom")

    watch = HomeserverWatch(ping=ping, catch_up=failing, clock=clock, interval=INTERVAL)
    await watch.start()
    try:
        ping.then(False, True)
        await clock.advance(INTERVAL * 2 + 1)
        assert since == [START]
        await clock.advance(RETRY_SECONDS)  # the watch lives on: the retry runs
        assert since == [START, START]
    finally:
        await watch.stop()


async def test_stop_cancels_a_running_catch_up_and_the_pings(
    clock: FakeClock, ping: ScriptedPing, catch_up: RecordedCatchUp
) -> None:
    watch = HomeserverWatch(ping=ping, catch_up=catch_up, clock=clock, interval=INTERVAL)
    await watch.start()
    catch_up.release.clear()
    ping.then(False, True)
    await clock.advance(10)
    assert catch_up.running == 1
    await watch.stop()
    assert catch_up.cancelled and catch_up.running == 0
    calls = ping.calls
    await clock.advance(60)
    assert ping.calls == calls  # no more pings


async def test_a_lower_transaction_id_asks_for_a_catch_up_since_the_previous_one(
    watch: HomeserverWatch, clock: FakeClock, catch_up: RecordedCatchUp
) -> None:
    await watch.note_transaction("41", [{"event_id": "$a"}])
    await clock.advance(5)
    await watch.note_transaction("42", [{"event_id": "$b"}])
    await watch.note_transaction("42", [{"event_id": "$b"}])  # a retry: the same id
    await clock.advance(5)
    assert catch_up.since == []
    await watch.note_transaction("1", [{"event_id": "$c"}])  # numbered from 1 again
    await clock.settle()
    assert catch_up.since == [START + 5]  # when transaction 42 came
    assert watch.pushes.was_pushed("$b") and not watch.pushes.was_pushed("$z")


def test_the_push_log_forgets_the_oldest_events_first() -> None:
    pushes = PushLog(size=2)
    for txn, event in (("1", "$a"), ("2", "$b"), ("3", "$c")):
        assert pushes.note(txn, [{"event_id": event}, "not an event"], now=START) is None
    assert [pushes.was_pushed(e) for e in ("$a", "$b", "$c")] == [False, True, True]
    assert pushes.note("not-a-number", [], now=START) is None


async def test_a_push_waits_for_the_catch_up_it_set_off(
    watch: HomeserverWatch, clock: FakeClock, catch_up: RecordedCatchUp
) -> None:
    """The events lost in the restart go to WhatsApp before the newer ones pushed."""
    await watch.note_transaction("7", [{"event_id": "$old"}])
    catch_up.release.clear()
    push = asyncio.create_task(watch.note_transaction("1", [{"event_id": "$new"}]))
    await until(lambda: catch_up.running > 0, limit=5, what="the catch-up")
    assert not push.done()  # held back while the catch-up reads the rooms
    catch_up.release.set()
    async with asyncio.timeout(5):
        await push
    assert catch_up.running == 0 and len(catch_up.since) == 1


async def test_a_push_while_the_pings_say_down_is_a_recovery(
    ping: ScriptedPing, clock: FakeClock, catch_up: RecordedCatchUp
) -> None:
    watch = HomeserverWatch(ping=ping, catch_up=catch_up, clock=clock, interval=INTERVAL)
    await watch.start()
    ping.then(False, False, False)
    await clock.advance(INTERVAL * 2)
    down_since = clock.now() - INTERVAL * 2
    async with asyncio.timeout(5):
        await watch.note_transaction("5", [{"event_id": "$x"}])
    assert len(catch_up.since) == 1 and catch_up.since[0] <= down_since + INTERVAL
    await watch.stop()


async def test_how_long_the_homeserver_is_unreachable_is_known(
    watch: HomeserverWatch, clock: FakeClock, ping: ScriptedPing
) -> None:
    assert watch.unreachable_for() is None
    ping.then(False)  # down from the next ping on, at +2
    await clock.advance(INTERVAL + 30)
    assert watch.unreachable_for() == 30
    ping.then(True)
    await clock.advance(INTERVAL)
    assert watch.unreachable_for() is None


def test_only_synapse_numbering_counts_as_a_restart_sign() -> None:
    pushes = PushLog()
    assert pushes.note("9", [], now=1.0) is None
    for odd in ("²", "٣", "1" * 5000, "", "-1", "abc"):  # any id is valid: none a restart
        assert pushes.note(odd, [{"event_id": 5}, "x", {"event_id": "$e"}], now=2.0) is None
    assert pushes.was_pushed("$e")
    assert pushes.note("3", [], now=3.0) == 1.0
