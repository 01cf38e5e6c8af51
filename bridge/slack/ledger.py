"""What the bridge already posted to Slack, so one delivery is never posted twice.

``chat.postMessage`` has no idempotency key. A delivery (an outbox row, named by its
``txn_id``; one part per Slack message it makes) can reach Slack and still be retried:
the process dies after Slack answered but before the outbox recorded it (``kill -9``),
or the answer is lost (a timeout, a dropped connection, a 5xx). :class:`PostLedger`
closes that window:

- every message it posts carries our txn id in Slack's message metadata
  (``{"event_type": "zapbridge_message", "event_payload": {"txn_id", "part"}}``);
- before a post into a thread that may already hold it, the ledger reads the
  thread once (``conversations.replies`` with ``include_all_metadata``, every page)
  and answers the ts found there instead of posting again. A thread may hold it
  when this process has not yet posted into it (a restart), or after an ambiguous
  failure of a post into it in this process; a thread this process created or has
  read since is trusted, so a normal post costs no extra call (replies is Tier 3);
- what it posted or found is kept in memory (bounded), so a retry of a delivery
  whose first parts went out skips them.

Files cannot carry metadata (the files v2 flow has no such argument). An upload is
recognised instead by what the bridge controls, when the thread is read for the
first delivery resumed there: a file share by the bot that follows the last message
of any other delivery in the thread (deliveries into one thread go out one at a
time, in order), whose file has the same name and size, and that no other part
claimed. Files without a WhatsApp name are named after our message id
(``image-<id>.jpg``), which makes that exact. The one case it can mistake: the
previous delivery was an identical named file (same name and size, a customer
sending the same document twice in a row) that had been recorded before the
restart; the resumed second one is then taken as already posted and not shown on
Slack again.

Channel-level posts (ticket cards, ops notices) are checked the same way against
the channel's latest ``PAGE_SIZE`` top-level messages (``conversations.history``),
once per channel after a start or an ambiguous failure: a card posted just before a
crash is among the channel's newest messages when the bridge comes back. A card
older than that page is posted again (it would take 200 newer cards or notices in
the channel between the post and its resumption).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from bridge.cache import bounded
from bridge.errors import DeliveryError
from bridge.slack.events import BotIdentity
from bridge.slack.ratelimit import PacedApi, SlackCallError

log = logging.getLogger("bridge.slack.ledger")

EVENT_TYPE = "zapbridge_message"
PAGE_SIZE = 200  # Slack's advice for paginated reads
CAPACITY = 10_000

Thread = tuple[str, str]  # (channel, thread root ts)


def txn_metadata(txn_id: str, part: int) -> dict[str, Any]:
    """The ``metadata`` argument tagging part ``part`` of delivery ``txn_id``."""
    return {"event_type": EVENT_TYPE, "event_payload": {"txn_id": txn_id, "part": part}}


def txn_of(message: dict[str, Any]) -> tuple[str, int] | None:
    """The (txn id, part) a Slack message was tagged with, if it was ours."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
        return None
    payload = metadata.get("event_payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("txn_id"), str):
        return None
    part = payload.get("part", 0)
    return (payload["txn_id"], part if isinstance(part, int) else 0)


@dataclass(frozen=True)
class FileKey:
    """How an earlier upload of a file part is recognised (see the module docstring)."""

    name: str
    size: int


class PostLedger:
    """Posts each part of a delivery at most once (see the module docstring)."""

    def __init__(
        self, api: PacedApi, bot: Callable[[], BotIdentity], *, capacity: int = CAPACITY
    ) -> None:
        self._api = api
        self._bot = bot
        # (txn id, part) → ts (or file id)
        self._sent: MutableMapping[tuple[str, int], str] = bounded(capacity)
        self._trusted: set[Thread] = set()  # threads whose posts of ours are all in _sent
        self._trusted_channels: set[str] = set()  # the same for channel-level posts
        # thread → (the delivery resumed there, the bot's file shares that may be its own)
        self._uploads: dict[Thread, tuple[str, list[dict[str, Any]]]] = {}

    def trust(self, channel: str, root: str) -> None:
        """A thread this process created: nothing of ours was in it before."""
        self._trusted.add((channel, root))

    def forget(self, channel: str, root: str | None) -> None:
        """Read the thread (``root``), else the channel, again before the next post there:
        another instance may have posted into it (docs/cluster.md, "A key that moved")."""
        if root:
            self._trusted.discard((channel, root))
        else:
            self._trusted_channels.discard(channel)

    async def once(
        self,
        txn_id: str,
        part: int,
        send: Callable[[], Awaitable[str]],
        *,
        thread: Thread | None = None,
        channel: str | None = None,
        file: FileKey | None = None,
    ) -> str:
        """The ts of part ``part`` of ``txn_id``: found, else posted by ``send``.
        ``thread`` for a post into a thread, ``channel`` for one at channel level."""
        if thread is not None and self._uploads.get(thread, (txn_id,))[0] != txn_id:
            del self._uploads[thread]  # the next delivery: the resumed one is done
        done = self._sent.get((txn_id, part))
        if done is None and thread is not None and thread not in self._trusted:
            done = await self._find(thread, txn_id, part)
        if done is None and thread is None and channel and channel not in self._trusted_channels:
            done = await self._find_in_channel(channel, txn_id, part)
        if done is None and thread is not None and file is not None:
            done = self._earlier_upload(thread, txn_id, part, file)
        if done is not None:
            return done
        try:
            ts = str(await send())
        except DeliveryError as exc:
            if exc.ambiguous:  # read it before the retry posts
                if thread is not None:
                    self._trusted.discard(thread)
                elif channel:
                    self._trusted_channels.discard(channel)
            raise
        self._sent[(txn_id, part)] = ts
        return ts

    async def _find(self, thread: Thread, txn_id: str, part: int) -> str | None:
        """Read ``thread``: remember every tagged post of ours, and keep the file shares
        that follow the last message of another delivery (they may be this one's)."""
        ours = await self._read_own(thread)
        start = 0
        for number, message in enumerate(ours):
            tagged = txn_of(message)
            if tagged is not None:
                self._sent[tagged] = str(message["ts"])
                if tagged[0] != txn_id:
                    start = number + 1
        self._trusted.add(thread)
        self._uploads[thread] = (txn_id, [m for m in ours[start:] if m.get("files")])
        found = self._sent.get((txn_id, part))
        if found is not None:
            log.info("%s part %d is already in thread %s: not posted again", txn_id, part, thread)
        return found

    async def _find_in_channel(self, channel: str, txn_id: str, part: int) -> str | None:
        """Read the channel's newest top-level messages and remember our tagged ones."""
        args: dict[str, Any] = {"channel": channel, "limit": PAGE_SIZE}
        args["include_all_metadata"] = True
        found = await self._api.call("conversations_history", **args)
        bot = self._bot()
        for message in found.get("messages") or []:
            tagged = txn_of(message) if bot.is_self(message) else None
            if tagged is not None and tagged not in self._sent:
                self._sent[tagged] = str(message["ts"])
        self._trusted_channels.add(channel)
        done = self._sent.get((txn_id, part))
        if done is not None:
            log.info("%s part %d is already in %s: not posted again", txn_id, part, channel)
        return done

    async def _read_own(self, thread: Thread) -> list[dict[str, Any]]:
        """The bot's messages in ``thread``, oldest first, metadata included."""
        channel, root = thread
        messages: list[dict[str, Any]] = []
        cursor = ""
        while True:
            args: dict[str, Any] = {"channel": channel, "ts": root, "limit": PAGE_SIZE}
            args["include_all_metadata"] = True
            if cursor:
                args["cursor"] = cursor
            try:
                found = await self._api.call("conversations_replies", **args)
            except SlackCallError as exc:
                if exc.error == "thread_not_found":
                    return []  # nothing there, ours or anyone's
                raise
            messages.extend(found.get("messages") or [])
            cursor = str((found.get("response_metadata") or {}).get("next_cursor") or "")
            if not found.get("has_more") or not cursor:
                break
        bot = self._bot()
        return [m for m in messages if bot.is_self(m)]

    def _earlier_upload(self, thread: Thread, txn_id: str, part: int, file: FileKey) -> str | None:
        """A file share found by :meth:`_find` that matches ``file`` and no part claimed."""
        candidates = self._uploads.get(thread, (txn_id, []))[1]
        claimed = set(self._sent.values())
        for message in candidates:
            ts = str(message.get("ts") or "")
            if not ts or ts in claimed:
                continue
            for shared in message.get("files") or []:
                if shared.get("name") == file.name and shared.get("size") == file.size:
                    log.info("%s part %d was uploaded before: not uploaded again", txn_id, part)
                    self._sent[(txn_id, part)] = ts
                    return ts
        return None
