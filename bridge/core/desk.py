"""The ticket desk: what commands do to tickets. Each action changes the ticket
(TicketService) and publishes the change (cards, notices, farewell) to the outbox,
in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from bridge.config.schema import CloudTemplate
from bridge.core.command_model import TicketStats
from bridge.core.operations import PostTranscript
from bridge.core.outbox import OutboxWorker
from bridge.core.outgoing import Outgoing
from bridge.core.queue_tickets import QueueTickets
from bridge.core.tickets import TicketChange, TicketService, TicketView
from bridge.db.database import Database
from bridge.errors import InvalidInput


class TicketDesk:
    """Implements the commands' ``TicketActions``."""

    def __init__(
        self,
        db: Database,
        tickets: TicketService,
        outgoing: Outgoing,
        outbox: OutboxWorker,
        *,
        queues: QueueTickets,
    ) -> None:
        self._db = db
        self._tickets = tickets
        self._queues = queues
        self._outgoing = outgoing
        self._outbox = outbox

    async def _apply(self, change: Callable[[], Awaitable[TicketChange]]) -> TicketView:
        async with self._db.transaction():
            result = await change()
            await self._outgoing.publish_change(result)
        self._outbox.wake()
        return result.ticket

    async def accept(self, ticket_id: int, *, by: str) -> TicketView:
        return await self._apply(lambda: self._tickets.accept(ticket_id, by))

    async def assign(self, ticket_id: int, user: str, *, by: str) -> TicketView:
        return await self._apply(lambda: self._tickets.assign(ticket_id, user, by=by))

    async def transfer(self, ticket_id: int, target: str, *, by: str) -> TicketView:
        return await self._apply(lambda: self._tickets.transfer(ticket_id, target, by=by))

    async def transfer_to_queue(self, ticket_id: int, queue: str, *, by: str) -> TicketView:
        return await self._apply(lambda: self._queues.transfer(ticket_id, queue, by=by))

    async def close(self, ticket_id: int, *, by: str) -> TicketView:
        return await self._apply(lambda: self._tickets.close(ticket_id, by=by))

    async def close_silent(self, ticket_id: int, *, since: float) -> TicketView | None:
        """The idle sweep's close: published like ``!close``'s; None when the ticket
        closed or its customer wrote meanwhile."""
        async with self._db.transaction():
            change = await self._tickets.close_silent(ticket_id, since=since)
            if change is None:
                return None
            await self._outgoing.publish_change(change)
        self._outbox.wake()
        return change.ticket

    async def reopen(self, ticket_id: int, *, by: str) -> TicketView:
        return await self._apply(lambda: self._tickets.reopen(ticket_id, by=by))

    async def send_template(
        self,
        ticket_id: int,
        *,
        template: CloudTemplate,
        params: tuple[str, ...],
        by: str,
        by_name: str,
    ) -> TicketView:
        """Send ``template`` to the ticket's customer as attendant ``by``: a reply like
        any other (the first response is measured; a pending ticket becomes open)."""
        async with self._db.transaction():
            ticket = await self._tickets.get(ticket_id)
            if ticket.status == "closed":
                raise InvalidInput(f"ticket #{ticket.id} is closed; type !reopen first")
            await self._outgoing.send_template(
                ticket, template=template, params=params, sender=by, sender_name=by_name
            )
            change = await self._tickets.record_attendant_reply(ticket, by)
            if change is not None:
                await self._outgoing.publish_change(change)
        self._outbox.wake()
        return change.ticket if change is not None else ticket

    async def post_transcript(self, ticket_id: int) -> TicketView:
        async with self._db.transaction():
            ticket = await self._tickets.get(ticket_id)
            await self._outgoing.to_frontends(ticket, PostTranscript(ticket.id))
        self._outbox.wake()
        return ticket

    async def list(
        self, session_key: str, *, status: str | None, queue: str | None = None
    ) -> Sequence[TicketView]:
        if queue is not None:
            return await self._queues.list(session_key, status=status, queue=queue)
        return await self._tickets.list(session_key, status=status)

    async def stats(self, company_id: str, *, queue: str | None = None) -> TicketStats:
        if queue is not None:
            return await self._queues.stats(company_id, queue=queue)
        figures = await self._tickets.stats(company_id)
        return replace(figures, active_by_queue=await self._queues.active_by_queue(company_id))
