"""Leases with fencing tokens, and the live instances (docs/cluster.md#ownership-and-fencing).

Every statement is one atomic SQL statement. Expiry is compared with the database's
own clock (PostgreSQL ``clock_timestamp()``, SQLite's ``julianday('now')``), so the
instances' clocks may disagree without ever producing two holders. Tests inject a
clock instead (``clock=``): its time is then passed as the statement's ``$1`` and the
database's clock is not read (``COALESCE($1, <database clock>)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bridge.db.database import Database, Row, column_list

LEADER = "leader"
SESSION_PREFIX = "session:"

End = Literal["expired", "released"]


def session_lease(session_key: str) -> str:
    """The lease name of ``<company>/<session>``."""
    return SESSION_PREFIX + session_key


@dataclass(frozen=True, slots=True)
class LeaseRow:
    name: str
    holder: str
    token: int
    acquired_at: float
    expires_at: float
    released_at: float | None
    previous_holder: str | None
    previous_end: End | None


@dataclass(frozen=True, slots=True)
class InstanceRow:
    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float


COLUMNS = column_list(LeaseRow)
INSTANCE_COLUMNS = column_list(InstanceRow)

_DATABASE_NOW = {
    "postgres": "EXTRACT(EPOCH FROM clock_timestamp())::double precision",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


def _lease(row: Row) -> LeaseRow:
    return LeaseRow(**row)


class LeaseRepository:
    """``leases`` and ``instances``. ``clock`` replaces the database's clock (tests)."""

    def __init__(self, db: Database, *, clock: Callable[[], float] | None = None) -> None:
        self._db = db
        self._clock = clock
        self._now = f"COALESCE($1, {_DATABASE_NOW[db.dialect]})"

    def _time(self) -> float | None:
        return self._clock() if self._clock is not None else None

    async def now(self) -> float:
        """The time leases are measured by."""
        return float(await self._db.fetchval(f"SELECT {self._now}", self._time()))

    async def acquire(self, name: str, holder: str, *, seconds: float) -> LeaseRow | None:
        """Take ``name`` for ``seconds`` if it is new, expired or released; the token
        rises at every acquisition. None when someone holds it."""
        now = self._now
        row = await self._db.fetchrow(
            "INSERT INTO leases (name, holder, token, acquired_at, expires_at) "
            f"VALUES ($2, $3, 1, {now}, {now} + $4) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "token = leases.token + 1, acquired_at = excluded.acquired_at, "
            "expires_at = excluded.expires_at, released_at = NULL, "
            "previous_holder = leases.holder, previous_end = CASE "
            "WHEN leases.released_at IS NULL THEN 'expired' ELSE 'released' END "
            "WHERE leases.expires_at <= excluded.acquired_at "
            f"RETURNING {COLUMNS}",
            self._time(),
            name,
            holder,
            float(seconds),
        )
        return _lease(row) if row else None

    async def renew(self, name: str, holder: str, token: int, *, seconds: float) -> float | None:
        """Extend a lease still held with ``token``; its new expiry, or None when lost."""
        now = self._now
        value = await self._db.fetchval(
            f"UPDATE leases SET expires_at = {now} + $5 "
            f"WHERE name = $2 AND holder = $3 AND token = $4 AND expires_at > {now} "
            "RETURNING expires_at",
            self._time(),
            name,
            holder,
            token,
            float(seconds),
        )
        return None if value is None else float(value)

    async def release(self, name: str, holder: str, token: int) -> bool:
        """A clean handover: the lease expires now (its token stays, so the next
        holder's is higher). False when it was no longer ours."""
        now = self._now
        count = await self._db.execute(
            f"UPDATE leases SET expires_at = {now}, released_at = {now} "
            f"WHERE name = $2 AND holder = $3 AND token = $4 AND expires_at > {now}",
            self._time(),
            name,
            holder,
            token,
        )
        return count > 0

    async def check(self, name: str, holder: str, token: int) -> bool:
        """Whether ``holder`` still holds ``name`` with ``token`` (the fencing check)."""
        value = await self._db.fetchval(
            "SELECT COUNT(*) FROM leases "
            f"WHERE name = $2 AND holder = $3 AND token = $4 AND expires_at > {self._now}",
            self._time(),
            name,
            holder,
            token,
        )
        return bool(value)

    async def get(self, name: str) -> LeaseRow | None:
        row = await self._db.fetchrow(f"SELECT {COLUMNS} FROM leases WHERE name = $1", name)
        return _lease(row) if row else None

    async def held(self, prefix: str = "") -> dict[str, str]:
        """Lease name → holder, for the leases held now whose name starts with ``prefix``."""
        rows = await self._db.fetch(
            f"SELECT name, holder FROM leases WHERE expires_at > {self._now} "
            "AND substr(name, 1, length($2)) = $2 ORDER BY name",
            self._time(),
            prefix,
        )
        return {row["name"]: row["holder"] for row in rows}

    async def next_expiry_in(self, holder: str) -> float | None:
        """Seconds until the first lease held by another than ``holder`` runs out (when
        a dead instance's sessions can be taken); None when there is none."""
        value = await self._db.fetchval(
            f"SELECT MIN(expires_at) - {self._now} FROM leases "
            f"WHERE holder <> $2 AND expires_at > {self._now}",
            self._time(),
            holder,
        )
        return None if value is None else float(value)

    async def heartbeat(self, instance: str, *, host: str, pid: int) -> None:
        """Record that ``instance`` is alive (registering it the first time)."""
        now = self._now
        await self._db.execute(
            "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) "
            f"VALUES ($2, $3, $4, {now}, {now}) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            self._time(),
            instance,
            host,
            pid,
        )

    async def live_instances(self, *, within: float) -> list[InstanceRow]:
        """The instances that beat within the last ``within`` seconds, by id."""
        rows = await self._db.fetch(
            f"SELECT {INSTANCE_COLUMNS} FROM instances "
            f"WHERE heartbeat_at > {self._now} - $2 ORDER BY id",
            self._time(),
            float(within),
        )
        return [InstanceRow(**row) for row in rows]

    async def forget_instances(self, *, silent_for: float) -> int:
        """Remove the instances that have not beaten for ``silent_for`` seconds (killed
        ones: a clean stop removes its own row); how many."""
        return await self._db.execute(
            f"DELETE FROM instances WHERE heartbeat_at < {self._now} - $2",
            self._time(),
            float(silent_for),
        )

    async def leave(self, instance: str) -> None:
        """A clean stop: ``instance`` no longer counts as live."""
        await self._db.execute("DELETE FROM instances WHERE id = $1", instance)
