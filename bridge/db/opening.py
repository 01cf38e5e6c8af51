"""Opening a database: what a URL names, the SQLite file and its settings, the
PostgreSQL pool's settings, and a sentence saying why opening failed (never with
the password). :mod:`bridge.db.database` runs the statements and transactions.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from bridge import files
from bridge.db.pg_pool import PgPool
from bridge.errors import DatabaseError

SQLITE_MIN_VERSION = (3, 35, 0)  # RETURNING, and upserts on partial indexes
SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_SECONDS = 10.0
# The group commit's lanes take up to 8 (bridge/db/group_commit.py), the deliveries'
# batched reads and done-marks 2, and the instance lock 1; the rest is headroom.
PG_POOL_MAX_SIZE = 16
# Prepared statements kept per connection: the bridge has a few hundred distinct
# statements; asyncpg's default of 100 would re-prepare some of them in turn.
PG_STATEMENT_CACHE_SIZE = 1000


# --- URLs ----------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL without its password (userinfo and ``password``-like query parameters);
    a URL that cannot be parsed is not shown at all, only its scheme."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port or IPv6 host
    except ValueError:
        return f"{url.partition(':')[0][:20]}:<a malformed URL>"
    if not parts.netloc and "password" not in parts.query:
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}@{host}" if parts.username else host
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if "password" not in k]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def _password_of(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def sqlite_path(url: str) -> str:
    """``sqlite:/abs.db`` → ``/abs.db``; ``sqlite:///abs.db`` → ``/abs.db``; ``sqlite::memory:``."""
    path = url.split(":", 1)[1]
    if path.startswith("//"):
        path = path[2:]
    if not path:
        raise DatabaseError(f"database URL {url!r} names no file; use sqlite:/path/to/file.db")
    return path


# --- SQLite ------------------------------------------------------------------------


def _sqlite_open_reason(path: str, exc: BaseException) -> str:
    if path == ":memory:":
        return str(exc)
    parent = Path(path).absolute().parent
    if not parent.exists():
        return f"directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _private_files(path: str) -> None:
    """The database file created 0600 before SQLite creates it with the umask (its
    -wal, -shm and -journal files then get the same mode); existing ones tightened."""
    database = Path(path)
    if not files.create_private(database):
        siblings = [database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal")]
        files.tighten_files([database, *siblings])


def _probe_writable(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


def _configure(conn: sqlite3.Connection) -> None:
    conn.row_factory = _dict_row
    # Busy waits happen in SQLiteDatabase._retry_busy, asynchronously; the driver
    # must not block.
    conn.execute("PRAGMA busy_timeout = 0")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")


async def open_sqlite(path: str) -> sqlite3.Connection:
    """The connection to ``path`` (created 0600 if needed, checked writable), in WAL
    mode with foreign keys on, its rows dicts keyed by column name."""
    if sqlite3.sqlite_version_info < SQLITE_MIN_VERSION:
        raise DatabaseError(
            f"SQLite {sqlite3.sqlite_version} is too old; zapbridge needs 3.35 or newer"
        )
    conn: sqlite3.Connection | None = None
    try:
        if path != ":memory:":
            await asyncio.to_thread(_private_files, path)
            await asyncio.to_thread(_probe_writable, path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        _configure(conn)
    except (sqlite3.Error, OSError) as exc:
        if conn is not None:
            conn.close()
        reason = _sqlite_open_reason(path, exc)
        raise DatabaseError(f"cannot open SQLite database {path}: {reason}") from exc
    return conn


# --- PostgreSQL ------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _pg_connect_reason(exc: BaseException, url: str) -> str:
    text = str(exc)
    refused = getattr(exc, "errno", None) == errno.ECONNREFUSED
    if refused or isinstance(exc, ConnectionRefusedError) or "Connect call failed" in text:
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {_host_of(url)} ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"no answer within {PG_CONNECT_TIMEOUT_SECONDS:g} s"
    password = _password_of(url)
    text = text or type(exc).__name__
    return text.replace(password, "***") if password else text


def _pg_settings(schema: str | None) -> dict[str, str]:
    if schema is not None and not _IDENTIFIER.fullmatch(schema):
        raise DatabaseError(f"invalid PostgreSQL schema name {schema!r}")
    return {"search_path": f'"{schema}"'} if schema else {}


async def open_pg_connection(
    url: str, *, schema: str | None, settings: dict[str, str] | None = None
) -> asyncpg.Connection:
    """One connection with the pool's settings: the pool's, or one of its own for a
    session that keeps state (LISTEN, bridge/db/notify.py). ``settings``: the
    schema's, already checked."""
    if settings is None:
        settings = _pg_settings(schema)
    try:
        return await asyncpg.connect(
            url,
            timeout=PG_CONNECT_TIMEOUT_SECONDS,
            server_settings=settings,
            statement_cache_size=PG_STATEMENT_CACHE_SIZE,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        reason = _pg_connect_reason(exc, url)
        raise DatabaseError(f"cannot connect to {redact_url(url)}: {reason}") from exc


async def open_pg_pool(url: str, *, schema: str | None) -> PgPool:
    """The pool (one connection opened at once, so a wrong URL fails here), its
    search path ``schema`` if given (bridge/db/pg_pool.py)."""
    settings = _pg_settings(schema)
    return await PgPool.open(
        lambda: open_pg_connection(url, schema=schema, settings=settings),
        max_size=PG_POOL_MAX_SIZE,
    )
