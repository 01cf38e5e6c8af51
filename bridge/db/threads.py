"""Thread references: where a ticket's thread lives on each frontend."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.db.database import Database, Row, column_list


@dataclass(frozen=True, slots=True)
class ThreadRefRow:
    ticket_id: int
    frontend: str  # "matrix" | "slack"
    room_id: str  # Matrix room id or Slack channel id
    thread_root: str  # Matrix root event id or Slack thread ts


COLUMNS = column_list(ThreadRefRow)


def _thread_ref(row: Row) -> ThreadRefRow:
    return ThreadRefRow(**row)


class ThreadRefRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self, ticket_id: int, *, frontend: str, room_id: str, thread_root: str
    ) -> ThreadRefRow:
        """Record (or move) the ticket's thread on this frontend."""
        row = await self._db.fetchrow_required(
            "INSERT INTO thread_refs (ticket_id, frontend, room_id, thread_root) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (ticket_id, frontend) DO UPDATE SET "
            f"room_id = excluded.room_id, thread_root = excluded.thread_root RETURNING {COLUMNS}",
            ticket_id,
            frontend,
            room_id,
            thread_root,
        )
        return _thread_ref(row)

    async def get(self, ticket_id: int, frontend: str) -> ThreadRefRow | None:
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM thread_refs WHERE ticket_id = $1 AND frontend = $2",
            ticket_id,
            frontend,
        )
        return _thread_ref(row) if row else None

    async def list_for_ticket(self, ticket_id: int) -> list[ThreadRefRow]:
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM thread_refs WHERE ticket_id = $1 ORDER BY frontend", ticket_id
        )
        return [_thread_ref(row) for row in rows]

    async def find_by_root(
        self, frontend: str, *, room_id: str, thread_root: str
    ) -> ThreadRefRow | None:
        """The ticket whose thread starts at ``thread_root`` in ``room_id``."""
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM thread_refs "
            "WHERE frontend = $1 AND room_id = $2 AND thread_root = $3",
            frontend,
            room_id,
            thread_root,
        )
        return _thread_ref(row) if row else None
