"""Quarantined events: inbound events the bridge could not handle, set aside once."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bridge.db.database import Database, Row, column_list


@dataclass(frozen=True, slots=True)
class QuarantinedEventRow:
    id: int
    source: str  # "matrix" | "slack" | …: where the event came from
    event_id: str  # the source's id of the event (unique per source)
    company_id: str | None  # None when the event's room belongs to no company
    reason: str  # why it could not be handled (no secrets)
    excerpt: str  # the raw event, bounded (see bridge.core.quarantine)
    created_at: float


@dataclass(frozen=True, slots=True)
class SetAsideEvent:
    """An event to set aside, as :meth:`QuarantineRepository.add` records it."""

    source: str
    event_id: str
    company_id: str | None
    reason: str
    excerpt: str


COLUMNS = column_list(QuarantinedEventRow)


def _row(row: Row) -> QuarantinedEventRow:
    return QuarantinedEventRow(**row)


class QuarantineRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, event: SetAsideEvent, *, now: float | None = None) -> bool:
        """Record the event; True if it is new, False if it was set aside before (a
        redelivery). Atomic: two deliveries racing record it once."""
        inserted = await self._db.execute(
            "INSERT INTO quarantined_events "
            "(source, event_id, company_id, reason, excerpt, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, event_id) DO NOTHING",
            event.source,
            event.event_id,
            event.company_id,
            event.reason,
            event.excerpt,
            time.time() if now is None else now,
        )
        return inserted > 0

    async def get(self, source: str, event_id: str) -> QuarantinedEventRow | None:
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM quarantined_events WHERE source = $1 AND event_id = $2",
            source,
            event_id,
        )
        return _row(row) if row else None

    async def count(self) -> int:
        """How many events are set aside (for /metrics and /health)."""
        return int(await self._db.fetchval("SELECT COUNT(*) FROM quarantined_events") or 0)

    async def prune(self, *, before: float) -> int:
        """Forget events set aside before ``before``; return how many."""
        return await self._db.delete_where("quarantined_events", "created_at < $1", before)
