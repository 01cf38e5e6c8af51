"""A database made unavailable for a while, the way an outage looks to the bridge.

- SQLite: another connection holds the write lock (``BEGIN EXCLUSIVE``): the bridge's
  writes wait out its busy timeout, then fail with "database is locked".
  :class:`SQLiteLock` holds it from this process (on a thread of its own),
  :class:`SQLiteLockProcess` from a child process.
- PostgreSQL: a throwaway database (:func:`throwaway_database`) whose connections are
  terminated (``pg_terminate_backend``) and whose new ones are refused
  (``ALTER DATABASE … ALLOW_CONNECTIONS false``, which binds superusers too):
  :class:`PostgresOutage`. The server and its other databases carry on, so tests
  running alongside are not disturbed.

Each outage has ``begin()`` and ``end()``, both async.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg


class Outage(Protocol):
    async def begin(self) -> None: ...

    async def end(self) -> None: ...


class SQLiteLock:
    """The write lock of a SQLite file, held by a connection of this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def begin(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        await asyncio.to_thread(conn.execute, "BEGIN EXCLUSIVE")  # waits for a writer to finish
        self._conn = conn

    async def end(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.execute("ROLLBACK")
            conn.close()


_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class SQLiteLockProcess:
    """The write lock of a SQLite file, held by another process until ``end``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._proc: subprocess.Popen[str] | None = None

    async def begin(self) -> None:
        proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [sys.executable, "-c", _HOLD_LOCK, str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        if line.strip() != "locked":
            proc.kill()
            raise RuntimeError(f"the lock holder did not lock {self.path}: {line!r}")
        self._proc = proc

    async def end(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        await asyncio.to_thread(proc.wait, 10)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name`` instead."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def throwaway_database(
    server_url: str, *, prefix: str = "zapbridge_outage"
) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url`` (its URL), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(server_url, name)
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class PostgresOutage:
    """Database ``url`` (on the server of ``server_url``) terminated and refused."""

    def __init__(self, server_url: str, url: str) -> None:
        self._server_url = server_url
        self.name = urlsplit(url).path.lstrip("/")
        self.terminated = 0  # connections terminated by the last begin()

    async def begin(self) -> None:
        admin = await asyncpg.connect(self._server_url)
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            self.terminated = int(
                await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    self.name,
                )
            )
        finally:
            await admin.close()

    async def end(self) -> None:
        admin = await asyncpg.connect(self._server_url)
        try:
            await admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')
        finally:
            await admin.close()
