"""``MatrixFrontend``: the core's Matrix side (how each kind looks: docs/messages.md).

Outbound (core → Matrix), here: rooms through :class:`RoomDirectory`, customers'
messages through their ghosts (:class:`GhostDirectory`), everything else through the
bot; content built by :mod:`bridge.matrix.convert`; every event sent through the
:class:`~bridge.matrix.ledger.SendLedger`, which makes a retried send a no-op; every
homeserver failure a delivery error (:func:`~bridge.matrix.calls.matrix_call`).

Inbound (Matrix → core): the appservice's events go to
:class:`~bridge.matrix.events.MatrixEvents`, and so do those the catch-up
(:mod:`bridge.matrix.catchup`) reads back after a homeserver restart.

Receipts: only ``read`` is shown (the ghost's threaded read receipt); Matrix has no
"delivered" marker, so ``delivered`` is not shown.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import quote

from mautrix.api import Method, Path, PathBuilder
from mautrix.appservice import IntentAPI
from mautrix.types import RoomID

from bridge.cache import bounded
from bridge.clock import Clock, SystemClock
from bridge.config import CompanyConfig, Config, SessionConfig
from bridge.core.frontend import (
    Author,
    AuthorKind,
    ChatAddress,
    Frontend,
    FrontendInbox,
    Posted,
    TicketCard,
)
from bridge.errors import BridgeError, DeliveryError, PermanentDeliveryError
from bridge.matrix import convert
from bridge.matrix.appservice import BridgeAppService, handle_or_set_aside
from bridge.matrix.calls import matrix_call
from bridge.matrix.catchup import HomeserverWatch, homeserver_watch
from bridge.matrix.ephemeral import MatrixEphemeral
from bridge.matrix.events import FRONTEND, MatrixEvents
from bridge.matrix.fields import Fields, page_events
from bridge.matrix.ghosts import GhostDirectory
from bridge.matrix.ledger import SendLedger
from bridge.matrix.rooms import RoomDirectory
from bridge.model import (
    AckStatus,
    ContactCard,
    ContactList,
    Content,
    Location,
    Media,
    MediaKind,
    Text,
    Unsupported,
)

__all__ = ["MatrixFrontend"]

log = logging.getLogger("bridge.matrix")

BOT_DISPLAY_NAME = "WhatsApp bridge"
_THREAD_INDEX_SIZE = 50_000
UNREACHABLE_GRACE_SECONDS = 30.0  # /health says so once the homeserver is down this long

JSON = dict[str, Any]
Part = tuple[str, JSON]  # (event type, content)
T = TypeVar("T")


class MatrixFrontend(Frontend):
    name = FRONTEND

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
        self._events: MatrixEvents | None = None
        self._ephemeral: MatrixEphemeral | None = None  # receipts and typing
        self._ledger = SendLedger()
        # which thread an event belongs to, for events that do not say (reactions,
        # edits, redactions), learnt from every event seen or sent
        self._threads: MutableMapping[str, str] = bounded(_THREAD_INDEX_SIZE)
        self._server_upload_limit: int | None = None
        self._rooms: RoomDirectory | None = None
        self._ghosts: GhostDirectory | None = None

    # --- lifecycle --------------------------------------------------------------

    def serves_session(self, session: SessionConfig) -> bool:
        return session.matrix

    def serves_ops(self, company: CompanyConfig) -> bool:
        return company.ops.matrix

    async def start(self, inbox: FrontendInbox) -> None:
        self._running_service = self._given_service or BridgeAppService(
            homeserver=self._config.homeserver,
            appservice=self._config.appservice,
            clock=self._clock,
        )
        self._service.on_event(
            lambda raw: self.events.handle(raw),
            set_aside=lambda raw, error: self.events.set_aside(raw, error),
        )
        self._service.on_ephemeral(self._handle_ephemeral)
        async with matrix_call("start the appservice"):
            await self._service.start(bot_name=BOT_DISPLAY_NAME)
        bot = self._service.bot
        self._rooms = RoomDirectory(bot)
        self._ghosts = GhostDirectory(
            bot,
            prefix=self._config.appservice.user_prefix,
            domain=self._config.homeserver.domain,
        )
        self._events = MatrixEvents(
            inbox=inbox,
            bot=bot,
            bot_mxid=self._service.bot_mxid,
            ghosts=self._ghosts,
            ledger=self._ledger,
            threads=self._threads,
            media=self._config.media,
        )
        ghosts = self._ghosts
        self._ephemeral = MatrixEphemeral(
            inbox=inbox,
            is_ours=lambda user: user == self._service.bot_mxid or ghosts.is_ghost(user),
            thread_of=self._threads.get,
            clock=self._clock,
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

    async def _handle_ephemeral(self, raw: JSON) -> None:
        """A receipt or typing change (docs/presence.md); none is worth keeping from
        before the frontend finished starting."""
        if self._ephemeral is not None:
            await self._ephemeral.handle(raw)

    async def _handle_caught_up(self, raw: JSON) -> None:
        """An event the catch-up read back: handled, or set aside like a pushed one."""
        await handle_or_set_aside(raw, self.events.handle, self.events.set_aside)

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
    def events(self) -> MatrixEvents:
        """What the appservice receives goes here (see :mod:`bridge.matrix.events`)."""
        return _started(self._events)

    @property
    def watch(self) -> HomeserverWatch:
        """The homeserver watch that runs catch-ups (see :mod:`bridge.matrix.catchup`)."""
        return _started(self._watch)

    async def stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
        if self._running_service is not None:
            await self._running_service.stop()

    @property
    def _service(self) -> BridgeAppService:
        return _started(self._running_service)

    @property
    def bot(self) -> IntentAPI:
        return self._service.bot

    @property
    def ghosts(self) -> GhostDirectory:
        return _started(self._ghosts)

    # --- rooms ------------------------------------------------------------------

    async def ensure_control_room(self, company: CompanyConfig, session: SessionConfig) -> str:
        async with matrix_call(f"create the control room of {session.key}"):
            return await _started(self._rooms).control_room(company, session)

    async def ensure_ops_room(self, company: CompanyConfig) -> str:
        async with matrix_call(f"create the ops room of {company.id}"):
            return await _started(self._rooms).ops_room(company)

    async def set_topic(self, room: str, text: str) -> None:
        async with matrix_call("set the room topic"):
            await self.bot.set_room_topic(RoomID(room), text)

    # --- tickets ------------------------------------------------------------------

    async def create_thread(self, room: str, card: TicketCard, *, txn_id: str) -> str:
        content = {"msgtype": "m.notice", "body": card.headline}
        root = await self._ledger.send(self.bot, room, content, txn_id=txn_id, what="post a card")
        self._threads[root] = root
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
        await self._ledger.send(self.bot, place.room, content, txn_id=txn, what="update a card")

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
        return await self._ledger.send(
            self.bot, place.room, content, txn_id=txn_id, what="post a notice"
        )

    async def post_image(
        self, place: ChatAddress, *, data: bytes, filename: str, caption: str, replaces: str | None
    ) -> str:
        """A bot image. The core gives no transaction id here, so one is derived from
        the image, where it goes and what it replaces: a retry of the same call
        returns the event already posted (remembered, else deduplicated by the
        homeserver) instead of posting the image twice."""
        key = _digest(place.room, place.thread_root or "", filename, caption, replaces or "", data)
        event = await self._ledger.once(
            key, lambda: self._post_image(place, data, filename, caption, txn_id=f"zb-img-{key}")
        )
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
        return await self._ledger.send(
            self.bot,
            place.room,
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
            event = await self._ledger.send(
                intent, place.room, body, txn_id=part_txn, what="post", kind=event_type
            )
            if place.thread_root is not None:
                self._threads[event] = place.thread_root
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
            elif author.kind is AuthorKind.NOTE:
                content = convert.relabel_caption(content, convert.note_label(author.name))
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
        resolver = self.ghosts.mention_of
        if author.kind is AuthorKind.ATTENDANT:
            return convert.labelled_text(author.name, text, mention_resolver=resolver)
        if author.kind is AuthorKind.NOTE:
            return convert.labelled_text(
                convert.note_label(author.name), text, mention_resolver=resolver, msgtype="m.notice"
            )
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
        return await self._ledger.send(
            intent, place.room, content, txn_id=txn_id, what="react", kind="m.reaction"
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
        for event in page_events(data):
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
        return await self._ledger.send(intent, place.room, content, txn_id=txn_id, what="edit")

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

    # --- who sends ----------------------------------------------------------------------

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


def _started(part: T | None) -> T:
    """A part the frontend builds in ``start``."""
    if part is None:
        raise BridgeError("the Matrix frontend is not started")
    return part


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
