"""Claims on outbox ordering keys, so that with several instances on one PostgreSQL a
key is drained by one instance at a time (docs/cluster.md, "Outbox across instances").

A claim is a row of ``outbox_claims``: the key, its holder (an instance id) and
``claimed_until``, on the database's clock so that instances' clocks do not matter.
It is a lease, not a lock held in an open transaction: a drain keeps no connection
while it delivers. A claim whose holder died is free once ``claimed_until`` passed
(the visibility timeout); a live holder extends its claims while it drains. The
holder may always take its own claim again (a restart under the same instance id).

Every statement reads or writes the key's head (its oldest pending row) and the claim
together, in one round trip:

- :meth:`OutboxClaimRepository.take_head` locks the head (``FOR UPDATE``, which also
  rereads a row another instance has just marked done and moves on to the next), then
  claims the key if the head is due and its session is owned here;
- :meth:`~OutboxClaimRepository.finish` marks a row done and returns the next one,
  extending the claim when that one is due and releasing it otherwise;
- :meth:`~OutboxClaimRepository.claim_due` is the periodic pass: the due heads of keys
  not in flight here, skipping heads another statement has locked (``SKIP LOCKED``),
  claimed in bulk.

A row is locked before its claim in every statement, so two statements never wait
on each other in opposite orders. PostgreSQL only: a single instance (SQLite, or
PostgreSQL without ``cluster.enabled``) never claims.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bridge.db.database import Database, column_list
from bridge.db.delivery_records import records_args, records_cte
from bridge.db.outbox import COLUMNS, NEXT_OF_KEYS, Finish, OutboxRow, outbox_row

_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
_O_COLUMNS = column_list(OutboxRow, prefix="o.")

# $2 holder, $3 seconds: take the key's claim when it is free, expired, or ours.
_CLAIM = (
    "INSERT INTO outbox_claims (ordering_key, holder, claimed_until) "
    "SELECT ordering_key, $2, {now} + $3 FROM {source} "
    "ON CONFLICT (ordering_key) DO UPDATE SET holder = EXCLUDED.holder, "
    "claimed_until = EXCLUDED.claimed_until "
    "WHERE outbox_claims.claimed_until < {now} OR outbox_claims.holder = EXCLUDED.holder "
    "RETURNING ordering_key"
)

# Whether the claim just taken resumes a key another instance may have been delivering
# (docs/cluster.md, "A key that moved"): its claim was another's (live or expired), or
# there was none and the row has been tried before (a failed attempt, then released).
# The main query of a WITH reads the claim as it was before the statement.
_RESUMED = (
    "COALESCE((SELECT old.holder <> $2 FROM outbox_claims old "
    "WHERE old.ordering_key = {key}), {row}.attempts > 0)"
)

# $1 key, $2 holder, $3 seconds, $4 now (the worker's clock, as next_attempt_at), $5 owned.
TAKE_HEAD = (
    "WITH head AS ("
    f"  SELECT {COLUMNS} FROM outbox WHERE ordering_key = $1 AND status = 'pending' "
    "  ORDER BY id LIMIT 1 FOR UPDATE"
    "), runnable AS ("
    "  SELECT ordering_key FROM head WHERE next_attempt_at <= $4 "
    "  AND (session_key IS NULL OR session_key = ANY($5::text[]))"
    f"), claimed AS ({_CLAIM.format(now=_NOW, source='runnable')}"
    "), dropped AS ("  # a claim of ours left on a key with nothing to run here
    "  DELETE FROM outbox_claims WHERE ordering_key = $1 AND holder = $2 "
    "  AND NOT EXISTS (SELECT 1 FROM runnable) RETURNING 1"
    ") SELECT head.*, EXISTS (SELECT 1 FROM claimed) AS claimed, "
    f"{_RESUMED.format(row='head', key='$1')} AS resumed FROM head"
)

# Finishing rows, each of its own key, in one statement: $1 ids, $2 their keys, $3 now,
# $4 holder, $5 seconds, $6..$12 the records (delivery_records.records_cte). The reads
# see the table as it was before the UPDATE: they skip the rows themselves.
# PostgreSQL runs the sub-statements of a WITH in no set order: the claims' are made
# to read ``done`` first, so that the rows are locked before the claims (a pass
# holding a row while it waits for its claim would otherwise deadlock with this
# statement; passes lock rows with SKIP LOCKED and never wait for one).
_AFTER_DONE = "(SELECT COUNT(*) FROM done) >= 0"
FINISH_MANY = (
    f"WITH {records_cte(first=6)}, done AS ("
    "  UPDATE outbox SET status = 'done', updated_at = $3 "
    "  WHERE id = ANY($1::bigint[]) AND status = 'pending' RETURNING id"
    "), next_row AS ("
    f"  {NEXT_OF_KEYS}"
    "), due_next AS ("
    "  SELECT ordering_key FROM next_row WHERE next_attempt_at <= $3"
    "), kept AS ("
    f"  UPDATE outbox_claims SET claimed_until = {_NOW} + $5 "
    f"  WHERE holder = $4 AND {_AFTER_DONE} "
    "  AND ordering_key IN (SELECT ordering_key FROM due_next) RETURNING ordering_key"
    "), released AS ("
    f"  DELETE FROM outbox_claims WHERE holder = $4 AND {_AFTER_DONE} "
    "  AND ordering_key = ANY($2::text[]) "
    "  AND ordering_key NOT IN (SELECT ordering_key FROM due_next) RETURNING 1"
    ") SELECT next_row.*, next_row.ordering_key IN (SELECT ordering_key FROM kept) AS kept "
    "FROM next_row"
)

# $1 now, $2 holder, $3 seconds, $4 owned, $5 keys to leave out, $6 limit.
CLAIM_DUE = (
    "WITH due AS ("
    f"  SELECT {_O_COLUMNS} FROM outbox o JOIN ("
    "    SELECT MIN(id) AS id FROM outbox WHERE status = 'pending' GROUP BY ordering_key"
    "  ) oldest ON oldest.id = o.id "
    # status again: a head marked done since this statement's snapshot is reread
    # when locked, and must then drop out
    "  WHERE o.status = 'pending' AND o.next_attempt_at <= $1 "
    "  AND (o.session_key IS NULL OR o.session_key = ANY($4::text[])) "
    "  AND o.ordering_key <> ALL($5::text[]) "
    "  ORDER BY o.id LIMIT $6 FOR UPDATE OF o SKIP LOCKED"
    f"), claimed AS ({_CLAIM.format(now=_NOW, source='due')}"
    f") SELECT due.*, {_RESUMED.format(row='due', key='due.ordering_key')} AS resumed "
    "FROM due JOIN claimed ON claimed.ordering_key = due.ordering_key ORDER BY due.id"
)


@dataclass(frozen=True, slots=True)
class Head:
    """A key's oldest pending row (due or not), whether we now hold the key, and
    whether that claim resumes another instance's (see ``_RESUMED``)."""

    row: OutboxRow | None
    claimed: bool
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class Next:
    """The row after a finished one, and whether our claim on the key still holds
    (extended when the row is due; released when it is not, or when there is none)."""

    row: OutboxRow | None
    kept: bool


