"""What attendants and the menu's timer do with queues (docs/tickets.md#queues):
``!transfer <queue>``, a menu's deadline passing, ``!tickets <queue>`` and
``!stats <queue>``. The decisions are in :mod:`bridge.core.queues`; the menu in
:mod:`bridge.core.queue_menu`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bridge.clock import Clock
from bridge.config import Config, SessionConfig
from bridge.core.queue_menu import MenuStep, QueueMenu
from bridge.core.queues import moved_to_queue_notice
from bridge.core.ticket_policy import CLOSED, OPEN, PENDING, STATUSES, check_status
from bridge.core.ticket_stats import (
    STATS_SCAN_LIMIT,
    CompanyStats,
    company_timezone,
    summarize_stats,
)
from bridge.core.tickets import TicketChange, TicketService, TicketView
from bridge.db import Repositories, TicketRow
from bridge.errors import InvalidInput
from bridge.metrics import Metrics

log = logging.getLogger("bridge.core.queue_tickets")


@dataclass(frozen=True)
class MenuExpiry:
    """A ticket the menu's timer routed: its new state and what the step asks for."""

    ticket: TicketView
    step: MenuStep


class QueueTickets:
    def __init__(
        self,
        repos: Repositories,
        config: Config,
        *,
        tickets: TicketService,
        session_ids: dict[str, int],
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self._repos = repos
        self._session_ids = session_ids
        self._db = repos.db
        self._config = config
        self._tickets = tickets
        self._clock = clock
        self._menu = QueueMenu(repos, metrics=metrics)

    async def transfer(self, ticket_id: int, queue: str, *, by: str) -> TicketChange:
        """Move the ticket to ``queue`` of its session; nobody owns it then (an
        attendant of that queue takes it as any ticket is taken)."""
        now = self._clock.now()
        async with self._db.transaction():
            before = await self._tickets.get(ticket_id)
            if before.status == CLOSED:
                raise InvalidInput(f"ticket #{ticket_id} is closed; reopen it first (!reopen)")
            dest = self._session(before).find_queue(queue)
            if dest is None:
                raise InvalidInput(f"no queue {queue!r} on session {before.session_name}")
            if before.queue == dest.name:
                raise InvalidInput(f"ticket #{ticket_id} is already in queue {dest.name}")
            queues = self._repos.ticket_queues
            if not await queues.transfer(ticket_id, frm=before.queue, to=dest.name, now=now):
                raise InvalidInput(f"ticket #{ticket_id} changed while you acted; look again")
            after = await self._tickets.get(ticket_id)
        log.info("ticket #%d transferred to queue %s by %s", ticket_id, dest.name, by)
        notice = moved_to_queue_notice(ticket_id, dest.name, by=by)
        return TicketChange(after, before.status, notice)

    async def expire(self, row: TicketRow) -> MenuExpiry | None:
        """Route a ticket whose menu deadline passed to the default queue; None when
        it was routed meanwhile (or its session has no queues any more)."""
        now = self._clock.now()
        async with self._db.atomic():
            view = await self._tickets.get(row.id)
            session = self._config.session_for_key(view.session_key)
            if session is None:  # a session removed from the config: its timer stops
                await self._repos.ticket_queues.stop_menu(row.id)
                return None
            step = await self._menu.expire(session, row, now=now)
            if not step.routed:
                return None
            return MenuExpiry(await self._tickets.get(row.id), step)

    async def list(
        self, session_key: str, *, status: str | None, queue: str
    ) -> Sequence[TicketView]:
        """The session's tickets in ``queue``, newest first."""
        check_status(status)
        session_id = self._session_ids.get(session_key)
        if session_id is None:
            raise InvalidInput(f"session {session_key} is not running in this bridge")
        rows = await self._repos.ticket_queues.list_by_session(
            session_id, queue=queue, status=status, limit=50
        )
        return [await self._tickets.get(row.id) for row in rows]

    async def stats(self, company_id: str, *, queue: str) -> CompanyStats:
        """``!stats <queue>``: the company's figures over its tickets in ``queue``."""
        company = self._config.find_company(company_id)
        if company is None:
            raise InvalidInput(f"unknown company {company_id!r}")
        queues = self._repos.ticket_queues
        rows = await queues.list_by_company(company_id, queue=queue, limit=STATS_SCAN_LIMIT)
        by_status = {status: sum(1 for r in rows if r.status == status) for status in STATUSES}
        active = [r for r in rows if r.status in (PENDING, OPEN)]
        summary = summarize_stats(
            company_id,
            by_status=by_status,
            recent=rows,
            active=active,
            now=self._clock.now(),
            zone=company_timezone(company),
        )
        volume = await queues.count_messages(company_id, queue=queue)
        scores = [r.csat_score for r in rows if r.csat_score is not None]
        return replace(
            summary,
            messages_in=volume["in"],
            messages_out=volume["out"],
            csat_count=len(scores),
            csat_average=sum(scores) / len(scores) if scores else None,
        )

    async def active_by_queue(self, company_id: str) -> dict[str, int]:
        """Tickets not closed per queue ("" for those with none)."""
        return await self._repos.ticket_queues.count_active_by_queue(company_id)

    def _session(self, ticket: TicketView) -> SessionConfig:
        session = self._config.session_for_key(ticket.session_key)
        if session is None:
            raise InvalidInput(f"unknown session {ticket.session_key!r}")
        return session
