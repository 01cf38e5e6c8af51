"""The executor of ``whatsapp-presence`` rows (docs/presence.md): read marks and
typing shown to customers, through the sessions' presence budget.

- ``MarkRead``: the ticket's customer messages up to the one read that are not marked
  yet are marked read (one call per sender: a group's messages come from several),
  then recorded as marked; a retry after a crash marks only what is left.
- ``ChatPresence``: sent unless it is older than :data:`STALE_SECONDS` when its turn
  comes (a "typing…" shown late is worse than none); the session drops it when the
  presence budget has no token left, and it is dropped at once when the session is
  not connected.

Presence is best effort: a row that fails on its last attempt (``outbox.max_attempts``),
or for good, is logged and dropped, never a dead letter (no notice in the thread, no
alert, ``/health`` unchanged). Messages it did not mark stay unmarked, so the
attendant's next read receipt marks them.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from bridge.core.deliveries import DeliveryContext
from bridge.core.operations import ChatPresence, MarkRead, UnknownOperation, decode, op_name
from bridge.core.session_port import WhatsAppSessions
from bridge.db.outbox import OutboxRow
from bridge.errors import BridgeError, PermanentDeliveryError, SessionNotConnected

log = logging.getLogger("bridge.core.presence_deliveries")

STALE_SECONDS = 10.0
"""A typing change older than this when its turn comes is dropped, not sent late."""

MARK_BATCH = 500
"""Messages marked read in one pass (a longer backlog takes more passes)."""


class PresenceDeliveries:
    """Executes ``whatsapp-presence`` rows through the session manager."""

    def __init__(self, ctx: DeliveryContext, sessions: WhatsAppSessions) -> None:
        self._ctx = ctx
        self._sessions = sessions

    async def __call__(self, row: OutboxRow) -> None:
        try:
            await self._deliver(row)
        except BridgeError as exc:
            last = row.attempts + 1 >= self._ctx.config.outbox.max_attempts
            if not (last or isinstance(exc, PermanentDeliveryError)):
                raise  # retried by the outbox
            log.warning("presence delivery %d dropped: %s", row.id, exc.explanation)
            self._count(_kind_of(row), sent=False)

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            operation = decode(row.payload)
        except UnknownOperation as exc:
            raise PermanentDeliveryError(
                f"unknown presence delivery {op_name(row.payload)!r}"
            ) from exc
        except ValueError as exc:
            raise PermanentDeliveryError(f"a malformed presence delivery: {exc}") from exc
        match operation:
            case MarkRead() as mark:
                await self._mark_read(mark)
            case ChatPresence() as presence:
                await self._chat_presence(presence)
            case _:
                raise PermanentDeliveryError(f"{op_name(row.payload)!r} is no presence delivery")

    async def _mark_read(self, mark: MarkRead) -> None:
        messages = self._ctx.repos.messages
        ticket = await self._ctx.tickets.get(mark.ticket)
        chat = (await self._ctx.customer(ticket)).address
        while rows := await messages.unmarked_inbound(
            mark.ticket, up_to=mark.up_to, limit=MARK_BATCH
        ):
            by_sender: dict[str, list[str]] = defaultdict(list)
            for row in rows:
                if row.wa_id:
                    by_sender[row.sender or chat].append(row.wa_id)
            for sender, ids in by_sender.items():
                await self._sessions.mark_read(ticket.session_key, chat, ids=ids, sender=sender)
            await messages.mark_inbound_read(mark.ticket, up_to=rows[-1].id)
            log.debug("ticket %d: %d messages marked read", mark.ticket, len(rows))
            self._count("read", sent=True)
            if len(rows) < MARK_BATCH:
                return

    async def _chat_presence(self, presence: ChatPresence) -> None:
        self._count("typing", sent=await self._show_typing(presence))

    async def _show_typing(self, presence: ChatPresence) -> bool:
        """Whether the customer was shown ``presence``."""
        age = self._ctx.clock.now() - presence.at
        if age > STALE_SECONDS:
            log.debug("ticket %d: %s %.0f s old, dropped", presence.ticket, presence.state, age)
            return False
        ticket = await self._ctx.tickets.get(presence.ticket)
        if ticket.status == "closed":
            return False
        to = (await self._ctx.customer(ticket)).address
        try:
            return await self._sessions.chat_presence(ticket.session_key, to, state=presence.state)
        except SessionNotConnected:
            log.debug("ticket %d: %s dropped, session down", presence.ticket, presence.state)
            return False

    def _count(self, kind: str, *, sent: bool) -> None:
        self._ctx.metrics.presence_updates.labels(kind, "sent" if sent else "dropped").inc()


def _kind_of(row: OutboxRow) -> str:
    """The metrics label of a presence row: ``read`` or ``typing``."""
    return "typing" if op_name(row.payload) == "typing" else "read"
