"""Tickets: one conversation between a contact and a session.

The database keeps at most one non-closed ticket per (session, contact) (a partial
unique index), so ``open_or_get`` is safe however many inbound messages race.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bridge.db.contacts import ALIASED_COLUMNS as _C_ALIASED
from bridge.db.contacts import ContactRow, contact_of
from bridge.db.database import Database, DatabaseError, Row, column_list

STATUSES = ("pending", "open", "closed")
RACE_RETRIES = 5


@dataclass(frozen=True, slots=True)
class TicketRow:
    id: int
    session_id: int
    contact_id: int
    status: str  # pending | open | closed
    assignee: str | None
    queue: str | None
    created_at: float
    first_response_at: float | None
    closed_at: float | None
    updated_at: float
    greeted_at: float | None
    out_of_hours_sent_at: float | None
    csat_asked_at: float | None = None  # a close asked the customer for a rating
    csat_score: int | None = None  # 1..5, set once
    csat_rated_at: float | None = None
    last_customer_at: float | None = None  # the customer's last message, or (re)activation
    unanswered_alerted_at: float | None = None  # ops told nobody answered (once)
    unanswered_resolved_at: float | None = None  # ops told it was answered or closed
    menu_sent_at: float | None = None  # the queue menu went out (docs/tickets.md#queues)
    menu_deadline: float | None = None  # set while the customer chooses a queue
    menu_invalid: int = 0  # answers that named no option


COLUMNS = column_list(TicketRow)
_T_COLUMNS = column_list(TicketRow, prefix="t.")

_INSERT_ACTIVE = (
    "INSERT INTO tickets (session_id, contact_id, status, created_at, updated_at, "
    "last_customer_at) VALUES ($1, $2, 'pending', $3, $3, $3) "
    "ON CONFLICT (session_id, contact_id) WHERE status <> 'closed' DO NOTHING "
    f"RETURNING {COLUMNS}"
)
_SELECT_ACTIVE = (
    f"SELECT {COLUMNS} FROM tickets "
    "WHERE session_id = $1 AND contact_id = $2 AND status <> 'closed'"
)
_MARK_ACTIVE = (  # _SELECT_ACTIVE, and the customer's silence counts from $3
    "UPDATE tickets SET last_customer_at = CASE WHEN last_customer_at IS NULL "
    "OR last_customer_at < $3 THEN $3 ELSE last_customer_at END "
    f"WHERE session_id = $1 AND contact_id = $2 AND status <> 'closed' RETURNING {COLUMNS}"
)


_SET_COLUMN = {
    column: f"UPDATE tickets SET {column} = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}"
    for column in ("assignee", "queue")
}
_STAMP_ONCE = {
    column: f"UPDATE tickets SET {column} = $2, updated_at = $2 WHERE id = $1 AND {column} IS NULL"
    for column in (
        "first_response_at",
        "greeted_at",
        "out_of_hours_sent_at",
        "csat_asked_at",
        "unanswered_alerted_at",
        "unanswered_resolved_at",
    )
}


_SELECT_WITH_CONTACT = (
    f"SELECT {_T_COLUMNS}, {_C_ALIASED} FROM tickets t "
    "JOIN contacts c ON c.id = t.contact_id WHERE t.id = $1"
)
_TICKET_FIELDS = COLUMNS.split(", ")


def _ticket(row: Row) -> TicketRow:
    return TicketRow(**row)


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown ticket status {status!r}; expected one of {STATUSES}")


class TicketRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def open_or_get(
        self, session_id: int, contact_id: int, *, now: float | None = None
    ) -> tuple[TicketRow, bool]:
        """The contact's non-closed ticket, or a new pending one; and whether it is new."""
        now = time.time() if now is None else now
        for _ in range(RACE_RETRIES):
            row = await self._db.fetchrow(_INSERT_ACTIVE, session_id, contact_id, now)
            if row is not None:
                return _ticket(row), True
            row = await self._db.fetchrow(_SELECT_ACTIVE, session_id, contact_id)
            if row is not None:  # None only if it was closed in between: try again
                return _ticket(row), False
        raise DatabaseError(
            f"the ticket of contact {contact_id} kept changing under concurrent writers"
        )

    async def get(self, ticket_id: int) -> TicketRow | None:
        row = await self._db.fetchrow(f"SELECT {COLUMNS} FROM tickets WHERE id = $1", ticket_id)
        return _ticket(row) if row else None

    async def get_with_contact(self, ticket_id: int) -> tuple[TicketRow, ContactRow] | None:
        """The ticket and its contact, in one query."""
        row = await self._db.fetchrow(_SELECT_WITH_CONTACT, ticket_id)
        if row is None:
            return None
        return _ticket({name: row[name] for name in _TICKET_FIELDS}), contact_of(row)

    async def find_active(
        self, session_id: int, contact_id: int, *, customer_wrote_at: float | None = None
    ) -> TicketRow | None:
        """The contact's non-closed ticket, if any. ``customer_wrote_at``: the customer
        wrote then, recorded as by :meth:`mark_customer_wrote` in the same statement."""
        if customer_wrote_at is None:
            row = await self._db.fetchrow(_SELECT_ACTIVE, session_id, contact_id)
        else:
            row = await self._db.fetchrow(_MARK_ACTIVE, session_id, contact_id, customer_wrote_at)
        return _ticket(row) if row else None

    async def find_latest(self, session_id: int, contact_id: int) -> TicketRow | None:
        """The contact's newest ticket whatever its status (for the reopen window)."""
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM tickets WHERE session_id = $1 AND contact_id = $2 "
            "ORDER BY id DESC LIMIT 1",
            session_id,
            contact_id,
        )
        return _ticket(row) if row else None

    async def list_by_session(
        self, session_id: int, *, status: str | None = None, limit: int = 100
    ) -> list[TicketRow]:
        """The session's tickets, newest first, optionally of one status."""
        _check_status(status)
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM tickets WHERE session_id = $1 "
            "AND (status = $2 OR $2 IS NULL) ORDER BY id DESC LIMIT $3",
            session_id,
            status,
            limit,
        )
        return [_ticket(row) for row in rows]

    async def list_by_company(
        self, company_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[TicketRow]:
        """The company's tickets over all its sessions, newest first."""
        _check_status(status)
        rows = await self._db.fetch(
            f"SELECT {_T_COLUMNS} FROM tickets t JOIN sessions s ON s.id = t.session_id "
            "WHERE s.company_id = $1 AND (t.status = $2 OR $2 IS NULL) "
            "ORDER BY t.id DESC LIMIT $3",
            company_id,
            status,
            limit,
        )
        return [_ticket(row) for row in rows]

    async def count_by_status(self, session_id: int) -> dict[str, int]:
        """How many tickets of each status the session has (every status present)."""
        rows = await self._db.fetch(
            "SELECT status, COUNT(*) AS n FROM tickets WHERE session_id = $1 GROUP BY status",
            session_id,
        )
        return {status: 0 for status in STATUSES} | {row["status"]: row["n"] for row in rows}

    async def set_status(
        self, ticket_id: int, status: str, *, now: float | None = None
    ) -> TicketRow | None:
        """Change the status; closing stamps ``closed_at``, reopening clears it.

        Reopening while the contact has another non-closed ticket raises
        ``UniqueViolation``.
        """
        _check_status(status)
        now = time.time() if now is None else now
        row = await self._db.fetchrow(
            "UPDATE tickets SET status = $2, updated_at = $3, closed_at = $4 "
            f"WHERE id = $1 RETURNING {COLUMNS}",
            ticket_id,
            status,
            now,
            now if status == "closed" else None,
        )
        return _ticket(row) if row else None

    async def set_assignee(
        self, ticket_id: int, assignee: str | None, *, now: float | None = None
    ) -> TicketRow | None:
        return await self._set_column(ticket_id, "assignee", assignee, now)

    async def set_queue(
        self, ticket_id: int, queue: str | None, *, now: float | None = None
    ) -> TicketRow | None:
        return await self._set_column(ticket_id, "queue", queue, now)

    async def mark_first_response(self, ticket_id: int, *, now: float | None = None) -> bool:
        """Stamp the first attendant response; False if it was already stamped."""
        return await self._stamp_once(ticket_id, "first_response_at", now)

    async def mark_greeted(self, ticket_id: int, *, now: float | None = None) -> bool:
        """Stamp the greeting; False if it was already sent."""
        return await self._stamp_once(ticket_id, "greeted_at", now)

    async def mark_out_of_hours_sent(self, ticket_id: int, *, now: float | None = None) -> bool:
        """Stamp the out-of-hours reply; False if it was already sent."""
        return await self._stamp_once(ticket_id, "out_of_hours_sent_at", now)

    async def mark_csat_asked(self, ticket_id: int, *, now: float) -> bool:
        """Stamp the satisfaction question; False if it was already asked."""
        return await self._stamp_once(ticket_id, "csat_asked_at", now)

    async def record_csat(self, ticket_id: int, score: int, *, now: float) -> bool:
        """The ticket's rating, once: False when it was rated already."""
        changed = await self._db.execute(
            "UPDATE tickets SET csat_score = $2, csat_rated_at = $3 "
            "WHERE id = $1 AND csat_score IS NULL",
            ticket_id,
            score,
            now,
        )
        return changed > 0

    async def csat_summary(self, company_id: str) -> tuple[int, float | None]:
        """How many of the company's tickets were rated, and their average score."""
        row = await self._db.fetchrow(
            "SELECT COUNT(t.csat_score) AS n, AVG(t.csat_score) AS average FROM tickets t "
            "JOIN sessions s ON s.id = t.session_id "
            "WHERE s.company_id = $1 AND t.csat_score IS NOT NULL",
            company_id,
        )
        if row is None or not row["n"]:
            return 0, None
        return int(row["n"]), float(row["average"])

    # -- idle tickets (docs/tickets.md#idle-tickets) --------------------------------

    async def mark_customer_wrote(self, ticket_id: int, *, now: float) -> None:
        """The customer wrote: their silence counts from ``now`` (never backwards)."""
        await self._db.execute(
            "UPDATE tickets SET last_customer_at = $2 WHERE id = $1 "
            "AND (last_customer_at IS NULL OR last_customer_at < $2)",
            ticket_id,
            now,
        )

    async def list_silent(self, session_id: int, *, since: float, limit: int) -> list[TicketRow]:
        """The session's active tickets whose customer has not written since ``since``."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM tickets WHERE status <> 'closed' "
            "AND last_customer_at <= $2 AND session_id = $1 ORDER BY last_customer_at LIMIT $3",
            session_id,
            since,
            limit,
        )
        return [_ticket(row) for row in rows]

    async def close_if_silent(self, ticket_id: int, *, since: float, now: float) -> bool:
        """Close the ticket unless it closed or its customer wrote after ``since``
        meanwhile (True: this caller closed it)."""
        changed = await self._db.execute(
            "UPDATE tickets SET status = 'closed', closed_at = $3, updated_at = $3 "
            "WHERE id = $1 AND status <> 'closed' AND last_customer_at <= $2",
            ticket_id,
            since,
            now,
        )
        return changed > 0

    async def list_unanswered(self, *, created_before: float, limit: int) -> list[TicketRow]:
        """Pending tickets created before ``created_before`` that nobody answered and
        ops was not told about yet, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM tickets WHERE status = 'pending' "
            "AND first_response_at IS NULL AND unanswered_alerted_at IS NULL "
            "AND created_at <= $1 ORDER BY created_at LIMIT $2",
            created_before,
            limit,
        )
        return [_ticket(row) for row in rows]

    async def list_unanswered_settled(self, *, limit: int) -> list[TicketRow]:
        """Tickets ops was told nobody answered that have since been answered or
        closed, and whose resolution ops was not told yet."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM tickets WHERE unanswered_alerted_at IS NOT NULL "
            "AND unanswered_resolved_at IS NULL "
            "AND (first_response_at IS NOT NULL OR status = 'closed') ORDER BY id LIMIT $1",
            limit,
        )
        return [_ticket(row) for row in rows]

    async def mark_unanswered_alerted(self, ticket_id: int, *, now: float) -> bool:
        """Stamp the unanswered alert; False if it was already sent."""
        return await self._stamp_once(ticket_id, "unanswered_alerted_at", now)

    async def mark_unanswered_resolved(self, ticket_id: int, *, now: float) -> bool:
        """Stamp the alert's resolution; False if it was already sent."""
        return await self._stamp_once(ticket_id, "unanswered_resolved_at", now)

    async def transition(
        self, ticket_id: int, *, frm: str, to: str, now: float, owner: str | None = None
    ) -> bool:
        """``frm`` → ``to`` unless the status changed meanwhile (True: this caller won);
        ``owner`` fills an empty assignee; a ticket becoming active again counts the
        customer's silence from ``now``. Raises ``UniqueViolation`` if it would make a
        second active ticket for the contact."""
        changed = await self._db.execute(
            "UPDATE tickets SET status = $3, closed_at = $4, updated_at = $5, "
            "assignee = COALESCE(assignee, $6), "
            "last_customer_at = CASE WHEN $3 = 'closed' THEN last_customer_at ELSE $5 END "
            "WHERE id = $1 AND status = $2",
            ticket_id,
            frm,
            to,
            now if to == "closed" else None,
            now,
            owner,
        )
        return changed > 0

    async def restamp_out_of_hours(self, ticket_id: int, *, previous: float, now: float) -> bool:
        """Move the out-of-hours stamp from ``previous`` to ``now`` unless it moved."""
        changed = await self._db.execute(
            "UPDATE tickets SET out_of_hours_sent_at = $3, updated_at = $3 "
            "WHERE id = $1 AND out_of_hours_sent_at = $2",
            ticket_id,
            previous,
            now,
        )
        return changed > 0

    # -- internals ------------------------------------------------------------

    async def _set_column(
        self, ticket_id: int, column: str, value: str | None, now: float | None
    ) -> TicketRow | None:
        row = await self._db.fetchrow(
            _SET_COLUMN[column],
            ticket_id,
            value,
            time.time() if now is None else now,
        )
        return _ticket(row) if row else None

    async def _stamp_once(self, ticket_id: int, column: str, now: float | None) -> bool:
        changed = await self._db.execute(
            _STAMP_ONCE[column],
            ticket_id,
            time.time() if now is None else now,
        )
        return changed > 0
