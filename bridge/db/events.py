"""Processed inbound events, so a redelivered event is recognised and ignored."""

from __future__ import annotations

import time

from bridge.db.database import Database


class ProcessedEventRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def seen_before(self, source: str, event_id: str, *, now: float | None = None) -> bool:
        """Record the event; True if it was already recorded (atomic, race-free).

        Call it inside the transaction that handles the event, so a failed handling
        (rolled back) leaves the event unrecorded and its redelivery is processed.
        """
        inserted = await self._db.execute(
            "INSERT INTO processed_events (source, event_id, processed_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (source, event_id) DO NOTHING",
            source,
            event_id,
            time.time() if now is None else now,
        )
        return inserted == 0

    async def forget(self, source: str, event_id: str) -> None:
        """Remove the record of an event whose handling failed after it was recorded
        outside the handling's transaction (commands), so its redelivery runs."""
        await self._db.execute(
            "DELETE FROM processed_events WHERE source = $1 AND event_id = $2", source, event_id
        )

    async def prune(self, *, before: float) -> int:
        """Forget events processed before ``before``; return how many."""
        return await self._db.delete_where("processed_events", "processed_at < $1", before)
