"""Count the statements a bridge sends to its database, by statement text.

``StatementCounter.attach(db)`` wraps one ``Database`` instance's statement methods
(its own attributes, so other instances and the class are untouched); every
statement is counted under its first line-folded 90 characters, and every
transaction adds its ``BEGIN`` and ``COMMIT`` (on PostgreSQL, each a round trip).
``report(messages)`` is the table ``bench.relay --profile`` writes: statements per
message, most frequent first.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from bridge.db.database import Database


class StatementCounter:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def attach(self, db: Database) -> None:
        """Count every statement ``db`` runs from now on."""
        execute, fetch, begin = db._execute, db._fetch, db._begin

        async def counted_execute(conn: Any, sql: str, args: tuple[Any, ...]) -> int:
            self.counts[_key(sql)] += 1
            return await execute(conn, sql, args)

        async def counted_fetch(conn: Any, sql: str, args: tuple[Any, ...]) -> list[Any]:
            self.counts[_key(sql)] += 1
            return await fetch(conn, sql, args)

        @contextlib.asynccontextmanager
        async def counted_begin() -> AsyncIterator[Any]:
            if db.dialect == "postgres":  # SQLite's BEGIN/COMMIT go through _execute
                self.counts["BEGIN"] += 1
            async with begin() as conn:
                yield conn
            if db.dialect == "postgres":
                self.counts["COMMIT"] += 1

        db._execute = counted_execute  # type: ignore[method-assign]
        db._fetch = counted_fetch  # type: ignore[method-assign]
        db._begin = counted_begin  # type: ignore[method-assign]

    def reset(self) -> None:
        self.counts.clear()

    def report(self, messages: int) -> str:
        """Statements per message, most frequent first, and the total."""
        total = sum(self.counts.values())
        lines = [f"{total / messages:6.2f}/msg  all {total} statements for {messages} messages"]
        for sql, count in self.counts.most_common():
            lines.append(f"{count / messages:6.2f}/msg  {sql}")
        return "\n".join(lines) + "\n"


def _key(sql: str) -> str:
    return " ".join(sql.split())[:90]
