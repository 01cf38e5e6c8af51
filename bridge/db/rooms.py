"""Rooms and channels the bridge uses: a control room per session, an ops room per company."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bridge.db.database import Database, Row, column_list

KINDS = ("control", "ops")


@dataclass(frozen=True, slots=True)
class RoomRow:
    id: int
    frontend: str  # "matrix" | "slack"
    kind: str  # control | ops
    company_id: str
    session_id: int | None  # None for a company-wide (ops) room
    room_id: str  # Matrix room id or Slack channel id
    created_at: float


COLUMNS = column_list(RoomRow)

_INSERT = (
    "INSERT INTO rooms (frontend, kind, company_id, session_id, room_id, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6) "
)
# Session rooms and company rooms have separate partial unique indexes (NULLs are
# distinct), so each upsert names its own conflict target.
_UPSERT_SESSION_ROOM = (
    f"{_INSERT} ON CONFLICT (frontend, kind, company_id, session_id) "
    "WHERE session_id IS NOT NULL DO UPDATE SET room_id = excluded.room_id "
    f"RETURNING {COLUMNS}"
)
_UPSERT_COMPANY_ROOM = (
    f"{_INSERT} ON CONFLICT (frontend, kind, company_id) "
    "WHERE session_id IS NULL DO UPDATE SET room_id = excluded.room_id "
    f"RETURNING {COLUMNS}"
)


def _room(row: Row) -> RoomRow:
    return RoomRow(**row)


class RoomRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self,
        *,
        frontend: str,
        kind: str,
        company_id: str,
        session_id: int | None = None,
        room_id: str,
        now: float | None = None,
    ) -> RoomRow:
        """Record (or replace) the room serving this frontend, kind, company and session."""
        if kind not in KINDS:
            raise ValueError(f"unknown room kind {kind!r}; expected one of {KINDS}")
        sql = _UPSERT_COMPANY_ROOM if session_id is None else _UPSERT_SESSION_ROOM
        now = time.time() if now is None else now
        row = await self._db.fetchrow_required(
            sql, frontend, kind, company_id, session_id, room_id, now
        )
        return _room(row)

    async def get(
        self, *, frontend: str, kind: str, company_id: str, session_id: int | None = None
    ) -> RoomRow | None:
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM rooms WHERE frontend = $1 AND kind = $2 AND company_id = $3 "
            "AND (session_id = $4 OR (session_id IS NULL AND $4 IS NULL))",
            frontend,
            kind,
            company_id,
            session_id,
        )
        return _room(row) if row else None

    async def find_by_room_id(self, frontend: str, room_id: str) -> list[RoomRow]:
        """Every purpose this room or channel serves (usually one)."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM rooms WHERE frontend = $1 AND room_id = $2 ORDER BY id",
            frontend,
            room_id,
        )
        return [_room(row) for row in rows]

    async def list_by_company(self, company_id: str) -> list[RoomRow]:
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM rooms WHERE company_id = $1 ORDER BY id", company_id
        )
        return [_room(row) for row in rows]

    async def delete(self, room_row_id: int) -> bool:
        return await self._db.execute("DELETE FROM rooms WHERE id = $1", room_row_id) > 0
