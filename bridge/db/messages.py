"""Messages of a ticket (both directions) and their ids on each frontend."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.db.database import Database, Row, column_list, from_json, to_json

ACKS = ("sent", "delivered", "read", "failed")


def _ack_rank(expression: str) -> str:
    return (
        f"CASE {expression} WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 "
        "WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 0 END"
    )


# An ack only moves forward: a late "delivered" never overwrites "read".
_SET_ACK = f"UPDATE messages SET ack = $2 WHERE id = $1 AND {_ack_rank('ack')} < {_ack_rank('$2')}"
_SET_ACK_BY_WA_ID = (
    "UPDATE messages SET ack = $3 WHERE session_id = $1 AND wa_id = $2 "
    f"AND {_ack_rank('ack')} < {_ack_rank('$3')}"
)


SET_WA_ID = "UPDATE messages SET wa_id = $2, ack = COALESCE(ack, 'sent') WHERE id = $1"
UPSERT_REF = (
    "INSERT INTO message_refs (message_id, frontend, part, room_id, event_id) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, frontend, part) DO UPDATE SET "
    "room_id = excluded.room_id, event_id = excluded.event_id"
)


NOTE_KIND = "note"
"""The ``messages.kind`` of an internal note and of every action on one."""


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    ticket_id: int
    session_id: int
    direction: str  # in | out
    kind: str  # text, image, …, reaction, edit, revoke, unsupported
    wa_id: str | None  # WhatsApp id; None for an outbound message not sent yet
    sender: str
    content: dict[str, Any]  # the neutral message, as JSON
    quote_wa_id: str | None
    timestamp: float
    # sent | delivered | read | failed; on a customer's message, "read" once the bridge
    # marked it read on WhatsApp (docs/presence.md)
    ack: str | None
    created_at: float
    sender_name: str | None = None  # a group member's push name, an attendant's name

    @property
    def is_note(self) -> bool:
        """An internal note, or an action on one: it never reaches WhatsApp
        (docs/tickets.md, "Internal notes")."""
        return self.kind == NOTE_KIND


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMessage:
    """A message to store, either direction: the row before it has an id, an ack or a
    WhatsApp id of its own (the inbound insert adds the id it came with)."""

    ticket_id: int
    session_id: int
    kind: str
    sender: str
    content: Mapping[str, Any]  # the neutral message, stored as JSON
    timestamp: float
    quote_wa_id: str | None = None
    sender_name: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRefRow:
    message_id: int
    frontend: str
    part: int  # 0 for the main event; more when one message needs several events
    room_id: str
    event_id: str  # Matrix event id or Slack ts


COLUMNS = column_list(MessageRow)
_M_COLUMNS = column_list(MessageRow, prefix="m.")
REF_COLUMNS = column_list(MessageRefRow)

_INSERT = (
    "INSERT INTO messages (ticket_id, session_id, direction, kind, wa_id, sender, content, "
    "quote_wa_id, timestamp, created_at, sender_name) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
)


# The media-store files (``content.data.sha256``) of messages a pending delivery
# names (``payload.message``): the subquery first, then the messages by primary key.
_MEDIA_AWAITING_DELIVERY = {
    "sqlite": (
        "SELECT DISTINCT json_extract(content, '$.data.sha256') AS sha256 FROM messages "
        "WHERE id IN (SELECT json_extract(payload, '$.message') FROM outbox "
        "WHERE status = 'pending') AND json_extract(content, '$.data.sha256') IS NOT NULL"
    ),
    "postgres": (
        "SELECT DISTINCT content::jsonb #>> '{data,sha256}' AS sha256 FROM messages "
        "WHERE id = ANY(ARRAY(SELECT (payload::jsonb ->> 'message')::bigint FROM outbox "
        "WHERE status = 'pending')) AND content::jsonb #>> '{data,sha256}' IS NOT NULL"
    ),
}


def _insert_values(
    message: NewMessage, *, direction: str, wa_id: str | None, now: float | None
) -> tuple[Any, ...]:
    """The ``_INSERT`` parameters, in its column order."""
    return (
        message.ticket_id,
        message.session_id,
        direction,
        message.kind,
        wa_id,
        message.sender,
        to_json(message.content),
        message.quote_wa_id,
        message.timestamp,
        time.time() if now is None else now,
        message.sender_name,
    )


def _message(row: Row) -> MessageRow:
    return MessageRow(**{**row, "content": from_json(row["content"])})


def _message_ref(row: Row) -> MessageRefRow:
    return MessageRefRow(**row)


def _check_ack(ack: str) -> None:
    if ack not in ACKS:
        raise ValueError(f"unknown ack {ack!r}; expected one of {ACKS}")


class MessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_inbound(
        self, message: NewMessage, *, wa_id: str, now: float | None = None
    ) -> MessageRow | None:
        """Store a customer message; None if this WhatsApp id is already stored."""
        row = await self._db.fetchrow(
            f"{_INSERT} ON CONFLICT (session_id, wa_id) DO NOTHING RETURNING {COLUMNS}",
            *_insert_values(message, direction="in", wa_id=wa_id, now=now),
        )
        return _message(row) if row else None

    async def insert_outbound(self, message: NewMessage, *, now: float | None = None) -> MessageRow:
        """Store an attendant message before it is sent; ``set_wa_id`` once it is."""
        row = await self._db.fetchrow_required(
            f"{_INSERT} RETURNING {COLUMNS}",
            *_insert_values(message, direction="out", wa_id=None, now=now),
        )
        return _message(row)

    async def get(self, message_id: int) -> MessageRow | None:
        row = await self._db.fetchrow(f"SELECT {COLUMNS} FROM messages WHERE id = $1", message_id)
        return _message(row) if row else None

    async def find_by_wa_id(self, session_id: int, wa_id: str) -> MessageRow | None:
        row = await self._db.fetchrow(
            f"SELECT {COLUMNS} FROM messages WHERE session_id = $1 AND wa_id = $2",
            session_id,
            wa_id,
        )
        return _message(row) if row else None

    async def find_by_ref(self, frontend: str, *, room_id: str, event_id: str) -> MessageRow | None:
        """The message a frontend event (any of its parts) belongs to."""
        row = await self._db.fetchrow(
            f"SELECT {_M_COLUMNS} FROM messages m JOIN message_refs r ON r.message_id = m.id "
            "WHERE r.frontend = $1 AND r.room_id = $2 AND r.event_id = $3",
            frontend,
            room_id,
            event_id,
        )
        return _message(row) if row else None

    async def list_by_ticket(self, ticket_id: int, *, limit: int = 100) -> list[MessageRow]:
        """The ticket's first ``limit`` messages, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM messages WHERE ticket_id = $1 ORDER BY id LIMIT $2",
            ticket_id,
            limit,
        )
        return [_message(row) for row in rows]

    async def last_inbound_at(self, ticket_id: int) -> float | None:
        """When the customer last wrote on the ticket (WhatsApp's timestamp of its newest
        inbound message); None when they never did. Reads the ticket's rows through
        ``messages_by_ticket``."""
        value = await self._db.fetchval(
            "SELECT MAX(timestamp) FROM messages WHERE ticket_id = $1 AND direction = 'in'",
            ticket_id,
        )
        return None if value is None else float(value)

    async def count_by_direction(self, session_id: int) -> dict[str, int]:
        """How many messages came in from customers and went out to them (internal
        notes, kind ``note``, went to no one: docs/tickets.md, "Internal notes")."""
        rows = await self._db.fetch(
            "SELECT direction, COUNT(*) AS n FROM messages WHERE session_id = $1 "
            f"AND kind <> '{NOTE_KIND}' GROUP BY direction",
            session_id,
        )
        counts = {"in": 0, "out": 0}
        counts.update({row["direction"]: int(row["n"]) for row in rows})
        return counts

    async def media_awaiting_delivery(self) -> set[str]:
        """The sha256 of every stored file a pending outbox row's message refers to."""
        rows = await self._db.fetch(_MEDIA_AWAITING_DELIVERY[self._db.dialect])
        return {str(row["sha256"]) for row in rows}

    async def set_wa_id(self, message_id: int, wa_id: str) -> bool:
        """Record the WhatsApp id of a sent message (its ack becomes ``sent``)."""
        return await self._db.execute(SET_WA_ID, message_id, wa_id) > 0

    async def set_ack(self, message_id: int, ack: str) -> bool:
        """Move the ack forward (sent → failed → delivered → read); False if it did not."""
        _check_ack(ack)
        changed = await self._db.execute(
            _SET_ACK,
            message_id,
            ack,
        )
        return changed > 0

    async def set_ack_by_wa_id(self, session_id: int, *, wa_id: str, ack: str) -> bool:
        """``set_ack`` for a receipt naming the WhatsApp id."""
        _check_ack(ack)
        changed = await self._db.execute(
            _SET_ACK_BY_WA_ID,
            session_id,
            wa_id,
            ack,
        )
        return changed > 0

    async def unmarked_inbound(
        self, ticket_id: int, *, up_to: int, limit: int = 500
    ) -> list[MessageRow]:
        """The ticket's customer messages up to message ``up_to`` not yet marked read
        on WhatsApp (reactions, edits and deletions are not read), oldest first."""
        rows = await self._db.fetch(
            f"SELECT {COLUMNS} FROM messages WHERE ticket_id = $1 AND id <= $2 "
            f"AND direction = 'in' AND ack IS NULL AND wa_id IS NOT NULL AND {_READABLE} "
            "ORDER BY id LIMIT $3",
            ticket_id,
            up_to,
            limit,
        )
        return [_message(row) for row in rows]

    async def mark_inbound_read(self, ticket_id: int, *, up_to: int) -> int:
        """Record that the ticket's customer messages up to ``up_to`` were marked read
        on WhatsApp; how many rows changed."""
        return await self._db.execute(
            "UPDATE messages SET ack = 'read' WHERE ticket_id = $1 AND id <= $2 "
            f"AND direction = 'in' AND ack IS NULL AND wa_id IS NOT NULL AND {_READABLE}",
            ticket_id,
            up_to,
        )

    async def latest_shown(self, ticket_id: int, frontend: str) -> int | None:
        """The newest message of the ticket shown on ``frontend`` (it has a ref there)."""
        value = await self._db.fetchval(
            "SELECT MAX(m.id) FROM messages m JOIN message_refs r ON r.message_id = m.id "
            "WHERE m.ticket_id = $1 AND r.frontend = $2",
            ticket_id,
            frontend,
        )
        return None if value is None else int(value)


