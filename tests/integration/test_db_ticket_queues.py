"""The queue and menu columns of tickets (migration 0007), on both engines: each change
is compare-and-set, and the sweep's reads see only tickets still choosing."""

from __future__ import annotations

import asyncio

from bridge.db import Repositories
from bridge.db.messages import NewMessage
from bridge.db.tickets import TicketRow

PHONE = "+5511987654321"


async def _ticket(repos: Repositories, phone: str = PHONE, *, now: float = 10.0) -> TicketRow:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")
    contact = (await repos.contacts.resolve(session.id, phone=phone)).contact
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=now)
    return ticket


async def _row(repos: Repositories, ticket_id: int) -> TicketRow:
    row = await repos.tickets.get(ticket_id)
    assert row is not None
    return row


async def test_the_menu_columns_round_trip(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    assert (ticket.menu_sent_at, ticket.menu_deadline, ticket.menu_invalid) == (None, None, 0)
    queues = repos.ticket_queues
    assert await queues.start_menu(ticket.id, now=20.0, deadline=320.0)
    assert not await queues.start_menu(ticket.id, now=21.0, deadline=321.0)  # sent once
    row = await _row(repos, ticket.id)
    assert (row.menu_sent_at, row.menu_deadline, row.menu_invalid) == (20.0, 320.0, 0)
    assert await queues.next_deadline() == 320.0

    assert await queues.count_invalid(ticket.id, seen=0, deadline=400.0, now=100.0)
    assert not await queues.count_invalid(ticket.id, seen=0, deadline=401.0, now=101.0)
    row = await _row(repos, ticket.id)
    assert (row.menu_invalid, row.menu_deadline) == (1, 400.0)

    assert await queues.route(ticket.id, "billing", now=150.0)
    assert not await queues.route(ticket.id, "tech", now=151.0)  # routed once
    row = await _row(repos, ticket.id)
    assert (row.queue, row.menu_deadline, row.updated_at) == ("billing", None, 150.0)
    assert await queues.next_deadline() is None
    assert not await queues.count_invalid(ticket.id, seen=1, deadline=500.0, now=160.0)


async def test_the_timer_routes_only_a_ticket_whose_deadline_passed(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    queues = repos.ticket_queues
    await queues.start_menu(ticket.id, now=20.0, deadline=320.0)
    assert await queues.list_due(now=319.0, limit=10) == []
    due = await queues.list_due(now=320.0, limit=10)
    assert [t.id for t in due] == [ticket.id]
    await queues.count_invalid(ticket.id, seen=0, deadline=600.0, now=310.0)  # an answer came
    assert not await queues.route(ticket.id, "tech", now=320.0, expired=True)
    assert await queues.route(ticket.id, "tech", now=600.0, expired=True)


async def test_closed_tickets_are_not_due(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    await repos.ticket_queues.start_menu(ticket.id, now=20.0, deadline=320.0)
    assert await repos.tickets.transition(ticket.id, frm="pending", to="closed", now=30.0)
    assert await repos.ticket_queues.list_due(now=1000.0, limit=10) == []
    assert await repos.ticket_queues.next_deadline() is None


async def test_concurrent_answers_route_a_ticket_once(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    queues = repos.ticket_queues
    await queues.start_menu(ticket.id, now=20.0, deadline=320.0)
    won = await asyncio.gather(*[queues.route(ticket.id, f"q{i}", now=30.0) for i in range(8)])
    assert sum(won) == 1
    row = await _row(repos, ticket.id)
    assert row.queue == f"q{won.index(True)}"


async def test_transfer_moves_from_the_queue_read(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    queues = repos.ticket_queues
    await repos.tickets.set_assignee(ticket.id, "@bob:localhost", now=15.0)
    assert await queues.transfer(ticket.id, frm=None, to="billing", now=20.0)
    assert not await queues.transfer(ticket.id, frm=None, to="tech", now=21.0)  # it moved
    assert await queues.transfer(ticket.id, frm="billing", to="tech", now=22.0)
    row = await _row(repos, ticket.id)
    assert (row.queue, row.assignee) == ("tech", None)


async def test_queue_listings_and_counts(repos: Repositories) -> None:
    first = await _ticket(repos)
    second = await _ticket(repos, "+5511900000002")
    third = await _ticket(repos, "+5511900000003")
    queues = repos.ticket_queues
    await queues.route(first.id, "billing", now=20.0)
    await queues.route(second.id, "billing", now=20.0)
    await repos.tickets.transition(second.id, frm="pending", to="closed", now=30.0)
    await repos.messages.insert_inbound(
        NewMessage(
            ticket_id=first.id,
            session_id=first.session_id,
            kind="text",
            sender=PHONE,
            content={"kind": "text", "body": "Oi"},
            timestamp=12.0,
        ),
        wa_id="W1",
        now=12.0,
    )
    session_id = first.session_id
    listed = await queues.list_by_session(session_id, queue="billing", status=None, limit=10)
    assert [t.id for t in listed] == [second.id, first.id]
    pending = await queues.list_by_session(session_id, queue="billing", status="pending", limit=10)
    assert [t.id for t in pending] == [first.id]
    company = await queues.list_by_company("acme", queue="billing", limit=10)
    assert [t.id for t in company] == [second.id, first.id]
    assert await queues.list_by_company("globex", queue="billing", limit=10) == []
    assert await queues.count_messages("acme", queue="billing") == {"in": 1, "out": 0}
    assert await queues.count_active_by_queue("acme") == {"billing": 1, "": 1}
    assert third.queue is None
