"""One bridge per database unless the instances share it on purpose
(docs/cluster.md, "One instance on SQLite").

A running bridge holds an *instance lock* on its database from the start of its
storage until it stops; a second bridge on the same database refuses to start with
one line naming the holder (:class:`InstanceLocked`).

- **SQLite**: an exclusive ``flock`` on the sidecar file ``<database>.lock`` (0600),
  which holds the holder's description (host, pid, instance id, since). The kernel
  releases the lock when the holder's process ends however it ends, ``kill -9``
  included, so a crashed bridge never blocks the next start; the stale description
  left behind is overwritten by the next holder. SQLite allows one instance only.
- **PostgreSQL**: a session-level advisory lock held on a connection reserved from
  the pool for the bridge's lifetime, its key scoped by the schema (two bridges on
  two schemas of one database do not meet). ``exclusive=True`` (``cluster.enabled``
  off) takes it exclusively; ``exclusive=False`` (cluster instances) takes it
  shared, so cluster instances run side by side while a bridge without the cluster
  refuses to start beside them, and they beside it. The holder's description is
  the ``application_name`` of that connection, which ``pg_stat_activity`` shows.
  The server releases the lock when the holder's connection ends; a keeper takes it
  again when that happens while the bridge runs (a database restart).

``python -m bridge migrate`` and ``check-config`` take no lock: migrations serialise
themselves (bridge/db/migrate.py) and may run beside a bridge.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bridge.db.database import Database, PostgresDatabase, SQLiteDatabase
from bridge.errors import DatabaseError

log = logging.getLogger("bridge.db.instance_lock")

LOCK_SUFFIX = ".lock"
LOCK_FILE_MODE = 0o600
HOLDER_MAX_BYTES = 4096  # a lock file's description is read no further
PG_LOCK_CLASS = 0x7A617069  # "zapi": the first key; the second is the schema's
PG_APPLICATION_PREFIX = "zapbridge "
PG_NAME_MAX_BYTES = 63  # PostgreSQL cuts application_name there (NAMEDATALEN - 1)
MAX_TEXT = 64  # a host name or instance id shown in a message is cut there
PG_KEEP_EVERY_SECONDS = 10.0  # how often the PostgreSQL lock's connection is checked

SQLITE_ADVICE = "stop it, or use PostgreSQL with cluster.enabled to run several instances"
PG_EXCLUSIVE_ADVICE = "stop it, or set cluster.enabled on every instance to run several"
PG_BESIDE_CLUSTER_ADVICE = "stop them, or set cluster.enabled on this one too"
PG_BESIDE_SOLE_ADVICE = "stop it, or set cluster.enabled on it too"


class InstanceLocked(DatabaseError):
    """Another bridge holds the database (its explanation names the holder)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds an instance lock."""

    host: str
    pid: int
    since: float  # seconds since the epoch
    instance: str | None = None

    @classmethod
    def this_process(cls, *, instance: str | None = None) -> Holder:
        return cls(host=socket.gethostname(), pid=os.getpid(), since=time.time(), instance=instance)

    def describe(self) -> str:
        """``pid 4242 on host-a (instance a1), since 2026-12-06 00:21:07 UTC``."""
        instance = f" (instance {_cut(self.instance)})" if self.instance else ""
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return f"pid {self.pid} on {_cut(self.host)}{instance}, since {since}"

    # -- the lock file's text ------------------------------------------------

    def to_json(self) -> str:
        body = {"host": self.host, "pid": self.pid, "since": self.since}
        if self.instance:
            body["instance"] = self.instance
        return json.dumps(body, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The holder a lock file names, or None when it names none readable."""
        try:
            body = json.loads(text)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        host, pid, since = body.get("host"), body.get("pid"), body.get("since")
        instance = body.get("instance")
        if not (isinstance(host, str) and type(pid) is int and isinstance(since, int | float)):
            return None
        return cls(
            host=host,
            pid=pid,
            since=float(since),
            instance=instance if isinstance(instance, str) else None,
        )

    # -- PostgreSQL's application_name ---------------------------------------

    def application_name(self) -> str:
        """``zapbridge 4242@host-a 20261206T002107Z a1``, cut to what PostgreSQL keeps."""
        since = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.since))
        text = f"{PG_APPLICATION_PREFIX}{self.pid}@{self.host} {since}"
        if self.instance:
            text += f" {self.instance}"
        return text.encode()[:PG_NAME_MAX_BYTES].decode(errors="ignore")

    @classmethod
    def from_application_name(cls, name: str) -> Holder | None:
        parts = name.removeprefix(PG_APPLICATION_PREFIX).split(" ")
        if not name.startswith(PG_APPLICATION_PREFIX) or len(parts) < 2:
            return None
        pid, _, host = parts[0].partition("@")
        try:
            since = float(calendar.timegm(time.strptime(parts[1], "%Y%m%dT%H%M%SZ")))
        except ValueError:
            return None
        if not pid.isdigit() or not host:
            return None
        instance = " ".join(parts[2:]) or None
        return cls(host=host, pid=int(pid), since=since, instance=instance)


