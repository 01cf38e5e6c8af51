"""The migration runner: ordering, idempotence, refusal, rollback of a failed step."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.db.database import Database
from bridge.db.migrate import current_version, load_migrations, migrate, split_statements
from bridge.errors import MigrationError


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


async def _tables(db: Database) -> set[str]:
    if db.dialect == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        sql = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
    return {row["name"] for row in await db.fetch(sql)}


def test_split_statements_on_line_ending_semicolons() -> None:
    text = (
        "-- header comment\n"
        "CREATE TABLE a (x TEXT DEFAULT 'a;b');\n"
        "\n"
        "-- only a comment;\n"
        "INSERT INTO a (x)\n"
        "    VALUES ('y'); -- trailing comment\n"
        "SELECT 1"
    )
    statements = split_statements(text)
    assert [(s.line, s.sql) for s in statements] == [
        (2, "CREATE TABLE a (x TEXT DEFAULT 'a;b')"),
        (5, "INSERT INTO a (x)\n    VALUES ('y')"),
        (7, "SELECT 1"),
    ]


def test_packaged_migrations_are_numbered_from_one() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations][:1] == [1]
    assert migrations[0].file_name == "0001_init.sql"
    assert migrations[0].description == "init"


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="two migrations share version 1"):
        load_migrations(tmp_path)


async def test_migrate_is_idempotent(raw_db: Database) -> None:
    versions = [m.version for m in load_migrations()]
    newest = versions[-1]
    applied = await migrate(raw_db)
    assert applied == versions  # in order (numbers taken by parallel branches may be missing)
    assert await migrate(raw_db) == []
    assert await current_version(raw_db) == newest
    rows = await raw_db.fetch("SELECT version, description FROM schema_version ORDER BY version")
    assert rows[0] == {"version": 1, "description": "init"}


async def test_migrate_applies_only_newer_files(raw_db: Database, tmp_path: Path) -> None:
    directory = _write(tmp_path / "m", {"0001_a.sql": "CREATE TABLE a (x TEXT);"})
    assert await migrate(raw_db, migrations_dir=directory) == [1]
    _write(directory, {"0002_b.sql": "CREATE TABLE b (x TEXT);\nINSERT INTO b VALUES ('1');"})
    assert await migrate(raw_db, migrations_dir=directory) == [2]
    assert {"a", "b", "schema_version"} <= await _tables(raw_db)


async def test_newer_schema_is_refused(raw_db: Database, tmp_path: Path) -> None:
    await migrate(raw_db)
    future = load_migrations()[-1].version + 1
    await raw_db.execute(
        "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, 'future', 0)",
        future,
    )
    directory = _write(tmp_path / "m", {f"000{v}_step.sql": "SELECT 1;" for v in (1, 2, 3)})
    with pytest.raises(MigrationError) as caught:
        await migrate(raw_db, migrations_dir=directory)
    assert caught.value.explanation == (
        f"database schema is at version {future} but this zapbridge knows only up to 3; "
        "upgrade zapbridge"
    )


async def test_failed_migration_is_rolled_back_entirely(raw_db: Database, tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "m",
        {
            "0001_first.sql": "CREATE TABLE first (x TEXT);",
            "0002_broken.sql": (
                "CREATE TABLE second (x TEXT);\n"
                "INSERT INTO second (x) VALUES ('kept?');\n"
                "INSERT INTO no_such_table (x)\n  VALUES (1);\n"
                "CREATE TABLE third (x TEXT);\n"
            ),
        },
    )
    with pytest.raises(MigrationError) as caught:
        await migrate(raw_db, migrations_dir=directory)
    message = caught.value.explanation
    assert "migration 0002_broken.sql failed at statement 3 (line 3)" in message
    assert "INSERT INTO no_such_table (x) VALUES (1)" in message
    assert "schema stays at version 1" in message
    assert await current_version(raw_db) == 1
    tables = await _tables(raw_db)
    assert "first" in tables
    assert not {"second", "third"} & tables


async def test_markers_are_substituted(raw_db: Database, tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "m", {"0001_ids.sql": "CREATE TABLE t (id {{id}}, data {{blob}});"}
    )
    await migrate(raw_db, migrations_dir=directory)
    await raw_db.execute("INSERT INTO t (data) VALUES ($1)", b"\x00\xff")
    assert await raw_db.fetch("SELECT id, data FROM t") == [{"id": 1, "data": b"\x00\xff"}]


async def test_unknown_marker_is_refused(raw_db: Database, tmp_path: Path) -> None:
    directory = _write(tmp_path / "m", {"0001_x.sql": "CREATE TABLE t (id {{uuid}});"})
    with pytest.raises(MigrationError, match=r"0001_x.sql: unknown marker \{\{uuid\}\}"):
        await migrate(raw_db, migrations_dir=directory)


async def test_0006_counts_old_tickets_silence_from_their_last_customer_message(
    raw_db: Database, tmp_path: Path
) -> None:
    """Tickets written before migration 0006 get last_customer_at from their newest
    inbound message, else from their creation (docs/tickets.md#idle-tickets)."""
    older = {m.file_name: m.text for m in load_migrations() if m.version <= 5}
    assert await migrate(raw_db, migrations_dir=_write(tmp_path / "m", older)) == [1, 2, 3, 4, 5]
    db = raw_db
    await db.execute("INSERT INTO companies (id, name) VALUES ('acme', 'ACME')")
    await db.execute(
        "INSERT INTO sessions (company_id, name, engine, updated_at) "
        "VALUES ('acme', 'sales', 'sim', 1)"
    )
    for n in (1, 2):
        await db.execute(
            "INSERT INTO contacts (session_id, phone, created_at, updated_at) VALUES (1, $1, 1, 1)",
            f"+55119000000{n}",
        )
        await db.execute(
            "INSERT INTO tickets (session_id, contact_id, status, created_at, updated_at) "
            "VALUES (1, $1, 'open', $2, $2)",
            n,
            float(n * 100),
        )
    for direction, at in (("in", 150.0), ("in", 170.0), ("out", 190.0)):
        await db.execute(
            "INSERT INTO messages (ticket_id, session_id, direction, kind, sender, content, "
            "timestamp, created_at) VALUES (1, 1, $1, 'text', 'x', '{}', $2, $2)",
            direction,
            at,
        )
    assert 6 in await migrate(db)
    rows = await db.fetch("SELECT id, last_customer_at FROM tickets ORDER BY id")
    assert [(r["id"], r["last_customer_at"]) for r in rows] == [(1, 170.0), (2, 200.0)]


async def test_0009_gives_pending_whatsapp_rows_their_ticket_s_session(
    raw_db: Database, tmp_path: Path
) -> None:
    """Rows to WhatsApp pending before migration 0009 get their ticket's session, so
    that with several instances only its owner sends them (docs/cluster.md)."""
    older = {m.file_name: m.text for m in load_migrations() if m.version <= 6}
    assert await migrate(raw_db, migrations_dir=_write(tmp_path / "m", older)) == list(range(1, 7))
    db = raw_db
    await db.execute("INSERT INTO companies (id, name) VALUES ('acme', 'ACME')")
    for name in ("sales", "support"):
        await db.execute(
            "INSERT INTO sessions (company_id, name, engine, updated_at) "
            "VALUES ('acme', $1, 'sim', 1)",
            name,
        )
    await db.execute(
        "INSERT INTO contacts (session_id, phone, created_at, updated_at) "
        "VALUES (2, '+551190', 1, 1)"
    )
    for n in range(12):  # ticket 12 is the open one: a key of two digits
        await db.execute(
            "INSERT INTO tickets (session_id, contact_id, status, created_at, updated_at) "
            "VALUES (2, 1, $1, 1, 1)",
            "open" if n == 11 else "closed",
        )
    for destination, key, status in (
        ("whatsapp", "t12:whatsapp", "pending"),
        ("whatsapp", "t12:whatsapp", "done"),
        ("slack", "t12:slack", "pending"),
    ):
        await db.execute(
            "INSERT INTO outbox (destination, ordering_key, payload, status, next_attempt_at, "
            "created_at, updated_at) VALUES ($1, $2, '{}', $3, 1, 1, 1)",
            destination,
            key,
            status,
        )
    assert 9 in await migrate(db)
    rows = await db.fetch("SELECT ordering_key, status, session_key FROM outbox ORDER BY id")
    assert [(r["ordering_key"], r["status"], r["session_key"]) for r in rows] == [
        ("t12:whatsapp", "pending", "acme/support"),
        ("t12:whatsapp", "done", None),  # delivered: nobody sends it again
        ("t12:slack", "pending", None),
    ]
    assert await db.fetchval("SELECT COUNT(*) FROM outbox_claims") == 0
