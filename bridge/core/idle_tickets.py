"""Idle tickets (docs/tickets.md#idle-tickets): a periodic sweep over the database.

- A session with ``auto_close_hours`` closes each active ticket whose customer has not
  written for that long (``tickets.last_customer_at``: the customer's last message, or
  when the ticket was created or reopened). The close goes the way ``!close`` goes
  (card, thread notice, satisfaction question) with ``auto_close_message`` in place of
  the farewell when the session has one.
- ``ops.unanswered_alert_minutes`` reports each pending ticket nobody answered for that
  long to its company's ops channel, once (``tickets.unanswered_alerted_at``), and its
  resolution once it is answered or closed (``unanswered_resolved_at``), at the next
  pass.

Every timer is a column, so a restart loses none and a pass repeats nothing: each
close and each alert is a compare-and-set. The sweep runs at start and then every
``SWEEP_EVERY_SECONDS`` of the injected clock; each pass handles at most ``BATCH``
tickets of each kind (the rest wait for the next pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bridge.clock import Clock
from bridge.config import Config
from bridge.core.desk import TicketDesk
from bridge.core.ops import OpsNotifier
from bridge.core.tickets import TicketService
from bridge.db import Repositories
from bridge.errors import BridgeError

log = logging.getLogger("bridge.core.idle_tickets")

_HOUR = 3600.0


class IdleTickets:
    SWEEP_EVERY_SECONDS = 60.0
    BATCH = 100

    def __init__(
        self,
        config: Config,
        repos: Repositories,
        *,
        tickets: TicketService,
        desk: TicketDesk,
        notifier: OpsNotifier,
        session_ids: dict[str, int],
        clock: Clock,
    ) -> None:
        self._config = config
        self._repo = repos.tickets
        self._tickets = tickets
        self._desk = desk
        self._notifier = notifier
        self._session_ids = session_ids
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether any session closes idle tickets or ops wants unanswered alerts."""
        closing = any(s.auto_close_hours for c in self._config.companies for s in c.sessions)
        return closing or self._config.ops.unanswered_alert_minutes > 0

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="idle-tickets")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except BridgeError as exc:  # the database is away: the next pass tries again
                log.error("idle ticket sweep failed: %s", exc.explanation)
            except Exception:  # a bug must not end the sweep for good: told, tried again
                log.exception("idle ticket sweep failed")
            await self._clock.sleep(self.SWEEP_EVERY_SECONDS)

    async def sweep(self) -> None:
        """One pass: close silent tickets, report unanswered ones, resolve reports."""
        await self._close_silent()
        if self._config.ops.unanswered_alert_minutes > 0:
            await self._report_unanswered()
        await self._resolve_answered()

    async def _close_silent(self) -> None:
        for company in self._config.companies:
            for session in company.sessions:
                session_id = self._session_ids.get(session.key)
                if not session.auto_close_hours or session_id is None:
                    continue
                since = self._clock.now() - session.auto_close_hours * _HOUR
                for row in await self._repo.list_silent(session_id, since=since, limit=self.BATCH):
                    await self._desk.close_silent(row.id, since=since)

    async def _report_unanswered(self) -> None:
        minutes = self._config.ops.unanswered_alert_minutes
        now = self._clock.now()
        rows = await self._repo.list_unanswered(created_before=now - minutes * 60, limit=self.BATCH)
        for row in rows:
            if not await self._repo.mark_unanswered_alerted(row.id, now=now):
                continue  # another bridge on the same database reported it
            ticket = await self._tickets.get(row.id)
            log.info("ticket #%d has no answer after %d min: ops told", row.id, minutes)
            await self._notifier.on_unanswered(
                session_key=ticket.session_key,
                ticket_id=ticket.id,
                ticket_label=ticket.label,
                minutes=minutes,
            )

    async def _resolve_answered(self) -> None:
        now = self._clock.now()
        for row in await self._repo.list_unanswered_settled(limit=self.BATCH):
            if not await self._repo.mark_unanswered_resolved(row.id, now=now):
                continue
            ticket = await self._tickets.get(row.id)
            await self._notifier.on_unanswered_resolved(
                session_key=ticket.session_key,
                ticket_id=ticket.id,
                answered=row.first_response_at is not None,
            )
