"""Contacts repository: phone/LID identity, groups, merging; on both engines."""

from __future__ import annotations

import asyncio

import pytest

from bridge.db import Repositories
from bridge.db.contacts import ContactRow
from bridge.db.sessions import SessionRow

PHONE = "+5511987654321"


async def _session(repos: Repositories) -> SessionRow:
    await repos.companies.upsert("acme", "ACME")
    return await repos.sessions.upsert("acme", "sales", engine="sim")


async def test_contact_roundtrip(repos: Repositories) -> None:
    session = await _session(repos)
    maria = (
        await repos.contacts.resolve(session.id, phone=PHONE, push_name="Maria", now=5.0)
    ).contact
    assert maria == ContactRow(
        id=maria.id,
        session_id=session.id,
        phone=PHONE,
        lid=None,
        push_name="Maria",
        is_group=False,
        group_jid=None,
        group_name=None,
        avatar_url=None,
        created_at=5.0,
        updated_at=5.0,
    )
    assert await repos.contacts.get(maria.id) == maria
    assert await repos.contacts.find(session.id, phone=PHONE) == maria
    same = (await repos.contacts.resolve(session.id, phone=PHONE, push_name="Maria")).contact
    assert same == maria  # nothing changed, nothing written
    renamed = (await repos.contacts.resolve(session.id, phone=PHONE, push_name="Maria S.")).contact
    assert (renamed.id, renamed.push_name) == (maria.id, "Maria S.")
    assert await repos.contacts.set_avatar(maria.id, "mxc://x/y", now=9.0)
    assert (await repos.contacts.get(maria.id)).avatar_url == "mxc://x/y"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="phone or a LID"):
        await repos.contacts.resolve(session.id)


async def test_lid_is_linked_to_the_phone_contact(repos: Repositories) -> None:
    session = await _session(repos)
    by_lid = (await repos.contacts.resolve(session.id, lid="123@lid", push_name="Maria")).contact
    assert by_lid.phone is None
    linked = (await repos.contacts.resolve(session.id, phone=PHONE, lid="123@lid")).contact
    assert (linked.id, linked.phone, linked.lid) == (by_lid.id, PHONE, "123@lid")
    assert await repos.contacts.find(session.id, phone=PHONE) == linked
    assert await repos.contacts.find(session.id, lid="123@lid") == linked


async def test_merge_folds_lid_contact_into_phone_contact(repos: Repositories) -> None:
    session = await _session(repos)
    by_phone = (await repos.contacts.resolve(session.id, phone=PHONE)).contact
    by_lid = (await repos.contacts.resolve(session.id, lid="123@lid", push_name="Maria")).contact
    # Both exist: the phone's contact wins, unchanged.
    found = (await repos.contacts.resolve(session.id, phone=PHONE, lid="123@lid")).contact
    assert (found.id, found.lid) == (by_phone.id, None)
    kept_ticket, _ = await repos.tickets.open_or_get(session.id, by_phone.id)
    dropped_ticket, _ = await repos.tickets.open_or_get(session.id, by_lid.id)

    merged = await repos.contacts.merge(keep_id=by_phone.id, drop_id=by_lid.id, now=50.0)

    assert merged.closed_ticket_ids == [dropped_ticket.id]
    assert (merged.contact.id, merged.contact.phone, merged.contact.lid) == (
        by_phone.id,
        PHONE,
        "123@lid",
    )
    assert merged.contact.push_name == "Maria"
    assert await repos.contacts.get(by_lid.id) is None
    moved = await repos.tickets.get(dropped_ticket.id)
    assert moved is not None
    assert (moved.contact_id, moved.status, moved.closed_at) == (by_phone.id, "closed", 50.0)
    assert await repos.tickets.find_active(session.id, by_phone.id) == kept_ticket


async def test_group_contact(repos: Repositories) -> None:
    session = await _session(repos)
    group = await repos.contacts.get_or_create_group(
        session.id, group_jid="1203@g.us", group_name="Team"
    )
    assert (group.is_group, group.group_jid, group.group_name, group.phone) == (
        True,
        "1203@g.us",
        "Team",
        None,
    )
    same = await repos.contacts.get_or_create_group(session.id, group_jid="1203@g.us")
    assert (same.id, same.group_name) == (group.id, "Team")
    renamed = await repos.contacts.get_or_create_group(
        session.id, group_jid="1203@g.us", group_name="Team B"
    )
    assert renamed.group_name == "Team B"


async def test_concurrent_resolves_make_one_contact(repos: Repositories) -> None:
    session = await _session(repos)
    found = await asyncio.gather(
        *(repos.contacts.resolve(session.id, phone=PHONE) for _ in range(20))
    )
    assert len({f.contact.id for f in found}) == 1


async def test_resolve_says_when_a_known_contact_changed(repos: Repositories) -> None:
    session = await _session(repos)
    new = await repos.contacts.resolve(session.id, lid="123", push_name="Maria", now=1.0)
    assert not new.changed  # created: nothing shown anywhere yet
    same = await repos.contacts.resolve(session.id, lid="123", push_name="Maria", now=2.0)
    assert (same.contact, same.changed) == (new.contact, False)
    linked = await repos.contacts.resolve(session.id, phone=PHONE, lid="123", now=3.0)
    assert (linked.contact.id, linked.contact.phone, linked.changed) == (
        new.contact.id,
        PHONE,
        True,
    )
    again = await repos.contacts.resolve(session.id, lid="123", now=4.0)
    assert (again.contact.phone, again.changed) == (PHONE, False)  # by the LID alone too
    renamed = await repos.contacts.resolve(session.id, phone=PHONE, push_name="Maria S.", now=5.0)
    assert (renamed.contact.push_name, renamed.changed) == ("Maria S.", True)


async def test_merge_keeps_the_older_of_two_active_tickets(repos: Repositories) -> None:
    session = await _session(repos)
    by_lid = (await repos.contacts.resolve(session.id, lid="123", push_name="Maria")).contact
    by_phone = (await repos.contacts.resolve(session.id, phone=PHONE)).contact
    older, _ = await repos.tickets.open_or_get(session.id, by_lid.id, now=10.0)
    newer, _ = await repos.tickets.open_or_get(session.id, by_phone.id, now=20.0)

    merged = await repos.contacts.merge(keep_id=by_phone.id, drop_id=by_lid.id, now=30.0)

    assert merged.closed_ticket_ids == [newer.id]
    kept = await repos.tickets.find_active(session.id, by_phone.id)
    assert kept is not None and (kept.id, kept.contact_id) == (older.id, by_phone.id)
    closed = await repos.tickets.get(newer.id)
    assert closed is not None and (closed.status, closed.closed_at) == ("closed", 30.0)
