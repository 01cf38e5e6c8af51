"""How long the event loop was blocked: a ticker that should wake every few
milliseconds records how late it woke. Used by the hostile-input tests, which
assert that no request, however shaped, holds the loop for long.

    async with LoopStallMonitor() as monitor:
        ...  # send hostile requests to a bridge in this loop
    assert monitor.worst < 0.1, monitor.report()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType


class LoopStallMonitor:
    """Records the longest time the running loop did not run this ticker."""

    def __init__(self, *, tick: float = 0.005) -> None:
        self._tick = tick
        self._task: asyncio.Task[None] | None = None
        self.worst = 0.0  # seconds late, the worst wake-up seen
        self.ticks = 0

    async def __aenter__(self) -> LoopStallMonitor:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)  # let the ticker start before the work does
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            expected = time.perf_counter() + self._tick
            await asyncio.sleep(self._tick)
            self.ticks += 1
            self.worst = max(self.worst, time.perf_counter() - expected)

    def report(self) -> str:
        return f"worst loop stall {self.worst * 1000:.1f} ms over {self.ticks} ticks"
