"""Finishing many outbox rows in one statement, the deliveries' reads of many
messages in one query, and the batcher that gathers them (bridge/db/batcher.py), on
PostgreSQL where they are used."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bridge.db import Database, Repositories, migrate
from bridge.db.batcher import Batcher
from bridge.db.delivery_records import PostedRefs, WaIdSent
from bridge.db.messages import MessageRow, NewMessage
from bridge.db.outbox import Finish, OutboxRow
from bridge.db.outbox_claims import OutboxClaimRepository
from bridge.errors import DatabaseError

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_repos(pg_raw_db: Database) -> Repositories:
    await migrate(pg_raw_db)
    return Repositories.over(pg_raw_db)


async def _messages(repos: Repositories, count: int) -> list[MessageRow]:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")
    contact = (await repos.contacts.resolve(session.id, phone="+5511987654321")).contact
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id)
    new = NewMessage(
        ticket_id=ticket.id,
        session_id=session.id,
        kind="text",
        sender="@bob:localhost",
        content={"text": "oi"},
        timestamp=1.0,
    )
    return [await repos.messages.insert_outbound(new) for _ in range(count)]


async def _rows(repos: Repositories, key: str, count: int) -> list[OutboxRow]:
    return [
        await repos.outbox.enqueue("slack", ordering_key=key, payload={"n": n}, now=1.0)
        for n in range(count)
    ]


async def test_rows_of_several_keys_finish_in_one_statement(pg_repos: Repositories) -> None:
    a1, a2 = await _rows(pg_repos, "a", 2)
    (b1,) = await _rows(pg_repos, "b", 1)
    c1, c2, c3 = await _rows(pg_repos, "c", 3)
    m1, m2 = await _messages(pg_repos, 2)
    after = await pg_repos.outbox.finish_many(
        [
            Finish(a1.id, "a", 4.0, WaIdSent(m1.id, "3EB0A1")),
            Finish(b1.id, "b", 5.0, PostedRefs(m2.id, "slack", "C0SALES", ("1.1", "1.2"))),
            Finish(c1.id, "c", 5.0),
        ]
    )
    assert [row.id if row else None for row in after] == [a2.id, None, c2.id]
    for row in (a1, b1, c1):
        done = await pg_repos.outbox.get(row.id)
        assert done is not None and (done.status, done.updated_at) == ("done", 5.0)
    assert (await pg_repos.outbox.get(c3.id)).status == "pending"  # type: ignore[union-attr]
    sent = await pg_repos.messages.get(m1.id)
    assert sent is not None and (sent.wa_id, sent.ack) == ("3EB0A1", "sent")
    refs = await pg_repos.message_refs.list_for_message(m2.id, frontend="slack")
    assert [(r.part, r.event_id) for r in refs] == [(0, "1.1"), (1, "1.2")]


async def test_finishes_that_arrive_during_a_statement_share_the_next_one(
    pg_repos: Repositories,
) -> None:
    keys = [f"k{n}" for n in range(12)]
    heads = {key: await _rows(pg_repos, key, 2) for key in keys}
    statements: list[int] = []
    in_flight, go_on = asyncio.Event(), asyncio.Event()

    async def counted(finishes: Sequence[Finish]) -> list[OutboxRow | None]:
        statements.append(len(finishes))
        if len(statements) == 1:
            in_flight.set()
            await go_on.wait()  # the others arrive while this one is in flight
        return await pg_repos.outbox.finish_many(finishes)

    batcher = Batcher(counted)

    async def finish(key: str) -> OutboxRow | None:
        return await batcher(Finish(heads[key][0].id, key, 2.0))

    first = asyncio.create_task(finish(keys[0]))
    await in_flight.wait()  # the first went alone, without waiting for company
    rest = [asyncio.create_task(finish(key)) for key in keys[1:]]
    await asyncio.sleep(0)
    go_on.set()
    results = await asyncio.gather(first, *rest)
    assert [row.id if row else None for row in results] == [heads[key][1].id for key in keys]
    assert statements == [1, 11]
    assert await pg_repos.outbox.count_pending() == len(keys)


async def test_a_failed_statement_fails_each_of_its_finishes_and_not_the_next(
    pg_repos: Repositories,
) -> None:
    (a1,) = await _rows(pg_repos, "a", 1)
    (b1,) = await _rows(pg_repos, "b", 1)
    calls = 0

    async def failing_once(finishes: Sequence[Finish]) -> list[OutboxRow | None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise DatabaseError("PostgreSQL statement failed: connection lost")
        return await pg_repos.outbox.finish_many(finishes)

    batcher = Batcher(failing_once)
    with pytest.raises(DatabaseError, match="connection lost"):
        await batcher(Finish(a1.id, "a", 2.0))
    assert await batcher(Finish(b1.id, "b", 2.0)) is None
    assert (await pg_repos.outbox.get(a1.id)).status == "pending"  # type: ignore[union-attr]
    assert (await pg_repos.outbox.get(b1.id)).status == "done"  # type: ignore[union-attr]


async def test_a_caller_that_gives_up_does_not_stop_the_others(pg_repos: Repositories) -> None:
    (a1,) = await _rows(pg_repos, "a", 1)
    b1, b2 = await _rows(pg_repos, "b", 2)
    batcher = Batcher(pg_repos.outbox.finish_many)
    first = asyncio.create_task(batcher(Finish(a1.id, "a", 2.0)))
    second = asyncio.create_task(batcher(Finish(b1.id, "b", 2.0)))
    await asyncio.sleep(0)
    first.cancel()
    after = await second
    assert after is not None and after.id == b2.id
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_reads_of_many_deliveries_are_one_query_each_answer_in_its_place(
    pg_repos: Repositories,
) -> None:
    m1, m2 = await _messages(pg_repos, 2)
    await pg_repos.message_refs.put(m2.id, frontend="slack", room_id="C0", event_id="1.1")
    reads = await pg_repos.delivery_reads.messages_for(
        [(m2.id, "slack"), (m1.id + m2.id, "slack"), (m1.id, "slack"), (m2.id, "matrix")]
    )
    assert [(r.message.id, r.posted) if r else None for r in reads] == [
        (m2.id, True),
        None,
        (m1.id, False),
        (m2.id, False),
    ]
    together = await asyncio.gather(
        *(pg_repos.delivery_reads.message_for(m.id, frontend="slack") for m in (m1, m2))
    )
    assert [(r.message.id, r.posted) for r in together if r] == [(m1.id, False), (m2.id, True)]


async def test_with_claims_rows_of_several_keys_finish_in_one_statement(
    pg_repos: Repositories, pg_raw_db: Database
) -> None:
    a1, a2 = await _rows(pg_repos, "a", 2)
    (b1,) = await _rows(pg_repos, "b", 1)
    (m1,) = await _messages(pg_repos, 1)
    claims = OutboxClaimRepository(pg_raw_db, holder="i1", seconds=30.0)
    for key in ("a", "b"):
        assert (await claims.take_head(key, now=1.0, owned=[])).claimed
    after = await claims.finish_many(
        [Finish(a1.id, "a", 2.0, WaIdSent(m1.id, "3EB0C1")), Finish(b1.id, "b", 2.0)]
    )
    assert [(n.row.id if n.row else None, n.kept) for n in after] == [(a2.id, True), (None, False)]
    holders = await pg_raw_db.fetch("SELECT ordering_key, holder FROM outbox_claims")
    assert {(r["ordering_key"], r["holder"]) for r in holders} == {("a", "i1")}  # b's released
    sent = await pg_repos.messages.get(m1.id)
    assert sent is not None and sent.wa_id == "3EB0C1"
    assert (await pg_repos.outbox.get(b1.id)).status == "done"  # type: ignore[union-attr]


async def test_the_heads_of_many_keys_are_read_in_one_query(pg_repos: Repositories) -> None:
    a1, _ = await _rows(pg_repos, "a", 2)
    (b1,) = await _rows(pg_repos, "b", 1)
    await pg_repos.outbox.mark_done(b1.id, now=2.0)
    heads = await pg_repos.outbox.next_for_keys(["a", "b", "nobody", "a"])
    assert [row.id if row else None for row in heads] == [a1.id, None, None, a1.id]
