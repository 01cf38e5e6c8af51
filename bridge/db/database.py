"""One async database layer over SQLite (sqlite3) and PostgreSQL (asyncpg).

Open with ``await Database.connect(url)``; the URL is ``sqlite:/abs/path.db``,
``sqlite::memory:`` or ``postgres://user:password@host:port/db`` (``postgresql://``
too).

SQL is written once, asyncpg style, with ``$1, $2`` placeholders; for SQLite they
become ``?1, ?2`` (outside string literals, quoted identifiers and comments). Rows
are plain dicts keyed by column name, so ``row["id"]`` works on both engines.

Transactions: ``async with db.transaction():`` binds one connection to the current
context (a ``ContextVar``). Every query made inside the block, however deep in the
call stack, runs on that connection and joins the transaction. A nested
``transaction()`` is a SAVEPOINT: an exception leaving it undoes its own writes only,
and the outer block decides the rest. Tasks started inside a block inherit the
connection: they must finish before the block ends, and must not query concurrently
(one connection runs one statement at a time).

SQLite has one connection (WAL, foreign keys on, busy timeout) guarded by a lock, so
concurrent coroutines queue instead of failing with "database is locked"; a
transaction holds the lock from ``BEGIN IMMEDIATE`` to ``COMMIT``. Inside a SQLite
transaction, do not await work that needs the database from a task that did not
inherit the transaction: it waits for the lock the transaction holds.

Errors: a failing statement raises :class:`DatabaseError` (a unique-constraint
violation the subclass :class:`UniqueViolation`), with the driver error as its
cause. Opening (URLs, the SQLite file and settings, the PostgreSQL pool) is in
:mod:`bridge.db.opening`; its failures name the URL with its password removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

import asyncpg

from bridge.db.opening import (
    SQLITE_BUSY_TIMEOUT_MS,
    open_pg_connection,
    open_pg_pool,
    open_sqlite,
    redact_url,
    sqlite_path,
)
from bridge.db.pg_pool import PgPool
from bridge.errors import DatabaseError

log = logging.getLogger("bridge.db")

Row = dict[str, Any]
T = TypeVar("T")
_Operation = Callable[[Any, str, tuple[Any, ...]], Awaitable[T]]

SQLITE_CONVERTED_CACHE_SIZE = 1000

__all__ = [
    "Database",
    "DatabaseError",
    "PostgresDatabase",
    "Row",
    "SQLiteDatabase",
    "UniqueViolation",
    "column_list",
    "from_json",
    "to_json",
]


class UniqueViolation(DatabaseError):
    """A statement violated a unique constraint (a concurrent writer won the race)."""


# ---------------------------------------------------------------------------
# Helpers for repositories: the column list is derived from the row dataclass.


def column_list(row_type: type, *, prefix: str = "") -> str:
    """The SELECT list of a row dataclass: its field names in order (``t.id, t.name``)."""
    return ", ".join(f"{prefix}{field.name}" for field in fields(row_type))


def to_json(value: Mapping[str, Any]) -> str:
    """Serialise a JSON column value (compact, UTF-8 kept readable)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _short(sql: str) -> str:
    """A statement on one line, cut to fit a log or error message."""
    return " ".join(sql.split())[:120]


def from_json(text: str) -> dict[str, Any]:
    """Parse a JSON column value."""
    value: dict[str, Any] = json.loads(text)
    return value


# ---------------------------------------------------------------------------
# The engine-neutral layer


@dataclass(eq=False)
class _Transaction:
    """The connection a transaction runs on, shared through the ContextVar."""

    conn: Any
    active: bool = True
    savepoints: int = 0


