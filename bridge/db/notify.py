"""Wake-ups between instances on one PostgreSQL: LISTEN/NOTIFY (docs/cluster.md).

:class:`Notifier` listens on a dedicated asyncpg connection of its own (the pool's
connections keep no session state). When that connection drops, it reconnects with
backoff and listens again, then calls the ``on_resumed`` hooks: what was notified
meanwhile is lost, so a listener looks at everything once. NOTIFY is never the only
way work is found: pollers stay, and a lost notification delays work by at most one
poll.

Channel names are scoped by the database schema (``zapbridge.<schema>.<name>``), so
bridges sharing one database in different schemas (tests do) do not hear each other.
``notify`` sends through the pool (``pg_notify``); a payload is at most
:data:`MAX_PAYLOAD_BYTES` (PostgreSQL's limit is 8000).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable

import asyncpg

from bridge.backoff import Backoff
from bridge.clock import Clock
from bridge.db.database import PostgresDatabase
from bridge.errors import BridgeError, DatabaseError

log = logging.getLogger("bridge.db.notify")

MAX_PAYLOAD_BYTES = 7900
_MAX_CHANNEL_BYTES = 63  # PostgreSQL's identifier length

Listener = Callable[[str], None]  # payload → None; runs on the event loop, must not block
ResumedHook = Callable[[], None]


def channel_name(scope: str, name: str) -> str:
    """``zapbridge.<scope>.<name>``, or with the scope hashed when that is too long."""
    full = f"zapbridge.{scope}.{name}"
    if len(full.encode()) <= _MAX_CHANNEL_BYTES:
        return full
    digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
    return f"zapbridge.{digest}.{name}"[:_MAX_CHANNEL_BYTES]


class Notifier:
    """LISTEN on a dedicated connection, reconnecting; NOTIFY through the pool."""

    CHECK_SECONDS = 30.0  # how often an idle listening connection is checked

    def __init__(
        self,
        db: PostgresDatabase,
        *,
        clock: Clock,
        rng: random.Random,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self._rng = rng
        self._backoff = Backoff(initial=reconnect_initial, maximum=reconnect_max, jitter=0.5)
        self._listeners: dict[str, list[Listener]] = {}  # by unscoped name
        self._resumed: list[ResumedHook] = []
        self._scope: str | None = None
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.connections = 0  # listening connections opened so far (tests, logs)

    @property
    def server_pid(self) -> int | None:
        """The backend of the listening connection, while connected."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def start(self) -> None:
        """Learn the schema and start listening (in the background: a database that
        is away now is retried, and pollers cover the gap)."""
        self._scope = str(await self._db.fetchval("SELECT current_schema()"))
        self._task = asyncio.create_task(self._supervise(), name="notify-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def wait_connected(self) -> None:
        """Until the listening connection is up (tests wrap it in a timeout)."""
        await self._connected.wait()

    def channel(self, name: str) -> str:
        if self._scope is None:
            raise BridgeError("the notifier is not started")
        return channel_name(self._scope, name)

    async def listen(self, name: str, listener: Listener) -> None:
        """Call ``listener`` with the payload of each notification on ``name``."""
        first = name not in self._listeners
        self._listeners.setdefault(name, []).append(listener)
        conn = self._conn
        if first and conn is not None and not conn.is_closed():
            try:
                await conn.add_listener(self.channel(name), self._dispatch)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("cannot listen on %s now: %s; it will on reconnect", name, exc)
                await self._close()

    def on_resumed(self, hook: ResumedHook) -> None:
        """Call ``hook`` after listening resumed on a new connection (not the first)."""
        self._resumed.append(hook)

    async def notify(self, name: str, payload: str) -> None:
        """Send ``payload`` on ``name`` (delivered when the caller's transaction, if
        any, commits). Raises DatabaseError when the database refuses it."""
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise DatabaseError(f"a notification of {len(payload.encode())} bytes is too long")
        await self._db.execute("SELECT pg_notify($1, $2)", self.channel(name), payload)

    # --- the listening connection ----------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while True:
            lost = asyncio.Event()
            try:
                await self._connect(lost)
            except (DatabaseError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                failures += 1
                delay = self._backoff.delay(failures, self._rng)
                log.warning("cannot listen for wake-ups: %s; retrying in %.1f s", exc, delay)
                await self._close()
                await self._clock.sleep(delay)
                continue
            failures = 0
            await self._until_lost(lost)
            log.warning("the wake-up listener lost its connection; reconnecting")
            await self._close()

    async def _connect(self, lost: asyncio.Event) -> None:
        conn = await self._db.open_connection()
        self._conn = conn
        conn.add_termination_listener(lambda _conn: lost.set())
        for name in self._listeners:
            await conn.add_listener(self.channel(name), self._dispatch)
        self.connections += 1
        self._connected.set()
        if self.connections > 1:
            log.info("the wake-up listener is back")
            for hook in self._resumed:
                self._call(hook)

    async def _until_lost(self, lost: asyncio.Event) -> None:
        """Until the connection closes, or stops answering a periodic check."""
        while not lost.is_set():
            waiter = asyncio.ensure_future(lost.wait())
            sleeper = asyncio.ensure_future(self._clock.sleep(self.CHECK_SECONDS))
            try:
                await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                sleeper.cancel()
            if lost.is_set() or self._conn is None:
                return
            try:
                await self._conn.fetchval("SELECT 1", timeout=self.CHECK_SECONDS)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                return

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None and not conn.is_closed():
            conn.terminate()  # no goodbye to a connection that may be half dead

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for name, listeners in self._listeners.items():
            if self._scope is not None and channel == self.channel(name):
                for listener in listeners:
                    self._call(listener, payload)

    @staticmethod
    def _call(hook: Callable[..., None], *args: str) -> None:
        try:
            hook(*args)
        except Exception:  # a failing listener must not stop the others
            log.exception("a wake-up listener failed")
