"""Every migration applied to SQLite and to PostgreSQL yields the same schema."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bridge.db.database import Database
from bridge.db.migrate import migrate

pytestmark = pytest.mark.postgres

TYPES = {
    "integer": "int",
    "bigint": "int",
    "smallint": "int",
    "text": "text",
    "double precision": "float",
    "real": "float",
    "boolean": "bool",
    "bytea": "blob",
    "blob": "blob",
}
ON_DELETE = {"a": "NO ACTION", "c": "CASCADE", "r": "RESTRICT", "n": "SET NULL", "d": "SET DEFAULT"}

Schema = dict[str, set[tuple[Any, ...]]]
PARTS = ("columns", "primary_keys", "indexes", "foreign_keys")
ONE_ACTIVE_TICKET = (
    "tickets",
    "tickets_one_active",
    ("session_id", "contact_id"),
    True,
    "status <> 'closed'",
)


def _empty_schema() -> Schema:
    return {part: set() for part in PARTS}


def _expression(text: str | None) -> str | None:
    """Defaults and index predicates without casts, parentheses, case or spacing noise."""
    if text is None or text.startswith("nextval("):
        return None
    text = re.sub(r"::[a-z ]+", "", text).replace("(", "").replace(")", "")
    return " ".join(text.split()).lower()


async def _sqlite_schema(db: Database) -> Schema:
    schema = _empty_schema()
    tables = await db.fetch(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    for table in [row["name"] for row in tables]:
        columns = await db.fetch(f"PRAGMA table_info({table})")
        for c in columns:
            kind = TYPES[c["type"].lower()]
            not_null = bool(c["notnull"] or c["pk"])
            schema["columns"].add((table, c["name"], kind, not_null, _expression(c["dflt_value"])))
        key = tuple(c["name"] for c in sorted(columns, key=lambda c: c["pk"]) if c["pk"])
        schema["primary_keys"].add((table, key))
        for index in await db.fetch(f"PRAGMA index_list({table})"):
            if index["origin"] == "pk":
                continue
            info = await db.fetch(f"PRAGMA index_info({index['name']})")
            sql = await db.fetchval("SELECT sql FROM sqlite_master WHERE name = $1", index["name"])
            where = re.search(r"\bWHERE\b(.*)$", sql or "", re.S | re.I)
            name = index["name"] if index["origin"] == "c" else None
            columns_of_index = tuple(i["name"] for i in sorted(info, key=lambda i: i["seqno"]))
            predicate = _expression(where.group(1)) if where else None
            schema["indexes"].add((table, name, columns_of_index, bool(index["unique"]), predicate))
        for fk in await db.fetch(f"PRAGMA foreign_key_list({table})"):
            schema["foreign_keys"].add((table, fk["from"], fk["table"], fk["to"], fk["on_delete"]))
    return schema


_PG_COLUMNS = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = current_schema()
"""
_PG_INDEXES = """
SELECT t.relname AS table_name, i.relname AS index_name, x.indisunique, x.indisprimary,
       pg_get_expr(x.indpred, x.indrelid) AS predicate,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) AS of_constraint,
       ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord) AS columns
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema()
"""
_PG_FOREIGN_KEYS = """
SELECT t.relname AS table_name, a.attname AS column_name, ft.relname AS ref_table,
       fa.attname AS ref_column, c.confdeltype::text AS confdeltype,
       array_length(c.conkey, 1) AS width
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class ft ON ft.oid = c.confrelid
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
WHERE c.contype = 'f' AND n.nspname = current_schema()
"""


async def _pg_schema(db: Database) -> Schema:
    schema = _empty_schema()
    for c in await db.fetch(_PG_COLUMNS):
        schema["columns"].add(
            (
                c["table_name"],
                c["column_name"],
                TYPES[c["data_type"]],
                c["is_nullable"] == "NO",
                _expression(c["column_default"]),
            )
        )
    for x in await db.fetch(_PG_INDEXES):
        columns = tuple(x["columns"])
        if x["indisprimary"]:
            schema["primary_keys"].add((x["table_name"], columns))
            continue
        name = None if x["of_constraint"] else x["index_name"]
        predicate = _expression(x["predicate"])
        schema["indexes"].add((x["table_name"], name, columns, x["indisunique"], predicate))
    for fk in await db.fetch(_PG_FOREIGN_KEYS):
        assert fk["width"] == 1, "the comparison handles single-column foreign keys only"
        schema["foreign_keys"].add(
            (
                fk["table_name"],
                fk["column_name"],
                fk["ref_table"],
                fk["ref_column"],
                ON_DELETE[fk["confdeltype"]],
            )
        )
    return schema


async def test_both_engines_get_the_same_schema(
    sqlite_raw_db: Database, pg_raw_db: Database
) -> None:
    await migrate(sqlite_raw_db)
    await migrate(pg_raw_db)
    sqlite_schema = await _sqlite_schema(sqlite_raw_db)
    pg_schema = await _pg_schema(pg_raw_db)
    for part in PARTS:
        only_sqlite = sorted(sqlite_schema[part] - pg_schema[part], key=str)
        only_pg = sorted(pg_schema[part] - sqlite_schema[part], key=str)
        assert (only_sqlite, only_pg) == ([], []), part
    assert ONE_ACTIVE_TICKET in pg_schema["indexes"]  # the comparison sees partial indexes
