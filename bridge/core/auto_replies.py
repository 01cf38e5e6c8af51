"""The auto replies a customer's message earns (docs/tickets.md#auto-replies): the
session's greeting once per new ticket, and the out-of-hours text at most once per
closed period of the business hours that attend the ticket (its queue's, when it has
hours of its own: docs/tickets.md#queues). Each is stamped on the ticket before it is
returned (compare-and-set), so it is never repeated; our own messages (``from_me``)
earn none.
"""

from __future__ import annotations

from bridge.config import SessionConfig
from bridge.core.queues import attended_by
from bridge.core.ticket_policy import Attended, out_of_hours_due
from bridge.db import TicketRepository, TicketRow


async def auto_replies(
    tickets: TicketRepository,
    session: SessionConfig,
    ticket: TicketRow,
    *,
    created: bool,
    from_me: bool,
    now: float,
) -> tuple[str, ...]:
    """The greeting and out-of-hours texts due now, stamped; none for our own."""
    if from_me:
        return ()
    replies = []
    if created and session.greeting and await tickets.mark_greeted(ticket.id, now=now):
        replies.append(session.greeting)
    hours = attended_by(session, ticket.queue)  # a queue may have its own hours
    if hours.out_of_hours and await claim_out_of_hours(tickets, hours, ticket, now=now):
        replies.append(hours.out_of_hours)
    return tuple(replies)


async def claim_out_of_hours(
    tickets: TicketRepository, attended: Attended, ticket: TicketRow, *, now: float
) -> bool:
    """Whether the out-of-hours text of ``attended`` goes out now, stamped once per
    closed period (docs/tickets.md#auto-replies)."""
    last = ticket.out_of_hours_sent_at
    if not out_of_hours_due(attended, last_sent=last, now=now):
        return False
    if last is None:
        return await tickets.mark_out_of_hours_sent(ticket.id, now=now)
    return await tickets.restamp_out_of_hours(ticket.id, previous=last, now=now)