class Database(ABC):
    """A database connection (SQLite) or pool (PostgreSQL); see the module docstring."""

    dialect: ClassVar[str]
    _driver_errors: ClassVar[tuple[type[BaseException], ...]]

    def __init__(self, display_url: str) -> None:
        self.display_url = display_url  # the URL without its password, for messages
        self._current: ContextVar[_Transaction | None] = ContextVar(
            f"zapbridge_db_{id(self)}", default=None
        )

    @staticmethod
    async def connect(url: str, *, schema: str | None = None) -> Database:
        """Open ``url``. ``schema`` (PostgreSQL only) is created if missing and used."""
        scheme = url.partition(":")[0].lower()
        if scheme == "sqlite":
            return await SQLiteDatabase.open(sqlite_path(url))
        if scheme in ("postgres", "postgresql"):
            return await PostgresDatabase.open(url, schema=schema)
        raise DatabaseError(
            f"unsupported database URL {redact_url(url)!r}: use sqlite:PATH or postgres://…"
        )

    @abstractmethod
    async def close(self) -> None:
        """Close every connection."""

    # -- queries ------------------------------------------------------------

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the number of rows it changed."""
        return await self._run(self._execute, sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; return every row."""
        return await self._run(self._fetch, sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """Run a query; return its first row, or None."""
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchrow_required(self, sql: str, *args: Any) -> Row:
        """Run a statement that always yields a row (an upsert ``… RETURNING``)."""
        row = await self.fetchrow(sql, *args)
        if row is None:
            raise DatabaseError(f"statement returned no row: {_short(sql)}")
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """Run a query; return the first column of its first row, or None."""
        row = await self.fetchrow(sql, *args)
        return next(iter(row.values())) if row else None

    async def delete_where(self, table: str, condition: str, *args: Any) -> int:
        """``DELETE FROM table WHERE condition`` (clean-ups of many rows); return how
        many rows went. ``table`` and ``condition`` are the caller's constants."""
        return await self.execute(f"DELETE FROM {table} WHERE {condition}", *args)

    # -- transactions -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A transaction; nested inside another one it becomes a savepoint."""
        outer = self._active()
        if outer is not None:
            async with self._savepoint(outer):
                yield
            return
        async with self._begin() as conn:
            tx = _Transaction(conn)
            token = self._current.set(tx)
            try:
                yield
            finally:
                tx.active = False
                self._current.reset(token)

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """A transaction, or the caller's when there is one, without a savepoint: for
        work whose failure undoes the caller's whole transaction anyway (an exception
        leaving it must not be caught and the transaction carried on)."""
        if self._active() is not None:
            yield
            return
        async with self.transaction():
            yield

    def in_transaction(self) -> bool:
        """Whether the current context runs inside ``transaction()``."""
        return self._active() is not None

    def _active(self) -> _Transaction | None:
        tx = self._current.get()
        return tx if tx is not None and tx.active else None

    @contextlib.asynccontextmanager
    async def _savepoint(self, tx: _Transaction) -> AsyncIterator[None]:
        tx.savepoints += 1
        name = f"zapbridge_sp{tx.savepoints}"
        await self._run_on(tx.conn, f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await self._run_on(tx.conn, f"ROLLBACK TO SAVEPOINT {name}")
            await self._run_on(tx.conn, f"RELEASE SAVEPOINT {name}")
            raise
        await self._run_on(tx.conn, f"RELEASE SAVEPOINT {name}")

    async def _run(self, op: _Operation[T], sql: str, args: tuple[Any, ...]) -> T:
        tx = self._active()
        with self._translate_errors():
            if tx is not None:
                return await op(tx.conn, sql, args)
            async with self._acquire() as conn:
                return await op(conn, sql, args)

    async def _run_on(self, conn: Any, sql: str) -> None:
        with self._translate_errors():
            await self._execute(conn, sql, ())

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except self._driver_errors as exc:
            raise self._wrap_error(exc) from exc

    # -- engine specifics ---------------------------------------------------

    @abstractmethod
    def _acquire(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A connection for one statement outside any transaction."""

    @abstractmethod
    def _begin(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A connection inside a new transaction, committed or rolled back on exit."""

    @abstractmethod
    async def _execute(self, conn: Any, sql: str, args: tuple[Any, ...]) -> int: ...

    @abstractmethod
    async def _fetch(self, conn: Any, sql: str, args: tuple[Any, ...]) -> list[Row]: ...

    @abstractmethod
    def _wrap_error(self, exc: BaseException) -> DatabaseError: ...


# ---------------------------------------------------------------------------
# SQLite

_SQL_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|\$(\d+)""", re.S)


def to_sqlite_placeholders(sql: str) -> str:
    """``$1`` → ``?1`` outside string literals, quoted identifiers and comments."""
    return _SQL_TOKENS.sub(lambda m: f"?{m.group(1)}" if m.group(1) else m.group(0), sql)


def shift_placeholders(sql: str, by: int) -> str:
    """``$1`` → ``$(1 + by)`` outside literals and comments: a statement's parameters
    renumbered to follow another's, to join them in one statement."""
    return _SQL_TOKENS.sub(lambda m: f"${int(m.group(1)) + by}" if m.group(1) else m.group(0), sql)


class SQLiteDatabase(Database):
    """One sqlite3 connection used from the event loop's thread; statements and
    transactions take turns on a lock.

    Statements run inline rather than on a worker thread: every one is an indexed
    lookup or a single-row write that takes microseconds, while a thread hop per
    statement cost more CPU than the statements themselves (bench/README.md). In WAL
    mode with ``synchronous = NORMAL`` a commit does not wait for the disk. When
    another process holds the write lock, the statement is retried with an
    asynchronous back-off (the loop keeps running) for up to the busy timeout;
    a statement slower than ``SLOW_STATEMENT_SECONDS`` is logged.
    """

    dialect = "sqlite"
    _driver_errors = (sqlite3.Error,)
    SLOW_STATEMENT_SECONDS = 0.1
    DELETE_BATCH = 2000
    busy_timeout_seconds = SQLITE_BUSY_TIMEOUT_MS / 1000

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        super().__init__(f"sqlite:{path}")
        self.path = path
        self._conn = conn
        self._lock = asyncio.Lock()
        self._converted: dict[str, str] = {}  # asyncpg-style SQL → SQLite SQL

    @classmethod
    async def open(cls, path: str) -> SQLiteDatabase:
        """Open (creating if needed) the database file and check it is writable."""
        return cls(await open_sqlite(path), path)

    async def close(self) -> None:
        async with self._lock:
            self._conn.close()

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[sqlite3.Connection]:
        async with self._lock:
            yield self._conn

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[sqlite3.Connection]:
        async with self._lock:
            await self._run_on(self._conn, "BEGIN IMMEDIATE")
            try:
                yield self._conn
                await self._run_on(self._conn, "COMMIT")
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already
                    await self._run_on(self._conn, "ROLLBACK")
                raise

    def _sql(self, sql: str) -> str:
        converted = self._converted.get(sql)
        if converted is None:
            if len(self._converted) >= SQLITE_CONVERTED_CACHE_SIZE:
                self._converted.clear()  # only dynamic SQL gets here; constants stay few
            converted = self._converted[sql] = to_sqlite_placeholders(sql)
        return converted

    async def _execute(self, conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> int:
        cursor = await self._retry_busy(conn, self._sql(sql), args)
        try:
            return max(cursor.rowcount, 0)
        finally:
            cursor.close()

    async def _fetch(self, conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Row]:
        cursor = await self._retry_busy(conn, self._sql(sql), args)
        try:
            return cursor.fetchall()  # dicts, made by the _dict_row factory
        finally:
            cursor.close()

    async def _retry_busy(
        self, conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]
    ) -> sqlite3.Cursor:
        """``conn.execute``, waiting (without blocking the loop) while another
        process holds the database lock, up to the busy timeout."""
        delay, waited = 0.001, 0.0
        while True:
            started = time.perf_counter()
            try:
                cursor = conn.execute(sql, args)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or waited >= self.busy_timeout_seconds:
                    raise
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 0.1)
                continue
            took = time.perf_counter() - started
            if took > self.SLOW_STATEMENT_SECONDS:
                log.warning("slow SQLite statement (%.0f ms): %s", took * 1000, _short(sql))
            return cursor

    async def delete_where(self, table: str, condition: str, *args: Any) -> int:
        """In batches of ``DELETE_BATCH`` rows, letting the loop run between them:
        statements run on the loop's thread, and a clean-up may have many rows."""
        sql = (
            f"DELETE FROM {table} WHERE rowid IN "
            f"(SELECT rowid FROM {table} WHERE {condition} LIMIT {self.DELETE_BATCH})"
        )
        total = 0
        while True:
            deleted = await self.execute(sql, *args)
            total += deleted
            if deleted < self.DELETE_BATCH:
                return total
            await asyncio.sleep(0)

    def _wrap_error(self, exc: BaseException) -> DatabaseError:
        message = str(exc)
        if isinstance(exc, sqlite3.IntegrityError) and message.startswith("UNIQUE"):
            return UniqueViolation(f"SQLite statement failed: {message}")
        return DatabaseError(f"SQLite statement failed: {message}")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
    return "locked" in str(exc) or "busy" in str(exc)


# ---------------------------------------------------------------------------
# PostgreSQL

_PG_STATUS_COUNT = re.compile(r"(\d+)$")


class PostgresDatabase(Database):
    """An asyncpg pool."""

    dialect = "postgres"
    # InternalClientError: a query on a pooled connection the server has just
    # terminated (pg_terminate_backend, a restart) before asyncpg saw it close
    # (MagicStack/asyncpg#1069): the connection is gone, the pool replaces it.
    _driver_errors = (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
    )

    def __init__(
        self, pool: PgPool, display_url: str, *, url: str = "", schema: str | None = None
    ) -> None:
        super().__init__(display_url)
        self._pool = pool
        self._url = url  # kept for open_connection; never shown
        self._schema = schema

    @classmethod
    async def open(cls, url: str, *, schema: str | None = None) -> PostgresDatabase:
        """Create the pool (one connection checked at once) and the schema if given."""
        pool = await open_pg_pool(url, schema=schema)
        db = cls(pool, redact_url(url), url=url, schema=schema)
        if schema:
            try:
                await db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            except DatabaseError:
                await pool.close()
                raise
        return db

    async def close(self) -> None:
        await self._pool.close()

    async def open_connection(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool, on the same database and schema;
        the caller closes it (LISTEN: bridge/db/notify.py)."""
        return await open_pg_connection(self._url, schema=self._schema)

    async def _run(self, op: _Operation[T], sql: str, args: tuple[Any, ...]) -> T:
        """As :meth:`Database._run`, with the pool's checkout inlined: outside a
        transaction this is the path of most statements (bridge/db/pg_pool.py)."""
        tx = self._active()
        try:
            if tx is not None:
                return await op(tx.conn, sql, args)
            conn = await self._pool.get()
            try:
                return await op(conn, sql, args)
            except (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
                if not isinstance(exc, asyncpg.DataError):  # not an argument's fault
                    conn.terminate()  # its state is unknown: never handed out again
                raise
            finally:
                self._pool.put(conn)
        except self._driver_errors as exc:
            raise self._wrap_error(exc) from exc

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._pool.get()
        try:
            yield conn
        finally:
            self._pool.put(conn)

    @contextlib.asynccontextmanager
    async def reserved_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool kept by the caller until the block ends, for
        session state such as the instance lock's (bridge/db/instance_lock.py); the
        caller undoes that state before the block ends (the pool resets nothing)."""
        async with self._acquire() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[asyncpg.Connection]:
        with self._translate_errors():
            async with self._acquire() as conn, conn.transaction():
                yield conn

    async def _execute(self, conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> int:
        status = await conn.execute(sql, *args)
        match = _PG_STATUS_COUNT.search(status or "")
        return int(match.group(1)) if match else 0

    async def _fetch(self, conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> list[Row]:
        return [dict(record) for record in await conn.fetch(sql, *args)]

    def _wrap_error(self, exc: BaseException) -> DatabaseError:
        if isinstance(exc, asyncpg.UniqueViolationError):
            return UniqueViolation(f"PostgreSQL statement failed: {exc}")
        return DatabaseError(f"PostgreSQL statement failed: {exc}")
