"""The migration runner.

Migrations are files ``NNNN_description.sql`` in the repository's ``migrations/``
(installed as the package ``bridge.migrations``), applied in version order. Each runs
in ONE transaction that also records its version in ``schema_version``: a migration
failing midway leaves nothing behind, and its error names the file and the failing
statement.

Both engines run the same files, so write portable SQL. Statements are split on a
``;`` that ends a line (no procedural code). Where a type must differ, a marker is
substituted:

=============  ==================================  =======================
marker         SQLite                              PostgreSQL
=============  ==================================  =======================
``{{id}}``     ``INTEGER PRIMARY KEY AUTOINCREMENT``  ``BIGSERIAL PRIMARY KEY``
``{{blob}}``   ``BLOB``                            ``BYTEA``
=============  ==================================  =======================

On PostgreSQL an advisory lock serialises concurrent runners (two bridges starting
at once); on SQLite ``BEGIN IMMEDIATE`` does.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from bridge.db.database import Database
from bridge.errors import DatabaseError, MigrationError

log = logging.getLogger("bridge.db.migrate")

MARKERS: dict[str, dict[str, str]] = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgres": {"id": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}
PG_ADVISORY_LOCK_KEY = 0x7A617062  # "zapb"

_FILE_NAME = re.compile(r"(\d{4})_(\w+)\.sql")
_MARKER = re.compile(r"\{\{(\w+)\}\}")
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.M)

_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  DOUBLE PRECISION NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a migration file and the line it starts on."""

    line: int
    sql: str


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    description: str
    file_name: str
    text: str

    def statements(self, dialect: str) -> list[Statement]:
        """The file's statements with markers substituted for ``dialect``."""
        return [
            Statement(s.line, self._substitute(s.sql, dialect)) for s in split_statements(self.text)
        ]

    def _substitute(self, sql: str, dialect: str) -> str:
        markers = MARKERS[dialect]

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in markers:
                raise MigrationError(f"migration {self.file_name}: unknown marker {match.group(0)}")
            return markers[match.group(1)]

        return _MARKER.sub(replace, sql)


def split_statements(text: str) -> list[Statement]:
    """Split on ``;`` at line ends; trim comment lines around each statement."""
    statements: list[Statement] = []
    start = 0
    for match in [*_STATEMENT_END.finditer(text), None]:
        end = match.start() if match else len(text)
        lines = text[start:end].split("\n")
        code = [i for i, line in enumerate(lines) if line.strip() and not _is_comment(line)]
        if code:
            line = text.count("\n", 0, start) + code[0] + 1
            statements.append(Statement(line, "\n".join(lines[code[0] : code[-1] + 1]).strip()))
        start = match.end() if match else len(text)
    return statements


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("--")


def load_migrations(migrations_dir: Traversable | None = None) -> list[Migration]:
    """Every ``NNNN_description.sql`` in the directory, by version."""
    directory = migrations_dir or files("bridge.migrations")
    found: dict[int, Migration] = {}
    for entry in directory.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"two migrations share version {version}: "
                f"{found[version].file_name} and {entry.name}"
            )
        description = match.group(2).replace("_", " ")
        found[version] = Migration(version, description, entry.name, entry.read_text("utf-8"))
    return [found[version] for version in sorted(found)]


async def current_version(db: Database) -> int:
    """The newest applied version, 0 for an empty database."""
    await db.execute(_CREATE_VERSION_TABLE)
    return int(await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate(db: Database, *, migrations_dir: Traversable | None = None) -> list[int]:
    """Apply every pending migration, each in its own transaction; return their versions."""
    migrations = load_migrations(migrations_dir)
    newest = migrations[-1].version if migrations else 0
    async with db.transaction():
        await _lock(db)
        current = await current_version(db)
    if current > newest:
        raise MigrationError(
            f"database schema is at version {current} but this zapbridge knows only up to "
            f"{newest}; upgrade zapbridge"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version > current and await _apply(db, migration):
            applied.append(migration.version)
    return applied


async def _lock(db: Database) -> None:
    if db.dialect == "postgres":
        await db.execute("SELECT pg_advisory_xact_lock($1)", PG_ADVISORY_LOCK_KEY)


async def _apply(db: Database, migration: Migration) -> bool:
    statements = migration.statements(db.dialect)
    async with db.transaction():
        await _lock(db)
        before = await current_version(db)
        if before >= migration.version:
            return False  # another runner applied it while we waited for the lock
        for number, statement in enumerate(statements, start=1):
            await _run_statement(db, migration, number, statement, before)
        await db.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
            migration.version,
            migration.description,
            time.time(),
        )
    log.info("applied migration %s", migration.file_name)
    return True


async def _run_statement(
    db: Database, migration: Migration, number: int, statement: Statement, before: int
) -> None:
    try:
        await db.execute(statement.sql)
    except DatabaseError as exc:
        shown = " ".join(statement.sql.split())
        shown = shown if len(shown) <= 200 else shown[:197] + "..."
        raise MigrationError(
            f"migration {migration.file_name} failed at statement {number} (line "
            f"{statement.line}): {shown}: {exc.explanation}; rolled back, the schema stays at "
            f"version {before}"
        ) from exc
