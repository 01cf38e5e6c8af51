"""``MatrixFrontend``: the core's Matrix side (DESIGN section 7).

Outbound (core → Matrix): rooms through :class:`RoomDirectory`, customers' messages
through their ghosts (:class:`GhostDirectory`), everything else through the bot;
content built by :mod:`bridge.matrix.convert`. Every homeserver failure becomes a
``DeliveryError`` (retried: rate limits with the server's ``retry_after_ms``, 5xx,
timeouts) or a ``PermanentDeliveryError`` (refusals, files too large).

Inbound (Matrix → core): each event of a transaction from a real user (not the bot,
not a ghost) becomes an ``AttendantPost``; the transaction is acknowledged only
after the inbox returned. A command's ``Reply`` is posted where it was typed. Every
field is read by type (:mod:`bridge.matrix.fields`); an event that cannot be handled
is set aside through the inbox (``bridge.core.quarantine``) and its sender told.

Receipts: only ``read`` is shown (the ghost's threaded read receipt); Matrix has no
"delivered" marker, so ``delivered`` is not shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import aiohttp
from mautrix.api import Method, Path, PathBuilder
from mautrix.appservice import IntentAPI
from mautrix.errors import (
    IntentError,
    MatrixConnectionError,
    MatrixRequestError,
    MLimitExceeded,
)
from mautrix.types import EventType, RoomID

from bridge import vcard
from bridge.clock import Clock, SystemClock
from bridge.config import CompanyConfig, Config, SessionConfig
from bridge.core.frontend import (
    Attendant,
    AttendantPost,
    Author,
    AuthorKind,
    ChatAddress,
    Frontend,
    FrontendInbox,
    Posted,
    TicketCard,
    UnhandledEvent,
)
from bridge.core.quarantine import excerpt_of
from bridge.errors import BridgeError, DatabaseError, DeliveryError, PermanentDeliveryError
from bridge.matrix import convert
from bridge.matrix.appservice import (
    BridgeAppService,
    event_id_of,
    handle_or_set_aside,
    retry_after_of_last_429,
)
from bridge.matrix.catchup import HomeserverWatch, homeserver_watch
from bridge.matrix.download import download_within
from bridge.matrix.fields import Fields, MalformedEvent
from bridge.matrix.ghosts import GhostDirectory
from bridge.matrix.rooms import RoomDirectory
from bridge.media_limits import toward_whatsapp
from bridge.model import (
    AckStatus,
    ContactCard,
    ContactList,
    Content,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Reaction,
    Text,
    Unsupported,
)

__all__ = ["MatrixFrontend"]

log = logging.getLogger("bridge.matrix")

BOT_DISPLAY_NAME = "WhatsApp bridge"
_THREAD_INDEX_SIZE = 50_000
_UNSURE_LOOKBACK = 100  # events of the sender read back after an ambiguous failure
TXN_KEY = "io.zapbridge.txn"  # in every event's content: the delivery it came from
_IMAGE_INDEX_SIZE = 1_000
UNREACHABLE_GRACE_SECONDS = 30.0  # /health says so once the homeserver is down this long
_TOLD_KINDS = frozenset({convert.MESSAGE, convert.STICKER, convert.REACTION, convert.REDACTION})

JSON = dict[str, Any]
Part = tuple[str, JSON]  # (event type, content)


@contextlib.asynccontextmanager
async def matrix_call(what: str) -> AsyncIterator[None]:
    """Translate homeserver failures while doing ``what`` into delivery errors."""
    try:
        yield
    except IntentError as exc:
        cause = exc.__cause__
        if isinstance(cause, MatrixRequestError):
            raise _delivery_error(what, cause) from exc
        raise PermanentDeliveryError(f"{what}: {exc}") from exc
    except MatrixRequestError as exc:
        raise _delivery_error(what, exc) from exc
    except (MatrixConnectionError, aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{what}: the homeserver is unreachable ({exc})") from exc


def _delivery_error(what: str, exc: MatrixRequestError) -> DeliveryError:
    errcode = getattr(exc, "errcode", None) or "M_UNKNOWN"
    message = getattr(exc, "message", None) or str(exc)
    status = getattr(exc, "http_status", 0)
    if isinstance(exc, MLimitExceeded) or status == 429:
        return DeliveryError(
            f"{what}: rate limited by the homeserver", retry_after=retry_after_of_last_429()
        )
    if errcode == "M_TOO_LARGE" or status == 413:
        return PermanentDeliveryError(f"{what}: the file is too large for the homeserver")
    if status >= 500 or status == 0:
        return DeliveryError(f"{what}: the homeserver failed ({status} {errcode})")
    return PermanentDeliveryError(f"{what}: {errcode}: {message}")


class RecentIndex:
    """A bounded map of recent keys to event ids, the oldest forgotten first: which
    thread an event belongs to, for events that do not say (reactions, edits,
    redactions), learnt from every event seen or sent; which image a retried
    ``post_image`` already posted."""

    def __init__(self, size: int = _THREAD_INDEX_SIZE) -> None:
        self._roots: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def note(self, event_id: str, root: str | None) -> None:
        if root is None:
            return
        self._roots[event_id] = root
        self._roots.move_to_end(event_id)
        while len(self._roots) > self._size:
            self._roots.popitem(last=False)

    def get(self, event_id: str) -> str | None:
        return self._roots.get(event_id)


class MatrixFrontend(Frontend):
    name = "matrix"

    def __init__(
        self,
        config: Config,
        *,
        service: BridgeAppService | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._config = config
        self._clock = clock or SystemClock()
        self._watch: HomeserverWatch | None = None  # catch-up after a homeserver restart
        # built in start(): mautrix binds its aiohttp app to the loop running then
        self._given_service = service
        self._running_service: BridgeAppService | None = None
        self._inbox: FrontendInbox | None = None
        self._threads = RecentIndex()  # event → its thread root
        self._images = RecentIndex(_IMAGE_INDEX_SIZE)  # image digest → the event posted
        self._member_names: dict[tuple[str, str], str] = {}
        self._server_upload_limit: int | None = None
        self._unsure: set[tuple[str, str]] = set()  # (room, txn) sends that may have landed
        self._rooms: RoomDirectory | None = None
        self._ghosts: GhostDirectory | None = None

    # --- lifecycle --------------------------------------------------------------

    def serves_session(self, session: SessionConfig) -> bool:
        return session.matrix

    def serves_ops(self, company: CompanyConfig) -> bool:
        return company.ops.matrix

    async def start(self, inbox: FrontendInbox) -> None:
        self._inbox = inbox
        self._running_service = self._given_service or BridgeAppService(
            homeserver=self._config.homeserver,
            appservice=self._config.appservice,
            clock=self._clock,
        )
        self._service.on_event(self.handle_event, set_aside=self._set_aside)
        async with matrix_call("start the appservice"):
            await self._service.start(bot_name=BOT_DISPLAY_NAME)
        bot = self._service.bot
        self._rooms = RoomDirectory(bot)
        self._ghosts = GhostDirectory(
            bot,
            prefix=self._config.appservice.user_prefix,
            domain=self._config.homeserver.domain,
        )
        await self._start_watch()

    async def _start_watch(self) -> None:
        self._watch = homeserver_watch(
            bot=self.bot,
            handle=self._handle_caught_up,
            companies=[company.id for company in self._config.companies],
            clock=self._clock,
        )
        self._service.on_transaction(self._watch.note_transaction)
        await self._watch.start()

    async def _handle_caught_up(self, raw: JSON) -> None:
        """An event the catch-up read back: handled, or set aside like a pushed one."""
        await handle_or_set_aside(raw, self.handle_event, self._set_aside)

    def health_problems(self) -> list[str]:
        """Whether the homeserver reaches the appservice, and answers the bridge."""
        if self._running_service is None:
            return []
        problems = self._running_service.health.problems()
        down = self._watch.unreachable_for() if self._watch is not None else None
        if down is not None and down >= UNREACHABLE_GRACE_SECONDS:
            problems.append(f"the homeserver has not answered the bridge for {down:.0f} s")
        return problems

    @property
    def watch(self) -> HomeserverWatch:
        """The homeserver watch that runs catch-ups (see :mod:`bridge.matrix.catchup`)."""
        if self._watch is None:
            raise BridgeError("the Matrix frontend is not started")
        return self._watch

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
        if self._running_service is not None:
            await self._running_service.stop()

    @property
    def _service(self) -> BridgeAppService:
        if self._running_service is None:
            raise BridgeError("the Matrix frontend is not started")
        return self._running_service

    @property
    def bot(self) -> IntentAPI:
        return self._service.bot

    @property
    def ghosts(self) -> GhostDirectory:
        if self._ghosts is None:
            raise BridgeError("the Matrix frontend is not started")
        return self._ghosts

    # --- rooms ------------------------------------------------------------------

    async def ensure_control_room(self, company: CompanyConfig, session: SessionConfig) -> str:
        assert self._rooms is not None, "not started"
        async with matrix_call(f"create the control room of {session.key}"):
            return await self._rooms.control_room(company, session)

    async def ensure_ops_room(self, company: CompanyConfig) -> str:
        assert self._rooms is not None, "not started"
        async with matrix_call(f"create the ops room of {company.id}"):
            return await self._rooms.ops_room(company)

    async def set_topic(self, room: str, text: str) -> None:
        async with matrix_call("set the room topic"):
            await self.bot.set_room_topic(RoomID(room), text)

    # --- tickets ------------------------------------------------------------------

    async def create_thread(self, room: str, card: TicketCard, *, txn_id: str) -> str:
        content = {"msgtype": "m.notice", "body": card.headline}
        root = await self._send(
            self.bot, ChatAddress(room), content, txn_id=txn_id, what="post a card"
        )
        self._threads.note(root, root)
        return root

    async def update_card(self, place: ChatAddress, card: TicketCard) -> None:
        """Edit the root to ``card``: a no-op when it already shows it (a retry of an
        edit whose answer was lost). The transaction id follows from the edit it
        replaces, so two identical retries racing still make one event."""
        root = place.thread_root
        assert root is not None
        shown_by, shown = await self._card_shown(place.room, root)
        if shown == card.headline:
            return
        new = {"msgtype": "m.notice", "body": card.headline}
        content = convert.edit_content(root, new)
        txn = f"zb-card-{_digest(root, shown_by, card.headline)}"
        await self._send(
            self.bot, ChatAddress(place.room), content, txn_id=txn, what="update a card"
        )

    async def _card_shown(self, room: str, root: str) -> tuple[str, str | None]:
        """(the event that set what the root shows, that text): its latest edit, as
        the homeserver bundles it, or the root itself."""
        async with matrix_call("read a card"):
            data = await self.bot.api.request(Method.GET, Path.v3.rooms[room].event[root])
        event = Fields(data if isinstance(data, dict) else {})
        edit = event.loose_obj("unsigned").loose_obj("m.relations").loose_obj("m.replace")
        edit_id = edit.loose_text("event_id")
        if edit_id:
            return edit_id, edit.loose_obj("content").loose_obj("m.new_content").loose_text("body")
        return root, event.loose_obj("content").loose_text("body")

    async def notice(self, place: ChatAddress, text: str, *, txn_id: str) -> str:
        content = convert.with_thread(convert.notice_content(text), root=place.thread_root)
        return await self._send(
            self.bot, ChatAddress(place.room), content, txn_id=txn_id, what="post a notice"
        )

    async def post_image(
        self, place: ChatAddress, *, data: bytes, filename: str, caption: str, replaces: str | None
    ) -> str:
        """A bot image. The core gives no transaction id here, so one is derived from
        the image, where it goes and what it replaces: a retry of the same call
        returns the event already posted (remembered, else deduplicated by the
        homeserver) instead of posting the image twice."""
        key = _digest(place.room, place.thread_root or "", filename, caption, replaces or "", data)
        event = self._images.get(key)
        if event is None:
            event = await self._post_image(place, data, filename, caption, txn_id=f"zb-img-{key}")
            self._images.note(key, event)
        if replaces:
            try:
                async with matrix_call("remove the previous image"):
                    await self.bot.redact(RoomID(place.room), replaces)  # type: ignore[arg-type]
            except DeliveryError as exc:  # the new image is up; an old one staying is harmless
                log.warning("%s", exc.explanation)
        return event

    async def _post_image(
        self, place: ChatAddress, data: bytes, filename: str, caption: str, *, txn_id: str
    ) -> str:
        media = Media(MediaKind.IMAGE, "image/png", data=data, filename=filename, caption=caption)
        event_type, content = await self._media_part(self.bot, media, ident="image")
        content = convert.with_thread(content, root=place.thread_root)
        return await self._send(
            self.bot,
            ChatAddress(place.room),
            content,
            txn_id=txn_id,
            what="post an image",
            kind=event_type,
        )

    # --- messages -------------------------------------------------------------------

    async def post(
        self,
        place: ChatAddress,
        author: Author,
        content: Content,
        *,
        reply_to: str | None,
        txn_id: str,
    ) -> Posted:
        intent = await self._intent_for(place, author)
        parts = await self._parts(intent, author, content, ident=txn_id)
        ids: list[str] = []
        for index, (event_type, body) in enumerate(parts):
            body = convert.with_thread(
                body,
                root=place.thread_root,
                reply_to=reply_to if index == 0 else None,
                latest=ids[-1] if ids else None,
            )
            part_txn = txn_id if index == 0 else f"{txn_id}.{index}"
            event = await self._send(
                intent, ChatAddress(place.room), body, txn_id=part_txn, what="post", kind=event_type
            )
            self._threads.note(event, place.thread_root)
            ids.append(event)
        return Posted(tuple(ids))

    async def _parts(
        self, intent: IntentAPI, author: Author, content: Content, *, ident: str
    ) -> list[Part]:
        message = convert.MESSAGE
        if isinstance(content, Text):
            return [(message, self._text(author, content))]
        if isinstance(content, Media):
            if author.kind is AuthorKind.ATTENDANT:
                content = convert.relabel_caption(content, author.name)
            return [await self._media_part(intent, content, ident=ident)]
        if isinstance(content, Location):
            return [(message, convert.location_content(content))]
        if isinstance(content, ContactCard):
            file = await self._media_part(intent, convert.contact_file(content), ident=ident)
            return [(message, convert.contact_text(content)), file]
        if isinstance(content, ContactList):
            parts: list[Part] = []
            for card in content.cards:
                parts += await self._parts(intent, author, card, ident=ident)
            return parts
        if isinstance(content, Unsupported):
            return [(message, convert.unsupported_content(content))]
        raise PermanentDeliveryError(f"cannot show a {content.kind} on Matrix")

    def _text(self, author: Author, text: Text) -> JSON:
        resolver = self._ghost_of_phone
        if author.kind is AuthorKind.ATTENDANT:
            return convert.labelled_text(author.name, text, mention_resolver=resolver)
        msgtype = "m.notice" if author.kind is AuthorKind.BOT else "m.text"
        return convert.text_content(text, msgtype=msgtype, mention_resolver=resolver)

    async def _media_part(self, intent: IntentAPI, media: Media, *, ident: str) -> Part:
        if media.data is None:
            raise PermanentDeliveryError("the file's bytes were not downloaded from WhatsApp")
        await self._check_size(len(media.data))
        async with matrix_call("upload a file"):
            url = await intent.upload_media(
                media.data, mime_type=media.mimetype, filename=media.filename, size=len(media.data)
            )
        return convert.media_content(media, str(url), ident=_short(ident))

    async def _check_size(self, size: int) -> None:
        limit = self._config.media.max_size_bytes
        if size > limit:
            raise PermanentDeliveryError(
                f"the file is {_mb(size)}, over media.max_size_mb ({self._config.media.max_size_mb}"
                " MB)"
            )
        server = await self._upload_limit()
        if server is not None and size > server:
            raise PermanentDeliveryError(
                f"the file is {_mb(size)}, over the homeserver's upload limit ({_mb(server)})"
            )

    async def _upload_limit(self) -> int | None:
        if self._server_upload_limit is None:
            try:
                async with matrix_call("read the media config"):
                    data = await self.bot.api.request(
                        Method.GET, PathBuilder("/_matrix/client/v1/media/config")
                    )
            except DeliveryError:
                async with matrix_call("read the media config"):
                    data = await self.bot.api.request(
                        Method.GET, PathBuilder("/_matrix/media/v3/config")
                    )
            size = data.get("m.upload.size")
            self._server_upload_limit = size if isinstance(size, int) else 0
        return self._server_upload_limit or None

    # --- actions --------------------------------------------------------------------

    async def react(
        self, place: ChatAddress, author: Author, *, target: str, emoji: str, txn_id: str
    ) -> str | None:
        intent = await self._intent_for(place, author)
        # WhatsApp keeps one reaction per person: a new one replaces the old.
        for event, key in await self._own_reactions(intent, place.room, target):
            if key != emoji:
                async with matrix_call("remove a reaction"):
                    await intent.redact(RoomID(place.room), event)  # type: ignore[arg-type]
        if not emoji:
            return None
        content = convert.reaction_content(target, emoji)
        return await self._send(
            intent, ChatAddress(place.room), content, txn_id=txn_id, what="react", kind="m.reaction"
        )

    async def _own_reactions(
        self, intent: IntentAPI, room: str, target: str
    ) -> list[tuple[str, str]]:
        path = (
            f"/_matrix/client/v1/rooms/{quote(room)}/relations/{quote(target)}"
            "/m.annotation/m.reaction"
        )
        async with matrix_call("read reactions"):
            data = await intent.api.request(
                Method.GET, PathBuilder(path), query_params={"limit": "100"}
            )
        found: list[tuple[str, str]] = []
        for event in _chunk(data):
            relation = event.loose_obj("content").loose_obj("m.relates_to")
            event_id = event.loose_text("event_id")
            if event.loose_text("sender") == intent.mxid and event_id and relation:
                found.append((event_id, relation.loose_text("key") or ""))
        return found

    async def edit(
        self, place: ChatAddress, author: Author, *, target: str, new: Text, txn_id: str
    ) -> str | None:
        intent = await self._intent_of_target(place, author, target)
        content = convert.edit_content(target, self._text(author, new))
        return await self._send(
            intent, ChatAddress(place.room), content, txn_id=txn_id, what="edit"
        )

    async def delete(self, place: ChatAddress, author: Author, *, target: str) -> None:
        intent = await self._intent_of_target(place, author, target)
        async with matrix_call("delete a message"):
            await intent.redact(RoomID(place.room), target)  # type: ignore[arg-type]

    async def mark_receipt(
        self, place: ChatAddress, author: Author, *, target: str, status: AckStatus
    ) -> None:
        if status is not AckStatus.READ or author.kind is not AuthorKind.CUSTOMER:
            return  # Matrix shows no "delivered"; only the customer reads
        intent = await self._intent_for(place, author)
        body = {"thread_id": place.thread_root or "main"}
        path = Path.v3.rooms[place.room].receipt["m.read"][target]
        async with matrix_call("mark as read"):
            await intent.api.request(Method.POST, path, body)

    # --- sending ----------------------------------------------------------------------

    async def _intent_for(self, place: ChatAddress, author: Author) -> IntentAPI:
        if author.kind is not AuthorKind.CUSTOMER:
            return self.bot
        if not (author.phone or author.lid):
            return self.bot
        async with matrix_call("prepare the customer's Matrix user"):
            return await self.ghosts.ready_in(place.room, author)

    async def _intent_of_target(self, place: ChatAddress, author: Author, target: str) -> IntentAPI:
        """Who edits or deletes ``target``: the author's intent, except for a message
        the customer wrote while WhatsApp showed her LID alone, which is her LID
        ghost's (an edit counts only from the same sender; a ghost may not redact
        another's event)."""
        intent = await self._intent_for(place, author)
        if author.kind is not AuthorKind.CUSTOMER or not (author.phone and author.lid):
            return intent
        lid_ghost = self.ghosts.mxid_of(replace(author, phone=None))
        async with matrix_call("read the message to change"):
            event = await self.bot.api.request(Method.GET, Path.v3.rooms[place.room].event[target])
        sender = Fields(event if isinstance(event, dict) else {}).loose_text("sender")
        return self.bot.user(lid_ghost) if sender == lid_ghost else intent  # type: ignore[arg-type]

    async def _send(
        self,
        intent: IntentAPI,
        place: ChatAddress,
        content: JSON,
        *,
        txn_id: str | None,
        what: str,
        kind: str = convert.MESSAGE,
    ) -> str:
        """Send one event; ``txn_id`` makes a retry of the same delivery a no-op.

        The homeserver recognises a repeated transaction id only while it remembers
        it: Synapse keeps those of appservice users in memory, so a send that landed
        just before Synapse restarted (the answer lost with the connection) would be
        stored twice. So the event carries the txn id in its content too, and after an
        ambiguous failure the retry first looks for it among the sender's latest
        events in the room."""
        event_type = EventType.find(kind, EventType.Class.MESSAGE)
        if txn_id is not None:
            content = {**content, TXN_KEY: txn_id}
            if (place.room, txn_id) in self._unsure:
                found = await self._sent_before(intent, place.room, txn_id)
                if found is not None:
                    self._unsure.discard((place.room, txn_id))
                    return found
        txn = txn_id or intent.api.get_txn_id()
        path = Path.v3.rooms[place.room].send[str(event_type)][txn]
        try:
            async with matrix_call(what):
                data = await intent.api.request(Method.PUT, path, content)
        except DeliveryError as exc:
            if txn_id is not None and exc.ambiguous:
                self._unsure.add((place.room, txn_id))
            raise
        if txn_id is not None:
            self._unsure.discard((place.room, txn_id))
        return str(data["event_id"])

    async def _sent_before(self, intent: IntentAPI, room: str, txn_id: str) -> str | None:
        """The event ``intent`` sent into ``room`` with ``txn_id``, among its latest."""
        query = {
            "dir": "b",
            "limit": str(_UNSURE_LOOKBACK),
            "filter": json.dumps({"senders": [intent.mxid]}),
        }
        async with matrix_call("look for a send that may have landed"):
            data = await intent.api.request(
                Method.GET, Path.v3.rooms[room].messages, query_params=query
            )
        for event in _chunk(data):
            found = event.loose_text("event_id")
            if found and event.loose_obj("content").loose_text(TXN_KEY) == txn_id:
                log.info("%s reached %s before its answer was lost: not sent again", txn_id, room)
                return found
        return None

    # --- inbound ------------------------------------------------------------------------

    async def handle_event(self, raw: JSON) -> None:
        """One event of a transaction; returns once the core persisted it. Raises
        ``MalformedEvent`` for a field of the wrong type (the caller sets it aside)."""
        event = Fields.of(raw)
        room, sender = event.text("room_id"), event.text("sender")
        event_id, kind = event.text("event_id"), event.text("type")
        if not (room and sender and event_id):
            return
        if kind == "m.room.member":
            self._note_member(room, event)
            return
        if self._is_ours(sender):
            if kind in _TOLD_KINDS:  # learn the threads of what the bridge posted
                self._threads.note(event_id, convert.thread_root_of(event.loose_obj("content")))
            return
        parsed = convert.parse_event(raw, mention_resolver=self._phone_of_ghost)
        if parsed is None or self._inbox is None:
            return
        self._threads.note(event_id, parsed.thread_root)
        try:
            await self._relay(room, sender, event_id, parsed)
        except DatabaseError:
            raise  # not persisted: the transaction is not acknowledged, the server retries
        except BridgeError as exc:
            log.warning("event %s from %s not relayed: %s", event_id, sender, exc.explanation)
            await self._tell(room, parsed.thread_root, event_id, f"⚠️ not sent: {exc.explanation}")

    async def _relay(self, room: str, sender: str, event_id: str, parsed: convert.Inbound) -> None:
        assert self._inbox is not None
        root = parsed.thread_root or await self._thread_of(room, parsed)
        content = parsed.content
        if isinstance(content, convert.PendingMedia):
            if root is None:
                return  # a file outside ticket threads goes nowhere: not downloaded
            media = await self._download(content)
            content = vcard.contacts_of_file(media) or media  # a .vcf: a contact card
        post = AttendantPost(
            frontend=self.name,
            place=ChatAddress(room, root),
            event_id=event_id,
            attendant=Attendant(sender, await self._display_name(room, sender)),
            content=content,
            reply_to=parsed.reply_to,
        )
        reply = await self._inbox.attendant_event(post)
        if reply is not None:
            await self._tell(room, root, event_id, reply.text)

    async def _thread_of(self, room: str, parsed: convert.Inbound) -> str | None:
        """The thread of an event that does not name it: through its target."""
        content = parsed.content
        target = (
            content.target if isinstance(content, Reaction | Edit | Deletion) else parsed.reply_to
        )
        if target is None:
            return None
        known = self._threads.get(target)
        if known is not None:
            return known
        try:
            async with matrix_call("read an event"):
                event = await self.bot.api.request(Method.GET, Path.v3.rooms[room].event[target])
            root = convert.thread_root_of(Fields.of(event).obj("content"))
        except DeliveryError:
            return None
        except MalformedEvent:  # a malformed target: the action stays outside threads
            root = None
        self._threads.note(target, root)
        return root

    async def _download(self, pending: convert.PendingMedia) -> Media:
        """An attendant's file, within what WhatsApp takes for its kind and
        media.max_size_mb: the declared size is checked before asking for it, the
        bytes as they arrive (bridge.media_limits)."""
        limit = toward_whatsapp(pending.media_kind, self._config.media)
        limit.check(pending.size)
        async with matrix_call("download the file"):
            data = await download_within(self.bot, pending.url, limit=limit)
        return pending.with_data(data)

    async def _tell(self, room: str, root: str | None, event_id: str, text: str) -> None:
        """A bot notice where ``event_id`` was posted (command replies, refusals)."""
        content = convert.with_thread(convert.notice_content(text), root=root, reply_to=event_id)
        try:
            await self._send(
                self.bot, ChatAddress(room), content, txn_id=f"zb-reply-{event_id}", what="reply"
            )
        except DeliveryError as exc:
            log.warning("cannot answer %s in %s: %s", event_id, room, exc.explanation)

    async def _set_aside(self, raw: JSON, error: Exception) -> None:
        """The appservice's hook for an event that cannot be handled: the core records
        it and reports it to the ops channel; the sender is told, the first time."""
        assert self._inbox is not None, "not started"
        event = Fields(raw)
        room, sender = event.loose_text("room_id"), event.loose_text("sender")
        try:
            root = convert.thread_root_of(Fields.of(raw.get("content"), "content"))
        except MalformedEvent:
            root = None
        event_id = event_id_of(raw)
        reason = (
            error.explanation
            if isinstance(error, BridgeError)
            else f"the bridge failed on it ({type(error).__name__}; see its log)"
        )
        unhandled = UnhandledEvent(
            frontend=self.name,
            event_id=event_id,
            place=ChatAddress(room, root) if room else None,
            reason=reason,
            excerpt=excerpt_of(raw),
        )
        if not await self._inbox.set_aside(unhandled) or not (room and sender):
            return
        if event.loose_text("type") in _TOLD_KINDS and not self._is_ours(sender):
            text = f"⚠️ not relayed: {reason}. It was set aside for the bridge's operators."
            await self._tell(room, root, event_id, text)

    def _is_ours(self, user: str) -> bool:
        return user == self._service.bot_mxid or self.ghosts.is_ghost(user)

    def _note_member(self, room: str, event: Fields) -> None:
        name = event.loose_obj("content").loose_text("displayname")
        user = event.loose_text("state_key")
        if user and name:
            self._member_names[(room, user)] = name

    async def _display_name(self, room: str, user: str) -> str:
        known = self._member_names.get((room, user))
        if known:
            return known
        path = Path.v3.rooms[room].state["m.room.member"][user]
        try:
            async with matrix_call("read a member's name"):
                member = await self.bot.api.request(Method.GET, path)
            name = Fields(member if isinstance(member, dict) else {}).loose_text("displayname")
        except DeliveryError:
            name = None
        name = name or user.split(":", 1)[0].lstrip("@")
        self._member_names[(room, user)] = name
        return name

    # --- mentions -------------------------------------------------------------------------

    def _ghost_of_phone(self, phone: str) -> tuple[str, str] | None:
        try:
            return self.ghosts.mxid_of(Author(AuthorKind.CUSTOMER, "", phone=phone)), phone
        except ValueError:
            return None

    def _phone_of_ghost(self, user_id: str) -> str | None:
        prefix = f"@{self._config.appservice.user_prefix}"
        if not self.ghosts.is_ghost(user_id):
            return None
        digits = user_id[len(prefix) :].split(":", 1)[0]
        return f"+{digits}" if digits.isdigit() else None


def _chunk(data: Any) -> list[Fields]:
    """The events of a client API page (``chunk``), each an object."""
    chunk = data.get("chunk") if isinstance(data, dict) else None
    return [Fields(e) for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []


def _digest(*parts: str | bytes) -> str:
    """A short stable digest of ``parts`` (for transaction ids)."""
    sha = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        sha.update(len(data).to_bytes(8, "big") + data)
    return sha.hexdigest()[:32]


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _short(ident: str) -> str:
    return ident.removeprefix("zb-msg-").removeprefix("zb-")
