"""A lean pool of asyncpg connections.

asyncpg's own pool costs about as much CPU per checkout as the statement it serves
(a context-manager object, a holder, a queue, and a task for every release through
``asyncio.shield``): about 55 µs of CPU per statement on this project's machine,
half of a loopback round trip's whole cost (bench/README.md). The bridge makes most
statements outside transactions, one checkout each, so this pool keeps only what the
bridge needs: a stack of idle connections, a cap, and waiters served in order.

- ``get()`` returns an idle connection at once (the most recently used: its
  prepared statements and buffers are warm), opens a new one while under the cap,
  or waits for one to come back. A connection that closed while idle (a server
  restart, ``pg_terminate_backend``) is dropped and the next one tried.
- ``put(conn)`` hands it to the oldest waiter or back to the stack. A connection
  that closed, or that is still inside a transaction (its owner was cancelled before
  the rollback ended), is not reused: it is closed and its place freed.
- Nothing is reset between checkouts: the bridge leaves no session state behind
  (the schema comes from the connection's start-up settings; LISTEN and the instance
  lock hold connections of their own for as long as they need them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger("bridge.db.pool")

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class PgPool:
    def __init__(self, connect: Connect, *, max_size: int) -> None:
        self._connect = connect
        self._max_size = max_size
        self._idle: list[asyncpg.Connection] = []
        self._out: set[asyncpg.Connection] = set()
        self._opening = 0
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection]] = collections.deque()
        self._closed = False
        self._all_back = asyncio.Event()  # set by put() when none is out after close()

    @classmethod
    async def open(cls, connect: Connect, *, max_size: int) -> PgPool:
        """A pool with one connection opened now, so a wrong URL fails here."""
        pool = cls(connect, max_size=max_size)
        pool._idle.append(await connect())
        return pool

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return len(self._idle) + len(self._out) + self._opening

    async def get(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the connection pool is closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                self._out.add(conn)
                return conn
        if self.size < self._max_size:
            return await self._open_one()
        waiter: asyncio.Future[asyncpg.Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.put(waiter.result())  # handed over just as the caller gave up
            else:
                self._waiters.remove(waiter)
            raise

    async def _open_one(self) -> asyncpg.Connection:
        self._opening += 1
        try:
            conn = await self._connect()
        finally:
            self._opening -= 1
        self._out.add(conn)
        return conn

    def put(self, conn: asyncpg.Connection) -> None:
        self._out.discard(conn)
        if self._closed:
            conn.terminate()
            if not self._out:
                self._all_back.set()
            return
        if conn.is_closed() or conn.is_in_transaction():
            self._discard(conn)
            self._fill_a_waiter()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._out.add(conn)
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: asyncpg.Connection) -> None:
        if not conn.is_closed():
            log.warning("a PostgreSQL connection left inside a transaction is closed")
            conn.terminate()

    def _fill_a_waiter(self) -> None:
        """A place came free without a connection: open one for the oldest waiter."""
        if self._closed or not self._waiters:
            return
        task = asyncio.get_running_loop().create_task(self._open_for_waiter())
        task.add_done_callback(_log_failure)

    async def _open_for_waiter(self) -> None:
        try:
            conn = await self._open_one()
        except Exception as exc:  # given to the waiter it was opened for
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(exc)
                    return
            raise
        self.put(conn)

    async def close(self, *, grace_seconds: float = 5.0) -> None:
        """Close the idle connections, give those in use ``grace_seconds`` to come
        back, then end the rest; waiters fail."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the connection pool is closed"))
        self._waiters.clear()
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close_quietly(conn) for conn in idle))
        if self._out:
            with contextlib.suppress(TimeoutError):  # the rest are ended below
                await asyncio.wait_for(self._all_back.wait(), grace_seconds)
        self.terminate()

    def terminate(self) -> None:
        """End every connection at once, as a killed process's would end."""
        self._closed = True
        for conn in (*self._idle, *self._out):
            conn.terminate()
        self._idle.clear()
        self._out.clear()


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError, TimeoutError):
        conn.terminate()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("opening a PostgreSQL connection for a waiter failed: %s", task.exception())
