"""The customer's receipts on Slack (the strict SlackFake, the sim engine, both
database engines; docs/presence.md): ☑️ once the attendant's message is delivered,
replaced by ✅ once it is read; nothing on the customer's own messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.db.database import Database
from tests.fakes.slack import SlackFake
from tests.harness.slack import BOB, SALES, SlackHarness

SESSION = "acme/sales"


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


@pytest.fixture
async def bridge(tmp_path: Path, db: Database, fake: SlackFake) -> AsyncIterator[SlackHarness]:
    harness = SlackHarness(tmp_path, db, fake)
    await harness.start()
    yield harness
    await harness.stop()


async def test_delivered_then_read_show_as_reactions_on_bobs_message(
    bridge: SlackHarness,
) -> None:
    await bridge.customer(text="Oi")
    root = bridge.thread_root()
    await bridge.event(bridge.fake.user_message(SALES, BOB, "Olá, Maria", thread_ts=root))
    ours = bridge.outbound()[-1]
    bob_post = next(m for m in bridge.replies() if m["text"].endswith("Olá, Maria"))
    assert bridge.fake.reactions(SALES, bob_post["ts"]) == []

    await bridge.sim.receipt(SESSION, ours["id"], "delivered")
    await bridge.settle()
    assert bridge.fake.reactions(SALES, bob_post["ts"]) == ["ballot_box_with_check"]

    await bridge.sim.receipt(SESSION, ours["id"], "read")
    await bridge.settle()
    assert bridge.fake.reactions(SALES, bob_post["ts"]) == ["white_check_mark"]

    # a late "delivered" does not bring ☑️ back; the customer's message has none
    await bridge.sim.receipt(SESSION, ours["id"], "delivered")
    await bridge.settle()
    assert bridge.fake.reactions(SALES, bob_post["ts"]) == ["white_check_mark"]
    customer_post = bridge.customer_posts()[0]
    assert bridge.fake.reactions(SALES, customer_post["ts"]) == []


async def test_read_at_once_shows_only_the_read_reaction(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    root = bridge.thread_root()
    await bridge.event(bridge.fake.user_message(SALES, BOB, "Pronto", thread_ts=root))
    ours = bridge.outbound()[-1]
    bob_post = next(m for m in bridge.replies() if m["text"].endswith("Pronto"))
    await bridge.sim.receipt(SESSION, ours["id"], "read")
    await bridge.settle()
    assert bridge.fake.reactions(SALES, bob_post["ts"]) == ["white_check_mark"]
