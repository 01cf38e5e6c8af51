"""The instance lock on PostgreSQL (bridge/db/instance_lock.py) between two "instances"
(two pools on one schema), and the bridge's start refusing a second bridge on one
database (docs/cluster.md, "One instance on SQLite")."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.clock import FakeClock
from bridge.config import parse_config
from bridge.db.database import Database
from bridge.db.instance_lock import (
    Holder,
    InstanceLock,
    InstanceLocked,
    PostgresInstanceLock,
    take_instance_lock,
)
from tests.conftest import PG_TEST_URL, _connect_postgres, open_test_database
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import free_port, until

HOLDER = (
    rf"pid {os.getpid()} on \S+( \(instance [\w.-]+\))?, "
    r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
)


@pytest.fixture
async def two_pools(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two pools on one fresh schema: what two bridge processes would open."""
    async with open_test_database("postgres", tmp_path) as first:
        schema = str(await first.fetchval("SELECT current_schema()"))
        second = await _connect_postgres(schema)
        try:
            yield first, second
        finally:
            await second.close()


def where(schema: str) -> str:
    return f"{PG_TEST_URL} (schema {schema})"


@pytest.mark.postgres
async def test_postgres_without_cluster_refuses_a_second_instance_naming_the_first(
    two_pools: tuple[Database, Database],
) -> None:
    first_db, second_db = two_pools
    schema = str(await first_db.fetchval("SELECT current_schema()"))
    first = await take_instance_lock(first_db, exclusive=True, instance="one")
    try:
        with pytest.raises(InstanceLocked) as refused:
            await take_instance_lock(second_db, exclusive=True)
        line = refused.value.explanation
        assert "\n" not in line
        assert re.fullmatch(
            rf"another zapbridge instance uses {re.escape(where(schema))}: {HOLDER}; "
            r"stop it, or set cluster.enabled on every instance to run several",
            line,
        ), line
        assert "(instance one)" in line
        names = await first_db.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
            f"zapbridge {os.getpid()}@%",
        )
        assert len(names) == 1  # the refused one left no name behind
    finally:
        await first.release()
    second = await take_instance_lock(second_db, exclusive=True)  # free once released
    await second.release()


@pytest.mark.postgres
async def test_cluster_instances_share_and_a_sole_instance_is_refused_beside_them(
    two_pools: tuple[Database, Database], tmp_path: Path
) -> None:
    first_db, second_db = two_pools
    schema = str(await first_db.fetchval("SELECT current_schema()"))
    first = await take_instance_lock(first_db, exclusive=False)
    second = await take_instance_lock(second_db, exclusive=False)
    try:
        third_db = await _connect_postgres(schema)
        try:
            with pytest.raises(InstanceLocked) as refused:
                await take_instance_lock(third_db, exclusive=True)
        finally:
            await third_db.close()
        assert re.fullmatch(
            rf"2 cluster instances use {re.escape(where(schema))}, the first {HOLDER}; "
            r"stop them, or set cluster.enabled on this one too",
            refused.value.explanation,
        ), refused.value.explanation
    finally:
        await first.release()
        await second.release()


@pytest.mark.postgres
async def test_a_cluster_instance_is_refused_beside_a_sole_one(
    two_pools: tuple[Database, Database],
) -> None:
    first_db, second_db = two_pools
    schema = str(await first_db.fetchval("SELECT current_schema()"))
    sole = await take_instance_lock(first_db, exclusive=True)
    try:
        with pytest.raises(InstanceLocked) as refused:
            await take_instance_lock(second_db, exclusive=False)
        assert re.fullmatch(
            rf"a zapbridge instance without cluster.enabled uses {re.escape(where(schema))}: "
            rf"{HOLDER}; stop it, or set cluster.enabled on it too",
            refused.value.explanation,
        ), refused.value.explanation
    finally:
        await sole.release()


@pytest.mark.postgres
async def test_two_schemas_of_one_database_do_not_meet(tmp_path: Path) -> None:
    async with (
        open_test_database("postgres", tmp_path) as one,
        open_test_database("postgres", tmp_path) as other,
    ):
        first = await take_instance_lock(one, exclusive=True)
        second = await take_instance_lock(other, exclusive=True)  # not refused
        assert isinstance(first, PostgresInstanceLock)
        assert isinstance(second, PostgresInstanceLock)
        assert await first.check() and await second.check()  # both still held
        await first.release()
        await second.release()


@pytest.mark.postgres
async def test_the_lock_goes_with_its_holders_connection(
    two_pools: tuple[Database, Database],
) -> None:
    """A holder that dies (its connection ends) blocks nobody: the server lets go."""
    first_db, second_db = two_pools
    schema = str(await first_db.fetchval("SELECT current_schema()"))
    dying = await _connect_postgres(schema)
    await take_instance_lock(dying, exclusive=True)  # never released: the holder "dies"
    with pytest.raises(InstanceLocked):
        await take_instance_lock(second_db, exclusive=True)
    dying_pool = dying._pool  # type: ignore[attr-defined]
    dying_pool.terminate()  # its connections end as a killed process's would

    async def free() -> bool:
        try:
            lock = await take_instance_lock(second_db, exclusive=True)
        except InstanceLocked:
            return False
        await lock.release()
        return True

    await until(free, what="the lock free once its holder's connection ended")


