"""What ``/health`` reports besides the sessions: dead letters, and the problems the
frontends, the database and the journals know of."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bridge.core.frontend import Frontend
from bridge.db.database import Database
from bridge.db.outbox import OutboxRepository
from bridge.errors import DatabaseError


class Health:
    def __init__(
        self,
        outbox: OutboxRepository,
        *,
        frontends: Sequence[Frontend],
        journal_problems: Sequence[Callable[[], list[str]]],
    ) -> None:
        self._outbox = outbox
        self._frontends = frontends
        self._journal_problems = journal_problems
        self._database_problem: str | None = None  # the last dead-letter count's error

    async def dead_letters(self) -> int:
        """The dead-letter count; a database that cannot answer is a problem, not a 500."""
        try:
            count = await self._outbox.count_dead()
        except DatabaseError as exc:
            self._database_problem = f"the database does not answer: {exc.explanation}"
            return 0
        self._database_problem = None
        return count

    def problems(self) -> list[str]:
        problems = [problem for fe in self._frontends for problem in fe.health_problems()]
        if self._database_problem is not None:
            problems.append(self._database_problem)
        return problems + [problem for journal in self._journal_problems for problem in journal()]


async def probe_writes(db: Database) -> None:
    """Whether the database takes writes (a journal's probe): an empty write
    transaction, which on SQLite waits for the write lock. Raises DatabaseError."""
    async with db.transaction():
        pass
