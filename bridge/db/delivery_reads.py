"""What a delivery reads before it acts, in one query: the message, its ticket with
the ticket's contact, and whether the message is on the frontend already.

A delivery read these with three statements (the message, whether a ref exists, the
ticket joined to its contact), each a round trip on PostgreSQL; here they are one
(bench/README.md, "Statements per message"). Rows come back as the tables'
own row types, so every caller keeps working with ``MessageRow``, ``TicketRow`` and
``ContactRow``.
"""

from __future__ import annotations

from dataclasses import dataclass

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

_SELECT = (
    f"SELECT {_M_ALIASED}, {_T_ALIASED}, {_C_ALIASED}, "
    "EXISTS (SELECT 1 FROM message_refs r WHERE r.message_id = m.id "
    "AND r.frontend = $2 AND r.part = 0) AS posted "
    "FROM messages m JOIN tickets t ON t.id = m.ticket_id "
    "JOIN contacts c ON c.id = t.contact_id WHERE m.id = $1"
)


@dataclass(frozen=True, slots=True)
class DeliveryRead:
    message: MessageRow
    ticket: TicketRow
    contact: ContactRow
    posted: bool  # the message's main event (part 0) is on the frontend asked about


class DeliveryReadRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def message_for(self, message_id: int, *, frontend: str) -> DeliveryRead | None:
        """The message, its ticket and contact, and whether it is on ``frontend``
        (a name no ref carries, such as ``whatsapp``, always answers False)."""
        row = await self._db.fetchrow(_SELECT, message_id, frontend)
        return _read(row) if row else None


def _read(row: Row) -> DeliveryRead:
    message = {name: row[f"m_{name}"] for name in _M_FIELDS}
    message["content"] = from_json(message["content"])
    return DeliveryRead(
        message=MessageRow(**message),
        ticket=TicketRow(**{name: row[f"t_{name}"] for name in _T_FIELDS}),
        contact=contact_of(row),
        posted=bool(row["posted"]),
    )
