"""Matrix ephemeral events → the core: attendants' read receipts and typing
(docs/presence.md).

The homeserver pushes them with a transaction's events (``ephemeral``, or MSC2409's
``de.sorunome.msc2409.ephemeral`` when the stable key is absent). They are outside
data like any event: :func:`parse` reads one by type and bounds (``MalformedEvent``
for a wrong one, which the appservice sets aside), and what is not a receipt or
typing is ignored. Shapes (client-server spec, ``m.receipt`` and ``m.typing``):

- ``{"type": "m.receipt", "room_id": "!r", "content": {"$event": {"m.read":
  {"@user:hs": {"ts": 1, "thread_id": "$root"}}}}}``: ``thread_id`` is the thread's
  root, ``main`` (or absent: an unthreaded receipt) for the room's timeline;
- ``{"type": "m.typing", "room_id": "!r", "content": {"user_ids": ["@user:hs"]}}``:
  everyone typing in the room now; Synapse pushes the room's new list at each change
  (also when a user's typing expires).

:class:`MatrixEphemeral` turns them into the core's ``ThreadRead`` and
``ThreadTyping``. Typing has no thread in Matrix: it is attributed to the thread of
the attendant's latest read receipt in that room (Element sends one when a thread is
opened), if within :data:`TYPING_THREAD_SECONDS`. The bot's and ghosts' own are
ignored; whether the user is staff is the core's decision.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from bridge.cache import bounded
from bridge.clock import Clock
from bridge.core.frontend import Attendant, ChatAddress, FrontendInbox, ThreadRead, ThreadTyping
from bridge.matrix.fields import Fields, MalformedEvent

__all__ = [
    "EPHEMERAL_LIMIT",
    "MatrixEphemeral",
    "ReadReceipt",
    "Typing",
    "ephemeral_of",
    "parse",
    "with_id",
]

log = logging.getLogger("bridge.matrix.ephemeral")

FRONTEND = "matrix"
EPHEMERAL_LIMIT = 100
"""Ephemeral events read from one transaction (Synapse sends at most 100)."""
RECEIPT_EVENTS_LIMIT = 100
"""Events one ``m.receipt`` may name; users per event and ids per typing list too."""
TYPING_THREAD_SECONDS = 1800.0
"""How long a read receipt in a thread makes the reader's typing count there."""

_MAIN = "main"
_KEYS = ("ephemeral", "de.sorunome.msc2409.ephemeral")


@dataclass(frozen=True)
class ReadReceipt:
    room: str
    user: str
    event_id: str
    thread_id: str | None  # the thread's root; None for the room's timeline


@dataclass(frozen=True)
class Typing:
    room: str
    users: frozenset[str]


def ephemeral_of(body: dict[str, Any]) -> list[Any]:
    """The transaction's ephemeral events (the stable key first), at most
    :data:`EPHEMERAL_LIMIT`; the rest is dropped with a warning."""
    for key in _KEYS:
        events = body.get(key)
        if isinstance(events, list):
            if len(events) > EPHEMERAL_LIMIT:
                log.warning(
                    "%d ephemeral events in one transaction: only %d read",
                    len(events),
                    EPHEMERAL_LIMIT,
                )
            return events[:EPHEMERAL_LIMIT]
    return []


