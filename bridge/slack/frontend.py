"""The Slack frontend: a channel per session, a thread per ticket (the card is its
root), customers posting under their own names, attendants answering in threads.

Outbound calls come from outbox executors and go through :class:`PacedApi` (paced
per channel, Slack errors mapped to delivery errors). Inbound events arrive through
slack-bolt's ``AsyncApp`` (Socket Mode, or HTTP routes from :meth:`http_routes`) and
are handled by :class:`~bridge.slack.events.SlackEvents`.

Inbound requests are checked at the edge before bolt sees them (signatures and
bodies in HTTP mode: :mod:`bridge.slack.http`; payload shapes:
:mod:`bridge.slack.payload`), and what a listener raises is answered by
:mod:`bridge.slack.failures`. Files attendants share are fetched by
:mod:`bridge.slack.files`, with the bot token only for ``slack.file_hosts``.

The customer's receipts show as the bot's reaction on the message sent to her
(docs/presence.md): ☑️ (``ballot_box_with_check``) once delivered, replaced by ✅
(``white_check_mark``) once read.

Posts are idempotent per ``txn_id`` through :class:`~bridge.slack.ledger.PostLedger`:
each message carries its txn id in Slack's message metadata, and a post into a
thread that may already hold it (the first into that thread since the process
started, or a retry after an ambiguous failure) reads the thread first; a card or a
notice at channel level reads the channel's newest page the same way. The Web API
client makes no retries of its own (slack_sdk retries a dropped connection once by
default, which could post twice): the outbox retries, and the ledger checks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bridge.clock import Clock
from bridge.config import CompanyConfig, MediaConfig, SessionConfig, SlackConfig
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
from bridge.media_limits import SizeLimit
from bridge.model import (
    AckStatus,
    ContactCard,
    ContactList,
    Content,
    Location,
    Media,
    Text,
    Unsupported,
)
from bridge.slack import convert
from bridge.slack.events import BotIdentity, MessageIndex, SlackEvents, UserDirectory
from bridge.slack.failures import answer_failure
from bridge.slack.files import SlackFiles
from bridge.slack.http import slack_routes
from bridge.slack.ledger import FileKey, PostLedger, Thread, txn_metadata
from bridge.slack.ratelimit import ChannelPacer, PacedApi, SlackCallError
from bridge.slack.socket import SocketHandler

log = logging.getLogger("bridge.slack")


RECEIPT_REACTIONS = {
    AckStatus.DELIVERED: "ballot_box_with_check",
    AckStatus.READ: "white_check_mark",
}
"""The reaction showing the customer's receipt on a message (docs/presence.md)."""


