"""Contacts: the customers of a session, a person (phone and/or LID) or a group chat.

A person may be known by an E.164 phone, a WhatsApp LID, or both. ``resolve`` (which
also says whether the contact changed) links the identifier it is missing when the
other one matches; when a phone and a LID turn out to name
two existing contacts, ``merge`` folds one into the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bridge.db.database import Database, DatabaseError, Row, UniqueViolation, column_list

RACE_RETRIES = 5


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: int
    session_id: int
    phone: str | None  # E.164, "+5511987654321"
    lid: str | None
    push_name: str | None
    is_group: bool
    group_jid: str | None
    group_name: str | None
    avatar_url: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ContactMerge:
    """The result of ``merge``: the kept contact and the tickets closed to make room."""

    contact: ContactRow
    closed_ticket_ids: list[int]


@dataclass(frozen=True, slots=True)
class ContactResolution:
    """The result of ``resolve``: the person's contact, and whether this call changed
    a contact that existed (it took a phone, a LID or a push name it lacked)."""

    contact: ContactRow
    changed: bool


COLUMNS = column_list(ContactRow)

_SELECT_BY = {
    column: f"SELECT {COLUMNS} FROM contacts WHERE session_id = $1 AND {column} = $2"
    for column in ("phone", "lid", "group_jid")
}


ALIASED_COLUMNS = ", ".join(f"c.{f} AS c_{f}" for f in COLUMNS.split(", "))
"""The SELECT list of a contact joined as ``c`` to another table; read with ``contact_of``."""


def _contact(row: Row) -> ContactRow:
    return ContactRow(**{**row, "is_group": bool(row["is_group"])})


def contact_of(row: Row) -> ContactRow:
    """The contact in a row selected with ``ALIASED_COLUMNS``."""
    return _contact({name: row[f"c_{name}"] for name in COLUMNS.split(", ")})


class ContactRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, contact_id: int) -> ContactRow | None:
        row = await self._db.fetchrow(f"SELECT {COLUMNS} FROM contacts WHERE id = $1", contact_id)
        return _contact(row) if row else None

    async def find(
        self, session_id: int, *, phone: str | None = None, lid: str | None = None
    ) -> ContactRow | None:
        """The contact with this phone, else the one with this LID."""
        return await self._find_by(session_id, "phone", phone) or await self._find_by(
            session_id, "lid", lid
        )

    async def resolve(
        self,
        session_id: int,
        *,
        phone: str | None = None,
        lid: str | None = None,
        push_name: str | None = None,
        now: float | None = None,
    ) -> ContactResolution:
        """The person's contact, created if new, and whether an existing one changed;
        safe against concurrent callers.

        A known contact gets the identifier it lacked (unless another contact holds
        it) and the newer push name. When phone and LID match two different contacts,
        the phone's is returned unchanged; call ``merge`` to fold them together.
        """
        if phone is None and lid is None:
            raise ValueError("a contact needs a phone or a LID")
        known = await self._find_unchanged(session_id, phone, lid, push_name)
        if known is not None:
            return ContactResolution(known, False)  # the usual case: one read, no savepoint
        now = time.time() if now is None else now
        for _ in range(RACE_RETRIES):
            try:
                async with self._db.transaction():
                    found = await self._find_and_update(session_id, phone, lid, push_name, now)
                    if found is not None:
                        return found
                    created = await self._insert(session_id, phone, lid, push_name, now)
                    if created is not None:
                        return ContactResolution(created, False)
            except UniqueViolation:
                continue  # a concurrent caller took the phone or LID first: look again
        raise DatabaseError(f"contact {phone or lid} kept changing under concurrent writers")

    async def get_or_create_group(
        self,
        session_id: int,
        *,
        group_jid: str,
        group_name: str | None = None,
        now: float | None = None,
    ) -> ContactRow:
        """The group chat's contact, created if new; its name updated when given."""
        row = await self._db.fetchrow_required(
            "INSERT INTO contacts (session_id, is_group, group_jid, group_name, created_at, "
            "updated_at) VALUES ($1, TRUE, $2, $3, $4, $4) "
            "ON CONFLICT (session_id, group_jid) DO UPDATE SET "
            "group_name = COALESCE(excluded.group_name, contacts.group_name) "
            f"RETURNING {COLUMNS}",
            session_id,
            group_jid,
            group_name,
            time.time() if now is None else now,
        )
        return _contact(row)

    async def set_avatar(
        self, contact_id: int, avatar_url: str | None, *, now: float | None = None
    ) -> bool:
        changed = await self._db.execute(
            "UPDATE contacts SET avatar_url = $2, updated_at = $3 WHERE id = $1",
            contact_id,
            avatar_url,
            time.time() if now is None else now,
        )
        return changed > 0

    async def merge(self, *, keep_id: int, drop_id: int, now: float | None = None) -> ContactMerge:
        """Fold contact ``drop_id`` into ``keep_id`` (same session) and delete it.

        Its tickets move to the kept contact; if both have a non-closed ticket, the
        newer one is closed first (its id is in the result): the conversation goes
        on where it began. The kept contact takes the phone, LID and push name it
        lacked.
        """
        now = time.time() if now is None else now
        async with self._db.transaction():
            keep, drop = await self.get(keep_id), await self.get(drop_id)
            if keep is None or drop is None or keep.session_id != drop.session_id:
                raise ValueError(f"cannot merge contact {drop_id} into {keep_id}")
            closed = await self._close_clashing_ticket(keep_id, drop_id, now)
            await self._db.execute(
                "UPDATE tickets SET contact_id = $1 WHERE contact_id = $2", keep_id, drop_id
            )
            await self._db.execute("DELETE FROM contacts WHERE id = $1", drop_id)
            push_name = drop.push_name if keep.push_name is None else None
            row = await self._update(
                keep, phone=drop.phone, lid=drop.lid, push_name=push_name, now=now
            )
        return ContactMerge(row, closed)

    # -- internals ------------------------------------------------------------

    async def _find_by(self, session_id: int, column: str, value: str | None) -> ContactRow | None:
        if value is None:
            return None
        row = await self._db.fetchrow(_SELECT_BY[column], session_id, value)
        return _contact(row) if row else None

    async def _find_unchanged(
        self, session_id: int, phone: str | None, lid: str | None, push_name: str | None
    ) -> ContactRow | None:
        """The contact found by its first identifier when it needs no write."""
        found = await self._find_by(session_id, "phone", phone) if phone else None
        if found is None and phone is None:
            found = await self._find_by(session_id, "lid", lid)
        if found is None or (lid is not None and found.lid != lid):
            return None
        if push_name is not None and push_name != found.push_name:
            return None
        return found

    async def _find_and_update(
        self, session_id: int, phone: str | None, lid: str | None, push_name: str | None, now: float
    ) -> ContactResolution | None:
        by_phone = await self._find_by(session_id, "phone", phone)
        by_lid = await self._find_by(session_id, "lid", lid)
        found = by_phone or by_lid
        if found is None:
            return None
        updated = await self._update(
            found,
            phone=phone if by_phone is None else None,
            lid=lid if by_lid is None else None,
            push_name=push_name,
            now=now,
        )
        return ContactResolution(updated, updated != found)

    async def _update(
        self,
        contact: ContactRow,
        *,
        phone: str | None,
        lid: str | None,
        push_name: str | None,
        now: float,
    ) -> ContactRow:
        """Fill the missing phone/LID and set a new push name; no write when nothing changes."""
        new_phone = contact.phone is None and phone is not None
        new_lid = contact.lid is None and lid is not None
        new_name = push_name is not None and push_name != contact.push_name
        if not (new_phone or new_lid or new_name):
            return contact
        row = await self._db.fetchrow_required(
            "UPDATE contacts SET phone = COALESCE(phone, $2), lid = COALESCE(lid, $3), "
            f"push_name = COALESCE($4, push_name), updated_at = $5 WHERE id = $1 "
            f"RETURNING {COLUMNS}",
            contact.id,
            phone,
            lid,
            push_name,
            now,
        )
        return _contact(row)

    async def _insert(
        self, session_id: int, phone: str | None, lid: str | None, push_name: str | None, now: float
    ) -> ContactRow | None:
        row = await self._db.fetchrow(
            "INSERT INTO contacts (session_id, phone, lid, push_name, created_at, updated_at) "
            f"VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING RETURNING {COLUMNS}",
            session_id,
            phone,
            lid,
            push_name,
            now,
        )
        return _contact(row) if row else None

    async def _close_clashing_ticket(self, keep_id: int, drop_id: int, now: float) -> list[int]:
        """When both contacts have a non-closed ticket, close the newer one."""
        active = await self._db.fetch(
            "SELECT id FROM tickets WHERE contact_id IN ($1, $2) AND status <> 'closed' "
            "ORDER BY created_at, id",
            keep_id,
            drop_id,
        )
        if len(active) < 2:
            return []
        newer = [row["id"] for row in active[1:]]
        for ticket_id in newer:
            await self._db.execute(
                "UPDATE tickets SET status = 'closed', closed_at = $2, updated_at = $2 "
                "WHERE id = $1",
                ticket_id,
                now,
            )
        return newer
