"""The one token bucket: rate, burst, refill, holds; table-driven on a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from bridge.clock import FakeClock
from bridge.token_bucket import TokenBucket


@dataclass(frozen=True)
class Case:
    name: str
    per_second: float
    burst: int
    steps: tuple[tuple[str, float], ...]  # ("take", _) | ("wait", seconds) | ("hold", seconds)
    waits: tuple[float, ...]  # seconds_until_token after each step


CASES = [
    Case("a full bucket has a token", 1.0, 3, (), ()),
    Case(
        "the burst goes at once, then one a second",
        1.0,
        3,
        (("take", 0), ("take", 0), ("take", 0), ("wait", 0.25)),
        (0.0, 0.0, 1.0, 0.75),
    ),
    Case(
        "a burst of one paces every token",
        2.0,
        1,
        (("take", 0), ("wait", 0.5), ("take", 0)),
        (0.5, 0.0, 0.5),
    ),
    Case(
        "an idle bucket refills no further than the burst",
        1.0,
        2,
        (("take", 0), ("take", 0), ("wait", 10), ("take", 0), ("take", 0)),
        (0.0, 1.0, 0.0, 0.0, 1.0),
    ),
    Case(
        "a partial refill earns only what elapsed",
        1.0,
        3,
        (("take", 0), ("take", 0), ("take", 0), ("wait", 1.5), ("take", 0)),
        (0.0, 0.0, 1.0, 0.0, 0.5),
    ),
    Case(
        "a hold keeps every token back, then gives one",
        1.0,
        4,
        (("hold", 5), ("wait", 5), ("take", 0)),
        (5.0, 0.0, 1.0),
    ),
    Case(
        "a shorter hold does not cut a longer one short",
        1.0,
        4,
        (("hold", 5), ("hold", 1), ("wait", 1)),
        (5.0, 5.0, 4.0),
    ),
    Case(
        "a hold shorter than the refill still gives a token when it ends",
        0.5,
        1,
        (("take", 0), ("hold", 0.5), ("wait", 0.5)),
        (2.0, 0.5, 0.0),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_token_bucket(case: Case) -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_second=case.per_second, burst=case.burst, clock=clock)
    assert bucket.seconds_until_token() == 0.0
    for (action, seconds), expected in zip(case.steps, case.waits, strict=True):
        if action == "take":
            bucket.take()
        elif action == "wait":
            await clock.advance(seconds)
        else:
            bucket.hold_until(clock.monotonic() + seconds)
        assert bucket.seconds_until_token() == pytest.approx(expected), (action, seconds)


@pytest.mark.parametrize(("per_minute", "interval"), [(60, 1.0), (20, 3.0), (120, 0.5), (1, 60.0)])
def test_a_rate_per_minute_is_an_interval_in_seconds(per_minute: float, interval: float) -> None:
    bucket = TokenBucket.per_minute(per_minute, burst=1, clock=FakeClock())
    assert bucket.interval == pytest.approx(interval)


@pytest.mark.parametrize(("per_second", "burst"), [(0, 1), (-1, 1), (1, 0), (1, -3)])
def test_a_bucket_that_could_never_give_a_token_is_refused(per_second: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(per_second=per_second, burst=burst, clock=FakeClock())


async def test_waiting_for_a_token_sleeps_on_the_clock_until_it_is_due() -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_second=4.0, burst=1, clock=clock)
    bucket.take()
    waiter = asyncio.create_task(bucket.wait_for_token())
    await clock.advance(0.2)
    assert not waiter.done()
    await clock.advance(0.05)
    await waiter
    assert clock.monotonic() == pytest.approx(0.25)
    assert bucket.seconds_until_token() == 0.0  # waiting took nothing
