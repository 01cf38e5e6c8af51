"""What the core sends: operations (``bridge.core.operations``) written to the outbox
for WhatsApp and for each frontend of a ticket's session, in the transaction that
stored what they deliver; once it commits, the outbox drains the keys it wrote to.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import TypeVar

from bridge.clock import Clock
from bridge.config import Config
from bridge.config.schema import CloudTemplate
from bridge.core.frontend import Frontend
from bridge.core.operations import (
    CreateThread,
    EnsureRooms,
    Operation,
    PostMessage,
    PostTranscript,
    SendBotMessage,
    SendTemplate,
    ThreadNotice,
    UpdateCard,
    encode,
)
from bridge.core.ordering_keys import RoomsKey, ticket_key
from bridge.core.outbox import OutboxWorker
from bridge.core.senders import BOT
from bridge.core.tickets import TicketChange, TicketView
from bridge.db import Repositories
from bridge.db.group_commit import GroupCommitter
from bridge.db.messages import MessageRow, NewMessage
from bridge.errors import BridgeError
from bridge.model import AnyContent, Text, content_to_dict

WHATSAPP = "whatsapp"
"""The outbox destination of everything sent to customers."""

_ENQUEUED: ContextVar[set[str] | None] = ContextVar("zapbridge_enqueued", default=None)
"""The ordering keys the current :meth:`Outgoing.transaction` enqueued to."""

T = TypeVar("T")


class Outgoing:
    def __init__(
        self,
        config: Config,
        repos: Repositories,
        *,
        outbox: OutboxWorker,
        frontends: dict[str, Frontend],
        session_ids: dict[str, int],
        clock: Clock,
    ) -> None:
        self._config = config
        self._repos = repos
        self._outbox = outbox
        self._frontends = frontends
        self._session_ids = session_ids
        self._clock = clock
        self._group_commit = GroupCommitter(
            repos.db,
            window_seconds=config.database.group_commit_ms / 1000,
            max_group=config.database.group_commit_max,
        )

    def frontends_of(self, session_key: str) -> list[str]:
        """The frontends showing ``session_key``'s tickets."""
        session = self._config.session_for_key(session_key)
        if session is None:
            raise BridgeError(f"no session named {session_key}")
        return [name for name, fe in self._frontends.items() if fe.serves_session(session)]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A transaction; once it committed, the outbox looks at the keys it enqueued to."""
        keys: set[str] = set()
        token = _ENQUEUED.set(keys)
        try:
            async with self._repos.db.transaction():
                yield
        finally:
            _ENQUEUED.reset(token)
        self._outbox.wake(keys)

    async def ingest(self, work: Callable[[], Awaitable[T]], *, lane: Hashable) -> T:
        """``work()`` in a transaction that inbound events arriving together share
        (group commit, docs/architecture.md#group-commit); its result once that
        committed, and then the outbox looks at the keys it enqueued to. ``work`` runs
        again alone when its group rolls back: it keeps no state outside the database.
        ``lane``: the same for work updating the same rows (a customer's chat)."""
        keys: set[str] = set()

        async def body() -> T:
            keys.clear()  # a run again forgets the rolled-back run's keys
            token = _ENQUEUED.set(keys)
            try:
                return await work()
            finally:
                _ENQUEUED.reset(token)

        result = await self._group_commit.run(body, lane=lane)
        self._outbox.wake(keys)
        return result

    async def enqueue(
        self, destination: str, *, key: str, operation: Operation, session_key: str | None = None
    ) -> None:
        """``session_key``: the session a row to WhatsApp goes out from (with several
        instances only its owner runs the row; docs/cluster.md)."""
        await self._repos.outbox.enqueue(
            destination,
            ordering_key=key,
            payload=encode(operation),
            now=self._clock.now(),
            session_key=session_key,
        )
        keys = _ENQUEUED.get()
        if keys is not None:
            keys.add(key)

    async def to_whatsapp(self, ticket: TicketView, operation: Operation) -> None:
        await self.enqueue(
            WHATSAPP,
            key=ticket_key(ticket.id, WHATSAPP),
            operation=operation,
            session_key=ticket.session_key,
        )

    async def to_frontends(
        self, ticket: TicketView, operation: Operation, *, skip: str | None = None
    ) -> None:
        for name in self.frontends_of(ticket.session_key):
            if name != skip:
                await self.enqueue(name, key=ticket_key(ticket.id, name), operation=operation)

    async def request_rooms(self, frontend: str) -> None:
        """At start: ``frontend`` makes every control and ops room it serves."""
        await self.enqueue(frontend, key=str(RoomsKey(frontend)), operation=EnsureRooms())

    async def store_outbound(
        self,
        ticket: TicketView,
        *,
        kind: str,
        sender: str,
        content: AnyContent,
        sender_name: str | None = None,
    ) -> MessageRow:
        """Store a message to ``ticket``'s customer, stamped now; inside a transaction."""
        now = self._clock.now()
        return await self._repos.messages.insert_outbound(
            NewMessage(
                ticket_id=ticket.id,
                session_id=self._session_ids[ticket.session_key],
                kind=kind,
                sender=sender,
                sender_name=sender_name,
                content=content_to_dict(content),
                timestamp=now,
            ),
            now=now,
        )

    async def send_bot_text(self, ticket: TicketView, text: str) -> None:
        """Send ``text`` to the customer and show it in the thread; inside a transaction."""
        row = await self.store_outbound(ticket, kind="text", sender=BOT, content=Text(text))
        await self.to_whatsapp(ticket, SendBotMessage(row.id))
        await self.to_frontends(ticket, PostMessage(row.id))

    async def send_template(
        self,
        ticket: TicketView,
        *,
        template: CloudTemplate,
        params: tuple[str, ...],
        sender: str,
        sender_name: str,
    ) -> None:
        """Send the approved ``template`` (a Cloud API session) to the customer for
        attendant ``sender``, and show it in the thread as a text naming it and its
        parameters; inside a transaction."""
        row = await self.store_outbound(
            ticket,
            kind="template",
            sender=sender,
            sender_name=sender_name,
            content=Text(template_text(template.name, params)),
        )
        operation = SendTemplate(
            row.id, name=template.name, language=template.language, params=params
        )
        await self.to_whatsapp(ticket, operation)
        await self.to_frontends(ticket, PostMessage(row.id))

    async def publish_change(self, change: TicketChange) -> None:
        """A ticket changed (command, first reply): cards, notices, farewell; in a transaction."""
        await self.to_frontends(change.ticket, UpdateCard(change.ticket.id))
        await self.to_frontends(change.ticket, ThreadNotice(change.ticket.id, change.notice))
        if change.auto_reply:
            await self.send_bot_text(change.ticket, change.auto_reply)
        if change.question:
            await self.send_bot_text(change.ticket, change.question)
        if change.previous_status != "closed":
            await self.transcript_of_closed(change.ticket)
        if change.new_ticket is not None:
            await self.to_frontends(change.new_ticket, CreateThread(change.new_ticket.id))

    async def transcript_of_closed(self, ticket: TicketView) -> None:
        """A ticket just closed: its transcript, with ``tickets.transcript_on_close``;
        inside the transaction that closed it, so a crash cannot lose it."""
        if ticket.status == "closed" and self._config.tickets.transcript_on_close:
            await self.to_frontends(ticket, PostTranscript(ticket.id))


def template_text(name: str, params: tuple[str, ...]) -> str:
    """How a sent template shows in the thread and the transcript:
    ``[template order_update: 1234, Maria]``."""
    return f"[template {name}: {', '.join(params)}]" if params else f"[template {name}]"
