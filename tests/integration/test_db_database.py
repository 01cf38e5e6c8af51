"""The database layer: queries, transactions, concurrency and error messages."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import pytest

from bridge.db.database import Database, SQLiteDatabase, UniqueViolation, to_sqlite_placeholders
from bridge.db.opening import redact_url
from bridge.errors import DatabaseError

CREATE_ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"


async def _names(db: Database) -> list[str]:
    return [row["name"] for row in await db.fetch("SELECT name FROM items ORDER BY id")]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT $1, $2", "SELECT ?1, ?2"),
        ("SELECT '$1', $1", "SELECT '$1', ?1"),
        ("SELECT 'it''s $2' || $10", "SELECT 'it''s $2' || ?10"),
        ('SELECT "$1" FROM t WHERE a = $1', 'SELECT "$1" FROM t WHERE a = ?1'),
        ("SELECT $1 -- $2\n, $3 /* $4 */", "SELECT ?1 -- $2\n, ?3 /* $4 */"),
    ],
)
def test_placeholders_convert_outside_literals(sql: str, expected: str) -> None:
    assert to_sqlite_placeholders(sql) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://zap:secret@db:5432/zap", "postgres://zap@db:5432/zap"),
        ("postgresql://zap@db/zap", "postgresql://zap@db/zap"),
        ("postgres://db/zap?password=secret&sslmode=require", "postgres://db/zap?sslmode=require"),
        ("sqlite:/var/lib/zapbridge.db", "sqlite:/var/lib/zapbridge.db"),
    ],
)
def test_redact_url_removes_passwords(url: str, expected: str) -> None:
    assert redact_url(url) == expected


async def test_execute_fetch_roundtrip(raw_db: Database) -> None:
    await raw_db.execute(CREATE_ITEMS)
    assert await raw_db.execute("INSERT INTO items (id, name) VALUES ($1, $2)", 1, "a") == 1
    await raw_db.execute("INSERT INTO items (id, name) VALUES ($1, $2)", 2, "b")
    assert await raw_db.execute("UPDATE items SET name = name || $1", "!") == 2
    assert await raw_db.fetch("SELECT id, name FROM items ORDER BY id") == [
        {"id": 1, "name": "a!"},
        {"id": 2, "name": "b!"},
    ]
    row = await raw_db.fetchrow("SELECT name FROM items WHERE id = $1", 2)
    assert row is not None and row["name"] == "b!"
    assert await raw_db.fetchrow("SELECT name FROM items WHERE id = $1", 3) is None
    assert await raw_db.fetchval("SELECT COUNT(*) FROM items WHERE name <> $1", "a!") == 1
    assert await raw_db.fetchval("SELECT name FROM items WHERE id = $1", 3) is None


async def test_unique_violation_is_typed(raw_db: Database) -> None:
    await raw_db.execute(CREATE_ITEMS)
    await raw_db.execute("INSERT INTO items (id, name) VALUES ($1, $2)", 1, "a")
    with pytest.raises(UniqueViolation):
        await raw_db.execute("INSERT INTO items (id, name) VALUES ($1, $2)", 2, "a")
    with pytest.raises(DatabaseError, match="statement failed"):
        await raw_db.execute("SELECT * FROM no_such_table")


async def test_transaction_commits_and_rolls_back(raw_db: Database) -> None:
    await raw_db.execute(CREATE_ITEMS)
    async with raw_db.transaction():
        await raw_db.execute("INSERT INTO items (id, name) VALUES (1, 'kept')")
    with pytest.raises(RuntimeError):
        async with raw_db.transaction():
            await raw_db.execute("INSERT INTO items (id, name) VALUES (2, 'undone')")
            assert await _names(raw_db) == ["kept", "undone"]
            raise RuntimeError("boom")
    assert await _names(raw_db) == ["kept"]


async def test_nested_transaction_joins_outer(raw_db: Database) -> None:
    """Writes of a nested block (a savepoint) are undone by the outer rollback."""
    await raw_db.execute(CREATE_ITEMS)
    with pytest.raises(RuntimeError):
        async with raw_db.transaction():
            await raw_db.execute("INSERT INTO items (id, name) VALUES (1, 'outer')")
            async with raw_db.transaction():
                await raw_db.execute("INSERT INTO items (id, name) VALUES (2, 'inner')")
            assert raw_db.in_transaction()
            raise RuntimeError("boom")
    assert await _names(raw_db) == []
    assert not raw_db.in_transaction()


async def test_nested_failure_undoes_only_the_savepoint(raw_db: Database) -> None:
    await raw_db.execute(CREATE_ITEMS)
    async with raw_db.transaction():
        await raw_db.execute("INSERT INTO items (id, name) VALUES (1, 'outer')")
        with pytest.raises(UniqueViolation):
            async with raw_db.transaction():
                await raw_db.execute("INSERT INTO items (id, name) VALUES (2, 'inner')")
                await raw_db.execute("INSERT INTO items (id, name) VALUES (3, 'outer')")
        await raw_db.execute("INSERT INTO items (id, name) VALUES (4, 'after')")
    assert await _names(raw_db) == ["outer", "after"]


async def test_nested_calls_share_the_outer_connection(raw_db: Database) -> None:
    """A repository call deep inside the block sees the block's uncommitted writes."""
    await raw_db.execute(CREATE_ITEMS)

    async def count_in_helper() -> int:
        return int(await raw_db.fetchval("SELECT COUNT(*) FROM items"))

    async with raw_db.transaction():
        await raw_db.execute("INSERT INTO items (id, name) VALUES (1, 'x')")
        assert await count_in_helper() == 1
        assert await asyncio.create_task(count_in_helper()) == 1  # tasks inherit it


