"""Copying a whatsmeow device store from its SQLite file into PostgreSQL
(``python -m bridge migrate-devices``, docs/cluster.md "Device stores").

whatsmeow keeps a device in the same ``whatsmeow_*`` tables on both databases (its
``sqlstore`` upgrades write one schema, version in ``whatsmeow_version``). neonize
offers no call that moves a device between stores (only ``GetAllDevices``, which
lists JIDs), and whatsmeow's ``Container.PutDevice`` writes the ``whatsmeow_device``
row alone, without the Signal sessions, identity and pre-keys the device needs. So
the copy is SQL, table by table:

- the source is opened read-only and must pass ``PRAGMA integrity_check``; its
  ``whatsmeow_version`` must equal the target's (whatsmeow upgrades a store when it
  opens it: run this version of the bridge once on each side first);
- the target's tables must exist (whatsmeow creates them when it first opens the
  database; the caller does that, see ``prepare`` in bridge/__main__.py);
- every row of every ``whatsmeow_*`` table both sides have is inserted in one
  transaction with ``ON CONFLICT DO NOTHING`` (run it twice: nothing changes), the
  device row first and each table after the tables it references; the columns are
  those both sides have; SQLite's 0/1 become booleans where the target says so;
- a device already in the target is left alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.db.database import Database
from bridge.errors import BridgeError

# whatsmeow's tables, each after the tables its foreign keys reference.
TABLE_ORDER = (
    "whatsmeow_device",
    "whatsmeow_identity_keys",
    "whatsmeow_pre_keys",
    "whatsmeow_sessions",
    "whatsmeow_sender_keys",
    "whatsmeow_app_state_sync_keys",
    "whatsmeow_app_state_version",
    "whatsmeow_app_state_mutation_macs",
    "whatsmeow_contacts",
    "whatsmeow_chat_settings",
    "whatsmeow_message_secrets",
    "whatsmeow_privacy_tokens",
    "whatsmeow_nct_salt",
    "whatsmeow_lid_map",
    "whatsmeow_event_buffer",
    "whatsmeow_retry_buffer",
)
VERSION_TABLE = "whatsmeow_version"


class StoreCopyError(BridgeError):
    """A whatsmeow store cannot be copied (corrupt, another schema version, no target)."""


@dataclass(frozen=True, slots=True)
class StoreCopy:
    """What copying one store did."""

    devices: tuple[str, ...]  # the device JIDs in the source store
    copied: bool  # False: every device was in the target already
    rows: int  # rows inserted
    tables: int  # tables that had rows to copy


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreCopyError(f"cannot open the whatsmeow store {path}: {exc}") from exc
    with closing(conn):
        yield conn


def read_store(path: Path) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """The schema version and the rows of every ``whatsmeow_*`` table of a SQLite
    store, checked first (blocking: call it through ``asyncio.to_thread``)."""
    with _read_only(path) as conn:
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise StoreCopyError(f"the whatsmeow store {path} is corrupt: {check}")
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'whatsmeow%'"
                )
            ]
            if VERSION_TABLE not in names or "whatsmeow_device" not in names:
                raise StoreCopyError(f"{path} is not a whatsmeow device store")
            version_row = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
            tables: dict[str, list[dict[str, Any]]] = {}
            for name in names:
                if name == VERSION_TABLE:
                    continue
                cursor = conn.execute(f'SELECT * FROM "{name}"')
                columns = [d[0] for d in cursor.description]
                tables[name] = [dict(zip(columns, row, strict=True)) for row in cursor]
        except sqlite3.DatabaseError as exc:
            raise StoreCopyError(f"the whatsmeow store {path} is corrupt: {exc}") from exc
    if version_row is None:
        raise StoreCopyError(f"the whatsmeow store {path} has no schema version")
    return int(version_row[0]), tables


async def target_version(db: Database) -> int | None:
    """The target's whatsmeow schema version; None when whatsmeow never opened it."""
    found = await db.fetchval(
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = $1",
        VERSION_TABLE,
    )
    if not found:
        return None
    value = await db.fetchval(f"SELECT version FROM {VERSION_TABLE}")
    return int(value) if value is not None else None


async def _column_types(db: Database, table: str) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1",
        table,
    )
    return {str(r["column_name"]): str(r["data_type"]) for r in rows}


def _value(value: Any, data_type: str) -> Any:
    if value is None:
        return None
    if data_type == "boolean":
        return bool(value)
    if data_type == "bytea" and isinstance(value, str):
        return value.encode()
    if data_type == "uuid":
        return str(value)
    return value


async def copy_store(db: Database, source: Path) -> StoreCopy:
    """Copy the SQLite whatsmeow store ``source`` into the PostgreSQL ``db``."""
    import asyncio

    version, tables = await asyncio.to_thread(read_store, source)
    devices = tuple(str(row["jid"]) for row in tables.get("whatsmeow_device", []))
    if not devices:
        return StoreCopy(devices=(), copied=False, rows=0, tables=0)
    target = await target_version(db)
    if target is None:
        raise StoreCopyError("the database has no whatsmeow tables yet")
    if target != version:
        raise StoreCopyError(
            f"{source} has whatsmeow schema v{version} and the database v{target}: start "
            "this version of the bridge once on each, so whatsmeow upgrades both, then retry"
        )
    present = await db.fetch(
        "SELECT jid FROM whatsmeow_device WHERE jid = ANY($1::text[])", list(devices)
    )
    if len(present) == len(devices):
        return StoreCopy(devices=devices, copied=False, rows=0, tables=0)
    order = [t for t in TABLE_ORDER if t in tables] + sorted(set(tables) - set(TABLE_ORDER))
    inserted = touched = 0
    async with db.transaction():
        for table in order:
            types = await _column_types(db, table)
            rows = tables[table]
            if not types or not rows:
                continue
            columns = [c for c in rows[0] if c in types]
            names = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
            sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING'
            touched += 1
            for row in rows:
                inserted += await db.execute(sql, *(_value(row[c], types[c]) for c in columns))
    return StoreCopy(devices=devices, copied=True, rows=inserted, tables=touched)
