"""Outbound pacing for one WhatsApp number: a token bucket in front of an ordered queue.

WhatsApp bans numbers that send too fast, so every outbound operation of a session
(send, react, edit, revoke) passes through one :class:`Pacer`:

- the bucket holds up to ``burst`` tokens and refills at ``per_minute`` tokens a
  minute; an operation takes one token, waiting for it when the bucket is empty;
- operations run one at a time, in the order :meth:`Pacer.run` was called, so
  messages reach WhatsApp (and complete) in the order the bridge produced them.

The bucket is kept as a "theoretical arrival time" (the GCRA form of a token
bucket): exact on a fake clock, no refill loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bridge.clock import Clock

T = TypeVar("T")

# A grant this close to its due time counts as due: clocks add up floats.
_TOLERANCE = 1e-6


class Pacer:
    """Paces and orders the outbound operations of one WhatsApp number."""

    def __init__(self, *, per_minute: float, burst: int, clock: Clock) -> None:
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive; got {per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1; got {burst}")
        self._interval = 60.0 / per_minute
        self._burst = burst
        self._clock = clock
        self._order = asyncio.Lock()  # FIFO: waiters acquire in arrival order
        self._tat: float | None = None  # theoretical arrival time of the next token, monotonic
        self._pending = 0

    @property
    def interval(self) -> float:
        """Seconds per token once the burst is spent."""
        return self._interval

    @property
    def pending(self) -> int:
        """Operations accepted by :meth:`run` and not finished yet (queued or running)."""
        return self._pending

    def ready_at(self) -> float:
        """The monotonic time at which the next token is available."""
        now = self._clock.monotonic()
        if self._tat is None:
            return now
        return max(now, self._tat - (self._burst - 1) * self._interval)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        check: Callable[[], None] | None = None,
    ) -> T:
        """Run ``operation`` when its turn and a token come; return its result.

        ``check`` is called when the operation reaches the head of the queue and
        again once its token is due; whatever it raises fails this call without
        spending a token (a session that dropped meanwhile fails its queue at once).
        An operation that raises has spent its token: it may have reached WhatsApp.
        """
        self._pending += 1
        try:
            async with self._order:
                if check is not None:
                    check()
                await self._wait_for_token()
                if check is not None:
                    check()
                self._take_token()
                return await operation()
        finally:
            self._pending -= 1

    async def _wait_for_token(self) -> None:
        while (wait := self.ready_at() - self._clock.monotonic()) > _TOLERANCE:
            await self._clock.sleep(wait)

    def _take_token(self) -> None:
        now = self._clock.monotonic()
        self._tat = max(self._tat if self._tat is not None else now, now) + self._interval
