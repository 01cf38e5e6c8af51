"""Pairing records of whatsmeow sessions: which device JID (and our LID) a session is
linked as (docs/cluster.md, "Device stores"). whatsmeow keeps the device itself in its
own ``whatsmeow_*`` tables of the same PostgreSQL database; this record is what lets
any instance tell, without a connection, that a session is paired and pick its device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bridge.db.database import Database, Row, column_list


@dataclass(frozen=True, slots=True)
class DevicePairingRow:
    session_key: str  # "<company>/<session>"
    engine: str  # "whatsmeow"
    jid: str  # the paired device's JID, e.g. "5511900000001:12@s.whatsapp.net"
    lid: str | None  # our LID digits, once WhatsApp told us
    paired_at: float


COLUMNS = column_list(DevicePairingRow)


def _row(row: Row) -> DevicePairingRow:
    return DevicePairingRow(**row)


class DevicePairingRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, session_key: str) -> DevicePairingRow | None:
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM device_pairings WHERE session_key = $1", session_key
        )
        return _row(row) if row else None

    async def put(
        self,
        session_key: str,
        *,
        jid: str,
        lid: str | None,
        engine: str = "whatsmeow",
        now: float | None = None,
    ) -> None:
        """Record (or replace) the session's pairing; ``paired_at`` is kept while the
        JID stays the same (learning the LID later is not a new pairing)."""
        await self._db.execute(
            "INSERT INTO device_pairings (session_key, engine, jid, lid, paired_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_key) DO UPDATE SET "
            "engine = excluded.engine, jid = excluded.jid, lid = excluded.lid, "
            "paired_at = CASE WHEN device_pairings.jid = excluded.jid "
            "THEN device_pairings.paired_at ELSE excluded.paired_at END",
            session_key,
            engine,
            jid,
            lid,
            time.time() if now is None else now,
        )

    async def add_missing(
        self, session_key: str, *, jid: str, lid: str | None, engine: str, now: float
    ) -> bool:
        """Record the pairing unless the session has one; True when it was added."""
        inserted = await self._db.execute(
            "INSERT INTO device_pairings (session_key, engine, jid, lid, paired_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_key) DO NOTHING",
            session_key,
            engine,
            jid,
            lid,
            now,
        )
        return inserted > 0

    async def delete(self, session_key: str) -> None:
        await self._db.execute("DELETE FROM device_pairings WHERE session_key = $1", session_key)

    async def all(self) -> list[DevicePairingRow]:
        rows = await self._db.fetch(f"SELECT {COLUMNS} FROM device_pairings ORDER BY session_key")
        return [_row(r) for r in rows]
