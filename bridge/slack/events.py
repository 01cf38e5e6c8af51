"""Incoming Slack events, slash commands and button clicks → calls into the core.

Each listener runs the core call to completion before acknowledging (the AsyncApp
runs with ``process_before_response``), so an envelope or HTTP event is acked only
once its work is persisted. Redeliveries are harmless: the relay ignores an event id
it has seen in the same channel (message ``ts``; ``event_id`` for edits, deletions
and reactions, which Slack keeps across retries).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp

from bridge import formatting
from bridge.core.frontend import (
    Attendant,
    AttendantPost,
    FrontendInbox,
    Place,
    Reply,
    ThreadEvent,
)
from bridge.errors import BridgeError, DeliveryError
from bridge.model import AnyContent, Deletion, Edit, Media, Reaction, Text
from bridge.slack import convert
from bridge.slack.ratelimit import PacedApi

log = logging.getLogger("bridge.slack.events")

SLASH_COMMAND = "/whatsapp"
BUTTON_COMMANDS = {convert.ACCEPT_ACTION: "!accept", convert.CLOSE_ACTION: "!close"}
_HANDLED_SUBTYPES = {None, "file_share", "thread_broadcast", "message_changed", "message_deleted"}


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
    """Slack user id → the name the bridge shows (display name, else real name)."""

    def __init__(self, api: PacedApi, *, size: int = 2000) -> None:
        self._api = api
        self._names: OrderedDict[str, str] = OrderedDict()
        self._size = size

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
        while len(self._names) > self._size:
            self._names.popitem(last=False)
        return name

    async def names_in(self, text: str) -> dict[str, str]:
        return {uid: await self.name_of(uid) for uid in convert.mentioned_users(text)}


class MessageIndex:
    """Recent messages seen or posted: ts → (thread root, plain text). Bounded; lost on
    restart, when the Web API is asked instead."""

    def __init__(self, size: int = 5000) -> None:
        self._items: OrderedDict[tuple[str, str], tuple[str | None, str]] = OrderedDict()
        self._size = size

    def remember(self, channel: str, ts: str, *, root: str | None, text: str = "") -> None:
        self._items[(channel, ts)] = (root, text)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def get(self, channel: str, ts: str) -> tuple[str | None, str] | None:
        return self._items.get((channel, ts))


InboxSource = Callable[[], FrontendInbox | None]
Downloader = Callable[[str], Awaitable[bytes]]


class SlackEvents:
    """The listeners registered on the bolt app (:meth:`register`)."""

    def __init__(
        self,
        *,
        inbox: InboxSource,
        api: PacedApi,
        users: UserDirectory,
        index: MessageIndex,
        bot: Callable[[], BotIdentity],
        download: Downloader,
    ) -> None:
        self._inbox = inbox
        self._api = api
        self._users = users
        self._index = index
        self._bot = bot
        self._download = download

    def register(self, app: AsyncApp) -> None:
        app.event("message")(self.on_message)
        app.event("reaction_added")(self.on_reaction)
        app.event("reaction_removed")(self.on_reaction)
        app.command(SLASH_COMMAND)(self.on_slash_command)
        for action_id in BUTTON_COMMANDS:
            app.action(action_id)(self.on_button)
        app.event(re.compile(".*"))(self.on_other_event)  # ack what we do not handle

    # --- listeners ----------------------------------------------------------------

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], ack: Any) -> None:
        await self._message(event, event_id=str(body.get("event_id") or ""))
        await ack()  # only now: the work is persisted (an exception leaves it unacked)

    async def on_reaction(self, body: dict[str, Any], event: dict[str, Any], ack: Any) -> None:
        await self._reaction(event, event_id=str(body.get("event_id") or ""))
        await ack()

    async def on_other_event(self, ack: Any) -> None:
        await ack()

    async def on_slash_command(self, command: dict[str, Any], ack: Any) -> None:
        """``/whatsapp tickets`` → ``!tickets``; the reply is the ack's response."""
        channel, user = command.get("channel_id", ""), command.get("user_id", "")
        text = "!" + (command.get("text") or "help").strip()
        event = ThreadEvent(
            frontend="slack",
            place=Place(channel),
            event_id=f"slash:{command.get('trigger_id', '')}",
            attendant=Attendant(user, await self._users.name_of(user)),
        )
        reply = await self._command(event, text)
        if reply is None:
            await ack(text="This channel is not bridged to WhatsApp.")
            return
        kind = "ephemeral" if reply.ephemeral else "in_channel"
        await ack(text=convert.text_of(reply.text), response_type=kind)

    async def on_button(self, body: dict[str, Any], ack: Any) -> None:
        """Accept / Close on a ticket card → ``!accept`` / ``!close`` in its thread."""
        action = (body.get("actions") or [{}])[0]
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id", ""
        )
        root = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get(
            "message_ts"
        )
        user = (body.get("user") or {}).get("id", "")
        event = ThreadEvent(
            frontend="slack",
            place=Place(channel, root),
            event_id=f"action:{action.get('action_ts', '')}",
            attendant=Attendant(user, await self._users.name_of(user)),
        )
        reply = await self._command(event, BUTTON_COMMANDS[action.get("action_id", "")])
        await ack()
        if reply is not None:
            await self.answer(event, reply)

    # --- messages --------------------------------------------------------------------

    async def _message(self, event: dict[str, Any], *, event_id: str) -> None:
        subtype = event.get("subtype")
        if subtype not in _HANDLED_SUBTYPES:
            return
        if subtype == "message_changed":
            await self._changed(event, event_id=event_id)
        elif subtype == "message_deleted":
            await self._deleted(event, event_id=event_id)
        elif not self._from_bot(event):
            await self._posted(event)

    def _from_bot(self, item: dict[str, Any]) -> bool:
        return bool(item.get("bot_id") or not item.get("user") or self._bot().is_self(item))

    async def _posted(self, event: dict[str, Any]) -> None:
        channel, ts, user = event["channel"], event["ts"], event["user"]
        root = event.get("thread_ts")
        text = event.get("text") or ""
        in_thread = root is not None and root != ts
        if not in_thread and not text.lstrip().startswith("!"):
            return  # channel chatter outside ticket threads stays in Slack
        place = Place(channel, root if in_thread else None)
        self._index.remember(channel, ts, root=place.thread_root, text=text)
        attendant = Attendant(user, await self._users.name_of(user))
        body = await self._whatsapp_text(text)
        files = event.get("files") or []
        if not files:
            await self._post(place, ts, attendant, Text(body))
            return
        for number, file in enumerate(files):
            media = await self._media(file, caption=body if number == 0 else None)
            await self._post(place, ts if number == 0 else f"{ts}:{number}", attendant, media)

    async def _changed(self, event: dict[str, Any], *, event_id: str) -> None:
        message = event.get("message") or {}
        previous = event.get("previous_message") or {}
        if self._from_bot(message) or message.get("text") == previous.get("text"):
            return  # our own edits, and unfurls / thread bookkeeping that change no text
        root = message.get("thread_ts")
        if root is None or root == message.get("ts"):
            return
        channel = event["channel"]
        attendant = Attendant(message["user"], await self._users.name_of(message["user"]))
        new = Text(await self._whatsapp_text(message.get("text") or ""))
        content = Edit(target=message["ts"], new=new)
        await self._post(Place(channel, root), f"edit:{event_id}", attendant, content)

    async def _deleted(self, event: dict[str, Any], *, event_id: str) -> None:
        previous = event.get("previous_message") or {}
        if self._from_bot(previous):
            return  # who deleted a bot message is unknown: nothing to relay
        root = previous.get("thread_ts")
        if root is None or root == previous.get("ts"):
            return
        channel, user = event["channel"], previous["user"]
        attendant = Attendant(user, await self._users.name_of(user))
        content = Deletion(target=event.get("deleted_ts") or previous["ts"])
        await self._post(Place(channel, root), f"delete:{event_id}", attendant, content)

    async def _reaction(self, event: dict[str, Any], *, event_id: str) -> None:
        item, user = event.get("item") or {}, event.get("user", "")
        if item.get("type") != "message" or self._bot().is_self(event):
            return
        channel, target = item["channel"], item["ts"]
        emoji = convert.reaction_emoji(event.get("reaction", ""))
        if emoji is None:
            log.info("reaction :%s: has no WhatsApp emoji; not relayed", event.get("reaction"))
            return
        root = await self._thread_of(channel, target)
        if root is None:
            return
        removed = event.get("type") == "reaction_removed"
        content = Reaction(target=target, emoji="" if removed else emoji)
        attendant = Attendant(user, await self._users.name_of(user))
        await self._post(Place(channel, root), f"reaction:{event_id}", attendant, content)

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
        self, place: Place, event_id: str, attendant: Attendant, content: AnyContent
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
        """Post a reply where the attendant acted (ephemeral replies only to them)."""
        place = event.place
        args: dict[str, Any] = {"channel": place.room, "text": convert.text_of(reply.text)}
        if place.thread_root:
            args["thread_ts"] = place.thread_root
        try:
            if reply.ephemeral:
                await self._api.call(
                    "chat_postEphemeral", pace=place.room, user=event.attendant.user_id, **args
                )
            else:
                await self._api.call("chat_postMessage", pace=place.room, **args)
        except DeliveryError as exc:
            log.error("cannot answer %s in %s: %s", event.attendant.user_id, place.room, exc)

    # --- content ---------------------------------------------------------------------

    async def _whatsapp_text(self, text: str) -> str:
        names = await self._users.names_in(text)
        return formatting.slack_to_whatsapp(text, user_resolver=names.get)

    async def _media(self, file: dict[str, Any], *, caption: str | None) -> Media:
        url = file.get("url_private_download") or file.get("url_private")
        if not url:
            raise BridgeError(f"Slack file {file.get('id')} has no download URL")
        data = await self._download(url)
        mimetype = file.get("mimetype") or "application/octet-stream"
        kind = convert.media_kind_of(mimetype, slack_subtype=file.get("subtype"))
        return Media(
            kind,
            mimetype,
            data=data,
            filename=file.get("name") or None,
            caption=caption or None,
            size=len(data),
        )


async def download_private(session: aiohttp.ClientSession, url: str, *, token: str) -> bytes:
    """A ``url_private`` file's bytes (Slack wants the bot token as a Bearer header)."""
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with session.get(url, headers=headers) as response:
            if response.status != 200:
                raise DeliveryError(f"Slack file download failed: HTTP {response.status}")
            return await response.read()
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"Slack file download failed: {exc}") from exc
