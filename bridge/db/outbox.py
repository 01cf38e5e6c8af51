"""The outbox: every delivery to a frontend or an engine, in order per ordering key.

``next_due`` hands out only the oldest pending row of each ordering key, so a row
waiting for its retry holds back the rows behind it; a dead row no longer does.
Keeping a row from being handed out twice while it is in flight is the worker's job;
with several instances, claims on ordering keys keep it from two instances at once
(``bridge.db.outbox_claims``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.db.database import Database, Row, column_list, from_json, to_json
from bridge.db.delivery_records import (
    DeliveryRecord,
    records_args,
    records_cte,
    write_record,
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    destination: str  # e.g. "matrix", "slack", "whatsapp"
    ordering_key: str  # e.g. "t42:matrix" (bridge/core/ordering_keys.py); in id order per key
    payload: dict[str, Any]
    status: str  # pending | done | dead
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    # the session a row to WhatsApp is sent from ("<company>/<session>"), else None:
    # with several instances only its owner runs it (docs/cluster.md)
    session_key: str | None = None


COLUMNS = column_list(OutboxRow)
_O_COLUMNS = column_list(OutboxRow, prefix="o.")

# Grouped over the pending rows' own index, so no planner can choose to walk the
# delivered ones (SQLite did, after an ANALYZE taken with no row pending: 60 ms at a
# million rows instead of 0.2 ms).
NEXT_DUE = (
    f"SELECT {_O_COLUMNS} FROM outbox o JOIN ("
    "  SELECT MIN(id) AS id FROM outbox WHERE status = 'pending' GROUP BY ordering_key"
    ") oldest ON oldest.id = o.id "
    "WHERE o.next_attempt_at <= $1 ORDER BY o.id LIMIT $2"
)


_FIELDS = tuple(COLUMNS.split(", "))

# The oldest pending row of each key in $2, skipping the rows being finished ($1).
NEXT_OF_KEYS = (
    "SELECT n.* FROM (SELECT DISTINCT k FROM unnest($2::text[]) AS k) AS keys "
    "CROSS JOIN LATERAL ("
    f"  SELECT {COLUMNS} FROM outbox WHERE ordering_key = keys.k AND status = 'pending' "
    "  AND id <> ALL($1::bigint[]) ORDER BY id LIMIT 1"
    ") AS n"
)


# $1 row ids, $2 their keys, $3 now, $4..$10 the records (delivery_records.records_cte).
# The reads see the table before the writes: the rows being finished are skipped.
_FINISH_MANY = (
    f"WITH {records_cte(first=4)}, done AS ("
    "  UPDATE outbox SET status = 'done', updated_at = $3 "
    "  WHERE id = ANY($1::bigint[]) AND status = 'pending'"
    f") {NEXT_OF_KEYS}"
)


@dataclass(frozen=True, slots=True)
class Finish:
    """One delivered row: its id, its key, when, and what its delivery achieved."""

    row_id: int
    ordering_key: str
    now: float
    record: DeliveryRecord | None = None


def outbox_row(row: Row) -> OutboxRow:
    """The row read with :data:`COLUMNS` beside other columns (those are ignored)."""
    values = {name: row[name] for name in _FIELDS}
    return OutboxRow(**{**values, "payload": from_json(row["payload"])})


def _outbox(row: Row) -> OutboxRow:
    return OutboxRow(**{**row, "payload": from_json(row["payload"])})


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def batches_statements(self) -> bool:
        """Whether :meth:`finish_many` and :meth:`next_for_keys` are worth gathering
        requests for: on PostgreSQL, where each statement is a round trip
        (bridge/db/batcher.py)."""
        return self._db.dialect == "postgres"

    async def enqueue(
        self,
        destination: str,
        *,
        ordering_key: str,
        payload: Mapping[str, Any],
        now: float | None = None,
        session_key: str | None = None,
    ) -> OutboxRow:
        """Add a pending delivery, due at once; ``session_key`` for rows to WhatsApp."""
        row = await self._db.fetchrow_required(
            "INSERT INTO outbox (destination, ordering_key, payload, next_attempt_at, created_at, "
            f"updated_at, session_key) VALUES ($1, $2, $3, $4, $4, $4, $5) RETURNING {COLUMNS}",
            destination,
            ordering_key,
            to_json(payload),
            time.time() if now is None else now,
            session_key,
        )
        return _outbox(row)

    async def get(self, outbox_id: int) -> OutboxRow | None:
        row = await self._db.fetchrow(f"SELECT {COLUMNS} FROM outbox WHERE id = $1", outbox_id)
        return _outbox(row) if row else None

    async def next_due(self, limit: int = 100, *, now: float | None = None) -> list[OutboxRow]:
        """Due rows, at most one per ordering key (its oldest pending), oldest first."""
        rows = await self._db.fetch(
            NEXT_DUE,
            time.time() if now is None else now,
            limit,
        )
        return [_outbox(row) for row in rows]

    async def next_for_key(self, ordering_key: str) -> OutboxRow | None:
        """The oldest pending row of ``ordering_key`` (due or not)."""
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM outbox WHERE ordering_key = $1 AND status = 'pending' "
            "ORDER BY id LIMIT 1",
            ordering_key,
        )
        return _outbox(row) if row else None

    async def next_for_keys(self, keys: Sequence[str]) -> list[OutboxRow | None]:
        """:meth:`next_for_key` of each key, in one query (PostgreSQL; gathered by
        bridge/db/batcher.py)."""
        rows = await self._db.fetch(NEXT_OF_KEYS, [], list(keys))  # no row to skip
        found = {row["ordering_key"]: outbox_row(row) for row in rows}
        return [found.get(key) for key in keys]

    async def pending_for_key(self, ordering_key: str, *, limit: int = 50) -> list[OutboxRow]:
        """The pending rows of ``ordering_key`` (due or not), oldest first, at most
        ``limit``."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM outbox WHERE ordering_key = $1 AND status = 'pending' "
            "ORDER BY id LIMIT $2",
            ordering_key,
            limit,
        )
        return [_outbox(row) for row in rows]

    async def mark_done(self, outbox_id: int, *, now: float | None = None) -> bool:
        changed = await self._db.execute(
            "UPDATE outbox SET status = 'done', updated_at = $2 "
            "WHERE id = $1 AND status = 'pending'",
            outbox_id,
            time.time() if now is None else now,
        )
        return changed > 0

    async def finish(
        self,
        outbox_id: int,
        ordering_key: str,
        *,
        now: float | None = None,
        record: DeliveryRecord | None = None,
    ) -> OutboxRow | None:
        """Write what the delivery achieved (``record``), mark the row done, and return
        the oldest pending row behind it on its key (due or not): one round trip on
        PostgreSQL, where that is what costs (:meth:`finish_many`)."""
        now = time.time() if now is None else now
        if self._db.dialect != "postgres":
            if record is not None:
                await write_record(self._db, record)
            await self.mark_done(outbox_id, now=now)
            return await self.next_for_key(ordering_key)
        [after] = await self.finish_many([Finish(outbox_id, ordering_key, now, record)])
        return after

    async def finish_many(self, finishes: Sequence[Finish]) -> list[OutboxRow | None]:
        """For rows of different keys: write the records, mark the rows done, and return
        each row's next pending row on its key (due or not), in one statement
        (PostgreSQL; gathered by bridge/db/batcher.py)."""
        rows = await self._db.fetch(
            _FINISH_MANY,
            [finish.row_id for finish in finishes],
            [finish.ordering_key for finish in finishes],
            max(finish.now for finish in finishes),
            *records_args(finish.record for finish in finishes),
        )
        after = {row["ordering_key"]: outbox_row(row) for row in rows}
        return [after.get(finish.ordering_key) for finish in finishes]

    async def mark_retry(
        self, outbox_id: int, *, next_at: float, error: str, now: float | None = None
    ) -> bool:
        """Count a failed attempt and schedule the next one."""
        changed = await self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, "
            "updated_at = $4 WHERE id = $1 AND status = 'pending'",
            outbox_id,
            next_at,
            error,
            time.time() if now is None else now,
        )
        return changed > 0

    async def mark_dead(self, outbox_id: int, *, error: str, now: float | None = None) -> bool:
        """Count the last failed attempt and give up on the row (a dead letter)."""
        changed = await self._db.execute(
            "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $2, "
            "updated_at = $3 WHERE id = $1 AND status = 'pending'",
            outbox_id,
            error,
            time.time() if now is None else now,
        )
        return changed > 0

    async def count_pending(self) -> int:
        return int(await self._db.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'pending'"))

    async def count_dead(self) -> int:
        return int(await self._db.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'dead'"))

    async def list_dead(self, limit: int = 100) -> list[OutboxRow]:
        """The newest dead letters first."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY id DESC LIMIT $1", limit
        )
        return [_outbox(row) for row in rows]

    async def prune_done(self, *, before: float) -> int:
        """Delete delivered rows last updated before ``before``; return how many."""
        return await self._db.delete_where("outbox", "status = 'done' AND updated_at < $1", before)
