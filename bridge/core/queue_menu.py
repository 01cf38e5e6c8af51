"""The queue menu over the repositories (docs/tickets.md#queues).

A new ticket of a session with queues is sent the menu (``menu_sent_at``) and given
a deadline (``menu_deadline``). The customer's next messages are answers: an option
routes the ticket to its queue; anything else is counted (``menu_invalid``) and the
menu is sent again, until ``max_invalid`` repeats, after which the ticket goes to
the default queue; so does a ticket whose deadline passes (:mod:`bridge.core.menu_timeouts`).
Every message, answers included, stays the customer's message in the thread. Routing
sends the queue's greeting, then its out-of-hours text when it is closed.

:class:`~bridge.core.tickets.TicketService` asks :meth:`QueueMenu.on_message` for
each customer message; each step is compare-and-set, so it happens once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge.config import MenuConfig, QueueConfig, SessionConfig
from bridge.core.auto_replies import claim_out_of_hours
from bridge.core.queues import (
    answer_of,
    attended_by,
    chosen_notice,
    default_queue,
    defaulted_notice,
    direct_notice,
    queue_of_option,
    render_menu,
    timed_out_notice,
)
from bridge.db import Repositories, TicketRow
from bridge.metrics import Metrics
from bridge.model import Message

log = logging.getLogger("bridge.core.queue_menu")


@dataclass(frozen=True)
class MenuStep:
    """What one step of the menu asks for: texts to the customer (already stamped),
    and, when the ticket was routed, the thread's notice (its card shows the queue)."""

    replies: tuple[str, ...] = ()
    notice: str | None = None

    @property
    def routed(self) -> bool:
        return self.notice is not None


NOTHING = MenuStep()


CHOSEN, INVALID, TIMEOUT, DIRECT = "chosen", "invalid", "timeout", "direct"
"""How a ticket came to its queue: the ``how`` of ``zapbridge_queue_routes_total``."""


class QueueMenu:
    def __init__(self, repos: Repositories, *, metrics: Metrics | None = None) -> None:
        self._tickets = repos.tickets
        self._queues = repos.ticket_queues
        self._metrics = metrics

    async def on_message(
        self,
        session: SessionConfig,
        ticket: TicketRow,
        message: Message,
        *,
        created: bool,
        is_group: bool,
        now: float,
    ) -> MenuStep | None:
        """The menu's step for a message of ``ticket``; None when the ticket is not
        choosing (its session has no queues, or it has a queue): the usual auto
        replies apply then."""
        menu = session.menu
        if not session.queues or menu is None or ticket.queue is not None:
            return None
        if ticket.menu_sent_at is None:
            if message.from_me or is_group:  # no one to ask: the default queue, at once
                queue = default_queue(session)
                greet = not message.from_me
                notice = direct_notice(ticket.id, queue.name)
                return await self._route(
                    ticket, queue, notice, DIRECT, session=session, greet=greet, now=now
                )
            return await self._start(session, menu, ticket, now=now)
        if message.from_me or ticket.menu_deadline is None:
            return NOTHING
        chosen = answer_of(message)
        picked = queue_of_option(session, chosen) if chosen is not None else None
        if picked is not None and chosen is not None:
            notice = chosen_notice(ticket.id, picked.name, option=chosen)
            return await self._route(ticket, picked, notice, CHOSEN, session=session, now=now)
        return await self._invalid(session, menu, ticket, now=now)

    async def expire(self, session: SessionConfig, ticket: TicketRow, *, now: float) -> MenuStep:
        """The deadline passed: the default queue (nothing when routed meanwhile)."""
        if session.menu is None or not session.queues:
            await self._queues.stop_menu(ticket.id)
            return NOTHING
        queue = default_queue(session)
        seconds = session.menu.timeout_seconds
        notice = timed_out_notice(ticket.id, queue.name, seconds=seconds)
        return await self._route(
            ticket, queue, notice, TIMEOUT, session=session, now=now, expired=True
        )

    async def _start(
        self, session: SessionConfig, menu: MenuConfig, ticket: TicketRow, *, now: float
    ) -> MenuStep:
        deadline = now + menu.timeout_seconds
        if not await self._queues.start_menu(ticket.id, now=now, deadline=deadline):
            return NOTHING
        log.info("ticket #%d: queue menu sent", ticket.id)
        return MenuStep((render_menu(menu, session.queues),))

    async def _invalid(
        self, session: SessionConfig, menu: MenuConfig, ticket: TicketRow, *, now: float
    ) -> MenuStep:
        seen = ticket.menu_invalid
        if seen >= menu.max_invalid:
            queue = default_queue(session)
            notice = defaulted_notice(ticket.id, queue.name, invalid=seen + 1)
            return await self._route(ticket, queue, notice, INVALID, session=session, now=now)
        deadline = now + menu.timeout_seconds
        if not await self._queues.count_invalid(ticket.id, seen=seen, deadline=deadline, now=now):
            return NOTHING  # another answer of the same customer counted first
        return MenuStep((render_menu(menu, session.queues),))

    async def _route(
        self,
        ticket: TicketRow,
        queue: QueueConfig,
        notice: str,
        how: str,
        *,
        session: SessionConfig,
        now: float,
        greet: bool = True,
        expired: bool = False,
    ) -> MenuStep:
        if not await self._queues.route(ticket.id, queue.name, now=now, expired=expired):
            return NOTHING
        log.info("ticket #%d routed to queue %s (%s)", ticket.id, queue.name, how)
        if self._metrics is not None:
            self._metrics.queue_routes.labels(session=session.key, queue=queue.name, how=how).inc()
        if not greet:
            return MenuStep((), notice)
        replies = []
        if queue.greeting and await self._tickets.mark_greeted(ticket.id, now=now):
            replies.append(queue.greeting)
        attended = attended_by(session, queue.name)
        closed_text = attended.out_of_hours
        if closed_text and await claim_out_of_hours(self._tickets, attended, ticket, now=now):
            replies.append(closed_text)
        return MenuStep(tuple(replies), notice)
