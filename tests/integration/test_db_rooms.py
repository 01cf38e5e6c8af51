"""Rooms and thread refs repositories, on both engines."""

from __future__ import annotations

from bridge.db import Repositories
from bridge.db.rooms import RoomRow
from bridge.db.threads import ThreadRefRow


async def test_room_roundtrip(repos: Repositories) -> None:
    await repos.companies.upsert("acme", "ACME")
    sales = await repos.sessions.upsert("acme", "sales", engine="sim")
    support = await repos.sessions.upsert("acme", "support", engine="sim")
    ops = await repos.rooms.put(
        frontend="matrix", kind="ops", company_id="acme", room_id="!ops:hs", now=1.0
    )
    assert ops == RoomRow(ops.id, "matrix", "ops", "acme", None, "!ops:hs", 1.0)
    control = await repos.rooms.put(
        frontend="matrix", kind="control", company_id="acme", session_id=sales.id, room_id="!s:hs"
    )
    await repos.rooms.put(
        frontend="matrix", kind="control", company_id="acme", session_id=support.id, room_id="!t:hs"
    )
    replaced = await repos.rooms.put(
        frontend="matrix", kind="ops", company_id="acme", room_id="!ops2:hs"
    )
    assert (replaced.id, replaced.room_id) == (ops.id, "!ops2:hs")
    assert await repos.rooms.get(frontend="matrix", kind="ops", company_id="acme") == replaced
    found = await repos.rooms.get(
        frontend="matrix", kind="control", company_id="acme", session_id=sales.id
    )
    assert found == control
    assert await repos.rooms.get(frontend="slack", kind="ops", company_id="acme") is None
    assert await repos.rooms.find_by_room_id("matrix", "!s:hs") == [control]
    assert len(await repos.rooms.list_by_company("acme")) == 3
    assert await repos.rooms.delete(control.id)
    assert await repos.rooms.find_by_room_id("matrix", "!s:hs") == []


async def test_thread_ref_roundtrip(repos: Repositories) -> None:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")
    contact = (await repos.contacts.resolve(session.id, phone="+5511987654321")).contact
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id)
    matrix = await repos.threads.put(
        ticket.id, frontend="matrix", room_id="!s:hs", thread_root="$root"
    )
    assert matrix == ThreadRefRow(ticket.id, "matrix", "!s:hs", "$root")
    slack = await repos.threads.put(
        ticket.id, frontend="slack", room_id="C0SALES", thread_root="1700000000.000100"
    )
    assert await repos.threads.get(ticket.id, "matrix") == matrix
    assert await repos.threads.list_for_ticket(ticket.id) == [matrix, slack]
    found = await repos.threads.find_by_root(
        "slack", room_id="C0SALES", thread_root=slack.thread_root
    )
    assert found == slack
    assert await repos.threads.find_by_root("slack", room_id="C0X", thread_root="1") is None
    moved = await repos.threads.put(
        ticket.id, frontend="matrix", room_id="!s:hs", thread_root="$new-root"
    )
    assert await repos.threads.get(ticket.id, "matrix") == moved
