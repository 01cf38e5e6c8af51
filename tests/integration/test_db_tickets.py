"""Tickets repository, including the one-active-ticket race; on both engines."""

from __future__ import annotations

import asyncio

import pytest

from bridge.db import Repositories, UniqueViolation
from bridge.db.contacts import ContactRow
from bridge.db.messages import NewMessage
from bridge.db.sessions import SessionRow
from bridge.db.tickets import TicketRow

PHONE = "+5511987654321"


async def _seed(repos: Repositories) -> tuple[SessionRow, ContactRow]:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")
    return session, (await repos.contacts.resolve(session.id, phone=PHONE)).contact


async def test_ticket_roundtrip(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, created = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    assert created
    assert ticket == TicketRow(
        id=ticket.id,
        session_id=session.id,
        contact_id=contact.id,
        status="pending",
        assignee=None,
        queue=None,
        created_at=10.0,
        first_response_at=None,
        closed_at=None,
        updated_at=10.0,
        greeted_at=None,
        out_of_hours_sent_at=None,
        last_customer_at=10.0,  # a new ticket counts its customer's silence from its start
    )
    assert await repos.tickets.open_or_get(session.id, contact.id, now=11.0) == (ticket, False)
    assert await repos.tickets.get(ticket.id) == ticket
    assert await repos.tickets.find_active(session.id, contact.id) == ticket
    assert await repos.tickets.find_latest(session.id, contact.id) == ticket


async def test_ticket_lifecycle(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    assert await repos.tickets.mark_greeted(ticket.id, now=10.5)
    assert not await repos.tickets.mark_greeted(ticket.id, now=11.0)
    assert await repos.tickets.mark_out_of_hours_sent(ticket.id, now=10.6)
    assigned = await repos.tickets.set_assignee(ticket.id, "@bob:localhost", now=12.0)
    assert assigned is not None and assigned.assignee == "@bob:localhost"
    queued = await repos.tickets.set_queue(ticket.id, "billing", now=12.5)
    assert queued is not None and queued.queue == "billing"
    opened = await repos.tickets.set_status(ticket.id, "open", now=13.0)
    assert opened is not None and opened.status == "open"
    assert await repos.tickets.mark_first_response(ticket.id, now=14.0)
    assert not await repos.tickets.mark_first_response(ticket.id, now=15.0)
    closed = await repos.tickets.set_status(ticket.id, "closed", now=20.0)
    assert closed is not None
    assert (closed.status, closed.closed_at, closed.updated_at) == ("closed", 20.0, 20.0)
    assert (closed.greeted_at, closed.out_of_hours_sent_at, closed.first_response_at) == (
        10.5,
        10.6,
        14.0,
    )
    assert await repos.tickets.find_active(session.id, contact.id) is None
    reopened = await repos.tickets.set_status(ticket.id, "open", now=30.0)
    assert reopened is not None and (reopened.status, reopened.closed_at) == ("open", None)
    with pytest.raises(ValueError, match="unknown ticket status"):
        await repos.tickets.set_status(ticket.id, "archived")


async def test_closed_ticket_makes_room_for_a_new_one(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    first, _ = await repos.tickets.open_or_get(session.id, contact.id)
    await repos.tickets.set_status(first.id, "closed")
    second, created = await repos.tickets.open_or_get(session.id, contact.id)
    assert created and second.id != first.id
    assert await repos.tickets.find_latest(session.id, contact.id) == second
    with pytest.raises(UniqueViolation):  # reopening would make two active tickets
        await repos.tickets.set_status(first.id, "open")


async def test_ticket_listing(repos: Repositories) -> None:
    session, maria = await _seed(repos)
    other = await repos.sessions.upsert("acme", "support", engine="sim")
    await repos.companies.upsert("beta", "Beta")
    beta = await repos.sessions.upsert("beta", "main", engine="sim")
    joao = (await repos.contacts.resolve(session.id, phone="+5511900000002")).contact
    elsewhere = (await repos.contacts.resolve(other.id, phone=PHONE)).contact
    foreign = (await repos.contacts.resolve(beta.id, phone=PHONE)).contact
    t1, _ = await repos.tickets.open_or_get(session.id, maria.id)
    t2, _ = await repos.tickets.open_or_get(session.id, joao.id)
    t3, _ = await repos.tickets.open_or_get(other.id, elsewhere.id)
    await repos.tickets.open_or_get(beta.id, foreign.id)
    await repos.tickets.set_status(t1.id, "closed")

    assert [t.id for t in await repos.tickets.list_by_session(session.id)] == [t2.id, t1.id]
    assert [t.id for t in await repos.tickets.list_by_session(session.id, status="closed")] == [
        t1.id
    ]
    pending = await repos.tickets.list_by_company("acme", status="pending")
    assert [t.id for t in pending] == [t3.id, t2.id]
    assert len(await repos.tickets.list_by_company("acme", limit=1)) == 1
    assert await repos.tickets.count_by_status(session.id) == {
        "pending": 1,
        "open": 0,
        "closed": 1,
    }


async def test_fifty_concurrent_first_messages_make_one_ticket(repos: Repositories) -> None:
    """50 inbound messages from a new contact at once: one contact, one ticket, 50 messages."""
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")

    async def first_message(n: int) -> bool:
        async with repos.db.transaction():
            contact = (await repos.contacts.resolve(session.id, phone=PHONE, push_name="M")).contact
            ticket, created = await repos.tickets.open_or_get(session.id, contact.id)
            await repos.messages.insert_inbound(
                NewMessage(
                    ticket_id=ticket.id,
                    session_id=session.id,
                    kind="text",
                    sender=PHONE,
                    content={"text": f"hello {n}"},
                    timestamp=float(n),
                ),
                wa_id=f"WA{n}",
            )
            return created

    created = await asyncio.gather(*(first_message(n) for n in range(50)))

    assert created.count(True) == 1
    assert await repos.db.fetchval("SELECT COUNT(*) FROM contacts") == 1
    assert await repos.db.fetchval("SELECT COUNT(*) FROM tickets WHERE status <> 'closed'") == 1
    assert await repos.db.fetchval("SELECT COUNT(DISTINCT ticket_id) FROM messages") == 1
    assert await repos.db.fetchval("SELECT COUNT(*) FROM messages") == 50


async def test_fifty_concurrent_open_or_get_calls(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    results = await asyncio.gather(
        *(repos.tickets.open_or_get(session.id, contact.id) for _ in range(50))
    )
    assert len({ticket.id for ticket, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1


async def test_transition_tells_whether_this_caller_won(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    assert await repos.tickets.transition(
        ticket.id, frm="pending", to="open", now=11.0, owner="@bob:x"
    )
    assert not await repos.tickets.transition(ticket.id, frm="pending", to="open", now=12.0)
    row = await repos.tickets.get(ticket.id)
    assert row is not None and (row.status, row.assignee, row.updated_at) == (
        "open",
        "@bob:x",
        11.0,
    )
    assert await repos.tickets.transition(
        ticket.id, frm="open", to="closed", now=13.0, owner="@x:y"
    )
    row = await repos.tickets.get(ticket.id)
    assert row is not None and (row.status, row.closed_at, row.assignee) == (
        "closed",
        13.0,
        "@bob:x",
    )


async def test_restamp_out_of_hours_moves_only_the_expected_stamp(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    assert await repos.tickets.mark_out_of_hours_sent(ticket.id, now=20.0)
    assert not await repos.tickets.restamp_out_of_hours(ticket.id, previous=19.0, now=30.0)
    assert await repos.tickets.restamp_out_of_hours(ticket.id, previous=20.0, now=30.0)
    row = await repos.tickets.get(ticket.id)
    assert row is not None and row.out_of_hours_sent_at == 30.0


# --- satisfaction and idle tickets (migration 0006) -------------------------------------------


async def test_csat_is_asked_and_rated_once(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    assert await repos.tickets.mark_csat_asked(ticket.id, now=20.0)
    assert not await repos.tickets.mark_csat_asked(ticket.id, now=21.0)
    assert await repos.tickets.record_csat(ticket.id, 4, now=30.0)
    assert not await repos.tickets.record_csat(ticket.id, 1, now=31.0)
    row = await repos.tickets.get(ticket.id)
    assert row is not None
    assert (row.csat_asked_at, row.csat_score, row.csat_rated_at) == (20.0, 4, 30.0)
    assert await repos.tickets.csat_summary("acme") == (1, 4.0)


async def test_csat_summary_of_a_company_without_ratings(repos: Repositories) -> None:
    await _seed(repos)
    assert await repos.tickets.csat_summary("acme") == (0, None)


async def test_silent_tickets_are_listed_and_closed_once(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    await repos.tickets.mark_customer_wrote(ticket.id, now=50.0)
    await repos.tickets.mark_customer_wrote(ticket.id, now=40.0)  # never backwards
    assert await repos.tickets.list_silent(session.id, since=49.0, limit=10) == []
    [silent] = await repos.tickets.list_silent(session.id, since=50.0, limit=10)
    assert (silent.id, silent.last_customer_at) == (ticket.id, 50.0)
    assert not await repos.tickets.close_if_silent(ticket.id, since=49.0, now=60.0)
    assert await repos.tickets.close_if_silent(ticket.id, since=50.0, now=60.0)
    assert not await repos.tickets.close_if_silent(ticket.id, since=50.0, now=61.0)
    closed = await repos.tickets.get(ticket.id)
    assert closed is not None and (closed.status, closed.closed_at) == ("closed", 60.0)
    assert await repos.tickets.list_silent(session.id, since=100.0, limit=10) == []


async def test_the_active_ticket_read_for_a_customer_message_restarts_the_silence(
    repos: Repositories,
) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    found = await repos.tickets.find_active(session.id, contact.id, customer_wrote_at=50.0)
    assert found is not None and (found.id, found.last_customer_at) == (ticket.id, 50.0)
    older = await repos.tickets.find_active(session.id, contact.id, customer_wrote_at=40.0)
    assert older is not None and older.last_customer_at == 50.0  # never backwards
    plain = await repos.tickets.find_active(session.id, contact.id)
    assert plain is not None and plain.last_customer_at == 50.0
    assert await repos.tickets.transition(ticket.id, frm="pending", to="closed", now=60.0)
    assert await repos.tickets.find_active(session.id, contact.id, customer_wrote_at=70.0) is None
    closed = await repos.tickets.get(ticket.id)
    assert closed is not None and closed.last_customer_at == 50.0  # a closed one is left


async def test_reopening_restarts_the_silence(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    assert await repos.tickets.transition(ticket.id, frm="pending", to="closed", now=20.0)
    assert await repos.tickets.transition(ticket.id, frm="closed", to="open", now=90.0)
    row = await repos.tickets.get(ticket.id)
    assert row is not None and row.last_customer_at == 90.0


async def test_unanswered_tickets_are_alerted_and_resolved_once(repos: Repositories) -> None:
    session, contact = await _seed(repos)
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id, now=10.0)
    assert await repos.tickets.list_unanswered(created_before=9.0, limit=10) == []
    [waiting] = await repos.tickets.list_unanswered(created_before=10.0, limit=10)
    assert waiting.id == ticket.id
    assert await repos.tickets.mark_unanswered_alerted(ticket.id, now=20.0)
    assert not await repos.tickets.mark_unanswered_alerted(ticket.id, now=21.0)
    assert await repos.tickets.list_unanswered(created_before=100.0, limit=10) == []
    assert await repos.tickets.list_unanswered_settled(limit=10) == []  # not answered yet
    assert await repos.tickets.mark_first_response(ticket.id, now=30.0)
    [settled] = await repos.tickets.list_unanswered_settled(limit=10)
    assert settled.id == ticket.id
    assert await repos.tickets.mark_unanswered_resolved(ticket.id, now=31.0)
    assert not await repos.tickets.mark_unanswered_resolved(ticket.id, now=32.0)
    assert await repos.tickets.list_unanswered_settled(limit=10) == []