def with_id(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with an ``event_id`` of its own (ephemeral events have none), so the
    quarantine tells one set aside from another: ``ephemeral:<digest of its JSON>``."""
    if isinstance(raw.get("event_id"), str):
        return raw
    canonical = json.dumps(raw, sort_keys=True, default=str).encode("utf-8", "surrogatepass")
    return {**raw, "event_id": f"ephemeral:{hashlib.sha256(canonical).hexdigest()[:32]}"}


def parse(raw: dict[str, Any]) -> list[ReadReceipt] | Typing | None:
    """One ephemeral event: its ``m.read`` receipts, the users typing, or None (a type
    the bridge does not use). Raises ``MalformedEvent`` for a field of the wrong type
    or over the bounds."""
    event = Fields(raw)
    kind, room = event.text("type"), event.text("room_id")
    if kind not in ("m.receipt", "m.typing"):
        return None
    if not room:
        raise MalformedEvent(f"a {kind} without a room_id")
    content = event.mapping("content")
    if kind == "m.typing":
        users = content.raw("user_ids")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise MalformedEvent("content.user_ids is not a list of strings")
        if len(users) > RECEIPT_EVENTS_LIMIT:
            raise MalformedEvent(f"{len(users)} users typing, over {RECEIPT_EVENTS_LIMIT}")
        return Typing(room, frozenset(users))
    return _receipts(room, content)


def _receipts(room: str, content: Fields) -> list[ReadReceipt]:
    if len(content.data) > RECEIPT_EVENTS_LIMIT:
        raise MalformedEvent(f"a receipt for {len(content.data)} events")
    found: list[ReadReceipt] = []
    for event_id in content.data:
        readers = content.mapping(event_id).optional_mapping("m.read")
        if readers is None:
            continue  # another receipt type (m.read.private is never an attendant's)
        if len(readers.data) > RECEIPT_EVENTS_LIMIT:
            raise MalformedEvent(f"a receipt from {len(readers.data)} users")
        for user in readers.data:
            thread = readers.mapping(user).text("thread_id")
            found.append(ReadReceipt(room, user, event_id, None if thread == _MAIN else thread))
    return found


class MatrixEphemeral:
    """Hands attendants' receipts and typing to the core (see the module docstring).

    ``is_ours`` tells the bot and ghosts; ``thread_of`` the thread an event belongs to
    (the frontend's thread index), for an unthreaded receipt."""

    def __init__(
        self,
        *,
        inbox: FrontendInbox,
        is_ours: Callable[[str], bool],
        thread_of: Callable[[str], str | None],
        clock: Clock,
    ) -> None:
        self._inbox = inbox
        self._is_ours = is_ours
        self._thread_of = thread_of
        self._clock = clock
        self._typing: MutableMapping[str, frozenset[str]] = bounded()  # room → users
        # (room, user) → (thread root, monotonic time of the receipt)
        self._reading: MutableMapping[tuple[str, str], tuple[str, float]] = bounded()

    async def handle(self, raw: dict[str, Any]) -> None:
        """One ephemeral event; raises ``MalformedEvent`` (set aside by the caller)."""
        parsed = parse(raw)
        if isinstance(parsed, Typing):
            await self._typing_changed(parsed)
        elif parsed is not None:
            for receipt in parsed:
                await self._read(receipt)

    async def _read(self, receipt: ReadReceipt) -> None:
        if self._is_ours(receipt.user):
            return
        root = receipt.thread_id or self._thread_of(receipt.event_id)
        if root is None:
            return  # the room's timeline: no ticket thread
        self._reading[(receipt.room, receipt.user)] = (root, self._clock.monotonic())
        await self._inbox.thread_read(
            ThreadRead(
                frontend=FRONTEND,
                place=ChatAddress(receipt.room, root),
                event_id=receipt.event_id,
                attendant=Attendant(receipt.user, receipt.user),
            )
        )

    async def _typing_changed(self, typing: Typing) -> None:
        before = self._typing.get(typing.room, frozenset())
        self._typing[typing.room] = typing.users
        for user in sorted(typing.users ^ before):
            if not self._is_ours(user):
                await self._tell_typing(typing.room, user, user in typing.users)

    async def _tell_typing(self, room: str, user: str, typing: bool) -> None:
        reading = self._reading.get((room, user))
        if reading is None:
            return
        root, since = reading
        if self._clock.monotonic() - since > TYPING_THREAD_SECONDS:
            return
        await self._inbox.thread_typing(
            ThreadTyping(
                frontend=FRONTEND,
                place=ChatAddress(room, root),
                event_id="",
                attendant=Attendant(user, user),
                typing=typing,
            )
        )
