"""Incoming Slack events, slash commands and button clicks → calls into the core.

Each listener runs the core call to completion before acknowledging (the AsyncApp
runs with ``process_before_response``), so an envelope or HTTP event is acked only
once its work is persisted. Redeliveries are harmless: the relay ignores an event id
it has seen in the same channel (message ``ts``; ``event_id`` for edits, deletions
and reactions, which Slack keeps across retries), and runs a command once per event
(a slash command's ``trigger_id``; a click's ``action_ts`` with its user and card),
so a replayed click or slash command is answered "already done" instead of running
again.

Payloads are read by type (:mod:`bridge.slack.payload`); files attendants share in a
ticket thread are fetched by :mod:`bridge.slack.files`. A file is checked against
WhatsApp's limit for its kind and ``media.max_size_mb`` (:mod:`bridge.media_limits`)
before it is downloaded (the size Slack declares) and while it is (the bytes that
arrive); one refused there (too large, another host) is named in the thread instead of
sent, and the message's text still goes.

Every command (a ``!command`` message in a channel or a thread, ``/whatsapp``, a card
button) gets an answer where it was typed: its reply, a refusal (someone who is not
staff of the company: ephemeral, and nothing else happens), or, in a channel the bridge
does not serve, :data:`NOT_BRIDGED`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp

from bridge import formatting, vcard
from bridge.cache import bounded, expiring
from bridge.clock import Clock
from bridge.config import MediaConfig
from bridge.core.commands import is_command, note_command_text
from bridge.core.frontend import (
    Attendant,
    AttendantPost,
    ChatAddress,
    FrontendInbox,
    Reply,
    ThreadEvent,
)
from bridge.errors import BridgeError, DeliveryError, InvalidInput, PermanentDeliveryError
from bridge.media_limits import FileTooLarge, SizeLimit, toward_whatsapp
from bridge.model import AnyContent, Deletion, Edit, Media, Reaction, Text
from bridge.slack import convert
from bridge.slack.payload import Click, Fields, SharedFile
from bridge.slack.ratelimit import PacedApi, SlackCallError

log = logging.getLogger("bridge.slack.events")

SLASH_COMMAND = "/whatsapp"
NAME_LIFETIME_SECONDS = 3600.0  # a display name is asked for again after an hour
BUTTON_COMMANDS = {convert.ACCEPT_ACTION: "!accept", convert.CLOSE_ACTION: "!close"}
_HANDLED_SUBTYPES = {None, "file_share", "thread_broadcast", "message_changed", "message_deleted"}
NOT_BRIDGED = Reply(
    "This channel is not bridged to WhatsApp: commands work in a session's channel, "
    "its ticket threads and the ops channel.",
    ephemeral=True,
)


@dataclass(frozen=True)
class BotIdentity:
    user_id: str = ""
    bot_id: str = ""
    name: str = "zapbridge"

    def is_self(self, item: dict[str, Any]) -> bool:
        return bool(
            (self.bot_id and item.get("bot_id") == self.bot_id)
            or (self.user_id and item.get("user") == self.user_id)
        )


class UserDirectory:
    """Slack user id → the name the bridge shows (display name, else real name),
    remembered for ``NAME_LIFETIME_SECONDS``: people rename themselves."""

    def __init__(self, api: PacedApi, *, clock: Clock, size: int = 2000) -> None:
        self._api = api
        self._names: MutableMapping[str, str] = expiring(
            NAME_LIFETIME_SECONDS, size=size, timer=clock.monotonic
        )

    async def name_of(self, user_id: str) -> str:
        cached = self._names.get(user_id)
        if cached is not None:
            return cached
        try:
            user = (await self._api.call("users_info", user=user_id)).get("user") or {}
        except DeliveryError as exc:
            log.warning("cannot look up Slack user %s: %s", user_id, exc.explanation)
            return user_id
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
            or user_id
        )
        self._names[user_id] = name
        return name

    async def names_in(self, text: str) -> dict[str, str]:
        return {uid: await self.name_of(uid) for uid in convert.mentioned_users(text)}


class MessageIndex:
    """Recent messages seen or posted: ts → (thread root, plain text). Bounded; lost on
    restart, when the Web API is asked instead."""

    def __init__(self, size: int = 5000) -> None:
        self._items: MutableMapping[tuple[str, str], tuple[str | None, str]] = bounded(size)

    def remember(self, channel: str, ts: str, *, root: str | None, text: str = "") -> None:
        self._items[(channel, ts)] = (root, text)

    def get(self, channel: str, ts: str) -> tuple[str | None, str] | None:
        return self._items.get((channel, ts))


InboxSource = Callable[[], FrontendInbox | None]


class Downloader(Protocol):
    async def __call__(self, url: str, *, limit: SizeLimit, announced: int | None) -> bytes: ...


_MAX_NAME = 1000  # subtypes, reaction names


class SlackEvents:
    """The listeners registered on the bolt app (:meth:`register`).

    Every field a listener uses is read through :class:`~bridge.slack.payload.Fields`
    before any work starts: a payload of the wrong shape raises InvalidInput (answered
    by ``bridge.slack.failures``) with nothing persisted."""

    def __init__(
        self,
        *,
        inbox: InboxSource,
        api: PacedApi,
        users: UserDirectory,
        index: MessageIndex,
        bot: Callable[[], BotIdentity],
        download: Downloader,
        media: MediaConfig,
    ) -> None:
        self._inbox = inbox
        self._api = api
        self._users = users
        self._index = index
        self._bot = bot
        self._download = download
        self._media_config = media

    def register(self, app: AsyncApp) -> None:
        app.event("message")(self.on_message)
        app.event("reaction_added")(self.on_reaction)
        app.event("reaction_removed")(self.on_reaction)
        app.command(SLASH_COMMAND)(self.on_slash_command)
        for action_id in BUTTON_COMMANDS:
            app.action(action_id)(self.on_button)
        app.event(re.compile(".*"))(self.on_other_event)  # ack what we do not handle

    # --- listeners ----------------------------------------------------------------

    async def on_message(self, body: dict[str, Any], ack: Any) -> None:
        await self.message_envelope(body)
        await ack()  # only now: the work is persisted (an exception leaves it unacked)

    async def message_envelope(self, body: dict[str, Any]) -> None:
        """A ``message`` event's work, persisted on return; Socket Mode calls this
        without bolt (``bridge.slack.socket``), then acknowledges."""
        envelope = Fields(body, "")
        await self._message(envelope.obj("event"), event_id=envelope.ident("event_id"))

    async def on_reaction(self, body: dict[str, Any], ack: Any) -> None:
        envelope = Fields(body, "")
        await self._reaction(envelope.obj("event"), event_id=envelope.ident("event_id"))
        await ack()

    async def on_other_event(self, ack: Any) -> None:
        await ack()

    async def on_slash_command(self, command: dict[str, Any], ack: Any) -> None:
        """``/whatsapp tickets`` → ``!tickets``; the reply is the ack's response."""
        fields = Fields(command, "")
        channel, user = fields.ident("channel_id"), fields.ident("user_id")
        trigger = fields.ident("trigger_id")  # one per invocation: the dedupe key
        text = "!" + ((fields.optional_text("text") or "").strip() or "help")
        event = ThreadEvent(
            frontend="slack",
            place=ChatAddress(channel),
            event_id=f"slash:{trigger}",
            attendant=Attendant(user, await self._users.name_of(user)),
        )
        reply = await self._command(event, text) or NOT_BRIDGED
        kind = "ephemeral" if reply.ephemeral else "in_channel"
        await ack(text=convert.text_of(reply.text), response_type=kind)

    async def on_button(self, body: dict[str, Any], ack: Any) -> None:
        """Accept / Close on a ticket card → ``!accept`` / ``!close`` in its thread."""
        click = Click.read(Fields(body, ""))
        command = BUTTON_COMMANDS.get(click.action_id)
        if command is None:  # bolt routes only these ids here
            raise InvalidInput("actions[0].action_id: not a ticket card button")
        event = ThreadEvent(
            frontend="slack",
            place=ChatAddress(click.channel, click.root),
            # one click: the same action_ts by the same user on the same card
            event_id=f"action:{click.action_ts}:{click.user}:{click.root}",
            attendant=Attendant(click.user, await self._users.name_of(click.user)),
        )
        reply = await self._command(event, command) or NOT_BRIDGED
        await ack()
        await self.answer(event, reply)

    # --- messages --------------------------------------------------------------------

    async def _message(self, event: Fields, *, event_id: str) -> None:
        subtype = event.optional_text("subtype", limit=_MAX_NAME)
        if subtype not in _HANDLED_SUBTYPES:
            return
        if subtype == "message_changed":
            await self._changed(event, event_id=event_id)
        elif subtype == "message_deleted":
            await self._deleted(event, event_id=event_id)
        elif not self._from_bot(event):
            await self._posted(event)

    def _from_bot(self, item: Fields) -> bool:
        bot_id, user = item.optional_ident("bot_id"), item.optional_ident("user")
        return bool(bot_id or not user or self._bot().is_self(item.data))

    async def _posted(self, event: Fields) -> None:
        channel, ts, user = event.ident("channel"), event.ts("ts"), event.ident("user")
        root = event.optional_ts("thread_ts")
        text = event.optional_text("text") or ""
        files = [SharedFile.read(file) for file in event.objects("files")]
        in_thread = root is not None and root != ts
        if not in_thread and not text.lstrip().startswith("!"):
            return  # channel chatter outside ticket threads stays in Slack
        place = ChatAddress(channel, root if in_thread else None)
        self._index.remember(channel, ts, root=place.thread_root, text=text)
        attendant = Attendant(user, await self._users.name_of(user))
        body = await self._whatsapp_text(text)
        if is_command(body) and not (in_thread and note_command_text(body) is not None):
            # its files, if any, are not sent; "!note …" in a thread is a post (a note)
            typed = ThreadEvent(frontend="slack", place=place, event_id=ts, attendant=attendant)
            await self.answer(typed, await self._command(typed, body) or NOT_BRIDGED)
            return
        media: list[Media] = []
        refused: list[tuple[SharedFile, PermanentDeliveryError]] = []
        for file in files:
            try:
                media.append(await self._media(file))
            except PermanentDeliveryError as exc:
                refused.append((file, exc))
        if not media and (body or not files):
            await self._post(place, ts, attendant, Text(body))
        for number, item in enumerate(media):
            event_id = ts if number == 0 else f"{ts}:{number}"
            contact = vcard.contacts_of_file(item)  # a .vcf: a WhatsApp contact card
            if contact is not None:
                if number == 0 and body:  # a contact card has no caption: the text first
                    await self._post(place, ts, attendant, Text(body))
                    event_id = f"{ts}:contact"
                await self._post(place, event_id, attendant, contact)
                continue
            if number == 0 and body:
                item = replace(item, caption=body)
            await self._post(place, event_id, attendant, item)
        for file, error in refused:
            notice = ThreadEvent(frontend="slack", place=place, event_id=ts, attendant=attendant)
            await self.answer(notice, Reply(_not_sent(file, error)))

    async def _changed(self, event: Fields, *, event_id: str) -> None:
        message, previous = event.obj_or_empty("message"), event.obj_or_empty("previous_message")
        new_text = message.optional_text("text")
        if self._from_bot(message) or new_text == previous.optional_text("text"):
            return  # our own edits, and unfurls / thread bookkeeping that change no text
        root, ts = message.optional_ts("thread_ts"), message.ts("ts")
        if root is None or root == ts:
            return
        channel, user = event.ident("channel"), message.ident("user")
        attendant = Attendant(user, await self._users.name_of(user))
        content = Edit(target=ts, new=Text(await self._whatsapp_text(new_text or "")))
        await self._post(ChatAddress(channel, root), f"edit:{event_id}", attendant, content)

    async def _deleted(self, event: Fields, *, event_id: str) -> None:
        previous = event.obj_or_empty("previous_message")
        if self._from_bot(previous):
            return  # who deleted a bot message is unknown: nothing to relay
        root, ts = previous.optional_ts("thread_ts"), previous.ts("ts")
        if root is None or root == ts:
            return
        channel, user = event.ident("channel"), previous.ident("user")
        attendant = Attendant(user, await self._users.name_of(user))
        content = Deletion(target=event.optional_ts("deleted_ts") or ts)
        await self._post(ChatAddress(channel, root), f"delete:{event_id}", attendant, content)

    async def _reaction(self, event: Fields, *, event_id: str) -> None:
        item = event.obj_or_empty("item")
        user = event.ident("user")
        name = event.text("reaction", limit=_MAX_NAME)
        if item.optional_text("type", limit=_MAX_NAME) != "message" or self._bot().is_self(
            event.data
        ):
            return
        channel, target = item.ident("channel"), item.ts("ts")
        emoji = convert.reaction_emoji(name)
        if emoji is None:
            log.info("reaction :%s: has no WhatsApp emoji; not relayed", name[:50])
            return
        root = await self._thread_of(channel, target)
        if root is None:
            return
        removed = event.optional_text("type", limit=_MAX_NAME) == "reaction_removed"
        content = Reaction(target=target, emoji="" if removed else emoji)
        attendant = Attendant(user, await self._users.name_of(user))
        await self._post(ChatAddress(channel, root), f"reaction:{event_id}", attendant, content)

    async def _thread_of(self, channel: str, ts: str) -> str | None:
        known = self._index.get(channel, ts)
        if known is not None:
            return known[0] or ts
        try:
            found = await self._api.call("conversations_replies", channel=channel, ts=ts, limit=1)
        except DeliveryError as exc:
            log.warning("cannot find the thread of %s in %s: %s", ts, channel, exc.explanation)
            return None
        messages = found.get("messages") or []
        return str(messages[0].get("thread_ts") or ts) if messages else None

    async def _post(
        self, place: ChatAddress, event_id: str, attendant: Attendant, content: AnyContent
    ) -> None:
        inbox = self._inbox()
        if inbox is None:
            raise BridgeError("the Slack frontend is not started")
        event = AttendantPost(
            frontend="slack", place=place, event_id=event_id, attendant=attendant, content=content
        )
        reply = await inbox.attendant_event(event)
        if reply is not None:
            await self.answer(event, reply)

    async def _command(self, event: ThreadEvent, text: str) -> Reply | None:
        inbox = self._inbox()
        if inbox is None:
            raise BridgeError("the Slack frontend is not started")
        return await inbox.command(event, text)

    async def answer(self, event: ThreadEvent, reply: Reply) -> None:
        """Post a reply where the attendant acted (ephemeral replies only to them).

        An ephemeral reply Slack refuses (``user_not_in_channel``, a user of another
        workspace …) is posted for the channel instead, naming the user, so nobody who
        typed a command is left without an answer."""
        place = event.place
        user = event.attendant.user_id
        args: dict[str, Any] = {"channel": place.room, "text": convert.text_of(reply.text)}
        if place.thread_root:
            args["thread_ts"] = place.thread_root
        try:
            if reply.ephemeral:
                try:
                    await self._api.call("chat_postEphemeral", pace=place.room, user=user, **args)
                    return
                except SlackCallError as exc:
                    if exc.retry_after is not None:
                        raise
                    log.warning(
                        "cannot answer %s ephemerally in %s (%s): answering in the open",
                        user,
                        place.room,
                        exc.error,
                    )
                args["text"] = f"<@{user}> {args['text']}"
            await self._api.call("chat_postMessage", pace=place.room, **args)
        except DeliveryError as exc:
            log.error("cannot answer %s in %s: %s", user, place.room, exc)

    # --- content ---------------------------------------------------------------------

    async def _whatsapp_text(self, text: str) -> str:
        names = await self._users.names_in(text)
        return formatting.slack_to_whatsapp(text, user_resolver=names.get)

    async def _media(self, file: SharedFile) -> Media:
        """The file's bytes, within what WhatsApp takes for its kind: a size Slack
        declares over the limit is refused before any request is made."""
        kind = convert.media_kind_of(file.mimetype, slack_subtype=file.subtype)
        limit = toward_whatsapp(kind, self._media_config)
        limit.check(file.size)
        if not file.url:
            raise PermanentDeliveryError("Slack gave no address to download it from")
        data = await self._download(file.url, limit=limit, announced=file.size)
        return Media(kind, file.mimetype, data=data, filename=file.name, size=len(data))


def _not_sent(file: SharedFile, error: PermanentDeliveryError) -> str:
    """The thread's notice about a file that did not go: for one too large, the words
    the relay and the Matrix frontend use (``⚠️ not sent: the video is 17 MB; …``)."""
    if isinstance(error, FileTooLarge):
        return f"⚠️ not sent: {error.explanation} ({file.shown_name})"
    return f"⚠️ {file.shown_name} was not sent to the customer: {error.explanation}."
