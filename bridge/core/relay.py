"""The relay: every message's path through the core.

WhatsApp event → (dedupe, ticket, store) → outbox rows for each frontend of the
session. Attendant event → (dedupe, authorise, store) → an outbox row for WhatsApp
and a mirror row for every other frontend. Each inbound piece of work is persisted
in one transaction before the caller acknowledges its source, with the operations
it asks for (``bridge.core.outgoing``); the outbox worker delivers afterwards
(``bridge.core.deliveries``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from bridge.clock import Clock
from bridge.config import Config, QuickReply, SessionConfig
from bridge.core import notes, quick_replies
from bridge.core.cloud_session import CustomerWindow
from bridge.core.command_model import role_of
from bridge.core.command_places import command_context
from bridge.core.command_texts import command_failed
from bridge.core.commands import CommandRegistry
from bridge.core.delivery_news import DeliveryNews
from bridge.core.frontend import (
    AttendantPost,
    ChatAddress,
    Reply,
    ThreadEvent,
    ThreadRead,
    ThreadTyping,
    UnhandledEvent,
)
from bridge.core.ingest_lanes import IngestLanes
from bridge.core.operations import (
    CreateThread,
    MirrorAction,
    PostMessage,
    SendAttendantMessage,
    ThreadNotice,
    UpdateCard,
)
from bridge.core.outgoing import WHATSAPP, Outgoing
from bridge.core.presence import Presence
from bridge.core.quarantine import Quarantine
from bridge.core.queues import queue_refusal
from bridge.core.satisfaction import rating_notice
from bridge.core.senders import PHONE
from bridge.core.thread_tickets import ThreadTickets
from bridge.core.ticket_policy import merge_notice
from bridge.core.tickets import InboundRoute, TicketService, TicketView
from bridge.db import Repositories
from bridge.db.messages import NOTE_KIND, MessageRow, NewMessage
from bridge.errors import BridgeError, DatabaseError, PermanentDeliveryError
from bridge.media_limits import toward_whatsapp
from bridge.media_store import MediaStore
from bridge.metrics import Metrics
from bridge.model import (
    AnyContent,
    Deletion,
    Edit,
    Media,
    Message,
    Reaction,
    Text,
    content_to_dict,
)
from bridge.whatsapp.engine import (
    ContactUpdateEvent,
    EngineErrorEvent,
    EngineEvent,
    MessageEvent,
    ReceiptEvent,
    SendFailedEvent,
)

log = logging.getLogger("bridge.core.relay")

ALREADY_DONE = Reply("Already done: this was received before and not run again.", ephemeral=True)
"""The answer to a command event seen before (see :meth:`Relay.command`)."""


class Relay:
    def __init__(
        self,
        config: Config,
        repos: Repositories,
        *,
        tickets: TicketService,
        outgoing: Outgoing,
        commands: CommandRegistry,
        session_ids: dict[str, int],
        clock: Clock,
        metrics: Metrics,
        media: MediaStore,
        quarantine: Quarantine,
    ) -> None:
        self._config = config
        self._repos = repos
        self._media = media
        self.quarantine = quarantine
        self._tickets = tickets
        self._out = outgoing
        self._commands = commands
        self._session_ids = session_ids
        self._clock = clock
        self._metrics = metrics
        self._thread_tickets = ThreadTickets(repos, tickets)
        self._lanes = IngestLanes(repos, session_ids)
        self._window = CustomerWindow(config, repos.messages, clock=clock)
        self._note_prefix = config.tickets.note_prefix
        self._news = DeliveryNews(
            repos, tickets=tickets, outgoing=outgoing, session_ids=session_ids, metrics=metrics
        )
        self._presence = Presence(
            config, repos, threads=self._thread_tickets, outgoing=outgoing, clock=clock
        )

    def _session(self, key: str) -> SessionConfig:
        session = self._config.session_for_key(key)
        if session is None:
            raise BridgeError(f"no session named {key}")
        return session

    # --- WhatsApp → frontends ---------------------------------------------------

    async def handle_engine_event(self, event: EngineEvent) -> None:
        """The session manager's downstream: messages, receipts, failed sends, contact
        updates."""
        if isinstance(event, MessageEvent):
            await self.handle_whatsapp_message(event.session, event.message)
        elif isinstance(event, ReceiptEvent):
            await self._news.receipt(event)
        elif isinstance(event, SendFailedEvent):
            await self._news.send_failed(event)
        elif isinstance(event, ContactUpdateEvent):
            await self._handle_contact_update(event)
        elif isinstance(event, EngineErrorEvent):
            await self._set_aside_engine_error(event)

    async def _set_aside_engine_error(self, event: EngineErrorEvent) -> None:
        """What an engine could not understand is recorded and reported once in the
        ops channel of the session's company (bridge.core.quarantine), under its
        message id, or under its session and explanation when it has none."""
        session = self._session(event.session)
        digest = hashlib.sha256(event.explanation.encode()).hexdigest()[:16]
        await self.quarantine.set_aside(
            source=WHATSAPP,
            event_id=event.event_id or f"{event.session}:{digest}",
            company_id=session.company_id,
            reason=f"{event.session}: {event.explanation}",
            excerpt="",
        )

    async def handle_whatsapp_message(self, session_key: str, message: Message) -> None:
        received = self._clock.now()
        session_id = self._session_ids[session_key]
        message = replace(message, content=await self._keep_bytes(message.content))
        stored = await self._out.ingest(
            lambda: self._ingest_whatsapp(
                session_key, message, session_id=session_id, received=received
            ),
            lane=session_key,  # bridge.core.ingest_lanes
        )
        if stored:
            self._metrics.messages.labels("inbound", message.kind_label, session_key).inc()

    async def _ingest_whatsapp(
        self, session_key: str, message: Message, *, session_id: int, received: float
    ) -> bool:
        """Store a WhatsApp message and what it asks for; False when it is not stored
        (a duplicate, an action on an unknown message, an unbridged chat). Runs in a
        transaction, maybe twice (bridge.core.outgoing: Outgoing.ingest)."""
        if message.wa_id and await self._repos.messages.find_by_wa_id(session_id, message.wa_id):
            log.debug("duplicate WhatsApp message %s ignored", message.wa_id)
            return False
        auto_replies: tuple[str, ...] = ()
        rating: int | None = None
        queue_notice: str | None = None
        if isinstance(message.content, Reaction | Edit | Deletion):
            ticket = await self._ticket_of_target(session_id, message.content.target)
            if ticket is None:
                log.info(
                    "session %s: %s of an unknown message ignored",
                    session_key,
                    message.content.kind,
                )
                return False
        else:
            route = await self._tickets.route_inbound(session_key, message)
            if route is None:
                log.info("session %s: message in an unbridged chat ignored", session_key)
                return False
            ticket, auto_replies, rating = route.ticket, route.auto_replies, route.rating
            queue_notice = route.queue_notice
            await self._announce_route(route)
        row = await self._store_whatsapp_message(session_id, ticket, message)
        if row is None:
            return False
        await self._out.to_frontends(ticket, PostMessage(row.id, received_at=received))
        if rating is not None:
            await self._out.to_frontends(ticket, ThreadNotice(ticket.id, rating_notice(rating)))
        if queue_notice is not None:  # routed to a queue: docs/tickets.md#queues
            await self._out.to_frontends(ticket, UpdateCard(ticket.id))
            await self._out.to_frontends(ticket, ThreadNotice(ticket.id, queue_notice))
        for text in auto_replies:
            await self._out.send_bot_text(ticket, text)
        return True

    async def _ticket_of_target(self, session_id: int, wa_id: str) -> TicketView | None:
        """Actions belong to their target's ticket: they never open or reopen one."""
        target = await self._repos.messages.find_by_wa_id(session_id, wa_id)
        return await self._tickets.get(target.ticket_id) if target else None

    async def _announce_route(self, route: InboundRoute) -> None:
        if route.created or route.reopened:
            await self._out.to_frontends(route.ticket, CreateThread(route.ticket.id))
        if route.reopened or (route.contact_changed and not route.created):
            await self._out.to_frontends(route.ticket, UpdateCard(route.ticket.id))
        await self._announce_merge(route.closed_tickets, into=route.ticket)

    async def _announce_merge(
        self, closed: tuple[TicketView, ...], *, into: TicketView | None
    ) -> None:
        """Tickets closed because WhatsApp linked their LID-only customer to a phone
        with a ticket of its own: their cards, and a notice saying where to go on."""
        for ticket in closed:
            await self._out.to_frontends(ticket, UpdateCard(ticket.id))
            await self._out.transcript_of_closed(ticket)
            await self._out.to_frontends(
                ticket, ThreadNotice(ticket.id, merge_notice(ticket, into))
            )

    async def _store_whatsapp_message(
        self, session_id: int, ticket: TicketView, message: Message
    ) -> MessageRow | None:
        stored = NewMessage(
            ticket_id=ticket.id,
            session_id=session_id,
            kind=message.kind_label,
            sender=PHONE if message.from_me else message.sender.address,
            sender_name=None if message.from_me else message.sender.name,
            content=content_to_dict(message.content),
            quote_wa_id=message.quote.wa_id if message.quote else None,
            timestamp=message.timestamp or self._clock.now(),
        )
        if message.from_me:
            row = await self._repos.messages.insert_outbound(stored, now=self._clock.now())
            if message.wa_id:
                await self._repos.messages.set_wa_id(row.id, message.wa_id)
            return row
        if not message.wa_id:
            raise BridgeError("a WhatsApp message without an id cannot be deduplicated")
        return await self._repos.messages.insert_inbound(
            stored, wa_id=message.wa_id, now=self._clock.now()
        )

    async def _handle_contact_update(self, event: ContactUpdateEvent) -> None:
        party = event.party
        if party.is_group or not (party.phone or party.lid):
            return
        async with self._out.transaction():
            news = await self._tickets.learn_contact(event.session, party)
            if news.active is not None:  # the phone became known, or the name changed
                await self._out.to_frontends(news.active, UpdateCard(news.active.id))
            await self._announce_merge(news.closed_tickets, into=news.active)
        contact = news.contact
        if event.avatar_url and event.avatar_url != contact.avatar_url:
            await self._repos.contacts.set_avatar(
                contact.id, event.avatar_url, now=self._clock.now()
            )

    # --- frontends → WhatsApp -----------------------------------------------------

    async def attendant_event(self, event: AttendantPost) -> Reply | None:
        """An attendant's message or action; returns a reply for the attendant, if any."""
        content = event.content
        note = await self._note_of(event)
        if note is not None:
            event = replace(event, content=await self._keep_bytes(note))
        elif isinstance(content, Text) and self._commands.is_command(content.body):
            reply = await self.command(event, content.body)
            return None if reply is ALREADY_DONE else reply  # a redelivery: answered before
        elif isinstance(content, Media) and event.place.thread_root is not None:
            too_big = _too_big_for_whatsapp(content, self._config)
            if too_big is not None:
                return too_big
            event = replace(event, content=await self._keep_bytes(content))
        return await self._out.ingest(
            lambda: self._ingest_attendant(event, note=note),
            lane=await self._lanes.of_attendant(event),
        )

    async def _ingest_attendant(
        self, event: AttendantPost, *, note: Text | Media | None
    ) -> Reply | None:
        """Store and relay an attendant's message, or refuse it; runs in a transaction,
        maybe twice (bridge.core.outgoing: Outgoing.ingest)."""
        if await self._seen(event):
            return None
        ticket = await self._thread_tickets.of(event)
        if ticket is None:
            return None  # chatter outside ticket threads stays on the frontend
        refusal = self._refuse(event, ticket)
        if refusal is not None:
            return refusal
        if note is not None:
            return await self._record_note(event, ticket)
        return await self._relay_attendant_content(event, ticket)

    async def _note_of(self, event: AttendantPost) -> Text | Media | None:
        """The note ``event`` posts in a ticket thread, if it is one (bridge.core.notes);
        an outsider's ``!note`` is none: it is refused as every command is."""
        content = event.content
        note = notes.note_of(content, prefix=self._note_prefix)
        if note is None or event.place.thread_root is None:
            return None
        if not (isinstance(content, Text) and self._commands.is_command(content.body)):
            return note
        ticket = await self._thread_tickets.of(event)
        company = self._config.find_company(ticket.company_id) if ticket else None
        return note if company and role_of(company, event.attendant.user_id) else None

    async def _record_note(self, event: AttendantPost, ticket: TicketView) -> Reply | None:
        """Store a note and show it on the session's other frontends; never to WhatsApp."""
        if isinstance(event.content, Text) and not event.content.body:
            return Reply(notes.NOTE_EMPTY, ephemeral=True)
        row = await self._store_attendant_message(event, ticket, kind=NOTE_KIND)
        await self._out.to_frontends(ticket, PostMessage(row.id), skip=event.frontend)
        return None

    async def _keep_bytes(self, content: AnyContent) -> AnyContent:
        """``content`` with its media bytes in the media store and only their reference
        left, to store in a message row. Done before the transaction that stores the
        row: a crash in between leaves a file no row names (the clean-up removes it),
        never a row naming a missing file."""
        if not isinstance(content, Media) or content.data is None:
            return content
        stored = await self._media.put(content.data)
        return replace(content, data=None, stored=stored, size=stored.size)

    async def _seen(self, event: ThreadEvent) -> bool:
        """Whether this platform event was handled before (redeliveries, retries);
        records it otherwise."""
        return await self._repos.events.seen_before(
            event.frontend, f"{event.place.room}:{event.event_id}", now=self._clock.now()
        )

    async def _forget(self, event: ThreadEvent) -> None:
        """Undo :meth:`_seen` for an event whose handling failed, so a retry runs it."""
        try:
            await self._repos.events.forget(event.frontend, f"{event.place.room}:{event.event_id}")
        except DatabaseError as exc:
            log.warning("event %s stays recorded as handled: %s", event.event_id, exc.explanation)

    def _refuse(self, event: ThreadEvent, ticket: TicketView) -> Reply | None:
        company = self._config.find_company(ticket.company_id)
        if company is None or role_of(company, event.attendant.user_id) is None:
            name = company.name if company else ticket.company_id
            return Reply(
                f"You are not an attendant of {name}: your message was not sent.",
                ephemeral=True,
            )
        refused = queue_refusal(self._config, ticket, event.attendant.user_id)
        if refused is not None:
            return Reply(refused, ephemeral=True)
        if ticket.status == "closed":
            return Reply(
                f"Ticket #{ticket.id} is closed: your message was not sent. "
                "Type !reopen here to reopen it.",
                ephemeral=True,
            )
        return None

    async def _relay_attendant_content(
        self, event: AttendantPost, ticket: TicketView, *, echo: bool = False
    ) -> Reply | None:
        """``echo``: what the attendant's frontend does not show yet (a quick reply)."""
        content = event.content
        if isinstance(content, Reaction | Edit | Deletion):
            return await self._relay_attendant_action(event, ticket)
        closed = await self._window.refusal(ticket)
        if closed is not None:
            return Reply(closed, ephemeral=True)  # nothing stored, sent or mirrored
        quote_id = await self._message_id_of(event, event.reply_to)
        row = await self._store_attendant_message(
            event, ticket, kind=_kind_label(content), ref=not echo
        )
        await self._out.to_whatsapp(ticket, SendAttendantMessage(row.id, quote=quote_id))
        skip = None if echo else event.frontend
        await self._out.to_frontends(ticket, PostMessage(row.id), skip=skip)
        change = await self._tickets.record_attendant_reply(ticket, event.attendant.user_id)
        if change is not None:
            await self._out.publish_change(change)
        self._metrics.messages.labels("outbound", _kind_label(content), ticket.session_key).inc()
        return None

    async def _relay_attendant_action(
        self, event: AttendantPost, ticket: TicketView
    ) -> Reply | None:
        content = event.content
        assert isinstance(content, Reaction | Edit | Deletion)
        target = await self._repos.messages.find_by_ref(
            event.frontend, room_id=event.place.room, event_id=content.target
        )
        if target is None:
            return None  # a reaction to a notice or a card: nothing to relay
        if target.is_note:  # acting on a note stays among staff
            return await self._record_note_action(event, ticket, target)
        if isinstance(content, Edit | Deletion) and target.direction == "in":
            # WhatsApp lets no one edit or delete another person's message: the
            # redaction hides it on this frontend only.
            return None
        if isinstance(content, Edit) and notes.note_of(content.new, prefix=self._note_prefix):
            return Reply(notes.NOTE_TOO_LATE)  # relayed nowhere: staff words stay here
        closed = await self._window.refusal(ticket)
        if closed is not None:
            return Reply(closed, ephemeral=True)
        row = await self._store_attendant_message(event, ticket, kind=content.kind)
        action = MirrorAction(row.id, target=target.id)
        await self._out.to_whatsapp(ticket, action)
        await self._out.to_frontends(ticket, action, skip=event.frontend)
        return None

    async def _record_note_action(
        self, event: AttendantPost, ticket: TicketView, target: MessageRow
    ) -> Reply | None:
        """A reaction, edit or deletion of a note: stored as a note, mirrored to the
        other frontends (an edit keeps the note a note, prefix or not)."""
        stored = notes.action_on_note(event.content, prefix=self._note_prefix)
        row = await self._store_attendant_message(
            replace(event, content=stored), ticket, kind=NOTE_KIND
        )
        action = MirrorAction(row.id, target=target.id)
        await self._out.to_frontends(ticket, action, skip=event.frontend)
        return None

    async def _store_attendant_message(
        self, event: AttendantPost, ticket: TicketView, *, kind: str, ref: bool = True
    ) -> MessageRow:
        """Store what the attendant posted, with its event id on their frontend
        (unless ``ref`` is False)."""
        row = await self._out.store_outbound(
            ticket,
            kind=kind,
            sender=event.attendant.user_id,
            sender_name=event.attendant.display_name,
            content=event.content,
        )
        if ref:
            await self._repos.message_refs.put(
                row.id, frontend=event.frontend, room_id=event.place.room, event_id=event.event_id
            )
        return row

    async def _message_id_of(self, event: ThreadEvent, platform_event: str | None) -> int | None:
        if platform_event is None:
            return None
        row = await self._repos.messages.find_by_ref(
            event.frontend, room_id=event.place.room, event_id=platform_event
        )
        return row.id if row else None

    # --- commands ------------------------------------------------------------------

    async def command(self, event: ThreadEvent, text: str) -> Reply | None:
        """Run a command once per platform event (a message, a slash command's trigger
        id, a button click): the same event again (a redelivery, a replayed click or
        slash command) is answered :data:`ALREADY_DONE` and changes nothing.

        The event is recorded as handled just before the command runs, in a statement
        of its own rather than in one transaction with the command: commands such as
        !login talk to WhatsApp, which must not happen while a database transaction
        (on SQLite, the one writer lock) is held. A command that raises has its record
        removed, so the source's retry runs it."""
        ticket = await self._thread_tickets.of(event)
        rooms, session_ids = self._repos.rooms, self._session_ids
        ctx = await command_context(event, ticket, rooms=rooms, session_ids=session_ids)
        if ctx is None:
            return None
        refused = queue_refusal(self._config, ticket, ctx.user_id) if ticket else None
        if refused is not None:  # docs/tickets.md#queues
            return Reply(refused, ephemeral=True)
        if await self._seen(event):
            log.info("%s event %s handled before: not run again", event.frontend, event.event_id)
            return ALREADY_DONE
        try:
            reply = await self._commands.handle(ctx, text)
            if reply is not None and reply.quick_reply is not None:
                return await self._send_quick_reply(event, reply.quick_reply)
        except BaseException:
            await self._forget(event)
            raise
        return Reply(reply.text, ephemeral=reply.ephemeral) if reply else None

    async def _send_quick_reply(self, event: ThreadEvent, quick: QuickReply) -> Reply | None:
        """``!r``: the saved reply goes as the attendant's typed message would, echoed
        to their own thread too (it shows ``!r``, not what was sent)."""
        ticket = await self._thread_tickets.of(event)
        if ticket is None:  # the registry runs !r in ticket threads only
            raise BridgeError("!r was typed outside a ticket thread")
        name, by = ticket.contact_name, event.attendant.display_name
        try:
            content: AnyContent = await quick_replies.quick_reply_content(
                quick, name=name, ticket=ticket.id, attendant=by
            )
        except BridgeError as exc:  # its file is gone since the config was read
            log.warning("!r %s: %s", quick.shortcut, exc.explanation)
            return Reply(command_failed("r", exc.explanation), ephemeral=True)
        if isinstance(content, Media):
            too_big = _too_big_for_whatsapp(content, self._config)
            if too_big is not None:
                return too_big
            content = await self._keep_bytes(content)
        post = AttendantPost(
            frontend=event.frontend,
            place=event.place,
            event_id=event.event_id,
            attendant=event.attendant,
            content=content,
        )
        async with self._out.transaction():
            ticket = await self._tickets.get(ticket.id)
            refusal = self._refuse(post, ticket)
            if refusal is not None:
                return refusal
            return await self._relay_attendant_content(post, ticket, echo=True)

    # --- events a frontend could not handle -------------------------------------------

    async def thread_read(self, event: ThreadRead) -> None:
        await self._presence.read(event)

    async def thread_typing(self, event: ThreadTyping) -> None:
        await self._presence.typing(event)

    async def set_aside(self, event: UnhandledEvent) -> bool:
        """Set aside ``event`` for the company of its room (bridge.core.quarantine);
        True the first time. Raises ``DatabaseError`` when it cannot be recorded."""
        return await self.quarantine.set_aside(
            source=event.frontend,
            event_id=event.event_id,
            company_id=await self._company_of_place(event.frontend, event.place),
            reason=event.reason,
            excerpt=event.excerpt,
        )

    async def _company_of_place(self, frontend: str, place: ChatAddress | None) -> str | None:
        """The company whose room (or ticket thread) ``place`` is, if any."""
        if place is None:
            return None
        rooms = await self._repos.rooms.find_by_room_id(frontend, place.room)
        if rooms:
            return rooms[0].company_id
        if place.thread_root is None:
            return None
        ref = await self._repos.threads.find_by_root(
            frontend, room_id=place.room, thread_root=place.thread_root
        )
        return (await self._tickets.get(ref.ticket_id)).company_id if ref else None


def _too_big_for_whatsapp(media: Media, config: Config) -> Reply | None:
    """The attendant's notice when WhatsApp (or media.max_size_mb) refuses the file's size."""
    try:
        toward_whatsapp(media.media_kind, config.media).check(media.byte_size)
    except PermanentDeliveryError as exc:
        return Reply(f"⚠️ not sent: {exc.explanation}")
    return None


def _kind_label(content: AnyContent) -> str:
    media_kind = getattr(content, "media_kind", None)
    return str(media_kind.value) if media_kind is not None else content.kind
