"""The per-number pacer: token bucket rate, burst, FIFO order, failure isolation."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.clock import FakeClock
from bridge.errors import SessionNotConnected
from bridge.whatsapp.pacing import Pacer


class Recorder:
    """Operations that note when they ran and in which order they finished."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ran: list[tuple[int, float]] = []
        self.finished: list[int] = []

    def op(self, n: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            self.ran.append((n, self.clock.monotonic()))
            return n

        return run

    async def call(self, pacer: Pacer, n: int) -> int:
        result = await pacer.run(self.op(n))
        self.finished.append(result)
        return result


async def test_thirty_sends_burst_five_then_one_every_three_seconds() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=20, burst=5, clock=clock)
    rec = Recorder(clock)
    tasks = [asyncio.create_task(rec.call(pacer, n)) for n in range(30)]
    await clock.settle()
    assert [n for n, _ in rec.ran] == [0, 1, 2, 3, 4]
    assert pacer.pending == 25

    await clock.advance(100)
    assert [await t for t in tasks] == list(range(30))
    assert rec.finished == list(range(30))  # completed in call order
    times = [t for _, t in rec.ran]
    assert times[:5] == [0.0] * 5
    assert times[5:] == pytest.approx([3.0 * k for k in range(1, 26)])
    assert pacer.pending == 0


async def test_measured_rate_holds_in_every_window() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=20, burst=5, clock=clock)
    rec = Recorder(clock)
    tasks = [asyncio.create_task(rec.call(pacer, n)) for n in range(60)]
    await clock.advance(400)
    await asyncio.gather(*tasks)
    times = [t for _, t in rec.ran]
    for start in times:  # any 60 s window holds at most burst + 20 grants
        in_window = bisect.bisect_right(times, start + 60 - 1e-9) - bisect.bisect_left(times, start)
        assert in_window <= 5 + 20
    steady = times[5:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) * 60
    assert rate == pytest.approx(20)


async def test_an_idle_bucket_refills_to_the_burst() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=20, burst=5, clock=clock)
    rec = Recorder(clock)
    first = [asyncio.create_task(rec.call(pacer, n)) for n in range(5)]
    await clock.settle()
    await asyncio.gather(*first)
    await clock.advance(15)  # 15 s refill 5 tokens
    second = [asyncio.create_task(rec.call(pacer, n)) for n in range(5, 11)]
    await clock.settle()
    assert [n for n, _ in rec.ran] == list(range(10))  # a new burst of five at once
    await clock.advance(3)
    await asyncio.gather(*second)
    assert rec.ran[-1] == (10, pytest.approx(18.0))


async def test_a_partial_refill_gives_only_the_tokens_earned() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=60, burst=3, clock=clock)
    rec = Recorder(clock)
    await asyncio.gather(*(rec.call(pacer, n) for n in range(3)))
    await clock.advance(2)  # two tokens back
    tasks = [asyncio.create_task(rec.call(pacer, n)) for n in range(3, 6)]
    await clock.settle()
    assert len(rec.ran) == 5
    await clock.advance(1)
    await asyncio.gather(*tasks)
    assert rec.ran[-1] == (5, pytest.approx(3.0))


async def test_a_failing_operation_spends_its_token_and_the_queue_goes_on() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=60, burst=1, clock=clock)
    rec = Recorder(clock)

    async def boom() -> int:
        raise RuntimeError("engine exploded")

    failing = asyncio.create_task(pacer.run(boom))
    after = asyncio.create_task(rec.call(pacer, 1))
    await clock.settle()
    with pytest.raises(RuntimeError, match="exploded"):
        await failing
    await clock.advance(1)
    assert await after == 1
    assert rec.ran == [(1, pytest.approx(1.0))]


async def test_a_failing_check_spends_no_token() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=60, burst=1, clock=clock)
    rec = Recorder(clock)

    def refuse() -> None:
        raise SessionNotConnected("session acme/sales is DISCONNECTED")

    with pytest.raises(SessionNotConnected):
        await pacer.run(rec.op(0), check=refuse)
    assert await pacer.run(rec.op(1)) == 1  # the token is still there
    assert rec.ran == [(1, 0.0)]


