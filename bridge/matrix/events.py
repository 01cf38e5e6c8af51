"""Matrix → core: what the appservice hands in.

Each event of a transaction from a real user (not the bot, not a ghost) becomes an
``AttendantPost``; the transaction is acknowledged only after the inbox returned. A
command's ``Reply`` is posted where it was typed. Every field is read by type
(:mod:`bridge.matrix.fields`); an event that cannot be handled is set aside through
the inbox (``bridge.core.quarantine``) and its sender told.

Events of the bridge's own users teach which thread an event belongs to (reactions,
edits and redactions do not say): the thread index is shared with the sends of
:class:`~bridge.matrix.frontend.MatrixFrontend`.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI

from bridge import vcard
from bridge.cache import bounded
from bridge.config import MediaConfig
from bridge.core.frontend import (
    Attendant,
    AttendantPost,
    ChatAddress,
    FrontendInbox,
    UnhandledEvent,
)
from bridge.core.quarantine import excerpt_of
from bridge.errors import BridgeError, DatabaseError, DeliveryError
from bridge.matrix import convert
from bridge.matrix.appservice import event_id_of
from bridge.matrix.calls import matrix_call
from bridge.matrix.download import download_within
from bridge.matrix.fields import Fields, MalformedEvent
from bridge.matrix.ghosts import GhostDirectory
from bridge.matrix.ledger import SendLedger
from bridge.media_limits import toward_whatsapp
from bridge.model import Deletion, Edit, Media, Reaction

__all__ = ["MatrixEvents"]

log = logging.getLogger("bridge.matrix.events")

FRONTEND = "matrix"
_TOLD_KINDS = frozenset({convert.MESSAGE, convert.STICKER, convert.REACTION, convert.REDACTION})

JSON = dict[str, Any]


class MatrixEvents:
    """Hands the events the appservice receives to the core (see the module docstring)."""

    def __init__(
        self,
        *,
        inbox: FrontendInbox,
        bot: IntentAPI,
        bot_mxid: str,
        ghosts: GhostDirectory,
        ledger: SendLedger,
        threads: MutableMapping[str, str],
        media: MediaConfig,
    ) -> None:
        """``threads`` maps an event to its thread root (shared with the sends)."""
        self._inbox = inbox
        self._bot = bot
        self._bot_mxid = bot_mxid
        self._ghosts = ghosts
        self._ledger = ledger
        self._threads = threads
        self._media = media
        self._member_names: MutableMapping[tuple[str, str], str] = bounded()

    async def handle(self, raw: JSON) -> None:
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
                self._note_thread(event_id, convert.thread_root_of(event.loose_obj("content")))
            return
        parsed = convert.parse_event(raw, mention_resolver=self._ghosts.phone_of)
        if parsed is None:
            return
        self._note_thread(event_id, parsed.thread_root)
        try:
            await self._relay(room, sender, event_id, parsed)
        except DatabaseError:
            raise  # not persisted: the transaction is not acknowledged, the server retries
        except BridgeError as exc:
            log.warning("event %s from %s not relayed: %s", event_id, sender, exc.explanation)
            await self.tell(room, parsed.thread_root, event_id, f"⚠️ not sent: {exc.explanation}")

    async def set_aside(self, raw: JSON, error: Exception) -> None:
        """The appservice's hook for an event that cannot be handled: the core records
        it and reports it to the ops channel; the sender is told, the first time."""
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
            frontend=FRONTEND,
            event_id=event_id,
            place=ChatAddress(room, root) if room else None,
            reason=reason,
            excerpt=excerpt_of(raw),
        )
        if not await self._inbox.set_aside(unhandled) or not (room and sender):
            return
        if event.loose_text("type") in _TOLD_KINDS and not self._is_ours(sender):
            text = f"⚠️ not relayed: {reason}. It was set aside for the bridge's operators."
            await self.tell(room, root, event_id, text)

    async def tell(self, room: str, root: str | None, event_id: str, text: str) -> None:
        """A bot notice where ``event_id`` was posted (command replies, refusals)."""
        content = convert.with_thread(convert.notice_content(text), root=root, reply_to=event_id)
        try:
            await self._ledger.send(
                self._bot, room, content, txn_id=f"zb-reply-{event_id}", what="reply"
            )
        except DeliveryError as exc:
            log.warning("cannot answer %s in %s: %s", event_id, room, exc.explanation)

    async def _relay(self, room: str, sender: str, event_id: str, parsed: convert.Inbound) -> None:
        root = parsed.thread_root or await self._thread_of(room, parsed)
        content = parsed.content
        if isinstance(content, convert.PendingMedia):
            if root is None:
                return  # a file outside ticket threads goes nowhere: not downloaded
            media = await self._download(content)
            content = vcard.contacts_of_file(media) or media  # a .vcf: a contact card
        post = AttendantPost(
            frontend=FRONTEND,
            place=ChatAddress(room, root),
            event_id=event_id,
            attendant=Attendant(sender, await self._display_name(room, sender)),
            content=content,
            reply_to=parsed.reply_to,
        )
        reply = await self._inbox.attendant_event(post)
        if reply is not None:
            await self.tell(room, root, event_id, reply.text)

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
                event = await self._bot.api.request(Method.GET, Path.v3.rooms[room].event[target])
            root = convert.thread_root_of(Fields.of(event).obj("content"))
        except DeliveryError:
            return None
        except MalformedEvent:  # a malformed target: the action stays outside threads
            root = None
        self._note_thread(target, root)
        return root

    def _note_thread(self, event_id: str, root: str | None) -> None:
        if root is not None:
            self._threads[event_id] = root

    async def _download(self, pending: convert.PendingMedia) -> Media:
        """An attendant's file, within what WhatsApp takes for its kind and
        media.max_size_mb: the declared size is checked before asking for it, the
        bytes as they arrive (bridge.media_limits)."""
        limit = toward_whatsapp(pending.media_kind, self._media)
        limit.check(pending.size)
        async with matrix_call("download the file"):
            data = await download_within(self._bot, pending.url, limit=limit)
        return pending.with_data(data)

    def _is_ours(self, user: str) -> bool:
        return user == self._bot_mxid or self._ghosts.is_ghost(user)

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
                member = await self._bot.api.request(Method.GET, path)
            name = Fields(member if isinstance(member, dict) else {}).loose_text("displayname")
        except DeliveryError:
            name = None
        name = name or user.split(":", 1)[0].lstrip("@")
        self._member_names[(room, user)] = name
        return name
