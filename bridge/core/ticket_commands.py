"""The ticket commands: ``!tickets``, ``!accept``, ``!close``, ``!reopen``, ``!assign``,
``!transfer``, ``!stats`` and ``!note`` (as a command)."""

from __future__ import annotations

from bridge.config import SessionConfig
from bridge.core import command_texts as texts
from bridge.core.command_args import no_args, parse_transfer_target, parse_user, require_staff
from bridge.core.command_model import CommandReply, Invocation, Services, TicketLike, UsageError
from bridge.core.queues import find_queue_word, works_queue

TICKET_STATUSES = ("pending", "open", "closed")
DEFAULT_TICKET_STATUSES = ("pending", "open")
MAX_TICKET_LINES = 50
"""``!tickets`` lists at most this many tickets, then says how many more there are."""


async def run_tickets(services: Services, call: Invocation) -> CommandReply:
    key = call.session_key
    session = services.config.session_for_key(key)
    wanted, queue = _tickets_filter(call, session)
    statuses = (wanted,) if wanted else DEFAULT_TICKET_STATUSES
    found: list[TicketLike] = []
    for status in statuses:
        found += await services.tickets.list(key, status=status, queue=queue)
    user = call.ctx.user_id  # an attendant sees the tickets of the queues they work
    found = [t for t in found if works_queue(call.company, session, t.queue, user)]
    if not found:
        return CommandReply(texts.no_tickets(statuses, queue=queue))
    lines = [
        texts.ticket_line(
            t.id,
            status=t.status,
            name=t.contact_name,
            phone=t.phone,
            lid=t.lid,
            is_group=t.is_group,
            queue=t.queue,
        )
        for t in found[:MAX_TICKET_LINES]
    ]
    if len(found) > MAX_TICKET_LINES:
        lines.append(texts.more_tickets(len(found) - MAX_TICKET_LINES))
    return CommandReply("\n".join(lines))


def _tickets_filter(
    call: Invocation, session: SessionConfig | None
) -> tuple[str | None, str | None]:
    """``!tickets [status] [queue]``, in either order: the status and the queue named."""
    status: str | None = None
    queue: str | None = None
    for word in call.args:
        named = find_queue_word(session, word)
        if status is None and word.lower() in TICKET_STATUSES:
            status = word.lower()
        elif queue is None and named is not None:
            queue = named.name
        else:
            raise call.usage_error()
    return status, queue


async def run_accept(services: Services, call: Invocation) -> CommandReply:
    no_args(call)
    ticket = await services.tickets.accept(call.ticket_id, by=call.ctx.user_id)
    return CommandReply(texts.accepted(ticket.id, by=call.ctx.display_name, status=ticket.status))


async def run_close(services: Services, call: Invocation) -> CommandReply:
    no_args(call)
    ticket = await services.tickets.close(call.ticket_id, by=call.ctx.user_id)
    return CommandReply(texts.closed(ticket.id, by=call.ctx.display_name, status=ticket.status))


async def run_reopen(services: Services, call: Invocation) -> CommandReply:
    no_args(call)
    ticket = await services.tickets.reopen(call.ticket_id, by=call.ctx.user_id)
    return CommandReply(texts.reopened(ticket.id, by=call.ctx.display_name, status=ticket.status))


async def run_assign(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) != 1:
        raise call.usage_error()
    user = parse_user(call, call.args[0])
    if user is None:
        raise UsageError(texts.not_a_user(call.args[0], command_usage=call.usage))
    require_staff(call, user)
    ticket = await services.tickets.assign(call.ticket_id, user, by=call.ctx.user_id)
    return CommandReply(texts.assigned(ticket.id, to=user, by=call.ctx.display_name))


async def run_transfer(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) != 1:
        raise call.usage_error()
    queue = find_queue_word(services.config.session_for_key(call.session_key), call.args[0])
    if queue is not None:  # a queue of the ticket's session wins over a session's name
        moved = await services.tickets.transfer_to_queue(
            call.ticket_id, queue.name, by=call.ctx.user_id
        )
        to = f"queue {queue.name}"
        return CommandReply(texts.transferred(moved.id, to=to, by=call.ctx.display_name))
    target = parse_transfer_target(call, call.args[0])
    ticket = await services.tickets.transfer(call.ticket_id, target, by=call.ctx.user_id)
    return CommandReply(texts.transferred(ticket.id, to=target, by=call.ctx.display_name))


async def run_stats(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) > 1:
        raise call.usage_error()
    queue = call.args[0].lower() if call.args else None
    names = {q.name for s in call.company.sessions for q in s.queues}
    if queue is not None and queue not in names:
        raise UsageError(texts.no_queue(call.args[0], queues=sorted(names)))
    figures = await services.tickets.stats(call.company.id, queue=queue)
    text = texts.stats(
        call.company.name,
        by_status=figures.by_status,
        created_today=figures.created_today,
        median_first_response=figures.first_response_median_seconds,
        mean_first_response=figures.first_response_mean_seconds,
        messages_in=figures.messages_in,
        messages_out=figures.messages_out,
        ratings=figures.csat_count,
        average_rating=figures.csat_average,
        queue=queue,
        active_by_queue=figures.active_by_queue,
    )
    return CommandReply(text)


async def run_note(services: Services, call: Invocation) -> CommandReply:
    """``!note`` reaching the command table: a thread message ``!note <text>`` never
    does (the relay records it as a note first: bridge/core/notes.py), so this is a
    form that cannot carry a note, such as a Slack slash command's text: it says how
    to write one, and records nothing."""
    return CommandReply(texts.NOTE_AS_MESSAGE)
