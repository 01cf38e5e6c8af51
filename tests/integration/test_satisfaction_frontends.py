"""A rating shows in its ticket's thread on each frontend, as a whole bridge: the strict
Slack fake, and a real Synapse (docs/tickets.md#satisfaction)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.db import migrate
from bridge.db.database import Database
from tests.conftest import open_test_database
from tests.fakes.slack import SlackFake
from tests.harness import slack as slack_harness
from tests.harness import synapse as synapse_harness
from tests.harness.slack import BOB, SALES, SlackHarness, until
from tests.harness.synapse import Homeserver, MatrixBridge, synapse

__all__ = ["synapse"]  # the fixture, re-exported for pytest

FAREWELL = "Atendimento encerrado. Obrigado!"
QUESTION = "De 1 a 5, como foi o atendimento?"
THANKS = "Obrigado pela nota!"
RATING = "Rating: 4/5"


def with_csat(template: str) -> str:
    """The harness's config with satisfaction ratings on acme/sales."""
    line = f'        farewell: "{FAREWELL}"\n'
    assert template.count(line) == 1
    csat = f'        csat: {{{{enabled: true, question: "{QUESTION}", thanks: "{THANKS}"}}}}\n'
    return template.replace(line, line + csat)


async def test_slack_a_rating_shows_in_the_thread(tmp_path: Path, db: Database) -> None:
    async with SlackFake() as fake:
        h = SlackHarness(tmp_path, db, fake, config=with_csat(slack_harness.CONFIG))
        await h.start()
        try:
            await h.customer(text="Oi")
            root = h.thread_root()
            await h.event(fake.user_message(SALES, BOB, "!close", thread_ts=root))
            assert [m["text"] for m in h.outbound()][-2:] == [FAREWELL, QUESTION]
            await h.customer(text="4")
            assert any(RATING in m["text"] for m in h.replies())
            assert h.outbound()[-1]["text"] == THANKS
            assert sum(1 for m in fake.messages(SALES) if m.get("blocks")) == 1  # one card
        finally:
            await h.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_matrix_a_rating_shows_in_the_thread(synapse: Homeserver, tmp_path: Path) -> None:
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        h = MatrixBridge(synapse, tmp_path / "bridge", db, config=with_csat(synapse_harness.CONFIG))
        await h.start()
        try:
            bob = synapse.user("bob")
            await h.customer(text="Oi")
            root = await h.thread_root()
            room = await h.room("control")
            await bob.join(room)
            await bob.send(
                room,
                {
                    "msgtype": "m.text",
                    "body": "!close",
                    "m.relates_to": {"rel_type": "m.thread", "event_id": root},
                },
            )
            await h.outbound(lambda m: m.get("text") == QUESTION)
            await h.customer(text="4")
            await h.outbound(lambda m: m.get("text") == THANKS)

            async def rating_in_thread() -> bool:
                for event in await bob.messages(room):
                    content = event.get("content", {})
                    relates = content.get("m.relates_to") or {}
                    if relates.get("event_id") == root and RATING in content.get("body", ""):
                        return True
                return False

            await until(rating_in_thread, what="the rating in the thread", clock=h.clock)
            assert (await h.bridge.repos.tickets.get(1)).csat_score == 4  # type: ignore[union-attr]
        finally:
            await h.stop()
