"""What happens when a delivery gives up (the outbox worker's dead-letter hook): the
ticket's threads say what was not delivered, a message that did not reach WhatsApp
is marked failed, and the company's ops channel hears about it."""

from __future__ import annotations

from bridge.core.operations import (
    MarkReceipt,
    MirrorAction,
    Operation,
    PostMessage,
    SendAttendantMessage,
    SendBotMessage,
    SendTemplate,
    ThreadNotice,
    decode,
)
from bridge.core.ops import OpsNotifier
from bridge.core.ordering_keys import company_of_key, ticket_of_key
from bridge.core.outgoing import WHATSAPP, Outgoing
from bridge.core.tickets import TicketService, TicketView
from bridge.db import Repositories
from bridge.db.outbox import OutboxRow

_OF_A_MESSAGE = (
    SendAttendantMessage,
    SendBotMessage,
    SendTemplate,
    MirrorAction,
    PostMessage,
    MarkReceipt,
)
"""Operations about one stored message (to WhatsApp: sends and actions)."""


class DeadLetters:
    def __init__(
        self,
        repos: Repositories,
        *,
        tickets: TicketService,
        outgoing: Outgoing,
        notifier: OpsNotifier,
    ) -> None:
        self._repos = repos
        self._tickets = tickets
        self._outgoing = outgoing
        self._notifier = notifier

    async def __call__(self, row: OutboxRow, error: str) -> None:
        ticket = await self._tell_ticket(row, error)
        company = ticket.company_id if ticket else company_of_key(row.ordering_key)
        if company is None:
            return
        await self._notifier.on_dead_letter(
            company_id=company,
            session_key=ticket.session_key if ticket else None,
            ticket_id=ticket.id if ticket else None,
            destination=row.destination,
            error=error,
        )

    async def _tell_ticket(self, row: OutboxRow, error: str) -> TicketView | None:
        """Say so in the ticket's threads, when the row was a ticket's; its ticket."""
        ticket_id = ticket_of_key(row.ordering_key)
        if ticket_id is None:
            return None
        operation = _operation_of(row)
        async with self._outgoing.transaction():
            ticket = await self._tickets.get(ticket_id)
            if row.destination == WHATSAPP and isinstance(operation, _OF_A_MESSAGE):
                await self._repos.messages.set_ack(operation.message, "failed")
            if not isinstance(operation, ThreadNotice):  # a notice about a notice would loop
                where = (
                    "to the customer" if row.destination == WHATSAPP else f"to {row.destination}"
                )
                text = f"⚠️ not delivered {where}: {error}"
                await self._outgoing.to_frontends(ticket, ThreadNotice(ticket_id, text))
        return ticket


def _operation_of(row: OutboxRow) -> Operation | None:
    """The row's operation; None for a row that holds none (it died of that)."""
    try:
        return decode(row.payload)
    except ValueError:
        return None