class OutboxClaimRepository:
    def __init__(self, db: Database, *, holder: str, seconds: float) -> None:
        self._db = db
        self.holder = holder
        self.seconds = seconds  # the visibility timeout

    async def take_head(self, key: str, *, now: float, owned: Collection[str]) -> Head:
        """The head of ``key``, claimed for us when it is due and its session (if any)
        is in ``owned``; a claim of ours on a key with nothing to run is dropped."""
        row = await self._db.fetchrow(TAKE_HEAD, key, self.holder, self.seconds, now, list(owned))
        if row is None:
            return Head(None, claimed=False)
        claimed = bool(row["claimed"])
        return Head(outbox_row(row), claimed=claimed, resumed=claimed and bool(row["resumed"]))

    async def finish_many(self, finishes: Sequence[Finish]) -> list[Next]:
        """Write each row's record and mark it done; the next row of its key (see
        :class:`Next`). One statement for rows of different keys (gathered by
        bridge/db/batcher.py)."""
        rows = await self._db.fetch(
            FINISH_MANY,
            [finish.row_id for finish in finishes],
            [finish.ordering_key for finish in finishes],
            max(finish.now for finish in finishes),
            self.holder,
            self.seconds,
            *records_args(finish.record for finish in finishes),
        )
        after = {row["ordering_key"]: Next(outbox_row(row), bool(row["kept"])) for row in rows}
        return [after.get(finish.ordering_key, Next(None, kept=False)) for finish in finishes]

    async def claim_due(
        self, limit: int, *, now: float, owned: Collection[str], skip: Collection[str]
    ) -> list[tuple[OutboxRow, bool]]:
        """Claim the keys of due heads (sessions in ``owned``, keys not in ``skip``,
        heads not locked by another statement), oldest first; return those heads, each
        with whether its claim resumes another instance's (see ``_RESUMED``)."""
        rows = await self._db.fetch(
            CLAIM_DUE, now, self.holder, self.seconds, list(owned), list(skip), limit
        )
        return [(outbox_row(row), bool(row["resumed"])) for row in rows]

    async def release(self, key: str) -> None:
        await self._db.execute(
            "DELETE FROM outbox_claims WHERE ordering_key = $1 AND holder = $2", key, self.holder
        )

    async def release_all(self) -> int:
        """Every claim of ours (a clean stop, which cancels the drains): expired at once
        but kept under our name, so that the next holder knows the key moved (a
        cancelled delivery may have reached its platform); return how many."""
        return await self._db.execute(
            "UPDATE outbox_claims SET claimed_until = 0 WHERE holder = $1", self.holder
        )

    async def extend(self, keys: Collection[str]) -> int:
        """Push back the expiry of our claims on ``keys``; return how many we hold."""
        if not keys:
            return 0
        return await self._db.execute(
            f"UPDATE outbox_claims SET claimed_until = {_NOW} + $3 "
            "WHERE holder = $1 AND ordering_key = ANY($2::text[])",
            self.holder,
            list(keys),
            self.seconds,
        )

    async def holder_of(self, key: str) -> str | None:
        """Who holds ``key`` now (expired claims included): for tests and /health."""
        value = await self._db.fetchval(
            "SELECT holder FROM outbox_claims WHERE ordering_key = $1", key
        )
        return None if value is None else str(value)
