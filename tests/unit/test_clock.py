from __future__ import annotations

import asyncio

from bridge.clock import FakeClock


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = FakeClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 20), ("a", 5), ("c", 60))]
    await clock.advance(30)
    assert woke == [("a", 105.0), ("b", 120.0)]
    assert clock.now() == 130.0 and clock.pending_sleepers == 1
    await clock.advance(30)
    assert woke[-1] == ("c", 160.0)
    await asyncio.gather(*tasks)


async def test_sleep_chains_advance_within_one_call() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep(10)
            ticks.append(clock.monotonic())

    task = asyncio.create_task(ticker())
    await clock.advance(35)
    assert ticks == [10.0, 20.0, 30.0]
    await task