async def test_concurrent_transactions_queue_on_sqlite(sqlite_raw_db: Database) -> None:
    """Read-modify-write transactions interleaving coroutines: none fails, none is lost."""
    db = sqlite_raw_db
    await db.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
    await db.execute("INSERT INTO counter (n) VALUES (0)")

    async def increment() -> None:
        async with db.transaction():
            n = await db.fetchval("SELECT n FROM counter")
            await asyncio.sleep(0)
            await db.execute("UPDATE counter SET n = $1", n + 1)

    await asyncio.gather(*(increment() for _ in range(30)))
    assert await db.fetchval("SELECT n FROM counter") == 30


async def test_two_sqlite_connections_wait_for_each_other(tmp_path: Path) -> None:
    """Two processes' worth of connections on one file: busy_timeout, no 'locked'."""
    url = f"sqlite:{tmp_path / 'shared.db'}"
    first, second = await Database.connect(url), await Database.connect(url)
    try:
        await first.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
        await first.execute("INSERT INTO counter (n) VALUES (0)")

        async def increment(db: Database) -> None:
            async with db.transaction():
                await db.execute("UPDATE counter SET n = n + 1")
                await asyncio.sleep(0.001)

        await asyncio.gather(*(increment(db) for db in [first, second] * 10))
        assert await second.fetchval("SELECT n FROM counter") == 20
    finally:
        await first.close()
        await second.close()


async def test_sqlite_in_memory(tmp_path: Path) -> None:
    db = await Database.connect("sqlite::memory:")
    try:
        assert db.dialect == "sqlite"
        assert await db.fetchval("SELECT $1 + 1", 41) == 42
    finally:
        await db.close()


async def test_connection_refused_names_url_without_password() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DatabaseError) as caught:
        await Database.connect(f"postgres://zap:s3cret@127.0.0.1:{port}/zap")
    assert caught.value.explanation == (
        f"cannot connect to postgres://zap@127.0.0.1:{port}/zap: connection refused"
    )
    assert "s3cret" not in str(caught.value)


async def test_unwritable_sqlite_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    path = blocker / "zapbridge.db"
    with pytest.raises(DatabaseError) as caught:
        await Database.connect(f"sqlite:{path}")
    assert caught.value.explanation == (
        f"cannot open SQLite database {path}: {blocker} is not a directory"
    )


async def test_missing_sqlite_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "zapbridge.db"
    with pytest.raises(DatabaseError, match=r"directory .*missing does not exist"):
        await Database.connect(f"sqlite:{path}")


async def test_unsupported_url() -> None:
    with pytest.raises(DatabaseError, match="unsupported database URL 'mysql://u@h/db'"):
        await Database.connect("mysql://u:pw@h/db")


async def test_sqlite_waits_for_another_process_without_blocking_the_loop(tmp_path: Path) -> None:
    """Another process holds the write lock: the statement waits, the loop keeps running."""
    path = tmp_path / "shared.db"
    db = await Database.connect(f"sqlite:{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await db.execute("CREATE TABLE items (n INTEGER NOT NULL)")
        other.execute("BEGIN IMMEDIATE")
        loop_ran = asyncio.Event()

        async def ticker() -> None:
            for _ in range(20):
                await asyncio.sleep(0.001)
            loop_ran.set()

        write = asyncio.create_task(db.execute("INSERT INTO items (n) VALUES (1)"))
        await asyncio.sleep(0)  # the write tries once and starts waiting
        ticking = asyncio.create_task(ticker())
        await asyncio.wait_for(loop_ran.wait(), 5)  # the loop runs while the write waits
        assert not write.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 5) == 1
        await ticking
        assert await db.fetchval("SELECT COUNT(*) FROM items") == 1
    finally:
        other.close()
        await db.close()


async def test_sqlite_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    db = await Database.connect(f"sqlite:{path}")
    assert isinstance(db, SQLiteDatabase)
    db.busy_timeout_seconds = 0.05
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await db.execute("CREATE TABLE items (n INTEGER NOT NULL)")
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseError, match="locked"):
            await db.execute("INSERT INTO items (n) VALUES (1)")
        other.execute("ROLLBACK")
        assert await db.execute("INSERT INTO items (n) VALUES (1)") == 1
    finally:
        other.close()
        await db.close()


async def test_delete_where_removes_every_matching_row_in_batches(raw_db: Database) -> None:
    db = raw_db
    if isinstance(db, SQLiteDatabase):
        db.DELETE_BATCH = 3  # several batches, the last one partial
    await db.execute("CREATE TABLE stamps (n INTEGER NOT NULL)")
    for n in range(10):
        await db.execute("INSERT INTO stamps (n) VALUES ($1)", n)
    assert await db.delete_where("stamps", "n < $1", 8) == 8
    assert [row["n"] for row in await db.fetch("SELECT n FROM stamps ORDER BY n")] == [8, 9]
    assert await db.delete_where("stamps", "n < $1", 8) == 0


@pytest.mark.postgres
async def test_a_local_postgresql_is_reached_over_its_unix_socket(pg_raw_db: Database) -> None:
    """docs/configuration.md#database: ``?host=<socket directory>`` in the URL."""
    directories = await pg_raw_db.fetchval("SHOW unix_socket_directories")
    assert directories, "this PostgreSQL listens on no Unix socket"
    directory = directories.split(",")[0].strip()
    user = await pg_raw_db.fetchval("SELECT current_user")
    name = await pg_raw_db.fetchval("SELECT current_database()")
    port = await pg_raw_db.fetchval("SELECT current_setting('port')")
    db = await Database.connect(f"postgresql://{user}@/{name}?host={directory}&port={port}")
    try:
        assert await db.fetchval("SELECT inet_server_addr()") is None  # not over TCP
        assert await db.fetchval("SELECT 41 + $1::int", 1) == 42
    finally:
        await db.close()
