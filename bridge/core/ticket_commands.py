"""The ticket commands: ``!tickets``, ``!accept``, ``!close``, ``!reopen``, ``!assign``,
``!transfer``, ``!stats`` and ``!note`` (as a command)."""

from __future__ import annotations

from bridge.core import command_texts as texts
from bridge.core.command_args import no_args, parse_transfer_target, parse_user, require_staff
from bridge.core.command_model import CommandReply, Invocation, Services, TicketLike, UsageError

TICKET_STATUSES = ("pending", "open", "closed")
DEFAULT_TICKET_STATUSES = ("pending", "open")
MAX_TICKET_LINES = 50
"""``!tickets`` lists at most this many tickets, then says how many more there are."""


async def run_tickets(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) > 1:
        raise call.usage_error()
    if call.args:
        wanted = call.args[0].lower()
        if wanted not in TICKET_STATUSES:
            raise call.usage_error()
        statuses: tuple[str, ...] = (wanted,)
    else:
        statuses = DEFAULT_TICKET_STATUSES
    key = call.session_key
    found: list[TicketLike] = []
    for status in statuses:
        found += await services.tickets.list(key, status=status)
    if not found:
        return CommandReply(texts.no_tickets(statuses))
    lines = [
        texts.ticket_line(
            t.id,
            status=t.status,
            name=t.contact_name,
            phone=t.phone,
            lid=t.lid,
            is_group=t.is_group,
        )
        for t in found[:MAX_TICKET_LINES]
    ]
    if len(found) > MAX_TICKET_LINES:
        lines.append(texts.more_tickets(len(found) - MAX_TICKET_LINES))
    return CommandReply("\n".join(lines))


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
    target = parse_transfer_target(call, call.args[0])
    ticket = await services.tickets.transfer(call.ticket_id, target, by=call.ctx.user_id)
    return CommandReply(texts.transferred(ticket.id, to=target, by=call.ctx.display_name))


async def run_stats(services: Services, call: Invocation) -> CommandReply:
    no_args(call)
    figures = await services.tickets.stats(call.company.id)
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
    )
    return CommandReply(text)


async def run_note(services: Services, call: Invocation) -> CommandReply:
    """``!note`` reaching the command table: a thread message ``!note <text>`` never
    does (the relay records it as a note first: bridge/core/notes.py), so this is a
    form that cannot carry a note, such as a Slack slash command's text: it says how
    to write one, and records nothing."""
    return CommandReply(texts.NOTE_AS_MESSAGE)
