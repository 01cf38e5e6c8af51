"""Catch-up after the homeserver comes back: events it accepted but never pushed.

Synapse can lose appservice events when it restarts (element-hq/synapse#11637):
events accepted while a push was in flight are marked handled and held only in
memory, so a stop drops them. They are in its database, so the bridge reads them
back itself:

- :class:`HomeserverWatch` pings ``GET /_matrix/client/versions`` every
  ``PING_INTERVAL_SECONDS`` and notes "unreachable since T" → "reachable again";
  the recovery asks for a catch-up since T (and ``/health`` reports an outage that
  lasts). A restart too short for the pings to
  see is caught by the appservice's transaction ids: Synapse on SQLite numbers
  them from 1 again after a restart, so an id lower than the previous one asks
  for a catch-up since the previous transaction arrived.
- :class:`RoomCatchUp` pages each control room backwards as the bot until
  ``MARGIN_SECONDS`` before T (at most ``PAGE_LIMIT`` pages), then feeds the events
  oldest first to the appservice's handler, which sets aside an event it cannot
  handle as it does for a pushed one (one bad event never stops a catch-up). The
  core skips the events it handled before (by event id), so feeding them again is
  harmless.

One catch-up runs at a time; requests arriving meanwhile are merged into one next
run (a flapping homeserver does not stack them). A failed catch-up (the homeserver
still starting, say) is logged and run again ``RETRY_SECONDS`` later, up to
``RETRY_LIMIT`` times in a row; after that its window waits for the next request.

Order: a transaction pushed while a catch-up is owed or running waits for it (up to
``SETTLE_TIMEOUT_SECONDS``), so the events lost in the restart reach WhatsApp
before the newer ones pushed after it. A push while the pings still say "down" is
itself the sign that the homeserver is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import aiohttp
from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixConnectionError, MatrixRequestError

from bridge.cache import bounded
from bridge.clock import Clock
from bridge.matrix.fields import Fields
from bridge.matrix.rooms import tagged_rooms

__all__ = ["HomeserverWatch", "PushLog", "RoomCatchUp", "homeserver_watch"]

log = logging.getLogger("bridge.matrix.catchup")

PING_INTERVAL_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 5.0
MARGIN_SECONDS = 120.0  # before the outage: pushes in flight, clock skew
PAGE_SIZE = 100
PAGE_LIMIT = 20
SETTLE_TIMEOUT_SECONDS = 60.0  # a push waits no longer for a catch-up to finish
RETRY_SECONDS = 5.0
RETRY_LIMIT = 3
_REMEMBERED_EVENTS = 50_000
_MAX_TXN_DIGITS = 19  # Synapse numbers transactions with a 64-bit integer

JSON = dict[str, Any]
Ping = Callable[[], Awaitable[bool]]
CatchUp = Callable[[float], Awaitable[bool]]  # since (epoch s) → whether it all worked
EventHandler = Callable[[JSON], Awaitable[None]]
_UNREACHABLE = (MatrixRequestError, MatrixConnectionError, aiohttp.ClientError, TimeoutError)


class PushLog:
    """What the appservice was pushed: the events (bounded, oldest forgotten first),
    and the last transaction id with the time it came."""

    def __init__(self, size: int = _REMEMBERED_EVENTS) -> None:
        self._events: MutableMapping[str, None] = bounded(size)
        self._last: tuple[int, float] | None = None  # (transaction number, arrival)

    def note(self, txn_id: str, events: Iterable[Any], *, now: float) -> float | None:
        """Record a transaction; returns when the previous one came if this id is
        lower than the previous one (a sign that the homeserver restarted)."""
        for raw in events:
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            if isinstance(event_id, str):
                self._events[event_id] = None
        if not (txn_id.isascii() and txn_id.isdigit() and len(txn_id) <= _MAX_TXN_DIGITS):
            return None  # not Synapse's numbering (any id is valid for the spec)
        number = int(txn_id)
        previous, self._last = self._last, (number, now)
        return previous[1] if previous is not None and number < previous[0] else None

    def was_pushed(self, event_id: str) -> bool:
        return event_id in self._events


class HomeserverWatch:
    """Pings the homeserver and runs ``catch_up(since)`` when it comes back or shows
    a sign of a restart. ``start`` then ``stop``."""

    def __init__(
        self,
        *,
        ping: Ping,
        catch_up: CatchUp,
        clock: Clock,
        interval: float = PING_INTERVAL_SECONDS,
        pushes: PushLog | None = None,
    ) -> None:
        self._ping = ping
        self._catch_up = catch_up
        self._clock = clock
        self._interval = interval
        self.pushes = pushes or PushLog()
        self._down_since: float | None = None
        self._owed: float | None = None  # the earliest "since" asked for and not yet run
        self._failed: float | None = None  # the window of a failed run, for the next one
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()  # no catch-up owed or running
        self._settled.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._retry: asyncio.Task[None] | None = None
        self._failures = 0  # failed runs in a row
        self.runs = 0  # catch-ups finished (for tests and logs)
        self.recovers: Callable[[], bool] = lambda: True
        """Whether this instance catches up after an outage its pings saw: with several
        instances every one sees it, and only the leader reads back (docs/cluster.md).
        A restart seen in the pushes' numbering is caught up where it was seen."""

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch(), name="matrix-homeserver-watch"),
            asyncio.create_task(self._work(), name="matrix-catch-up"),
        ]

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._retry] if self._retry is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._retry = [], None

    def unreachable_for(self) -> float | None:
        """Seconds since the pings found the homeserver unreachable; None while it answers."""
        return None if self._down_since is None else self._clock.now() - self._down_since

    def request(self, since: float) -> None:
        """Ask for a catch-up of the events since ``since`` (merged with any pending)."""
        if self._failed is not None:
            since, self._failed = min(since, self._failed), None
        self._owed = since if self._owed is None else min(self._owed, since)
        self._settled.clear()
        self._wake.set()

    async def note_transaction(self, txn_id: str, events: list[Any]) -> None:
        """The appservice's hook: every transaction pushed, before it is processed.
        Returns once no catch-up is owed or running (see the module docstring)."""
        previous = self.pushes.note(txn_id, events, now=self._clock.now())
        if previous is not None:
            log.info("transaction %s is numbered below the last one: a restart", txn_id)
            self.request(previous)
        if self._down_since is not None:
            self._observe(True)  # it pushes, so it is up
        if self._settled.is_set():
            return
        try:
            await asyncio.wait_for(self._settled.wait(), SETTLE_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning(
                "transaction %s handled before the catch-up finished (%.0f s): "
                "recovered events may reach WhatsApp after it",
                txn_id,
                SETTLE_TIMEOUT_SECONDS,
            )

    async def _watch(self) -> None:
        while True:
            self._observe(await self._ping())
            await self._clock.sleep(self._interval)

    def _observe(self, up: bool) -> None:
        now = self._clock.now()
        if not up:
            if self._down_since is None:
                self._down_since = now
                log.warning("the homeserver is unreachable")
            return
        if self._down_since is not None:
            since, self._down_since = self._down_since, None
            log.info("the homeserver is reachable again after %.1f s", now - since)
            if self.recovers():
                self.request(since)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            since, self._owed = self._owed, None
            if since is not None:
                await self._run(since)
            if self._owed is None:
                self._settled.set()

    async def _run(self, since: float) -> None:
        try:
            done = await self._catch_up(since)
        except Exception:  # the boundary: the frontend keeps running, the next one retries
            log.exception("the catch-up since %.0f failed; retried at the next recovery", since)
            done = False
        self.runs += 1
        if done:
            self._failures = 0
            return
        self._failed = since if self._failed is None else min(self._failed, since)
        self._failures += 1
        if self._failures <= RETRY_LIMIT and self._retry is None:
            self._retry = asyncio.create_task(self._retry_later(), name="matrix-catch-up-retry")
        elif self._failures > RETRY_LIMIT:
            log.warning(
                "the catch-up failed %d times in a row; it runs again at the next recovery",
                self._failures,
            )

    async def _retry_later(self) -> None:
        await self._clock.sleep(RETRY_SECONDS)
        self._retry = None
        if self._failed is not None:
            self.request(self._failed)


class RoomCatchUp:
    """Reads back the bridge's control rooms since an outage and feeds their events
    to the appservice's handler, oldest first."""

    def __init__(
        self,
        *,
        bot: IntentAPI,
        handle: EventHandler,
        companies: Iterable[str],
        pushes: PushLog,
        margin: float = MARGIN_SECONDS,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        self._bot = bot
        self._handle = handle
        self._companies = frozenset(companies)
        self._pushes = pushes
        self._margin = margin
        self._page_limit = page_limit

    async def __call__(self, since: float) -> bool:
        try:
            rooms = await self.control_rooms()
        except _UNREACHABLE as exc:
            log.warning("catch-up: cannot list the control rooms: %s", exc)
            return False
        results = [await self._room(room, since) for room in rooms]
        return all(results)

    async def control_rooms(self) -> list[str]:
        """The joined rooms whose ``io.zapbridge.room`` state names one of our
        companies' control rooms."""
        return [
            room
            async for room, state in tagged_rooms(self._bot)
            if state.get("kind") == "control" and state.get("company") in self._companies
        ]

    async def _room(self, room: str, since: float) -> bool:
        try:
            events = await self._events_since(room, since - self._margin)
            new = await self._feed(room, events)
        except Exception as exc:  # the boundary of one room: the others still run
            log.warning(
                "catch-up of room %s failed; retried at the next recovery: %s",
                room,
                exc,
                exc_info=True,
            )
            return False
        log.info("catch-up of room %s: %d events re-examined, %d new", room, len(events), new)
        return True

    async def _events_since(self, room: str, cutoff: float) -> list[JSON]:
        """The room's events from ``cutoff`` (epoch s) on, oldest first."""
        cutoff_ms = cutoff * 1000
        found: list[JSON] = []
        token: str | None = None
        for _ in range(self._page_limit):
            chunk, token = await self._page(room, token)
            found += [e for e in chunk if _timestamp(e) >= cutoff_ms]
            if not chunk or token is None or any(_timestamp(e) < cutoff_ms for e in chunk):
                return found[::-1]
        log.warning(
            "catch-up of room %s stopped after %d pages: older events not re-examined",
            room,
            self._page_limit,
        )
        return found[::-1]

    async def _page(self, room: str, token: str | None) -> tuple[list[JSON], str | None]:
        query = {"dir": "b", "limit": str(PAGE_SIZE)}
        if token is not None:
            query["from"] = token
        data = await self._bot.api.request(
            Method.GET, Path.v3.rooms[room].messages, query_params=query
        )
        page = data if isinstance(data, dict) else {}
        chunk = page.get("chunk")
        events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        return events, Fields(page).loose_text("end")

    async def _feed(self, room: str, events: list[JSON]) -> int:
        """Hand ``events`` to the handler (which sets aside what it cannot handle);
        returns how many were never pushed to us."""
        new = 0
        for raw in events:
            raw["room_id"] = room  # the page's room, whatever the event says
            event_id = Fields(raw).loose_text("event_id")
            new += event_id is None or not self._pushes.was_pushed(event_id)
            await self._handle(raw)
        return new


def _timestamp(event: JSON) -> float:
    stamp = Fields(event).metadata_int("origin_server_ts")
    return float(stamp) if stamp is not None else 0.0


def pinger(bot: IntentAPI, *, timeout: float = PING_TIMEOUT_SECONDS) -> Ping:
    """``GET /_matrix/client/versions`` (no auth): whether the homeserver answers 200."""
    url = bot.api.base_url / "_matrix/client/versions"
    limit = aiohttp.ClientTimeout(total=timeout)

    async def ping() -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with bot.api.session.get(url, timeout=limit) as response:
                return response.status == 200
        return False

    return ping


def homeserver_watch(
    *, bot: IntentAPI, handle: EventHandler, companies: Iterable[str], clock: Clock
) -> HomeserverWatch:
    """The watch of the Matrix frontend: pings through the bot's HTTP session, catches
    up the control rooms of ``companies`` through ``handle``."""
    pushes = PushLog()
    catch_up = RoomCatchUp(bot=bot, handle=handle, companies=companies, pushes=pushes)
    return HomeserverWatch(ping=pinger(bot), catch_up=catch_up, clock=clock, pushes=pushes)
