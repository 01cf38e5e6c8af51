"""Shared fixtures.

Database fixtures (bridge/db): every engine-parametrised fixture runs the test on
SQLite (a file in tmp_path) and on PostgreSQL (``ZAPBRIDGE_TEST_PG``, default
``postgresql://postgres@127.0.0.1/test``) in a fresh schema that is dropped
afterwards. PostgreSQL being unreachable fails the test; it is never skipped.

- ``db``        a migrated Database, on each engine
- ``raw_db``    an unmigrated Database, on each engine
- ``repos``     Repositories over ``db``
- ``sqlite_raw_db``, ``pg_raw_db``   one unmigrated Database of that engine
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.db import Database, Repositories, migrate
from bridge.errors import DatabaseError

PG_TEST_URL = os.environ.get("ZAPBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1/test")
ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@contextlib.asynccontextmanager
async def open_test_database(engine: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of ``engine``, removed (PostgreSQL schema dropped) afterwards."""
    if engine == "sqlite":
        db = await Database.connect(f"sqlite:{tmp_path / 'zapbridge.db'}")
        try:
            yield db
        finally:
            await db.close()
        return
    schema = f"zapbridge_test_{secrets.token_hex(6)}"
    db = await _connect_postgres(schema)
    try:
        yield db
    finally:
        await db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await db.close()


async def _connect_postgres(schema: str) -> Database:
    try:
        return await Database.connect(PG_TEST_URL, schema=schema)
    except DatabaseError as exc:
        problem = exc.explanation
    pytest.fail(
        f"PostgreSQL is required and unreachable: {problem}. Start it "
        "(pg_ctlcluster --skip-systemctl-redirect <version> main start) or point "
        "ZAPBRIDGE_TEST_PG at a server.",
        pytrace=False,
    )


@pytest.fixture(params=ENGINES)
async def raw_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with open_test_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with open_test_database(request.param, tmp_path) as database:
        await migrate(database)
        yield database


@pytest.fixture
def repos(db: Database) -> Repositories:
    return Repositories.over(db)


@pytest.fixture
async def sqlite_raw_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_test_database("sqlite", tmp_path) as database:
        yield database


@pytest.fixture
async def pg_raw_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_test_database("postgres", tmp_path) as database:
        yield database
