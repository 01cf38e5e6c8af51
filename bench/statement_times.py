"""Time the statements a bridge sends to its database, by statement text, and show
the plans of the slowest (``bench.scale --statements FILE``).

``StatementTimer.attach(db)`` wraps one ``Database`` instance's statement methods
like :class:`bench.statements.StatementCounter` does; each statement text keeps its
count, total and worst time, and the arguments of its last run, so that
:meth:`StatementTimer.explain` can ask the database for its plan (``EXPLAIN``, which
does not run it). A statement whose mean time grows with the stored history is the
one to index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bridge.db.database import Database


@dataclass
class Timing:
    sql: str
    count: int = 0
    total: float = 0.0
    worst: float = 0.0
    args: tuple[Any, ...] = field(default=())

    @property
    def mean_ms(self) -> float:
        return self.total * 1000 / max(self.count, 1)


class StatementTimer:
    def __init__(self) -> None:
        self.timings: dict[str, Timing] = {}

    def attach(self, db: Database) -> None:
        """Time every statement ``db`` runs from now on."""
        execute, fetch = db._execute, db._fetch

        async def timed_execute(conn: Any, sql: str, args: tuple[Any, ...]) -> int:
            t0 = time.perf_counter()
            try:
                return await execute(conn, sql, args)
            finally:
                self._add(sql, args, time.perf_counter() - t0)

        async def timed_fetch(conn: Any, sql: str, args: tuple[Any, ...]) -> list[Any]:
            t0 = time.perf_counter()
            try:
                return await fetch(conn, sql, args)
            finally:
                self._add(sql, args, time.perf_counter() - t0)

        db._execute = timed_execute  # type: ignore[method-assign]
        db._fetch = timed_fetch  # type: ignore[method-assign]

    def _add(self, sql: str, args: tuple[Any, ...], seconds: float) -> None:
        key = " ".join(sql.split())
        timing = self.timings.get(key)
        if timing is None:
            timing = self.timings[key] = Timing(sql)
        timing.count += 1
        timing.total += seconds
        timing.worst = max(timing.worst, seconds)
        timing.args = args

    def reset(self) -> None:
        self.timings.clear()

    def slowest(self, n: int) -> list[Timing]:
        """The ``n`` statements that took the most time in all."""
        return sorted(self.timings.values(), key=lambda t: t.total, reverse=True)[:n]

    async def explain(self, db: Database, timing: Timing) -> str:
        """The database's plan for ``timing``'s statement with its last arguments."""
        if timing.sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT")):
            return ""
        prefix = "EXPLAIN" if db.dialect == "postgres" else "EXPLAIN QUERY PLAN"
        try:
            rows = await db.fetch(f"{prefix} {timing.sql}", *timing.args)
        except Exception as exc:  # a plan is a hint: report why there is none
            return f"(no plan: {exc!r})"
        return "\n".join(" | ".join(str(v) for v in dict(row).values()) for row in rows)

    async def report(self, db: Database, *, title: str, n: int = 8) -> str:
        """The ``n`` slowest statements in all, with their plans."""
        lines = [f"== {title}"]
        for timing in self.slowest(n):
            lines.append(
                f"{timing.count:6d} × {timing.mean_ms:7.3f} ms mean, "
                f"{timing.worst * 1000:7.1f} ms worst: {' '.join(timing.sql.split())[:200]}"
            )
            plan = await self.explain(db, timing)
            lines += [f"        {line}" for line in plan.splitlines()]
        return "\n".join(lines) + "\n"
