"""The simulated WhatsApp network kept in the database, shared by every instance of
one config (docs/sim.md, "Shared network"): each session's linked device, its outbound
log, the LID links it learned, and the customer messages held until the instance that
runs the session takes them.

Messages are held in ``seq`` order per session; :meth:`SimNetworkRepository.take`
deletes one once the bridge persisted it (the ack point: a crash before that delivers
it again, and the relay drops the repeat by its WhatsApp id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.db.database import Database, Row, column_list, from_json, to_json


@dataclass(frozen=True, slots=True)
class SimDeviceRow:
    session_key: str
    phone: str
    paired_at: float
    auto: bool


@dataclass(frozen=True, slots=True)
class HeldInboundRow:
    seq: int
    session_key: str
    wa_id: str
    body: dict[str, Any]  # the /sim inbound body, "id" included
    posted_at: float


DEVICE_COLUMNS = column_list(SimDeviceRow)
HELD_COLUMNS = column_list(HeldInboundRow)


def _device(row: Row) -> SimDeviceRow:
    return SimDeviceRow(**{**row, "auto": bool(row["auto"])})


def _held(row: Row) -> HeldInboundRow:
    return HeldInboundRow(**{**row, "body": from_json(row["body"])})


class SimNetworkRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- devices ----------------------------------------------------------------

    async def device(self, session_key: str) -> SimDeviceRow | None:
        row = await self._db.fetchrow(
            f"SELECT {DEVICE_COLUMNS} FROM sim_devices WHERE session_key = $1", session_key
        )
        return _device(row) if row else None

    async def pair(
        self, session_key: str, *, phone: str, paired_at: float, auto: bool, replace: bool
    ) -> SimDeviceRow:
        """Link a device to the session and answer the session's device: with
        ``replace`` (a scan) this one; without (auto-pairing) an existing one wins, so
        two instances pairing the same session at once agree on one phone."""
        conflict = (
            "DO UPDATE SET phone = excluded.phone, paired_at = excluded.paired_at, "
            "auto = excluded.auto"
            if replace
            else "DO NOTHING"
        )
        await self._db.execute(
            "INSERT INTO sim_devices (session_key, phone, paired_at, auto) "
            f"VALUES ($1, $2, $3, $4) ON CONFLICT (session_key) {conflict}",
            session_key,
            phone,
            paired_at,
            auto,
        )
        stored = await self.device(session_key)
        if stored is None:  # unlinked between the two statements: link it again
            return await self.pair(
                session_key, phone=phone, paired_at=paired_at, auto=auto, replace=True
            )
        return stored

    async def unpair(self, session_key: str) -> None:
        await self._db.execute("DELETE FROM sim_devices WHERE session_key = $1", session_key)

    async def paired_phones(self) -> set[str]:
        rows = await self._db.fetch("SELECT phone FROM sim_devices")
        return {str(r["phone"]) for r in rows}

    async def devices(self) -> list[SimDeviceRow]:
        rows = await self._db.fetch(
            f"SELECT {DEVICE_COLUMNS} FROM sim_devices ORDER BY session_key"
        )
        return [_device(r) for r in rows]

    # --- the outbound log -------------------------------------------------------------

    async def log_outbound(self, session_key: str, entry: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO sim_outbound (session_key, wa_id, entry) VALUES ($1, $2, $3)",
            session_key,
            str(entry["id"]),
            to_json(entry),
        )

    async def outbound(self, session_key: str) -> list[dict[str, Any]]:
        """What every instance sent through the session, oldest first."""
        rows = await self._db.fetch(
            "SELECT entry FROM sim_outbound WHERE session_key = $1 ORDER BY seq", session_key
        )
        return [json.loads(r["entry"]) for r in rows]

    async def has_outbound(self, session_key: str) -> bool:
        row = await self._db.fetchrow(
            "SELECT 1 AS found FROM sim_outbound WHERE session_key = $1 LIMIT 1", session_key
        )
        return row is not None

    # --- LID links ----------------------------------------------------------------

    async def link_lid(self, session_key: str, *, lid: str, phone: str) -> None:
        await self._db.execute(
            "INSERT INTO sim_lids (session_key, lid, phone) VALUES ($1, $2, $3) "
            "ON CONFLICT (session_key, lid) DO NOTHING",
            session_key,
            lid,
            phone,
        )

    async def lids(self, session_key: str) -> dict[str, str]:
        """LID digits → E.164 phone, as linked so far."""
        rows = await self._db.fetch(
            "SELECT lid, phone FROM sim_lids WHERE session_key = $1", session_key
        )
        return {str(r["lid"]): str(r["phone"]) for r in rows}

    # --- held inbound messages --------------------------------------------------------

    async def hold(
        self, session_key: str, *, wa_id: str, body: dict[str, Any], posted_at: float
    ) -> None:
        """Hold a customer message for the session's device."""
        await self._db.execute(
            "INSERT INTO sim_inbound (session_key, wa_id, body, posted_at) VALUES ($1, $2, $3, $4)",
            session_key,
            wa_id,
            to_json(body),
            posted_at,
        )

    async def held(self, session_key: str, *, limit: int = 100) -> list[HeldInboundRow]:
        """The session's oldest held messages, in the order they were posted."""
        rows = await self._db.fetch(
            f"SELECT {HELD_COLUMNS} FROM sim_inbound WHERE session_key = $1 ORDER BY seq LIMIT $2",
            session_key,
            limit,
        )
        return [_held(r) for r in rows]

    async def sessions_with_held(self) -> set[str]:
        rows = await self._db.fetch("SELECT DISTINCT session_key FROM sim_inbound")
        return {str(r["session_key"]) for r in rows}

    async def take(self, seq: int) -> bool:
        """The device received held message ``seq``; False when it was taken already."""
        return await self._db.execute("DELETE FROM sim_inbound WHERE seq = $1", seq) > 0