def _cut(text: str) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= MAX_TEXT else clean[: MAX_TEXT - 1] + "…"


class InstanceLock(ABC):
    """A held instance lock; :meth:`release` lets the next bridge start."""

    @abstractmethod
    async def release(self) -> None:
        """Give the lock up (again: nothing)."""


async def take_instance_lock(
    db: Database,
    *,
    exclusive: bool,
    instance: str | None = None,
    keep_every: float = PG_KEEP_EVERY_SECONDS,
) -> InstanceLock:
    """Hold ``db`` for this bridge, or raise :class:`InstanceLocked` naming the
    holder. ``exclusive=False`` (cluster instances, PostgreSQL only) shares it with
    other cluster instances; SQLite is always exclusive. ``instance``: this
    instance's id, shown to a bridge refused because of it. ``keep_every``: how
    often a PostgreSQL lock's connection is checked (see
    :class:`PostgresInstanceLock`)."""
    holder = Holder.this_process(instance=instance)
    if isinstance(db, SQLiteDatabase):
        if db.path == ":memory:":
            return _NothingToHold()  # no other process can open it
        return await asyncio.to_thread(SQLiteInstanceLock.take, Path(db.path), holder)
    if isinstance(db, PostgresDatabase):
        return await PostgresInstanceLock.take(
            db, holder, exclusive=exclusive, keep_every=keep_every
        )
    raise DatabaseError(f"no instance lock for a {type(db).__name__}")


class _NothingToHold(InstanceLock):
    async def release(self) -> None:
        return None


# --- SQLite ---------------------------------------------------------------------------


class SQLiteInstanceLock(InstanceLock):
    """An exclusive ``flock`` on ``<database>.lock``, held by an open descriptor."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @staticmethod
    def path_for(database: Path) -> Path:
        return database.with_name(database.name + LOCK_SUFFIX)

    @classmethod
    def take(cls, database: Path, holder: Holder) -> SQLiteInstanceLock:
        """Blocking: call from a thread."""
        path = cls.path_for(database)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, LOCK_FILE_MODE)
        except OSError as exc:
            raise DatabaseError(f"cannot open the lock file {path}: {exc.strerror}") from exc
        try:
            os.fchmod(fd, LOCK_FILE_MODE)  # whatever the umask, or an older file's mode
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                raise InstanceLocked(_sqlite_refusal(database, _read_holder(fd))) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.to_json().encode(), 0)
        except BaseException as exc:
            os.close(fd)
            if isinstance(exc, OSError):
                raise DatabaseError(f"cannot lock {path}: {exc.strerror}") from exc
            raise
        log.debug("holding %s as %s", path, holder.describe())
        return cls(path, fd)

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # a description left behind is harmless
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _read_holder(fd: int) -> Holder | None:
    try:
        data = os.pread(fd, HOLDER_MAX_BYTES, 0)
    except OSError:
        return None
    return Holder.from_json(data.decode("utf-8", errors="replace"))


def _sqlite_refusal(database: Path, holder: Holder | None) -> str:
    who = holder.describe() if holder else "a process that has not said who it is yet"
    return f"another zapbridge instance uses sqlite:{database}: {who}; {SQLITE_ADVICE}"


# --- PostgreSQL -----------------------------------------------------------------------

_HOLDERS_SQL = """
SELECT a.application_name, l.mode
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 2
  AND l.pid <> pg_backend_pid()
