"""What a delivery reads before it acts, in one query: the message, its ticket with
the ticket's contact, and whether the message is on the frontend already.

A delivery read these with three statements (the message, whether a ref exists, the
ticket joined to its contact), each a round trip on PostgreSQL; here they are one,
and on PostgreSQL one for every delivery that reads at the same time
(docs/architecture.md, "Round trips on PostgreSQL"). Rows come back as the tables'
own row types, so every caller keeps working with ``MessageRow``, ``TicketRow`` and
``ContactRow``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bridge.db.batcher import Batcher
from bridge.db.contacts import ALIASED_COLUMNS as _C_ALIASED
from bridge.db.contacts import ContactRow, contact_of
from bridge.db.database import Database, Row, from_json
from bridge.db.messages import COLUMNS as _MESSAGE_FIELDS
from bridge.db.messages import MessageRow
from bridge.db.tickets import COLUMNS as _TICKET_FIELDS
from bridge.db.tickets import TicketRow

_M_FIELDS = _MESSAGE_FIELDS.split(", ")
_T_FIELDS = _TICKET_FIELDS.split(", ")
_M_ALIASED = ", ".join(f"m.{name} AS m_{name}" for name in _M_FIELDS)
_T_ALIASED = ", ".join(f"t.{name} AS t_{name}" for name in _T_FIELDS)

# The message, its ticket and contact, and whether it is on the frontend {frontend}.
_READ = (
    f"{_M_ALIASED}, {_T_ALIASED}, {_C_ALIASED}, "
    "EXISTS (SELECT 1 FROM message_refs r WHERE r.message_id = m.id "
    "AND r.frontend = {frontend} AND r.part = 0) AS posted"
)
_JOINED = "JOIN tickets t ON t.id = m.ticket_id JOIN contacts c ON c.id = t.contact_id"
_SELECT = f"SELECT {_READ.format(frontend='$2')} FROM messages m {_JOINED} WHERE m.id = $1"
# The same for many (message, frontend) pairs at once (PostgreSQL): one row per pair
# found, with its place in the arrays.
_SELECT_MANY = (
    f"SELECT q.n, {_READ.format(frontend='q.frontend')} "
    "FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS q(id, frontend, n) "
    f"JOIN messages m ON m.id = q.id {_JOINED}"
)


@dataclass(frozen=True, slots=True)
class DeliveryRead:
    message: MessageRow
    ticket: TicketRow
    contact: ContactRow
    posted: bool  # the message's main event (part 0) is on the frontend asked about


class DeliveryReadRepository:
    """On PostgreSQL, the reads of deliveries running at the same time share a query
    (bridge/db/batcher.py)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._many = Batcher(self.messages_for) if db.dialect == "postgres" else None

    async def message_for(self, message_id: int, *, frontend: str) -> DeliveryRead | None:
        """The message, its ticket and contact, and whether it is on ``frontend``
        (a name no ref carries, such as ``whatsapp``, always answers False)."""
        if self._many is not None:
            return await self._many((message_id, frontend))
        row = await self._db.fetchrow(_SELECT, message_id, frontend)
        return _read(row) if row else None

    async def messages_for(self, wanted: Sequence[tuple[int, str]]) -> list[DeliveryRead | None]:
        """:meth:`message_for` of each (message id, frontend), in one query (PostgreSQL)."""
        rows = await self._db.fetch(
            _SELECT_MANY, [message for message, _ in wanted], [frontend for _, frontend in wanted]
        )
        found = {row["n"]: _read(row) for row in rows}
        return [found.get(n) for n in range(1, len(wanted) + 1)]


def _read(row: Row) -> DeliveryRead:
    message = {name: row[f"m_{name}"] for name in _M_FIELDS}
    message["content"] = from_json(message["content"])
    return DeliveryRead(
        message=MessageRow(**message),
        ticket=TicketRow(**{name: row[f"t_{name}"] for name in _T_FIELDS}),
        contact=contact_of(row),
        posted=bool(row["posted"]),
    )
