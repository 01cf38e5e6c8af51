"""What WhatsApp says about the messages we sent: receipts (sent, delivered, read)
shown on the attendant's message, failed sends told in the ticket's threads, and,
for the Cloud API, the WhatsApp id of a send whose answer was lost, learned from the
status that names it (docs/cloud.md, "Sending twice")."""

from __future__ import annotations

import logging

from bridge.core import cloud_texts, send_references
from bridge.core.operations import MarkReceipt, ThreadNotice
from bridge.core.outgoing import Outgoing
from bridge.core.tickets import TicketService
from bridge.db import Repositories
from bridge.metrics import Metrics
from bridge.whatsapp.engine import ReceiptEvent, SendFailedEvent

log = logging.getLogger("bridge.core.delivery_news")


class DeliveryNews:
    """The relay's hand for receipts and failed sends of our messages."""

    def __init__(
        self,
        repos: Repositories,
        *,
        tickets: TicketService,
        outgoing: Outgoing,
        session_ids: dict[str, int],
        metrics: Metrics,
    ) -> None:
        self._repos = repos
        self._tickets = tickets
        self._out = outgoing
        self._session_ids = session_ids
        self._metrics = metrics

    async def receipt(self, event: ReceiptEvent) -> None:
        session_id = self._session_ids[event.session]
        async with self._out.transaction():
            if event.reference is not None and len(event.ids) == 1:
                await self._learn_wa_id(event.session, event.ids[0], event.reference)
            for wa_id in event.ids:
                row = await self._repos.messages.find_by_wa_id(session_id, wa_id)
                if row is None or row.direction != "out":
                    continue
                if not await self._repos.messages.set_ack(row.id, event.status.value):
                    continue
                self._metrics.delivery_acks.labels(event.status.value).inc()
                ticket = await self._tickets.get(row.ticket_id)
                await self._out.to_frontends(ticket, MarkReceipt(row.id, event.status.value))

    async def send_failed(self, event: SendFailedEvent) -> None:
        """WhatsApp did not deliver one of our messages (the Cloud API's ``failed``
        status): it is marked failed and its ticket's threads are told why, once."""
        session_id = self._session_ids[event.session]
        async with self._out.transaction():
            if event.reference is not None:
                await self._learn_wa_id(event.session, event.message_id, event.reference)
            row = await self._repos.messages.find_by_wa_id(session_id, event.message_id)
            if row is None or row.direction != "out":
                log.info(
                    "session %s: WhatsApp did not deliver %s, unknown here: %s (code %s)",
                    event.session,
                    event.message_id,
                    event.reason,
                    event.code,
                )
                return
            if not await self._repos.messages.set_ack(row.id, "failed"):
                return  # told before (a redelivered status), or delivered after all
            self._metrics.delivery_acks.labels("failed").inc()
            ticket = await self._tickets.get(row.ticket_id)
            body = row.content.get("body") or row.content.get("caption") or ""
            text = cloud_texts.send_failed(event.reason, code=event.code, excerpt=str(body))
            await self._out.to_frontends(ticket, ThreadNotice(ticket.id, text))

    async def _learn_wa_id(self, session_key: str, wa_id: str, reference: str) -> None:
        """A status naming our send's reference: when the send's answer was lost (a
        timeout, a 5xx after Meta took the message), the message's WhatsApp id is
        recorded here, so the outbox's retry skips it instead of sending it again
        (docs/cloud.md, "Sending twice"). The answer may come before or after: it
        records the same id. A message with an id already (a retry sent it again)
        keeps it."""
        message_id = send_references.message_of(reference)
        if message_id is None:
            return  # not one of ours
        session_id = self._session_ids[session_key]
        row = await self._repos.messages.get(message_id)
        if (
            row is None
            or row.wa_id is not None
            or row.direction != "out"
            or row.session_id != session_id
            or not send_references.names(reference, session_key, row)
        ):
            return
        if await self._repos.messages.find_by_wa_id(session_id, wa_id) is not None:
            log.warning("session %s: %s is another message's already", session_key, wa_id)
            return
        await self._repos.messages.set_wa_id(row.id, wa_id)
        log.info("session %s: message %d reached WhatsApp as %s", session_key, row.id, wa_id)