_READABLE = "kind NOT IN ('reaction', 'edit', 'deletion', 'receipt')"
"""Customer messages WhatsApp shows as messages (not actions on one)."""


class MessageRefRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(
        self, message_id: int, *, frontend: str, room_id: str, event_id: str, part: int = 0
    ) -> MessageRefRow:
        """Record (or replace) the event id of a message part on a frontend."""
        row = await self._db.fetchrow_required(
            f"{UPSERT_REF} RETURNING {REF_COLUMNS}",
            message_id,
            frontend,
            part,
            room_id,
            event_id,
        )
        return _message_ref(row)

    async def get(self, message_id: int, frontend: str) -> MessageRefRow | None:
        """The main event (part 0) of the message on this frontend."""
        row = await self._db.fetchrow(
            f"SELECT {REF_COLUMNS} FROM message_refs "
            "WHERE message_id = $1 AND frontend = $2 AND part = 0",
            message_id,
            frontend,
        )
        return _message_ref(row) if row else None

    async def list_for_message(
        self, message_id: int, *, frontend: str | None = None
    ) -> list[MessageRefRow]:
        """Every event of the message, on one frontend or all (e.g. to redact them)."""
        rows = await self._db.fetch(
            f"SELECT {REF_COLUMNS} FROM message_refs WHERE message_id = $1 "
            "AND (frontend = $2 OR $2 IS NULL) ORDER BY frontend, part",
            message_id,
            frontend,
        )
        return [_message_ref(row) for row in rows]
