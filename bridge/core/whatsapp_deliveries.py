"""The executor of ``whatsapp`` rows (:mod:`bridge.core.deliveries` for the rules every
executor follows): attendants' and the bot's messages, templates and mirrored actions
(reactions, edits, deletions) sent through the session manager, paced per number.

Each operation is idempotent: a message that has a WhatsApp id already is not sent
again. Internal notes are never sent (docs/tickets.md, "Internal notes").
"""

from __future__ import annotations

from bridge.core import cloud_texts, send_references
from bridge.core.deliveries import DeliveryContext, not_for, operation_of
from bridge.core.operations import (
    MirrorAction,
    SendAttendantMessage,
    SendBotMessage,
    SendTemplate,
)
from bridge.core.outgoing import WHATSAPP
from bridge.core.senders import BOT, PHONE
from bridge.core.session_port import WhatsAppSessions
from bridge.db.delivery_records import DeliveryRecord, WaIdSent
from bridge.db.messages import MessageRow
from bridge.db.outbox import OutboxRow
from bridge.errors import DeliveryError, PermanentDeliveryError, WindowClosed
from bridge.media_limits import toward_whatsapp
from bridge.model import (
    Deletion,
    Edit,
    Media,
    Quote,
    Reaction,
    Receipt,
    Text,
    content_from_dict,
)


class WhatsAppDeliveries:
    """Executes ``whatsapp`` rows through the session manager (paced per number)."""

    def __init__(self, ctx: DeliveryContext, sessions: WhatsAppSessions) -> None:
        self._ctx = ctx
        self._sessions = sessions

    async def __call__(self, row: OutboxRow) -> DeliveryRecord | None:
        """Send ``row``; the WhatsApp id it went with, recorded with the done-mark."""
        try:
            return await self._deliver(row)
        except WindowClosed as exc:  # a dead letter, whose notice says what is left to do
            raise WindowClosed(cloud_texts.refused_outside_window(exc.explanation)) from exc

    async def _deliver(self, row: OutboxRow) -> DeliveryRecord | None:
        match operation_of(row, "WhatsApp"):
            case SendAttendantMessage(message=message, quote=quote):
                return await self._send(message, quote=quote)
            case SendBotMessage(message=message):
                return await self._send(message, quote=None)
            case SendTemplate() as template:
                return await self._send_template(template)
            case MirrorAction() as action:
                return await self._action(action)
            case _:
                raise not_for("WhatsApp", row)

    async def _send(self, message_id: int, *, quote: int | None) -> DeliveryRecord | None:
        found = await self._ctx.message_to_deliver(message_id, frontend=WHATSAPP)
        message, ticket = _not_a_note(found.message), found.ticket
        if message.wa_id:
            return None  # sent before a crash or a retry
        to = (await self._ctx.customer(ticket)).address
        content = content_from_dict(message.content)
        if isinstance(content, Reaction | Edit | Deletion | Receipt):
            raise PermanentDeliveryError(f"a {content.kind} is sent as an action, not a message")
        if isinstance(content, Media):
            toward_whatsapp(content.media_kind, self._ctx.config.media).check(content.byte_size)
            content = await self._ctx.with_bytes(ticket.session_key, content)
        author = message.sender_name if message.sender not in (BOT, PHONE) else None
        if (
            isinstance(content, Text)
            and author
            and self._ctx.session(ticket.session_key).sign_messages
        ):
            content = Text(f"*{author}:*\n{content.body}", mentions=content.mentions)
        wa_id = await self._sessions.send(
            ticket.session_key,
            to,
            content,
            quote=await self._quote(quote, to),
            message_id=self.wa_id_for(ticket.session_key, message),
        )
        self._ctx.observe_latency("whatsapp", message.created_at)
        return WaIdSent(message.id, wa_id)

    async def _send_template(self, operation: SendTemplate) -> DeliveryRecord | None:
        message = await self._ctx.message(operation.message)
        if message.wa_id:
            return None  # sent before a crash or a retry
        ticket = await self._ctx.tickets.get(message.ticket_id)
        wa_id = await self._sessions.send_template(
            ticket.session_key,
            (await self._ctx.customer(ticket)).address,
            name=operation.name,
            language=operation.language,
            params=operation.params,
            message_id=self.wa_id_for(ticket.session_key, message),
        )
        self._ctx.observe_latency("whatsapp", message.created_at)
        return WaIdSent(message.id, wa_id)

    def wa_id_for(self, session_key: str, message: MessageRow) -> str:
        """What ``message`` is sent with, the same on every attempt: the WhatsApp id to
        give it, or on the Cloud API (which names messages itself) the reference its
        statuses echo (bridge/core/send_references.py, docs/cloud.md)."""
        if self._ctx.config.engine_of(self._ctx.session(session_key)) == "cloud":
            return send_references.reference_for(session_key, message)
        return send_references.chosen_id(session_key, message)

    async def _quote(self, message_id: int | None, customer: str) -> Quote | None:
        if message_id is None:
            return None
        quoted = await self._ctx.repos.messages.get(message_id)
        if quoted is None or not quoted.wa_id:
            return None
        body = quoted.content.get("body") or quoted.content.get("caption") or ""
        sender = None if quoted.direction == "out" else (quoted.sender or customer)
        return Quote(wa_id=quoted.wa_id, sender=sender, text=str(body))

    async def _action(self, operation: MirrorAction) -> DeliveryRecord | None:
        action_row = _not_a_note(await self._ctx.message(operation.message))
        if action_row.wa_id:
            return None
        target = _not_a_note(await self._ctx.message(operation.target))
        if not target.wa_id:
            raise DeliveryError(f"message {target.id} has not reached WhatsApp yet")
        ticket = await self._ctx.tickets.get(action_row.ticket_id)
        to = (await self._ctx.customer(ticket)).address
        action = content_from_dict(action_row.content)
        key = ticket.session_key
        chosen = self.wa_id_for(key, action_row)
        if isinstance(action, Reaction):
            sender = None if target.direction == "out" else target.sender
            wa_id = await self._sessions.react(
                key,
                to,
                target=target.wa_id,
                target_sender=sender,
                emoji=action.emoji,
                message_id=chosen,
            )
        elif isinstance(action, Edit):
            wa_id = await self._sessions.edit(
                key, to, target=target.wa_id, text=action.new.body, message_id=chosen
            )
        elif isinstance(action, Deletion):
            wa_id = await self._sessions.revoke(key, to, target=target.wa_id, message_id=chosen)
        else:
            raise PermanentDeliveryError(f"cannot send a {action.kind} action to WhatsApp")
        return WaIdSent(action_row.id, wa_id)


def _not_a_note(message: MessageRow) -> MessageRow:
    """``message``, unless it is an internal note (docs/tickets.md, "Internal notes"):
    the relay never asks WhatsApp for one; this refuses it should a row ever do."""
    if message.is_note:
        raise PermanentDeliveryError(f"message {message.id} is an internal note: never sent")
    return message
