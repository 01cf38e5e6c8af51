"""Outbound pacing for one WhatsApp number: a token bucket in front of an ordered queue.

WhatsApp bans numbers that send too fast, so every outbound operation of a session
(send, react, edit, revoke) passes through one :class:`Pacer`:

- the bucket (:class:`bridge.token_bucket.TokenBucket`) holds up to ``burst`` tokens
  and refills at ``per_minute`` tokens a minute; an operation takes one token,
  waiting for it when the bucket is empty;
- operations run one at a time, in the order :meth:`Pacer.run` was called, so
  messages reach WhatsApp (and complete) in the order the bridge produced them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bridge.clock import Clock
from bridge.token_bucket import TokenBucket

T = TypeVar("T")


class Pacer:
    """Paces and orders the outbound operations of one WhatsApp number."""

    def __init__(self, *, per_minute: float, burst: int, clock: Clock) -> None:
        self._bucket = TokenBucket.per_minute(per_minute, burst=burst, clock=clock)
        self._order = asyncio.Lock()  # FIFO: waiters acquire in arrival order
        self._pending = 0

    @property
    def interval(self) -> float:
        """Seconds per token once the burst is spent."""
        return self._bucket.interval

    @property
    def pending(self) -> int:
        """Operations accepted by :meth:`run` and not finished yet (queued or running)."""
        return self._pending

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
                await self._bucket.wait_for_token()
                if check is not None:
                    check()
                self._bucket.take()
                return await operation()
        finally:
            self._pending -= 1