async def test_check_runs_again_when_the_token_is_due() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=60, burst=1, clock=clock)
    rec = Recorder(clock)
    allowed = True

    def check() -> None:
        if not allowed:
            raise SessionNotConnected("session acme/sales is DISCONNECTED")

    await pacer.run(rec.op(0), check=check)
    waiting = asyncio.create_task(pacer.run(rec.op(1), check=check))
    await clock.settle()
    allowed = False  # the session drops while the call waits for its token
    await clock.advance(1)
    with pytest.raises(SessionNotConnected):
        await waiting
    assert [n for n, _ in rec.ran] == [0]


async def test_a_cancelled_caller_leaves_the_queue() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=60, burst=1, clock=clock)
    rec = Recorder(clock)
    tasks = [asyncio.create_task(rec.call(pacer, n)) for n in range(4)]
    await clock.settle()
    tasks[1].cancel()  # waiting for its token
    tasks[2].cancel()  # waiting for its turn
    await clock.advance(5)
    assert [await tasks[0], await tasks[3]] == [0, 3]
    assert rec.ran == [(0, 0.0), (3, pytest.approx(1.0))]


async def test_operations_never_overlap() -> None:
    clock = FakeClock()
    pacer = Pacer(per_minute=600, burst=10, clock=clock)
    running = 0
    peak = 0

    async def slow() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await clock.sleep(0.5)
        running -= 1

    tasks = [asyncio.create_task(pacer.run(slow)) for _ in range(5)]
    await clock.advance(10)
    await asyncio.gather(*tasks)
    assert peak == 1


@pytest.mark.parametrize(("per_minute", "burst"), [(0, 5), (-1, 5), (20, 0)])
def test_invalid_pacing_is_refused(per_minute: float, burst: int) -> None:
    with pytest.raises(ValueError):
        Pacer(per_minute=per_minute, burst=burst, clock=FakeClock())


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.integers(min_value=1, max_value=120),
    burst=st.integers(min_value=1, max_value=8),
    gaps=st.lists(st.sampled_from([0.0, 0.0, 0.25, 1.0, 2.0, 7.5, 30.0]), min_size=1, max_size=40),
)
def test_pacing_properties(per_minute: int, burst: int, gaps: list[float]) -> None:
    """FIFO; grants as a plain token bucket; never more than burst + elapsed/interval."""

    async def scenario() -> tuple[list[float], list[float], list[int]]:
        clock = FakeClock()
        pacer = Pacer(per_minute=per_minute, burst=burst, clock=clock)
        rec = Recorder(clock)
        arrivals: list[float] = []
        tasks = []
        for n, gap in enumerate(gaps):
            await clock.advance(gap)
            arrivals.append(clock.monotonic())
            tasks.append(asyncio.create_task(rec.call(pacer, n)))
            await clock.settle()
        await clock.advance(len(gaps) * pacer.interval + 1)
        await asyncio.gather(*tasks)
        return arrivals, [t for _, t in rec.ran], [n for n, _ in rec.ran]

    arrivals, grants, order = asyncio.run(scenario())
    interval = 60 / per_minute
    assert order == list(range(len(gaps)))
    assert grants == pytest.approx(reference_grants(arrivals, burst, interval), abs=1e-5)
    for i, grant in enumerate(grants):
        assert grant >= arrivals[i] - 1e-9
        for j in range(i):  # grants j..i happen within grants[i] - grants[j]
            assert i - j + 1 <= burst + (grants[i] - grants[j]) / interval + 1e-5


def reference_grants(arrivals: list[float], burst: int, interval: float) -> list[float]:
    """A plain token bucket with a FIFO queue, tokens as floats."""
    tokens, last, previous = float(burst), 0.0, 0.0
    grants = []
    for arrival in arrivals:
        at = max(arrival, previous)
        tokens = min(burst, tokens + (at - last) / interval)
        last = at
        if tokens < 1:
            at += (1 - tokens) * interval
            tokens, last = 1.0, at
        tokens -= 1
        previous = at
        grants.append(at)
    return grants
