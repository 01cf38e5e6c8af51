"""What /health reports besides the sessions: the dead-letter count, and every
problem the frontends, the database and the journals know of, in that order."""

from __future__ import annotations

from bridge.core.health import Health
from bridge.errors import DatabaseError


class FlakyOutbox:
    def __init__(self) -> None:
        self.down = False

    async def count_dead(self) -> int:
        if self.down:
            raise DatabaseError("connection refused")
        return 3


class ProblemFrontend:
    def health_problems(self) -> list[str]:
        return ["matrix: the homeserver does not answer"]


async def test_a_database_that_cannot_count_is_a_problem_until_it_answers() -> None:
    outbox = FlakyOutbox()
    health = Health(
        outbox,  # type: ignore[arg-type]
        frontends=[ProblemFrontend()],  # type: ignore[list-item]
        journal_problems=[lambda: ["whatsapp journal: 5 events kept"], lambda: []],
    )
    assert await health.dead_letters() == 3
    assert health.problems() == [
        "matrix: the homeserver does not answer",
        "whatsapp journal: 5 events kept",
    ]
    outbox.down = True
    assert await health.dead_letters() == 0
    assert health.problems() == [
        "matrix: the homeserver does not answer",
        "the database does not answer: connection refused",
        "whatsapp journal: 5 events kept",
    ]
    outbox.down = False
    assert await health.dead_letters() == 3
    assert "the database does not answer: connection refused" not in health.problems()
