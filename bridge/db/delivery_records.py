"""What a delivery achieved, written together with its outbox row's done-mark.

An executor that sent a message returns what to record: the WhatsApp id it was sent
with (:class:`WaIdSent`) or the events a frontend created for it (:class:`PostedRefs`).
The outbox writes that and marks the row done in one statement on PostgreSQL (a
data-modifying ``WITH`` in front of the done-mark, bridge/db/outbox.py), where each
statement is a round trip; on SQLite, where a statement costs microseconds, as
statements of their own before the done-mark. A row marked done has its record
(bench/README.md, "Statements per message").
"""

from __future__ import annotations

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

# UPSERT_REF for every part at once: parts numbered from 0 in the array's order.
_UPSERT_REFS = (
    "INSERT INTO message_refs (message_id, frontend, part, room_id, event_id) "
    "SELECT $1, $2, (p.part - 1)::int, $3, p.event_id "
    "FROM unnest($4::text[]) WITH ORDINALITY AS p(event_id, part) "
    "ON CONFLICT (message_id, frontend, part) DO UPDATE SET "
    "room_id = excluded.room_id, event_id = excluded.event_id"
)


def record_cte(record: DeliveryRecord, *, first: int) -> tuple[str, list[Any]]:
    """PostgreSQL: ``record`` as a ``WITH`` item named ``recorded``, its parameters
    numbered from ``$first``; and those parameters."""
    if isinstance(record, WaIdSent):
        sql, args = SET_WA_ID, [record.message_id, record.wa_id]
    else:
        sql = _UPSERT_REFS
        args = [record.message_id, record.frontend, record.room_id, list(record.event_ids)]
    return f"recorded AS ({shift_placeholders(sql, first - 1)})", args


async def write_record(db: Database, record: DeliveryRecord) -> None:
    """``record`` as statements of its own (SQLite)."""
    if isinstance(record, WaIdSent):
        await db.execute(SET_WA_ID, record.message_id, record.wa_id)
        return
    for part, event_id in enumerate(record.event_ids):
        await db.execute(
            UPSERT_REF, record.message_id, record.frontend, part, record.room_id, event_id
        )
