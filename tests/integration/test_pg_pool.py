"""The lean PostgreSQL pool (bridge/db/pg_pool.py) against a real server: reuse,
the cap and its waiters, connections that died or were left inside a transaction,
a failed open given to the waiter, and closing with a connection still out."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bridge.db.database import Database
from bridge.db.opening import open_pg_connection
from bridge.db.pg_pool import PgPool
from bridge.errors import DatabaseError
from tests.conftest import PG_TEST_URL

pytestmark = pytest.mark.postgres


def _connect() -> asyncpg.Connection:
    return open_pg_connection(PG_TEST_URL, schema=None)  # type: ignore[return-value]


async def _backend_pid(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_backend_pid()"))


async def test_a_returned_connection_is_the_next_one_handed_out() -> None:
    pool = await PgPool.open(_connect, max_size=3)
    try:
        first = await pool.get()
        pid = await _backend_pid(first)
        pool.put(first)
        again = await pool.get()
        assert await _backend_pid(again) == pid
        assert pool.size == 1
        pool.put(again)
    finally:
        await pool.close()


async def test_past_the_cap_callers_wait_in_order_for_a_returned_connection() -> None:
    pool = await PgPool.open(_connect, max_size=2)
    try:
        held = [await pool.get(), await pool.get()]
        served: list[int] = []

        async def waiter(n: int) -> None:
            conn = await pool.get()
            served.append(n)
            pool.put(conn)

        tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
        await asyncio.sleep(0)  # the three reach the queue
        assert pool.size == 2 and served == []
        pool.put(held.pop())
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)
        assert served == [0, 1, 2]
        assert pool.size == 2
        pool.put(held.pop())
    finally:
        await pool.close()


async def test_a_cancelled_waiter_leaves_the_queue_and_loses_nothing() -> None:
    pool = await PgPool.open(_connect, max_size=1)
    try:
        held = await pool.get()
        task = asyncio.create_task(pool.get())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pool.put(held)
        async with asyncio.timeout(5):
            conn = await pool.get()
        assert await conn.fetchval("SELECT 1") == 1
        pool.put(conn)
    finally:
        await pool.close()


async def test_a_connection_the_server_ended_is_dropped_for_a_new_one() -> None:
    pool = await PgPool.open(_connect, max_size=2)
    killer = await _connect()
    try:
        conn = await pool.get()
        dead_pid = await _backend_pid(conn)
        pool.put(conn)
        await killer.execute("SELECT pg_terminate_backend($1)", dead_pid)
        # Whether asyncpg has seen the socket close yet is a race: either the pool
        # skips the dead connection, or the first query on it fails (and the pool
        # drops it when it comes back).
        conn = await pool.get()
        try:
            first_pid: int | None = await _backend_pid(conn)
        except (asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.PostgresError):
            first_pid = None
        finally:
            pool.put(conn)
        assert first_pid != dead_pid
        fresh = await pool.get()
        assert await _backend_pid(fresh) != dead_pid
        assert await fresh.fetchval("SELECT 1") == 1
        pool.put(fresh)
        assert pool.size == 1
    finally:
        await killer.close()
        await pool.close()


async def test_a_connection_left_inside_a_transaction_is_not_reused() -> None:
    pool = await PgPool.open(_connect, max_size=1)
    try:
        conn = await pool.get()
        pid = await _backend_pid(conn)
        await conn.execute("BEGIN")
        pool.put(conn)  # as if its owner were cancelled before the rollback
        assert conn.is_closed()
        fresh = await pool.get()
        assert not fresh.is_in_transaction()
        assert await _backend_pid(fresh) != pid
        pool.put(fresh)
    finally:
        await pool.close()


async def test_a_waiter_gets_a_new_connection_when_a_broken_one_frees_its_place() -> None:
    pool = await PgPool.open(_connect, max_size=1)
    try:
        conn = await pool.get()
        task = asyncio.create_task(pool.get())
        await asyncio.sleep(0)
        await conn.execute("BEGIN")
        pool.put(conn)
        async with asyncio.timeout(10):
            fresh = await task
        assert await fresh.fetchval("SELECT 1") == 1
        pool.put(fresh)
    finally:
        await pool.close()


async def test_a_failed_open_reaches_the_caller_and_frees_its_place() -> None:
    attempts = 0

    async def flaky() -> asyncpg.Connection:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            raise OSError("connection refused")
        return await _connect()

    pool = await PgPool.open(flaky, max_size=2)
    try:
        first = await pool.get()
        with pytest.raises(OSError, match="refused"):
            await pool.get()
        assert pool.size == 1
        second = await pool.get()  # the place is free again
        assert pool.size == 2
        pool.put(first)
        pool.put(second)
    finally:
        await pool.close()


async def test_close_ends_a_connection_still_out_after_the_grace() -> None:
    pool = await PgPool.open(_connect, max_size=2)
    out = await pool.get()
    async with asyncio.timeout(5):
        await pool.close(grace_seconds=0.1)
    assert out.is_closed()
    with pytest.raises(asyncpg.InterfaceError, match="closed"):
        await pool.get()


async def test_close_waits_for_a_connection_given_back_within_the_grace() -> None:
    pool = await PgPool.open(_connect, max_size=2)
    out = await pool.get()

    async def give_back() -> None:
        await out.fetchval("SELECT 1")
        pool.put(out)

    giver = asyncio.create_task(give_back())
    async with asyncio.timeout(5):
        await pool.close(grace_seconds=5)
    await giver
    assert out.is_closed() and pool.size == 0


async def test_a_statement_that_failed_on_its_connection_leaves_it_out_of_the_pool(
    pg_raw_db: Database,
) -> None:
    """bridge/db/database.py: a connection-level failure (not the server refusing a
    statement) ends that connection, so the next statement gets a sound one."""
    pid = await pg_raw_db.fetchval("SELECT pg_backend_pid()")
    killer = await _connect()
    try:
        await killer.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await killer.close()
    try:
        await pg_raw_db.fetchval("SELECT 1")
    except DatabaseError:
        pass  # the dead connection answered this one; it must not answer the next
    assert await pg_raw_db.fetchval("SELECT pg_backend_pid()") != pid
    with pytest.raises(DatabaseError, match="syntax"):
        await pg_raw_db.execute("SELEC 1")  # the server refusing: the connection stays
    assert await pg_raw_db.fetchval("SELECT 2") == 2
