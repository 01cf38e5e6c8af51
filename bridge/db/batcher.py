"""Gathering concurrent requests into one statement.

A :class:`Batcher` runs a batch function over the requests that arrive while its
previous batch is in flight: the first request goes at once (on the loop's next
turn, with whatever arrived in the same turn), and every request that arrives while
a statement is out joins the next one. Under load one round trip serves many
requests; alone, a request waits for nobody. PostgreSQL's statements are round
trips, so the bridge batches the done-marks of deliveries and their reads this way
(docs/architecture.md, "Round trips on PostgreSQL").

A failed batch fails each of its requests with the same error, as their own
statements would have; the next batch is not affected. A caller that gives up
(cancelled) leaves its request in the batch and takes no answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

MAX_BATCH = 200


class Batcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Out]]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        """``run``: the batch function, one answer per request, in order."""
        self._run = run
        self._max_batch = max_batch
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def __call__(self, request: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._queue.append((request, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._send(batch)
        except asyncio.CancelledError:  # the loop stops: nobody waits in vain
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._flushing = None

    async def _send(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            answers = await self._run([request for request, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # each request raises it, as its own statement would
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
