"""A delivery's record and its done-mark (bridge/db/delivery_records.py) and the
deliveries' one read (bridge/db/delivery_reads.py), on both engines; with several
instances, the claims' finish too (PostgreSQL)."""

from __future__ import annotations

import pytest

from bridge.db import Database, Repositories, migrate
from bridge.db.delivery_records import PostedRefs, WaIdSent
from bridge.db.messages import MessageRow, NewMessage
from bridge.db.outbox import Finish
from bridge.db.outbox_claims import OutboxClaimRepository

PHONE = "+5511987654321"


async def _message(repos: Repositories) -> MessageRow:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")
    contact = (await repos.contacts.resolve(session.id, phone=PHONE, push_name="Maria")).contact
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id)
    return await repos.messages.insert_outbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=session.id,
            kind="text",
            sender="@bob:localhost",
            content={"text": "Bom dia"},
            timestamp=10.0,
        ),
    )


async def _two_rows(repos: Repositories) -> tuple[int, int]:
    first = await repos.outbox.enqueue("slack", ordering_key="t1:slack", payload={}, now=1.0)
    second = await repos.outbox.enqueue("slack", ordering_key="t1:slack", payload={}, now=1.0)
    return first.id, second.id


async def test_a_whatsapp_id_is_written_with_the_done_mark(repos: Repositories) -> None:
    message = await _message(repos)
    first, second = await _two_rows(repos)
    after = await repos.outbox.finish(
        first, "t1:slack", now=2.0, record=WaIdSent(message.id, "3EB0AA")
    )
    assert after is not None and after.id == second
    sent = await repos.messages.get(message.id)
    assert sent is not None and (sent.wa_id, sent.ack) == ("3EB0AA", "sent")
    done = await repos.outbox.get(first)
    assert done is not None and done.status == "done"


async def test_every_part_a_frontend_posted_is_written_with_the_done_mark(
    repos: Repositories,
) -> None:
    message = await _message(repos)
    first, _ = await _two_rows(repos)
    parts = PostedRefs(message.id, "slack", "C0SALES", ("1.0001", "1.0002", "1.0003"))
    await repos.outbox.finish(first, "t1:slack", now=2.0, record=parts)
    refs = await repos.message_refs.list_for_message(message.id, frontend="slack")
    assert [(r.part, r.room_id, r.event_id) for r in refs] == [
        (0, "C0SALES", "1.0001"),
        (1, "C0SALES", "1.0002"),
        (2, "C0SALES", "1.0003"),
    ]
    # a delivery repeated after a lost done-mark records again without failing
    again = PostedRefs(message.id, "slack", "C0SALES", ("1.0009",))
    await repos.outbox.finish(first, "t1:slack", now=3.0, record=again)
    main = await repos.message_refs.get(message.id, "slack")
    assert main is not None and main.event_id == "1.0009"


async def test_finish_without_a_record_writes_nothing_else(repos: Repositories) -> None:
    message = await _message(repos)
    first, _ = await _two_rows(repos)
    await repos.outbox.finish(first, "t1:slack", now=2.0)
    unsent = await repos.messages.get(message.id)
    assert unsent is not None and unsent.wa_id is None
    assert await repos.message_refs.list_for_message(message.id) == []


async def test_the_delivery_read_joins_message_ticket_contact_and_whether_posted(
    repos: Repositories,
) -> None:
    message = await _message(repos)
    found = await repos.delivery_reads.message_for(message.id, frontend="slack")
    assert found is not None
    assert found.message == message
    assert found.ticket.id == message.ticket_id
    assert (found.contact.phone, found.contact.push_name) == (PHONE, "Maria")
    assert found.posted is False
    await repos.message_refs.put(message.id, frontend="matrix", room_id="!r", event_id="$e")
    on_matrix = await repos.delivery_reads.message_for(message.id, frontend="matrix")
    assert on_matrix is not None and on_matrix.posted is True
    on_slack = await repos.delivery_reads.message_for(message.id, frontend="slack")
    assert on_slack is not None and on_slack.posted is False
    assert await repos.delivery_reads.message_for(message.id + 100, frontend="slack") is None


@pytest.mark.postgres
async def test_the_claims_finish_writes_the_record_in_its_one_statement(
    pg_raw_db: Database,
) -> None:
    await migrate(pg_raw_db)
    repos = Repositories.over(pg_raw_db)
    message = await _message(repos)
    first, second = await _two_rows(repos)
    claims = OutboxClaimRepository(pg_raw_db, holder="i1", seconds=10.0)
    head = await claims.take_head("t1:slack", now=1.0, owned=[])
    assert head.row is not None and head.row.id == first and head.claimed
    [after] = await claims.finish_many(
        [Finish(head.row.id, head.row.ordering_key, 2.0, WaIdSent(message.id, "3EB0BB"))]
    )
    assert after.row is not None and after.row.id == second and after.kept
    sent = await repos.messages.get(message.id)
    assert sent is not None and sent.wa_id == "3EB0BB"
