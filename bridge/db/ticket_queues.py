"""The queue and menu columns of tickets (docs/tickets.md#queues, migration 0007).

Every change is compare-and-set: routing wins only while the ticket has no queue,
counting an invalid answer only while the count is the one read, so two messages
(or a message and the timeout sweep, or two bridges) never route a ticket twice.
"""

from __future__ import annotations

from bridge.db.database import Database, column_list
from bridge.db.messages import NOTE_KIND
from bridge.db.tickets import COLUMNS, STATUSES, TicketRow

_T_COLUMNS = column_list(TicketRow, prefix="t.")
_CHOOSING = "queue IS NULL AND menu_deadline IS NOT NULL AND status <> 'closed'"


class TicketQueueRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start_menu(self, ticket_id: int, *, now: float, deadline: float) -> bool:
        """Stamp the menu as sent, its deadline set; False when it was sent before or
        the ticket has a queue."""
        changed = await self._db.execute(
            "UPDATE tickets SET menu_sent_at = $2, menu_deadline = $3, menu_invalid = 0, "
            "updated_at = $2 WHERE id = $1 AND menu_sent_at IS NULL AND queue IS NULL",
            ticket_id,
            now,
            deadline,
        )
        return changed > 0

    async def route(self, ticket_id: int, queue: str, *, now: float, expired: bool = False) -> bool:
        """Put a ticket with no queue in ``queue`` (the menu's timer stops); False when
        it had one meanwhile or, ``expired``, when its deadline moved past ``now``."""
        sql = (
            "UPDATE tickets SET queue = $2, menu_deadline = NULL, updated_at = $3 "
            "WHERE id = $1 AND queue IS NULL"
        )
        if expired:
            sql += " AND menu_deadline <= $3"
        return await self._db.execute(sql, ticket_id, queue, now) > 0

    async def stop_menu(self, ticket_id: int) -> None:
        """Forget the menu's timer (its session has no queues any more)."""
        await self._db.execute("UPDATE tickets SET menu_deadline = NULL WHERE id = $1", ticket_id)

    async def count_invalid(
        self, ticket_id: int, *, seen: int, deadline: float, now: float
    ) -> bool:
        """One more answer naming no option (``seen`` before it); the timer restarts
        at ``deadline``. False when another answer counted or routed first."""
        changed = await self._db.execute(
            "UPDATE tickets SET menu_invalid = $2 + 1, menu_deadline = $3, updated_at = $4 "
            "WHERE id = $1 AND queue IS NULL AND menu_invalid = $2",
            ticket_id,
            seen,
            deadline,
            now,
        )
        return changed > 0

    async def transfer(self, ticket_id: int, *, frm: str | None, to: str, now: float) -> bool:
        """``!transfer <queue>``: the ticket leaves ``frm`` for ``to`` and nobody owns
        it; False when its queue changed meanwhile."""
        changed = await self._db.execute(
            "UPDATE tickets SET queue = $3, assignee = NULL, menu_deadline = NULL, "
            "updated_at = $4 WHERE id = $1 AND queue IS NOT DISTINCT FROM $2",
            ticket_id,
            frm,
            to,
            now,
        )
        return changed > 0

    async def list_due(self, *, now: float, limit: int) -> list[TicketRow]:
        """Tickets still choosing whose menu deadline passed, earliest first."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM tickets WHERE {_CHOOSING} AND menu_deadline <= $1 "
            "ORDER BY menu_deadline LIMIT $2",
            now,
            limit,
        )
        return [TicketRow(**row) for row in rows]

    async def next_deadline(self) -> float | None:
        """The earliest deadline of a ticket still choosing; None when none is."""
        value = await self._db.fetchval(f"SELECT MIN(menu_deadline) FROM tickets WHERE {_CHOOSING}")
        return None if value is None else float(value)

    async def list_by_session(
        self, session_id: int, *, queue: str, status: str | None, limit: int
    ) -> list[TicketRow]:
        """The session's tickets in ``queue``, newest first, optionally of one status."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown ticket status {status!r}")
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM tickets WHERE session_id = $1 AND queue = $2 "
            "AND (status = $3 OR $3 IS NULL) ORDER BY id DESC LIMIT $4",
            session_id,
            queue,
            status,
            limit,
        )
        return [TicketRow(**row) for row in rows]

    async def list_by_company(self, company_id: str, *, queue: str, limit: int) -> list[TicketRow]:
        """The company's tickets in a queue of that name (any session), newest first."""
        rows = await self._db.fetch(
            f"SELECT {_T_COLUMNS} FROM tickets t JOIN sessions s ON s.id = t.session_id "
            "WHERE s.company_id = $1 AND t.queue = $2 ORDER BY t.id DESC LIMIT $3",
            company_id,
            queue,
            limit,
        )
        return [TicketRow(**row) for row in rows]

    async def count_messages(self, company_id: str, *, queue: str) -> dict[str, int]:
        """Messages from and to customers of the company's tickets in ``queue``
        (internal notes excluded)."""
        rows = await self._db.fetch(
            "SELECT m.direction AS direction, COUNT(*) AS n FROM messages m "
            "JOIN tickets t ON t.id = m.ticket_id JOIN sessions s ON s.id = t.session_id "
            f"WHERE s.company_id = $1 AND t.queue = $2 AND m.kind <> '{NOTE_KIND}' "
            "GROUP BY m.direction",
            company_id,
            queue,
        )
        counts = {"in": 0, "out": 0}
        counts.update({row["direction"]: int(row["n"]) for row in rows})
        return counts

    async def count_active_by_queue(self, company_id: str) -> dict[str, int]:
        """Tickets not closed per queue over the company's sessions ("" for none)."""
        rows = await self._db.fetch(
            "SELECT COALESCE(t.queue, '') AS queue, COUNT(*) AS n FROM tickets t "
            "JOIN sessions s ON s.id = t.session_id "
            "WHERE s.company_id = $1 AND t.status <> 'closed' GROUP BY COALESCE(t.queue, '')",
            company_id,
        )
        return {str(row["queue"]): int(row["n"]) for row in rows}
