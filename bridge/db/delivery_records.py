"""What a delivery achieved, written together with its outbox row's done-mark.

An executor that sent a message returns what to record: the WhatsApp id it was sent
with (:class:`WaIdSent`) or the events a frontend created for it (:class:`PostedRefs`).
The outbox writes that and marks the row done in one statement on PostgreSQL (a
data-modifying ``WITH`` in front of the done-mark, bridge/db/outbox.py), where each
statement is a round trip; on SQLite, where a statement costs microseconds, as
statements of their own before the done-mark. A row marked done has its record
(docs/architecture.md, "Round trips on PostgreSQL").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bridge.db.database import Database, shift_placeholders
from bridge.db.messages import SET_WA_ID, UPSERT_REF


@dataclass(frozen=True, slots=True)
class WaIdSent:
    """The message reached WhatsApp with this id (its ack becomes ``sent``)."""

    message_id: int
    wa_id: str


@dataclass(frozen=True, slots=True)
class PostedRefs:
    """The message is on ``frontend`` as these events, part 0 first."""

    message_id: int
    frontend: str
    room_id: str
    event_ids: tuple[str, ...]


DeliveryRecord = WaIdSent | PostedRefs

# Many records at once (PostgreSQL): $1, $2 the WhatsApp ids' message ids and ids;
# $3..$7 the refs' message ids, frontends, parts, rooms and event ids.
_RECORDS = (
    "recorded_wa AS ("
    "  UPDATE messages m SET wa_id = w.wa_id, ack = COALESCE(m.ack, 'sent') "
    "  FROM unnest($1::bigint[], $2::text[]) AS w(id, wa_id) WHERE m.id = w.id"
    "), recorded_refs AS ("
    "  INSERT INTO message_refs (message_id, frontend, part, room_id, event_id) "
    "  SELECT * FROM unnest($3::bigint[], $4::text[], $5::int[], $6::text[], $7::text[]) "
    "  ON CONFLICT (message_id, frontend, part) DO UPDATE SET "
    "  room_id = excluded.room_id, event_id = excluded.event_id"
    ")"
)


def records_cte(*, first: int) -> str:
    """PostgreSQL: ``WITH`` items writing many records, their 7 parameters numbered
    from ``$first`` (:func:`records_args`)."""
    return shift_placeholders(_RECORDS, first - 1)


def records_args(records: Iterable[DeliveryRecord | None]) -> list[list[Any]]:
    """The 7 arrays :func:`records_cte` takes."""
    kept = [record for record in records if record is not None]
    sent = [record for record in kept if isinstance(record, WaIdSent)]
    refs = [
        (record.message_id, record.frontend, part, record.room_id, event_id)
        for record in kept
        if isinstance(record, PostedRefs)
        for part, event_id in enumerate(record.event_ids)
    ]
    ref_columns = [list(column) for column in zip(*refs, strict=True)] if refs else [[]] * 5
    return [[r.message_id for r in sent], [r.wa_id for r in sent], *ref_columns]


async def write_record(db: Database, record: DeliveryRecord) -> None:
    """``record`` as statements of its own (SQLite)."""
    if isinstance(record, WaIdSent):
        await db.execute(SET_WA_ID, record.message_id, record.wa_id)
        return
    for part, event_id in enumerate(record.event_ids):
        await db.execute(
            UPSERT_REF, record.message_id, record.frontend, part, record.room_id, event_id
        )
