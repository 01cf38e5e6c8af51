"""WhatsApp sessions (phone numbers) and their connection status."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from bridge.db.database import Database, Row, column_list


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    company_id: str
    name: str
    engine: str
    status: str  # the contract words: OPENING, QRCODE, CONNECTED, DISCONNECTED, …
    phone: str | None
    last_connected_at: float | None
    last_error: str | None
    last_error_at: float | None
    updated_at: float


COLUMNS = column_list(SessionRow)


def _session(row: Row) -> SessionRow:
    return SessionRow(**row)


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Several writes of this repository in one transaction."""
        return self._db.transaction()

    async def upsert(
        self, company_id: str, name: str, *, engine: str, now: float | None = None
    ) -> SessionRow:
        """Create the session (status LOGGED_OUT) or update its engine."""
        row = await self._db.fetchrow_required(
            "INSERT INTO sessions (company_id, name, engine, updated_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (company_id, name) DO UPDATE SET engine = excluded.engine "
            f"RETURNING {COLUMNS}",
            company_id,
            name,
            engine,
            time.time() if now is None else now,
        )
        return _session(row)

    async def get(self, company_id: str, name: str) -> SessionRow | None:
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM sessions WHERE company_id = $1 AND name = $2",
            company_id,
            name,
        )
        return _session(row) if row else None

    async def get_by_id(self, session_id: int) -> SessionRow | None:
        row = await self._db.fetchrow(f"SELECT {COLUMNS} FROM sessions WHERE id = $1", session_id)
        return _session(row) if row else None

    async def list_all(self) -> list[SessionRow]:
        rows = await self._db.fetch(f"SELECT {COLUMNS} FROM sessions ORDER BY company_id, name")
        return [_session(row) for row in rows]

    async def list_by_company(self, company_id: str) -> list[SessionRow]:
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM sessions WHERE company_id = $1 ORDER BY name", company_id
        )
        return [_session(row) for row in rows]

    async def set_status(
        self,
        session_id: int,
        status: str,
        *,
        phone: str | None = None,
        error: str | None = None,
        connected: bool = False,
        now: float | None = None,
    ) -> SessionRow | None:
        """Record a status; ``phone``/``error`` when given, ``connected`` stamps the time."""
        row = await self._db.fetchrow(
            "UPDATE sessions SET status = $2, phone = COALESCE($3, phone), "
            "last_error = COALESCE($4, last_error), "
            "last_error_at = CASE WHEN $4 IS NULL THEN last_error_at ELSE $6 END, "
            "last_connected_at = CASE WHEN $5 THEN $6 ELSE last_connected_at END, "
            f"updated_at = $6 WHERE id = $1 RETURNING {COLUMNS}",
            session_id,
            status,
            phone,
            error,
            connected,
            time.time() if now is None else now,
        )
        return _session(row) if row else None
