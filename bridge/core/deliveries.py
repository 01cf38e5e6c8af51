"""Outbox executors: one row in, one delivery out. Here the frontends' executor and
what every executor reads from (:class:`DeliveryContext`); WhatsApp's executors are
:mod:`bridge.core.whatsapp_deliveries` and :mod:`bridge.core.presence_deliveries`.

Each executor is idempotent: it checks what the row already achieved (a WhatsApp id
recorded, a message ref stored, a thread ref present) before acting, so a retry or
a resumed row after a crash does not deliver twice. A WhatsApp id is recorded from
the send's answer, or, on the Cloud API, from a status naming the send's reference
when the answer was lost (``Relay``; docs/cloud.md, "Sending twice"). A failure raises
``DeliveryError`` (retried) or ``PermanentDeliveryError`` (dead letter).

Media bytes are loaded once per attempt: from the media store (``bridge.media_store``;
a missing or damaged file is a dead letter the thread is told about), from WhatsApp
for customers' files that arrived as a download ref, or from rows written before
the store (``{"b64": …}``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace

from bridge.cache import bounded
from bridge.clock import Clock
from bridge.config import CompanyConfig, Config, SessionConfig
from bridge.core.frontend import Author, AuthorKind, ChatAddress, Frontend, TicketCard
from bridge.core.operations import (
    CreateThread,
    EnsureRooms,
    LoginCode,
    MarkReceipt,
    MirrorAction,
    Operation,
    OpsMessage,
    PostMessage,
    PostTranscript,
    ThreadNotice,
    UnknownOperation,
    UpdateCard,
    decode,
    op_name,
)
from bridge.core.senders import BOT, BOT_NAME, PHONE, PHONE_NAME
from bridge.core.tickets import TicketService, TicketView
from bridge.core.transcript import (
    TRANSCRIPT_LIMIT,
    transcript_file,
    transcript_text,
    transcript_zone,
)
from bridge.db import ContactRow, Repositories
from bridge.db.delivery_records import DeliveryRecord, PostedRefs
from bridge.db.messages import MessageRow
from bridge.db.outbox import OutboxRow
from bridge.errors import DeliveryError, EngineError, PermanentDeliveryError
from bridge.media_store import MediaStore
from bridge.metrics import Metrics
from bridge.model import (
    AckStatus,
    AnyContent,
    Deletion,
    Edit,
    Media,
    Party,
    Reaction,
    Receipt,
    content_from_dict,
)

log = logging.getLogger("bridge.core.deliveries")

MediaDownloader = Callable[[str, Media], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class MessageToDeliver:
    message: MessageRow
    ticket: TicketView
    posted: bool  # on the frontend asked about already


@dataclass(frozen=True)
class DeliveryContext:
    """What every executor reads from."""

    config: Config
    repos: Repositories
    tickets: TicketService
    session_ids: dict[str, int]
    clock: Clock
    metrics: Metrics
    download: MediaDownloader  # the bytes of WhatsApp media that arrived as a ref
    media: MediaStore  # the bytes of media stored with their message

    async def media_bytes(self, session_key: str, content: AnyContent) -> AnyContent:
        """``content`` for a frontend, with its media bytes (within media.max_size_mb)."""
        if not isinstance(content, Media):
            return content
        limit = self.config.media.max_size_bytes
        size = content.byte_size
        if size is not None and size > limit:
            raise PermanentDeliveryError(
                f"the customer's {content.media_kind.value} is {size / 2**20:.1f} MB, over the "
                f"{self.config.media.max_size_mb} MB limit (media.max_size_mb)"
            )
        return await self.with_bytes(session_key, content)

    async def with_bytes(self, session_key: str, content: Media) -> Media:
        """``content`` with its bytes: read from the media store, or fetched from
        WhatsApp when they are lazy."""
        if content.data is not None:
            return content
        if content.stored is not None:
            return replace(content, data=await self.media.get(content.stored))
        try:
            data = await self.download(session_key, content)
        except EngineError as exc:
            raise DeliveryError(
                f"cannot download the {content.media_kind.value} from WhatsApp: {exc.explanation}"
            ) from exc
        return replace(content, data=data, size=len(data))

    def session(self, key: str) -> SessionConfig:
        session = self.config.session_for_key(key)
        if session is None:
            raise PermanentDeliveryError(f"session {key} is no longer configured")
        return session

    def company(self, company_id: str) -> CompanyConfig:
        company = self.config.find_company(company_id)
        if company is None:
            raise PermanentDeliveryError(f"company {company_id} is no longer configured")
        return company

    async def message(self, message_id: int) -> MessageRow:
        row = await self.repos.messages.get(message_id)
        if row is None:
            raise PermanentDeliveryError(f"message {message_id} no longer exists")
        return row

    async def message_to_deliver(self, message_id: int, *, frontend: str) -> MessageToDeliver:
        """The message, its ticket, and whether it is on ``frontend`` already: one
        query (bridge/db/delivery_reads.py)."""
        found = await self.repos.delivery_reads.message_for(message_id, frontend=frontend)
        if found is None:
            raise PermanentDeliveryError(f"message {message_id} no longer exists")
        ticket = await self.tickets.view_of(found.ticket, found.contact)
        return MessageToDeliver(found.message, ticket, posted=found.posted)

    async def contact(self, ticket: TicketView) -> ContactRow:
        if ticket.contact is not None:
            return ticket.contact  # read with the ticket
        contact = await self.repos.contacts.get(ticket.contact_id)
        if contact is None:
            raise PermanentDeliveryError(f"the contact of ticket #{ticket.id} no longer exists")
        return contact

    async def customer(self, ticket: TicketView) -> Party:
        return _party_of_contact(await self.contact(ticket))

    def observe_latency(self, destination: str, since: float | None) -> None:
        if since:
            self.metrics.relay_latency.labels(destination).observe(
                max(0.0, self.clock.now() - since)
            )


def _party_of_contact(contact: ContactRow) -> Party:
    if contact.group_jid:
        return Party(group=contact.group_jid, name=contact.group_name)
    return Party(phone=contact.phone, lid=contact.lid, name=contact.push_name)


def operation_of(row: OutboxRow, destination: str) -> Operation:
    """The row's operation; a dead letter when it holds none."""
    try:
        return decode(row.payload)
    except UnknownOperation as exc:
        raise PermanentDeliveryError(
            f"unknown {destination} delivery {op_name(row.payload)!r}"
        ) from exc
    except ValueError as exc:
        raise PermanentDeliveryError(f"a malformed {destination} delivery: {exc}") from exc


