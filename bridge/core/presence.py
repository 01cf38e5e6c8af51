"""Attendants' presence toward the customer (docs/presence.md): an attendant who reads
a ticket thread marks the customer's messages read on WhatsApp; one who types there
shows the customer "typing…".

Only the company's staff (admins, attendants) count, and only in a ticket's thread;
anything else is ignored. What to do is written to the outbox as a typed operation
(``MarkRead``, ``ChatPresence``) for the ``whatsapp-presence`` destination, under one
ordering key per ticket, and executed by :mod:`bridge.core.presence_deliveries`
through the sessions' presence budget (never the send budget). Coalescing:

- a read receipt already covered by a mark waiting on the ticket's key is not queued
  again, and a mark sends only the messages not yet marked (the ``ack`` of a
  customer's message records it), so nothing is marked twice;
- a typing change equal to the last one waiting is not queued again; one that waited too
  long is dropped when its turn comes (``presence_deliveries.STALE_SECONDS``).
"""

from __future__ import annotations

import logging

from bridge.clock import Clock
from bridge.config import Config
from bridge.core.command_model import role_of
from bridge.core.frontend import ThreadEvent, ThreadRead, ThreadTyping
from bridge.core.operations import ChatPresence, MarkRead, Operation, decode
from bridge.core.ordering_keys import ticket_key
from bridge.core.outgoing import Outgoing
from bridge.core.thread_tickets import ThreadTickets
from bridge.core.tickets import TicketView
from bridge.db import Repositories

log = logging.getLogger("bridge.core.presence")

WHATSAPP_PRESENCE = "whatsapp-presence"
"""The outbox destination of read marks and typing shown to customers."""

WAITING_READ = 50
"""Waiting rows of a ticket's presence key read to coalesce a new one with."""

COMPOSING = "composing"
PAUSED = "paused"


class Presence:
    """The relay's hand for attendants' read receipts and typing."""

    def __init__(
        self,
        config: Config,
        repos: Repositories,
        *,
        threads: ThreadTickets,
        outgoing: Outgoing,
        clock: Clock,
    ) -> None:
        self._config = config
        self._repos = repos
        self._threads = threads
        self._out = outgoing
        self._clock = clock

    async def read(self, event: ThreadRead) -> None:
        """Mark read the customer's messages up to the event read (see the module)."""
        async with self._out.transaction():
            ticket = await self._staff_ticket(event)
            if ticket is None:
                return
            up_to = await self._read_up_to(event, ticket)
            if up_to is None:
                return
            if not await self._repos.messages.unmarked_inbound(ticket.id, up_to=up_to, limit=1):
                return  # everything read was marked before
            waiting = await self._waiting(ticket)
            if any(isinstance(w, MarkRead) and w.up_to >= up_to for w in waiting):
                return  # a mark already waiting covers it
            await self._enqueue(ticket, MarkRead(ticket.id, up_to))

    async def typing(self, event: ThreadTyping) -> None:
        """Show the customer "typing…" or stop it (see the module)."""
        async with self._out.transaction():
            ticket = await self._staff_ticket(event)
            if ticket is None or ticket.status == "closed":
                return
            state = COMPOSING if event.typing else PAUSED
            waiting = [w for w in await self._waiting(ticket) if isinstance(w, ChatPresence)]
            if waiting and waiting[-1].state == state:
                return  # the change waiting last is this one
            await self._enqueue(ticket, ChatPresence(ticket.id, state, self._clock.now()))

    async def _staff_ticket(self, event: ThreadEvent) -> TicketView | None:
        """The ticket of the event's thread, when a member of its company's staff acted."""
        ticket = await self._threads.of(event)
        if ticket is None:
            return None
        company = self._config.find_company(ticket.company_id)
        if company is None or role_of(company, event.attendant.user_id) is None:
            log.debug("%s is not staff of ticket %d: ignored", event.attendant.user_id, ticket.id)
            return None
        return ticket

    async def _read_up_to(self, event: ThreadRead, ticket: TicketView) -> int | None:
        """The newest message the attendant has read: the one read, or, for another
        event of the thread (its card, a notice), the newest message shown there."""
        message = await self._repos.messages.find_by_ref(
            event.frontend, room_id=event.place.room, event_id=event.event_id
        )
        if message is not None:
            return message.id if message.ticket_id == ticket.id else None
        return await self._repos.messages.latest_shown(ticket.id, event.frontend)

    async def _waiting(self, ticket: TicketView) -> list[Operation]:
        """The operations waiting on the ticket's presence key, oldest first (the
        first :data:`WAITING_READ`)."""
        key = ticket_key(ticket.id, WHATSAPP_PRESENCE)
        found: list[Operation] = []
        for row in await self._repos.outbox.pending_for_key(key, limit=WAITING_READ):
            try:
                found.append(decode(row.payload))
            except ValueError:
                continue  # the executor makes it a dead letter
        return found

    async def _enqueue(self, ticket: TicketView, operation: Operation) -> None:
        await self._out.enqueue(
            WHATSAPP_PRESENCE,
            key=ticket_key(ticket.id, WHATSAPP_PRESENCE),
            operation=operation,
            session_key=ticket.session_key,  # run by the session's owner (docs/cluster.md)
        )
