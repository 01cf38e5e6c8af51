"""The queue menu's timer (docs/tickets.md#queues): a ticket whose customer has not
picked a queue by ``tickets.menu_deadline`` goes to its session's default queue.

The deadlines are columns, so a restart resumes them: at start the sweep routes
whatever came due while no bridge ran. It then sleeps until the earliest deadline in
the database, and never longer than the shortest ``menu.timeout_seconds`` of the
config, so a menu sent meanwhile (whose deadline is at least that far away) is never
late. Routing is compare-and-set on the deadline: an answer that arrives just before
the sweep wins, and two bridges never route a ticket twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bridge.clock import Clock
from bridge.config import Config
from bridge.core.operations import ThreadNotice, UpdateCard
from bridge.core.outgoing import Outgoing
from bridge.core.queue_tickets import MenuExpiry, QueueTickets
from bridge.db import Repositories
from bridge.errors import BridgeError

log = logging.getLogger("bridge.core.menu_timeouts")


class MenuTimeouts:
    BATCH = 100
    MIN_PAUSE_SECONDS = 1.0
    """After a failed pass, or when a due ticket is left for the next one."""

    def __init__(
        self,
        config: Config,
        repos: Repositories,
        *,
        queues: QueueTickets,
        outgoing: Outgoing,
        clock: Clock,
    ) -> None:
        self._repo = repos.ticket_queues
        self._queues = queues
        self._out = outgoing
        self._clock = clock
        timeouts = [s.menu.timeout_seconds for s in config.sessions if s.queues and s.menu]
        self._longest_pause = float(min(timeouts)) if timeouts else None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether any session has queues."""
        return self._longest_pause is not None

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="menu-timeouts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            pause = self.MIN_PAUSE_SECONDS
            try:
                await self.sweep()
                pause = await self.next_pause()
            except BridgeError as exc:  # the database is away: the next pass tries again
                log.error("menu timeout sweep failed: %s", exc.explanation)
            except Exception:  # a bug must not end the sweep for good: told, tried again
                log.exception("menu timeout sweep failed")
            await self._clock.sleep(pause)

    async def next_pause(self) -> float:
        """Until the earliest deadline, at most the shortest timeout."""
        longest = self._longest_pause or self.MIN_PAUSE_SECONDS
        deadline = await self._repo.next_deadline()
        if deadline is None:
            return longest
        return max(self.MIN_PAUSE_SECONDS, min(deadline - self._clock.now(), longest))

    async def sweep(self) -> int:
        """One pass: every ticket whose deadline passed goes to its default queue.
        Returns how many were routed."""
        routed = 0
        for row in await self._repo.list_due(now=self._clock.now(), limit=self.BATCH):
            async with self._out.transaction():
                expiry = await self._queues.expire(row)
                if expiry is not None:
                    await self._publish(expiry)
                    routed += 1
        return routed

    async def _publish(self, expiry: MenuExpiry) -> None:
        """The card shows the queue, the thread says why, the customer is greeted."""
        ticket = expiry.ticket
        await self._out.to_frontends(ticket, UpdateCard(ticket.id))
        if expiry.step.notice is not None:
            await self._out.to_frontends(ticket, ThreadNotice(ticket.id, expiry.step.notice))
        for text in expiry.step.replies:
            await self._out.send_bot_text(ticket, text)