class SlackFrontend(Frontend):
    name = "slack"

    def __init__(
        self,
        config: SlackConfig,
        *,
        clock: Clock,
        pacer: ChannelPacer | None = None,
        media: MediaConfig | None = None,
    ) -> None:
        """``media`` sets the size limits of attendants' files (``media.max_size_mb``,
        with WhatsApp's per kind); the defaults when None."""
        self._config = config
        self._bot = BotIdentity()
        self._inbox: FrontendInbox | None = None
        self._http: aiohttp.ClientSession | None = None
        self._socket: SocketHandler | None = None
        self._files = SlackFiles(token=config.bot_token, hosts=config.file_hosts)
        # No SDK retries: a blind resend of chat.postMessage after a dropped connection
        # could post twice; the outbox retries and the ledger checks first.
        client = AsyncWebClient(token=config.bot_token, base_url=config.api_url, retry_handlers=[])
        self._client = client
        self._api = PacedApi(
            client,
            pacer
            or ChannelPacer(
                clock=clock, rate=config.per_channel_per_second, burst=config.per_channel_burst
            ),
            bot_name=self._bot.name,
        )
        self._index = MessageIndex()
        self._ledger = PostLedger(self._api, lambda: self._bot)  # txn parts already posted
        self._reactions: dict[tuple[str, str], str] = {}  # (channel, ts) → our reaction name
        self.app = AsyncApp(
            client=client,  # carries the bot token
            signing_secret=config.signing_secret or "unused-in-socket-mode",
            # HTTP mode: the route verifies every request itself, before parsing
            # (bridge.slack.http); Socket Mode has nothing to verify.
            request_verification_enabled=False,
            process_before_response=True,  # ack only after the listener persisted the work
            raise_error_for_unhandled_request=True,  # to answer_failure, not a logged body
            attaching_function_token_enabled=False,  # no workflow functions here
        )
        self.app.error(answer_failure)
        self.events = SlackEvents(
            inbox=lambda: self._inbox,
            api=self._api,
            users=UserDirectory(self._api, clock=clock),
            index=self._index,
            bot=lambda: self._bot,
            download=self._download,
            media=media or MediaConfig(),
        )
        self.events.register(self.app)

    # --- lifecycle -------------------------------------------------------------------

    def serves_session(self, session: SessionConfig) -> bool:
        return session.slack_channel is not None

    def serves_ops(self, company: CompanyConfig) -> bool:
        return company.ops.slack_channel is not None

    def http_routes(self) -> list[web.RouteDef]:
        """``POST /slack/events`` for ``slack.mode: http``; mount before the server starts."""
        return slack_routes(
            self.app,
            signing_secret=self._config.signing_secret,
            ready=lambda: self._inbox is not None,
        )

    async def start(self, inbox: FrontendInbox) -> None:
        # One HTTP session for every Web API call: without it slack_sdk opens a new
        # connection (TCP and TLS) per call.
        self._http = aiohttp.ClientSession()
        self._client.session = self._http
        try:
            identity = await self._identify()
        except BaseException:
            await self._close_http()
            raise
        self._bot = identity
        self._api.bot_name = identity.name
        self._inbox = inbox
        if self._config.mode == "socket":
            self._socket = SocketHandler(
                self.app, self._config.app_token, messages=self.events.message_envelope
            )
            await self._socket.connect_async()
        log.info("Slack frontend started (%s mode) as @%s", self._config.mode, identity.name)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        self._inbox = None
        await self._close_http()

    async def _close_http(self) -> None:
        self._client.session = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _identify(self) -> BotIdentity:
        try:
            found = await self._api.call("auth_test")
        except DeliveryError as exc:
            raise BridgeError(f"cannot connect to Slack: {exc.explanation}") from exc
        return BotIdentity(
            user_id=str(found.get("user_id") or ""),
            bot_id=str(found.get("bot_id") or ""),
            name=str(found.get("user") or "zapbridge"),
        )

    async def _download(self, url: str, *, limit: SizeLimit, announced: int | None) -> bytes:
        if self._http is None:
            raise DeliveryError("the Slack frontend is not started")
        return await self._files.download(self._http, url, limit=limit, announced=announced)

    # --- rooms -------------------------------------------------------------------------

    async def ensure_control_room(self, company: CompanyConfig, session: SessionConfig) -> str:
        if session.slack_channel is None:
            raise PermanentDeliveryError(f"session {session.key} has no slack_channel")
        return await self._check_channel(session.slack_channel)

    async def ensure_ops_room(self, company: CompanyConfig) -> str:
        if company.ops.slack_channel is None:
            raise PermanentDeliveryError(f"company {company.id} has no ops.slack_channel")
        return await self._check_channel(company.ops.slack_channel)

    async def _check_channel(self, channel: str) -> str:
        info = (await self._api.call("conversations_info", channel=channel)).get("channel") or {}
        if not info.get("is_member", False) and not info.get("is_im", False):
            raise PermanentDeliveryError(
                f"the bot is not in channel {channel}: invite @{self._bot.name} there"
            )
        return channel

    # --- tickets -----------------------------------------------------------------------

    async def create_thread(self, room: str, card: TicketCard, *, txn_id: str) -> str:
        message = {**convert.card_message(card), "metadata": txn_metadata(txn_id, 0)}
        root = await self._once(
            txn_id, 0, lambda: self._post_message(room, None, message), place=ChatAddress(room)
        )
        self._ledger.trust(room, root)  # a new thread: nothing of ours in it yet
        return root

    def forget_trust(self, place: ChatAddress) -> None:
        self._ledger.forget(place.room, place.thread_root)

    async def update_card(self, place: ChatAddress, card: TicketCard) -> None:
        if place.thread_root is None:
            raise PermanentDeliveryError("a ticket card needs its thread root")
        message = convert.card_message(card)
        await self._api.call(
            "chat_update", pace=place.room, channel=place.room, ts=place.thread_root, **message
        )

    # --- messages ----------------------------------------------------------------------

    async def post(
        self,
        place: ChatAddress,
        author: Author,
        content: Content,
        *,
        reply_to: str | None,
        txn_id: str,
    ) -> Posted:
        prefix = await self._quote(place, reply_to) if reply_to else None
        if isinstance(content, Text):
            text = convert.text_of(content.body)
            if author.kind is AuthorKind.NOTE:
                text = convert.note_text(text)
            return Posted((await self._text(place, author, text, prefix, txn_id),))
        if isinstance(content, Media):
            return Posted((await self._media(place, author, content, prefix, txn_id),))
        if isinstance(content, Location):
            text = convert.location_text(content)
            return Posted((await self._text(place, author, text, prefix, txn_id),))
        if isinstance(content, ContactCard):
            return Posted(await self._contacts(place, author, (content,), prefix, txn_id))
        if isinstance(content, ContactList):
            return Posted(await self._contacts(place, author, content.cards, prefix, txn_id))
        if isinstance(content, Unsupported):
            text = f"_{convert.escape(content.placeholder)}_"
            return Posted((await self._text(place, author, text, prefix, txn_id),))
        raise PermanentDeliveryError(f"cannot post {type(content).__name__} to Slack")

    async def _text(
        self,
        place: ChatAddress,
        author: Author,
        text: str,
        prefix: str | None,
        txn_id: str,
        part: int = 0,
    ) -> str:
        body = f"{prefix}\n{text}" if prefix else text
        args = {"text": body, **convert.author_args(author), "metadata": txn_metadata(txn_id, part)}
        ts = await self._once(
            txn_id, part, lambda: self._post_message(place.room, place, args), place=place
        )
        self._index.remember(place.room, ts, root=place.thread_root, text=text)
        return ts

    async def _media(
        self, place: ChatAddress, author: Author, media: Media, prefix: str | None, txn_id: str
    ) -> str:
        if media.data is None:
            raise PermanentDeliveryError("the media was not downloaded from WhatsApp")
        filename = convert.media_filename(media, txn_id.rsplit("-", 1)[-1])
        comment = convert.media_comment(media, author)
        if prefix:
            comment = f"{prefix}\n{comment}" if comment else prefix
        data = media.data
        return await self._once(
            txn_id,
            0,
            lambda: self._upload(place, data, filename, comment),
            place=place,
            file=FileKey(filename, len(data)),
        )

    async def _contacts(
        self,
        place: ChatAddress,
        author: Author,
        cards: tuple[ContactCard, ...],
        prefix: str | None,
        txn_id: str,
    ) -> tuple[str, ...]:
        """Each contact as readable text (name and numbers) followed by its .vcf file."""
        ids: list[str] = []
        for number, card in enumerate(cards):
            text = convert.contact_text(card)
            first = prefix if number == 0 else None
            ids.append(await self._text(place, author, text, first, txn_id, part=2 * number))
            vcf = card.vcard.encode()

            async def upload(card: ContactCard = card, vcf: bytes = vcf) -> str:
                return await self._upload(place, vcf, convert.vcard_filename(card), "")

            file = FileKey(convert.vcard_filename(card), len(vcf))
            ids.append(await self._once(txn_id, 2 * number + 1, upload, place=place, file=file))
        return tuple(ids)

    async def _quote(self, place: ChatAddress, reply_to: str) -> str:
        known = self._index.get(place.room, reply_to)
        if known is not None and known[1]:
            return convert.quoted(known[1])
        try:
            found = await self._api.call(
                "conversations_replies", channel=place.room, ts=reply_to, limit=1
            )
        except DeliveryError as exc:
            log.info("quoted message %s not readable: %s", reply_to, exc.explanation)
            return convert.quoted(None)
        messages = [m for m in found.get("messages") or [] if m.get("ts") == reply_to]
        return convert.quoted(messages[0].get("text") if messages else None)

    async def react(
        self, place: ChatAddress, author: Author, *, target: str, emoji: str, txn_id: str
    ) -> str | None:
        """A WhatsApp reaction replaces the sender's previous one, as on the phone."""
        key = (place.room, target)
        previous = self._reactions.pop(key, None)
        if previous is not None:
            await self._reaction("reactions_remove", place, target, previous)
        if not emoji:
            return None
        name = convert.reaction_name(emoji)
        if name is None or target.startswith("F"):  # unknown emoji, or a file id
            text = f"_reacted {emoji}_"
            return await self._text(place, author, text, None, txn_id)
        await self._reaction("reactions_add", place, target, name)
        self._reactions[key] = name
        return None

    async def edit(
        self, place: ChatAddress, author: Author, *, target: str, new: Text, txn_id: str
    ) -> str | None:
        text = convert.text_of(new.body)
        if author.kind is AuthorKind.NOTE:
            text = convert.note_text(text)
        if target.startswith("F"):  # a file's caption cannot be edited: say so in the thread
            return await self._text(place, author, f"_edited:_ {text}", None, txn_id)
        await self._api.call(
            "chat_update", pace=place.room, channel=place.room, ts=target, text=text
        )
        self._index.remember(place.room, target, root=place.thread_root, text=text)
        return None

    async def delete(self, place: ChatAddress, author: Author, *, target: str) -> None:
        if target.startswith("F"):
            await self._tolerate("file_not_found", "files_delete", pace=place.room, file=target)
            return
        await self._tolerate(
            "message_not_found", "chat_delete", pace=place.room, channel=place.room, ts=target
        )

    async def mark_receipt(
        self, place: ChatAddress, author: Author, *, target: str, status: AckStatus
    ) -> None:
        """☑️ delivered, ✅ read (the first replaced), as the bot's reactions on the
        message; a file (``F…``) cannot carry one."""
        name = RECEIPT_REACTIONS.get(status)
        if name is None or target.startswith("F"):
            return
        if status is AckStatus.READ:
            delivered = RECEIPT_REACTIONS[AckStatus.DELIVERED]
            await self._reaction("reactions_remove", place, target, delivered)
        await self._reaction("reactions_add", place, target, name)

    async def notice(self, place: ChatAddress, text: str, *, txn_id: str) -> str:
        args = {"text": convert.text_of(text), "metadata": txn_metadata(txn_id, 0)}
        return await self._once(
            txn_id, 0, lambda: self._post_message(place.room, place, args), place=place
        )

    async def post_image(
        self, place: ChatAddress, *, data: bytes, filename: str, caption: str, replaces: str | None
    ) -> str:
        """A QR code: the new image first, then the one it replaces is deleted."""
        posted = await self._upload(place, data, filename, convert.text_of(caption))
        if replaces:
            try:
                await self.delete(place, Author(AuthorKind.BOT, self._bot.name), target=replaces)
            except DeliveryError as exc:
                log.warning("old QR code %s not removed: %s", replaces, exc.explanation)
        return posted

    async def set_topic(self, room: str, text: str) -> None:
        try:
            await self._api.call(
                "conversations_setTopic", pace=room, channel=room, topic=text[:250]
            )
        except SlackCallError as exc:
            if exc.retry_after is not None:
                raise
            log.warning("topic of %s not set: %s", room, exc.explanation)

    # --- Slack calls -----------------------------------------------------------------

    async def _post_message(
        self, channel: str, place: ChatAddress | None, args: dict[str, Any]
    ) -> str:
        if place is not None and place.thread_root:
            args = {**args, "thread_ts": place.thread_root}
        found = await self._api.call(
            "chat_postMessage",
            pace=channel,
            channel=channel,
            unfurl_links=False,
            unfurl_media=False,
            **args,
        )
        return str(found["ts"])

    async def _upload(self, place: ChatAddress, data: bytes, filename: str, comment: str) -> str:
        """Files v2 upload into the thread; returns the share's ts (else the file id)."""
        args: dict[str, Any] = {"channel": place.room, "file": data, "filename": filename}
        args["title"] = filename
        if place.thread_root:
            args["thread_ts"] = place.thread_root
        if comment:
            args["initial_comment"] = comment
        found = await self._api.call("files_upload_v2", pace=place.room, **args)
        files = found.get("files") or [found.get("file") or {}]
        file_id = str(files[0].get("id") or "")
        if not file_id:
            raise DeliveryError("Slack did not return the uploaded file's id")
        return await self._share_ts(place, file_id)

    async def _share_ts(self, place: ChatAddress, file_id: str) -> str:
        """The ts of the message that shares ``file_id`` in the thread, else the file id."""
        if not place.thread_root:
            return file_id
        try:
            found = await self._api.call(
                "conversations_replies", channel=place.room, ts=place.thread_root
            )
        except DeliveryError as exc:
            log.info("share of %s not found: %s", file_id, exc.explanation)
            return file_id
        for message in reversed(found.get("messages") or []):
            if any(f.get("id") == file_id for f in message.get("files") or []):
                ts = str(message["ts"])
                self._index.remember(place.room, ts, root=place.thread_root)
                return ts
        return file_id

    async def _reaction(self, method: str, place: ChatAddress, target: str, name: str) -> None:
        """``reactions_add`` or ``reactions_remove``: Slack's answer that the reaction
        is there already, or gone already, means it is done."""
        harmless = "already_reacted" if method == "reactions_add" else "no_reaction"
        await self._tolerate(
            harmless, method, pace=place.room, channel=place.room, timestamp=target, name=name
        )

    async def _tolerate(self, harmless: str, method: str, **args: Any) -> None:
        """Call ``method``; Slack's ``harmless`` error means it is done already."""
        try:
            await self._api.call(method, **args)
        except SlackCallError as exc:
            if exc.error != harmless:
                raise

    async def _once(
        self,
        txn_id: str,
        part: int,
        send: Callable[[], Awaitable[str]],
        *,
        place: ChatAddress | None = None,
        file: FileKey | None = None,
    ) -> str:
        """Post part ``part`` of delivery ``txn_id`` into ``place`` (a thread, or the
        channel itself) unless it is already there."""
        if place is not None and place.thread_root:
            thread: Thread = (place.room, place.thread_root)
            return await self._ledger.once(txn_id, part, send, thread=thread, file=file)
        channel = place.room if place is not None else None
        return await self._ledger.once(txn_id, part, send, channel=channel, file=file)