def not_for(destination: str, row: OutboxRow) -> PermanentDeliveryError:
    return PermanentDeliveryError(f"unknown {destination} delivery {op_name(row.payload)!r}")


class FrontendDeliveries:
    """Executes rows for one frontend (``matrix`` or ``slack``)."""

    def __init__(self, ctx: DeliveryContext, frontend: Frontend) -> None:
        self._ctx = ctx
        self._fe = frontend
        self._login_images: dict[tuple[str, str], str] = {}
        self._places: MutableMapping[int, ChatAddress] = bounded()  # a ticket's thread never moves

    @property
    def name(self) -> str:
        return self._fe.name

    async def __call__(self, row: OutboxRow) -> DeliveryRecord | None:
        """Deliver ``row``; what it posted for a message, recorded with the done-mark."""
        match operation_of(row, self.name):
            case EnsureRooms():
                await self._ensure_rooms()
            case CreateThread(ticket=ticket):
                await self._create_thread(ticket, txn_id=f"zb-thread-{row.id}")
            case UpdateCard(ticket=ticket):
                await self._update_card(ticket)
            case ThreadNotice(ticket=ticket, text=text):
                await self._thread_notice(ticket, text, txn_id=f"zb-notice-{row.id}")
            case PostMessage() as post:
                return await self._post(post)
            case MirrorAction() as action:
                return await self._mirror_action(action)
            case MarkReceipt() as receipt:
                await self._mark_receipt(receipt)
            case OpsMessage() as ops:
                await self._ops_message(ops, txn_id=f"zb-ops-{row.id}")
            case LoginCode() as login:
                await self._login_code(login, txn_id=f"zb-login-{row.id}")
            case PostTranscript(ticket=ticket):
                await self._post_transcript(ticket, txn_id=f"zb-transcript-{row.id}")
            case _:
                raise not_for(self.name, row)
        return None

    async def resumed(self, row: OutboxRow) -> None:
        """Before ``row``, first of a key taken over from another instance: the place it
        posts into may hold that instance's post of it, unknown here (docs/cluster.md,
        "A key that moved"): the frontend checks it again, as after a restart."""
        match operation_of(row, self.name):
            case CreateThread(ticket=ticket):
                found = await self._ctx.tickets.get(ticket)
                place = ChatAddress(await self.control_room(found.company_id, found.session_key))
            case OpsMessage(company=company):
                place = ChatAddress(await self.ops_room(company))
            case LoginCode(room=room, thread=thread):
                place = ChatAddress(room, thread)
            case ThreadNotice(ticket=ticket) | PostTranscript(ticket=ticket):
                place = await self._thread(ticket)
            case PostMessage(message=message_id) | MirrorAction(message=message_id):
                message = await self._ctx.message(message_id)
                place = await self._thread(message.ticket_id)
            case _:
                return  # nothing posted that a ledger tracks
        self._fe.forget_trust(place)

    # --- rooms -------------------------------------------------------------------

    async def control_room(self, company_id: str, session_key: str) -> str:
        rooms = self._ctx.repos.rooms
        session_id = self._ctx.session_ids[session_key]
        found = await rooms.get(
            frontend=self.name, kind="control", company_id=company_id, session_id=session_id
        )
        if found is not None:
            return found.room_id
        company = self._ctx.company(company_id)
        room = await self._fe.ensure_control_room(company, self._ctx.session(session_key))
        await rooms.put(
            frontend=self.name,
            kind="control",
            company_id=company_id,
            session_id=session_id,
            room_id=room,
            now=self._ctx.clock.now(),
        )
        return room

    async def ops_room(self, company_id: str) -> str:
        rooms = self._ctx.repos.rooms
        found = await rooms.get(frontend=self.name, kind="ops", company_id=company_id)
        if found is not None:
            return found.room_id
        room = await self._fe.ensure_ops_room(self._ctx.company(company_id))
        await rooms.put(
            frontend=self.name,
            kind="ops",
            company_id=company_id,
            room_id=room,
            now=self._ctx.clock.now(),
        )
        return room

    async def _ensure_rooms(self) -> None:
        """At start: every control room and ops room this frontend serves."""
        for company in self._ctx.config.companies:
            for session in company.sessions:
                if self._fe.serves_session(session):
                    await self.control_room(company.id, session.key)
            if self._fe.serves_ops(company):
                await self.ops_room(company.id)

    async def _thread(self, ticket_id: int) -> ChatAddress:
        place = self._places.get(ticket_id)
        if place is not None:
            return place
        ref = await self._ctx.repos.threads.get(ticket_id, self.name)
        if ref is None:
            raise DeliveryError(f"the thread of ticket #{ticket_id} is not created yet")
        place = ChatAddress(ref.room_id, ref.thread_root)
        self._places[ticket_id] = place
        return place

    # --- tickets -------------------------------------------------------------------

    async def _create_thread(self, ticket_id: int, *, txn_id: str) -> None:
        if await self._ctx.repos.threads.get(ticket_id, self.name) is not None:
            return
        ticket = await self._ctx.tickets.get(ticket_id)
        room = await self.control_room(ticket.company_id, ticket.session_key)
        root = await self._fe.create_thread(room, card_of(ticket), txn_id=txn_id)
        await self._ctx.repos.threads.put(
            ticket_id, frontend=self.name, room_id=room, thread_root=root
        )

    async def _update_card(self, ticket_id: int) -> None:
        ticket = await self._ctx.tickets.get(ticket_id)
        await self._fe.update_card(await self._thread(ticket.id), card_of(ticket))

    async def _thread_notice(self, ticket_id: int, text: str, *, txn_id: str) -> None:
        await self._fe.notice(await self._thread(ticket_id), text, txn_id=txn_id)

    async def _post_transcript(self, ticket_id: int, *, txn_id: str) -> None:
        ticket = await self._ctx.tickets.get(ticket_id)
        rows = await self._ctx.repos.messages.list_by_ticket(ticket.id, limit=TRANSCRIPT_LIMIT)
        zone = transcript_zone(self._ctx.session(ticket.session_key))
        text = transcript_text(ticket, rows, tz=zone, complete=len(rows) < TRANSCRIPT_LIMIT)
        file = transcript_file(ticket.id, text)
        bot = Author(AuthorKind.BOT, BOT_NAME)
        place = await self._thread(ticket.id)
        await self._fe.post(place, bot, file, reply_to=None, txn_id=txn_id)

    # --- messages ------------------------------------------------------------------

    async def _post(self, post: PostMessage) -> DeliveryRecord | None:
        found = await self._ctx.message_to_deliver(post.message, frontend=self.name)
        if found.posted:
            return None
        message, ticket = found.message, found.ticket
        place = await self._thread(ticket.id)
        author = await self._author(ticket, message)
        content = await self._ctx.media_bytes(
            ticket.session_key, content_from_dict(message.content)
        )
        if isinstance(content, Reaction | Edit | Deletion):
            return await self._customer_action(place, author, ticket, message, content)
        if isinstance(content, Receipt):
            raise PermanentDeliveryError("a receipt is not something to post")
        reply_to = await self._ref_of_wa_id(ticket, message.quote_wa_id)
        posted = await self._fe.post(
            place,
            author,
            content,
            reply_to=reply_to,
            txn_id=f"zb-msg-{message.id}",
        )
        self._ctx.observe_latency(self.name, post.received_at)
        return PostedRefs(message.id, self.name, place.room, tuple(posted.event_ids))

    async def _customer_action(
        self,
        place: ChatAddress,
        author: Author,
        ticket: TicketView,
        message: MessageRow,
        action: Reaction | Edit | Deletion,
    ) -> DeliveryRecord | None:
        target = await self._ref_of_wa_id(ticket, action.target)
        if target is None:
            log.info("%s: target %s of a %s is unknown here", self.name, action.target, action.kind)
            return None
        event = await self._apply_action(place, author, action, target, f"zb-msg-{message.id}")
        return self._action_done(message, place, event)

    async def _mirror_action(self, operation: MirrorAction) -> DeliveryRecord | None:
        """An attendant's reaction, edit or deletion mirrored from the other frontend."""
        message = await self._ctx.message(operation.message)
        if await self._ctx.repos.message_refs.get(message.id, self.name) is not None:
            return None
        target = await self._ctx.repos.message_refs.get(operation.target, self.name)
        if target is None:
            raise DeliveryError(f"message {operation.target} is not on {self.name} yet")
        ticket = await self._ctx.tickets.get(message.ticket_id)
        place = await self._thread(ticket.id)
        author = await self._author(ticket, message)
        action = content_from_dict(message.content)
        assert isinstance(action, Reaction | Edit | Deletion)
        event = await self._apply_action(
            place, author, action, target.event_id, f"zb-msg-{message.id}"
        )
        return self._action_done(message, place, event)

    def _action_done(self, action: MessageRow, place: ChatAddress, event: str | None) -> PostedRefs:
        """What records that ``action`` reached this frontend (its own event id when it
        has one; several reactions to one message each get their own ref)."""
        return PostedRefs(
            action.id, self.name, place.room, (event or f"{action.kind}:{action.id}",)
        )

    async def _apply_action(
        self,
        place: ChatAddress,
        author: Author,
        action: Reaction | Edit | Deletion,
        target: str,
        txn_id: str,
    ) -> str | None:
        if isinstance(action, Reaction):
            return await self._fe.react(
                place, author, target=target, emoji=action.emoji, txn_id=txn_id
            )
        if isinstance(action, Edit):
            return await self._fe.edit(place, author, target=target, new=action.new, txn_id=txn_id)
        await self._fe.delete(place, author, target=target)
        return None

    async def _mark_receipt(self, receipt: MarkReceipt) -> None:
        message = await self._ctx.message(receipt.message)
        ref = await self._ctx.repos.message_refs.get(message.id, self.name)
        if ref is None:
            return  # not shown here (yet): nothing to mark
        ticket = await self._ctx.tickets.get(message.ticket_id)
        place = await self._thread(ticket.id)
        author = await self._author(ticket, message, customer_side=True)
        await self._fe.mark_receipt(
            place, author, target=ref.event_id, status=AckStatus(receipt.status)
        )

    async def _ref_of_wa_id(self, ticket: TicketView, wa_id: str | None) -> str | None:
        if not wa_id:
            return None
        session_id = self._ctx.session_ids[ticket.session_key]
        target = await self._ctx.repos.messages.find_by_wa_id(session_id, wa_id)
        if target is None:
            return None
        ref = await self._ctx.repos.message_refs.get(target.id, self.name)
        return ref.event_id if ref else None

    async def _author(
        self, ticket: TicketView, message: MessageRow, *, customer_side: bool = False
    ) -> Author:
        if message.direction == "in" or customer_side:
            contact = await self._ctx.contact(ticket)
            customer = _party_of_contact(contact)
            if customer.is_group and message.direction == "in":
                name = message.sender_name or message.sender
                return Author(AuthorKind.CUSTOMER, name, phone=message.sender)
            return Author(
                AuthorKind.CUSTOMER,
                ticket.contact_name,
                phone=customer.phone,
                lid=customer.lid,
                avatar_url=None if customer.is_group else contact.avatar_url,
            )
        if message.is_note:
            return Author(AuthorKind.NOTE, message.sender_name or message.sender)
        if message.sender == BOT:
            return Author(AuthorKind.BOT, BOT_NAME)
        if message.sender == PHONE:
            return Author(AuthorKind.ATTENDANT, PHONE_NAME)
        return Author(AuthorKind.ATTENDANT, message.sender_name or message.sender)

    # --- ops channel -----------------------------------------------------------------

    async def _ops_message(self, ops: OpsMessage, *, txn_id: str) -> None:
        if ops.text:
            room = await self.ops_room(ops.company)
            await self._fe.notice(ChatAddress(room), ops.text, txn_id=txn_id)
        if ops.topic and ops.session:
            room = await self.control_room(ops.company, ops.session)
            await self._fe.set_topic(room, ops.topic)

    async def _login_code(self, login: LoginCode, *, txn_id: str) -> None:
        place = ChatAddress(login.room, login.thread)
        slot = (login.session, place.room)
        if login.png:
            event = await self._fe.post_image(
                place,
                data=base64.b64decode(login.png),
                filename=f"login-{login.session.replace('/', '-')}.png",
                caption=login.text,
                replaces=self._login_images.get(slot),
            )
            self._login_images[slot] = event
        else:
            await self._fe.notice(place, login.text, txn_id=txn_id)


def card_of(ticket: TicketView) -> TicketCard:
    return TicketCard(
        ticket_id=ticket.id,
        session_key=ticket.session_key,
        contact_name=ticket.contact_name,
        phone=ticket.phone,
        is_group=ticket.is_group,
        status=ticket.status,
        assignee=ticket.assignee,
        lid=ticket.lid,
        queue=ticket.queue,
    )