ORDER BY a.backend_start
"""


# InternalClientError: a query on a connection the server has just terminated,
# before asyncpg saw it close (as in bridge/db/database.py)
_PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


def schema_key(schema: str) -> int:
    """The advisory lock's second key: the schema's, so schemas do not meet."""
    return zlib.crc32(schema.encode()) & 0x7FFFFFFF


class PostgresInstanceLock(InstanceLock):
    """A session-level advisory lock on a connection reserved from the pool.

    A keeper checks the connection every ``keep_every`` seconds: when the server
    ended it (a restart, a terminated backend), the lock went with it, so the keeper
    takes it again on a new connection; while another bridge holds it meanwhile, it
    says so in an ERROR line naming that bridge, and tries again at the next check.
    """

    def __init__(
        self, db: PostgresDatabase, holder: Holder, *, exclusive: bool, keep_every: float
    ) -> None:
        self._db = db
        self._holder = holder
        self._exclusive = exclusive
        self._keep_every = keep_every
        self._stack: contextlib.AsyncExitStack | None = None
        self._conn: Any = None
        self._keeper: asyncio.Task[None] | None = None

    @classmethod
    async def take(
        cls,
        db: PostgresDatabase,
        holder: Holder,
        *,
        exclusive: bool,
        keep_every: float = PG_KEEP_EVERY_SECONDS,
    ) -> PostgresInstanceLock:
        lock = cls(db, holder, exclusive=exclusive, keep_every=keep_every)
        await lock._attempt()
        lock._keeper = asyncio.create_task(lock._keep(), name="zapbridge-instance-lock")
        return lock

    async def _attempt(self) -> None:
        """Hold the lock on a newly reserved connection, or raise."""
        stack = contextlib.AsyncExitStack()
        try:
            conn = await stack.enter_async_context(self._db.reserved_connection())
            schema = str(await conn.fetchval("SELECT current_schema()"))
            key = schema_key(schema)
            name = self._holder.application_name()
            await conn.execute("SELECT set_config('application_name', $1, false)", name)
            take = "pg_try_advisory_lock" if self._exclusive else "pg_try_advisory_lock_shared"
            if not await conn.fetchval(f"SELECT {take}($1, $2)", PG_LOCK_CLASS, key):
                others = await conn.fetch(_HOLDERS_SQL, PG_LOCK_CLASS, key)
                await conn.execute("RESET application_name")
                refusal = _pg_refusal(self._db, schema, others, exclusive=self._exclusive)
                raise InstanceLocked(refusal)
        except _PG_ERRORS as exc:
            await stack.aclose()
            raise DatabaseError(f"cannot take the instance lock: {exc}") from exc
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._conn = stack, conn
        log.debug("holding the instance lock of schema %s as %s", schema, self._holder.describe())

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._keep_every)
            await self.check()

    async def check(self) -> bool:
        """One look of the keeper: whether the lock is held (taken again if its
        connection had ended and nobody else took it meanwhile)."""
        if self._stack is not None:
            try:
                await self._conn.fetchval("SELECT 1")
                return True
            except _PG_ERRORS as exc:
                log.warning("the instance lock's connection ended (%s); taking it again", exc)
                await self._drop()
        try:
            await self._attempt()
        except InstanceLocked as exc:
            log.error("cannot take the instance lock again: %s", exc.explanation)
            return False
        except DatabaseError as exc:
            log.warning("%s; trying again in %g s", exc.explanation, self._keep_every)
            return False
        log.info("holding the instance lock again")
        return True

    async def _drop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            with contextlib.suppress(*_PG_ERRORS):
                self._conn.terminate()
            await stack.aclose()

    async def release(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if self._stack is None:
            return
        try:
            await self._conn.execute("SELECT pg_advisory_unlock_all()")
            await self._conn.execute("RESET application_name")
        except _PG_ERRORS as exc:  # the connection's end releases it anyway
            log.warning("releasing the instance lock: %s", exc)
            with contextlib.suppress(*_PG_ERRORS):
                self._conn.terminate()
        stack, self._stack = self._stack, None
        await stack.aclose()


def _pg_refusal(db: PostgresDatabase, schema: str, others: list[Any], *, exclusive: bool) -> str:
    """Who holds it: the exclusive holder if any, else the first cluster instance."""
    where = f"{db.display_url} (schema {schema})"
    blocking = [r for r in others if r["mode"] == "ExclusiveLock"] or list(others)
    if not blocking:
        who = "a session that has just let it go; try again"
    else:
        name = str(blocking[0]["application_name"] or "")
        holder = Holder.from_application_name(name)
        who = holder.describe() if holder else f"application_name {_cut(name)!r}"
    if not exclusive:
        sole = "a zapbridge instance without cluster.enabled"
        return f"{sole} uses {where}: {who}; {PG_BESIDE_SOLE_ADVICE}"
    if blocking and blocking[0]["mode"] != "ExclusiveLock":
        count = len(others)
        noun = "instance uses" if count == 1 else "instances use"
        return f"{count} cluster {noun} {where}, the first {who}; {PG_BESIDE_CLUSTER_ADVICE}"
    return f"another zapbridge instance uses {where}: {who}; {PG_EXCLUSIVE_ADVICE}"
