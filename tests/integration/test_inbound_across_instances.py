"""Inbound events reaching another instance (docs/cluster.md, "Inbound from anywhere"):
two whole bridges on one PostgreSQL schema behind one Slack HTTP endpoint; Slack
redelivers an event to the instance it did not reach the first time. The events
already handled are in the database, so the second instance ignores it. PostgreSQL
only.

The second bridge's outbox worker is stopped: what it enqueued would show in the
first one's deliveries (claims across instances are tested in test_outbox_cluster.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.db import Database, migrate
from tests.conftest import _connect_postgres, open_test_database
from tests.fakes.slack import SlackFake
from tests.harness.slack import BOB, SALES, SlackHarness

pytestmark = pytest.mark.postgres


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


@pytest.fixture
async def pair(tmp_path: Path, fake: SlackFake) -> AsyncIterator[tuple[SlackHarness, SlackHarness]]:
    async with open_test_database("postgres", tmp_path) as db:
        await migrate(db)
        schema = str(await db.fetchval("SELECT current_schema()"))
        other_db = await _connect_postgres(schema)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = SlackHarness(tmp_path / "a", db, fake, mode="http")
        second = SlackHarness(tmp_path / "b", other_db, fake, mode="http")
        await first.start()
        try:
            await second.start()
            try:
                await second.bridge.outbox.stop()
                yield first, second
            finally:
                await second.stop()
        finally:
            await first.stop()
            await other_db.close()


async def _count(db: Database, text: str) -> int:
    return int(
        await db.fetchval("SELECT COUNT(*) FROM messages WHERE content LIKE $1", f"%{text}%")
    )


async def _whatsapp_rows(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM outbox WHERE destination = 'whatsapp'"))


async def test_a_slack_event_redelivered_to_another_instance_is_ignored(
    pair: tuple[SlackHarness, SlackHarness],
) -> None:
    first, second = pair
    fake = first.fake
    await first.customer(text="oi")
    rows_before = await _whatsapp_rows(first.db)
    event = fake.user_message(SALES, BOB, "só uma vez", thread_ts=first.thread_root())
    body, headers = fake.http_request("events_api", fake.event_payload(event))
    assert (await first.post(body, headers))[0] == 200
    retry = {**headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await second.post(body, retry))[0] == 200  # the same event, on the other one
    await first.settle()
    assert await _count(first.db, "só uma vez") == 1
    sent = [m["text"] for m in first.outbound() + second.outbound()]
    assert sent.count("*Bob Silva:*\nsó uma vez") == 1
    assert await _whatsapp_rows(first.db) == rows_before + 1


async def test_a_slack_command_redelivered_to_another_instance_runs_once(
    pair: tuple[SlackHarness, SlackHarness],
) -> None:
    first, second = pair
    fake = first.fake
    await first.customer(text="oi")
    event = fake.user_message(SALES, BOB, "!transcript", thread_ts=first.thread_root())
    body, headers = fake.http_request("events_api", fake.event_payload(event))
    assert (await second.post(body, headers))[0] == 200
    assert (await first.post(body, {**headers, "X-Slack-Retry-Num": "1"}))[0] == 200
    await first.settle()
    transcripts = [f for f in fake.files.values() if f.name == "ticket-1.txt"]
    assert len(transcripts) == 1
