"""Storage: one async layer over SQLite and PostgreSQL, migrations, and repositories.

db = await Database.connect("sqlite:/var/lib/zapbridge/zapbridge.db")
await migrate(db)
repos = Repositories.over(db)
async with db.transaction():
    contact = (await repos.contacts.resolve(session.id, phone="+5511987654321")).contact
    ticket, created = await repos.tickets.open_or_get(session.id, contact.id)
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.db.companies import CompanyRepository, CompanyRow
from bridge.db.contacts import ContactMerge, ContactRepository, ContactRow
from bridge.db.database import Database, Row, UniqueViolation
from bridge.db.delivery_reads import DeliveryReadRepository
from bridge.db.events import ProcessedEventRepository
from bridge.db.messages import MessageRefRepository, MessageRefRow, MessageRepository, MessageRow
from bridge.db.migrate import migrate
from bridge.db.opening import redact_url
from bridge.db.outbox import OutboxRepository, OutboxRow
from bridge.db.quarantine import QuarantinedEventRow, QuarantineRepository
from bridge.db.rooms import RoomRepository, RoomRow
from bridge.db.sessions import SessionRepository, SessionRow
from bridge.db.threads import ThreadRefRepository, ThreadRefRow
from bridge.db.ticket_queues import TicketQueueRepository
from bridge.db.tickets import TicketRepository, TicketRow


@dataclass(frozen=True, slots=True)
class Repositories:
    """Every repository over one database, for the composition root to hand out."""

    db: Database
    companies: CompanyRepository
    sessions: SessionRepository
    contacts: ContactRepository
    tickets: TicketRepository
    threads: ThreadRefRepository
    rooms: RoomRepository
    messages: MessageRepository
    message_refs: MessageRefRepository
    outbox: OutboxRepository
    events: ProcessedEventRepository
    quarantine: QuarantineRepository
    ticket_queues: TicketQueueRepository
    delivery_reads: DeliveryReadRepository

    @classmethod
    def over(cls, db: Database) -> Repositories:
        return cls(
            db=db,
            companies=CompanyRepository(db),
            sessions=SessionRepository(db),
            contacts=ContactRepository(db),
            tickets=TicketRepository(db),
            threads=ThreadRefRepository(db),
            rooms=RoomRepository(db),
            messages=MessageRepository(db),
            message_refs=MessageRefRepository(db),
            outbox=OutboxRepository(db),
            events=ProcessedEventRepository(db),
            quarantine=QuarantineRepository(db),
            ticket_queues=TicketQueueRepository(db),
            delivery_reads=DeliveryReadRepository(db),
        )


__all__ = [
    "CompanyRepository",
    "CompanyRow",
    "ContactMerge",
    "ContactRepository",
    "ContactRow",
    "Database",
    "MessageRefRepository",
    "MessageRefRow",
    "MessageRepository",
    "MessageRow",
    "OutboxRepository",
    "OutboxRow",
    "ProcessedEventRepository",
    "QuarantineRepository",
    "QuarantinedEventRow",
    "Repositories",
    "RoomRepository",
    "RoomRow",
    "Row",
    "SessionRepository",
    "SessionRow",
    "ThreadRefRepository",
    "ThreadRefRow",
    "TicketQueueRepository",
    "TicketRepository",
    "TicketRow",
    "UniqueViolation",
    "migrate",
    "redact_url",
]