HOLDER_PIDS = """
SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE $1
"""


async def holder_pids(db: Database) -> set[int]:
    """The server processes holding an instance lock for this test process."""
    return {row["pid"] for row in await db.fetch(HOLDER_PIDS, f"zapbridge {os.getpid()}@%")}


async def terminate_holder(db: Database) -> int:
    """End the holder's connection from the server side (as a database restart
    would); returns its server process id."""
    (pid,) = await holder_pids(db)
    assert await db.fetchval("SELECT pg_terminate_backend($1)", pid)
    return pid


@pytest.mark.postgres
async def test_a_lock_lost_with_its_connection_is_taken_again(
    two_pools: tuple[Database, Database], caplog: pytest.LogCaptureFixture
) -> None:
    first_db, second_db = two_pools
    lock = await PostgresInstanceLock.take(
        first_db, Holder.this_process(), exclusive=True, keep_every=3600
    )
    try:
        assert await lock.check()
        await terminate_holder(second_db)
        assert await lock.check()  # a new connection, the lock again
        assert "the instance lock's connection ended" in caplog.text
        with pytest.raises(InstanceLocked):
            await take_instance_lock(second_db, exclusive=True)
    finally:
        await lock.release()


@pytest.mark.postgres
async def test_a_lock_taken_by_another_meanwhile_is_an_error_until_it_is_free(
    two_pools: tuple[Database, Database], caplog: pytest.LogCaptureFixture
) -> None:
    first_db, second_db = two_pools
    lock = await PostgresInstanceLock.take(
        first_db, Holder.this_process(), exclusive=True, keep_every=3600
    )
    try:
        await terminate_holder(second_db)

        async def taken() -> InstanceLock | None:
            try:
                return await take_instance_lock(second_db, exclusive=True, instance="other")
            except InstanceLocked:
                return None

        other = await until(taken, what="the lock free once its holder's connection ended")
        assert not await lock.check()
        [error] = [r for r in caplog.records if r.levelname == "ERROR"]
        assert "cannot take the instance lock again: another zapbridge" in error.getMessage()
        assert "(instance other)" in error.getMessage()
        await other.release()
        assert await lock.check()
    finally:
        await lock.release()


@pytest.mark.postgres
async def test_the_keeper_looks_by_itself(two_pools: tuple[Database, Database]) -> None:
    first_db, second_db = two_pools
    lock = await take_instance_lock(first_db, exclusive=True, keep_every=0.05)
    try:
        ended = await terminate_holder(second_db)

        async def held_again() -> bool:
            pids = await holder_pids(second_db)
            return len(pids) == 1 and ended not in pids

        await until(held_again, what="the keeper took the lock again")
        with pytest.raises(InstanceLocked):
            await take_instance_lock(second_db, exclusive=True)
    finally:
        await lock.release()


CONFIG = """\
database: {{url: "{db_url}"}}
data_dir: data-{name}
http: {{host: 127.0.0.1, port: {port}}}
whatsapp:
  engine: sim
  start_stagger_ms: 0
  sim: {{auto_pair: true}}
companies:
  - id: acme
    name: ACME Support
    admins: ["@alice:localhost"]
    sessions:
      - name: sales
"""


def bridge(tmp_path: Path, db_url: str, name: str) -> Bridge:
    text = CONFIG.format(db_url=db_url, port=free_port(), name=name)
    config = parse_config(text, path=tmp_path / "config.yaml")
    return Bridge(config, clock=FakeClock(), frontends=[FakeFrontend("matrix")])


async def test_a_second_bridge_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    first = bridge(tmp_path, "sqlite:bridge.db", "one")
    await first.start()
    try:
        second = bridge(tmp_path, "sqlite:bridge.db", "two")
        with pytest.raises(InstanceLocked, match=rf"uses sqlite:{tmp_path}/bridge\.db: {HOLDER}"):
            await second.start()
        await second.stop()
        assert not (tmp_path / "data-two" / "journal").exists()  # refused before anything
    finally:
        await first.stop()
    third = bridge(tmp_path, "sqlite:bridge.db", "three")  # the first's stop let it go
    await third.start()
    await third.stop()


@pytest.mark.postgres
async def test_a_second_bridge_on_one_postgres_schema_refuses_to_start(tmp_path: Path) -> None:
    schema = f"zapbridge_test_{secrets.token_hex(6)}"
    url = f"{PG_TEST_URL}?options=-csearch_path%3D{schema}"
    async with open_test_database("postgres", tmp_path) as db:
        await db.execute(f'CREATE SCHEMA "{schema}"')
        try:
            first = bridge(tmp_path, url, "one")
            await first.start()
            try:
                second = bridge(tmp_path, url, "two")
                with pytest.raises(InstanceLocked, match=rf"\(schema {schema}\): {HOLDER}"):
                    await second.start()
                await second.stop()
            finally:
                await first.stop()
        finally:
            await db.execute(f'DROP SCHEMA "{schema}" CASCADE')
