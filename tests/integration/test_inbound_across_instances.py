"""Inbound events reaching another instance (docs/cluster.md, "Inbound from anywhere"):
two whole bridges on one PostgreSQL schema behind one Slack HTTP endpoint, or one
appservice address; Slack redelivers an event, or the homeserver a transaction, to the
instance it did not reach the first time. The events already handled are in the
database, so the second instance ignores them. PostgreSQL only.

The second bridge's outbox worker is stopped: what it enqueued would show in the
first one's deliveries (claims across instances are tested in test_outbox_cluster.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bridge.db import Database, migrate
from tests.conftest import PG_TEST_URL, _connect_postgres, open_test_database
from tests.fakes.slack import SlackFake
from tests.harness import slack as slack_harness
from tests.harness import synapse as synapse_harness
from tests.harness.slack import BOB, SALES, SlackHarness
from tests.harness.synapse import Homeserver, MatrixBridge, MatrixUser, bob, synapse, until

__all__ = ["bob", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.postgres


def clustered(config: str, name: str) -> str:
    """A harness config for instance ``name`` of a cluster on the test database (a
    second bridge on one database without cluster.enabled refuses to start)."""
    return config.replace(
        'database: {{url: "sqlite::memory:"}}',
        f'database: {{{{url: "{PG_TEST_URL}"}}}}\n'
        f"cluster: {{{{enabled: true, instance_id: {name}, lease_seconds: 15}}}}",
    )


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
        config = slack_harness.CONFIG
        first = SlackHarness(tmp_path / "a", db, fake, mode="http", config=clustered(config, "a"))
        second = SlackHarness(
            tmp_path / "b", other_db, fake, mode="http", config=clustered(config, "b")
        )
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


# --- Matrix: the same transaction pushed to both instances -----------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def matrix_pair(
    synapse: Homeserver, tmp_path: Path
) -> AsyncIterator[tuple[MatrixBridge, MatrixBridge]]:
    async with open_test_database("postgres", tmp_path) as db:
        await migrate(db)
        schema = str(await db.fetchval("SELECT current_schema()"))
        other_db = await _connect_postgres(schema)
        config = synapse_harness.CONFIG
        first = MatrixBridge(synapse, tmp_path / "a", db, config=clustered(config, "a"))
        second = MatrixBridge(synapse, tmp_path / "b", other_db, config=clustered(config, "b"))
        await first.start()
        await first.room("control")  # made by the first; the second finds it
        try:
            await second.start()  # points the homeserver's pushes at the second
            await second.bridge.outbox.stop()
            synapse.forwarder.target = first.listen_port
            try:
                yield first, second
            finally:
                await second.stop(leave_rooms=False)
                synapse.forwarder.target = first.listen_port
        finally:
            await first.stop()
            await other_db.close()


async def _push(port: int, hs_token: str, txn_id: str, events: list[dict[str, Any]]) -> int:
    url = f"http://127.0.0.1:{port}/_matrix/app/v1/transactions/{txn_id}"
    headers = {"Authorization": f"Bearer {hs_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, json={"events": events}, headers=headers) as response,
    ):
        return response.status


@pytest.mark.asyncio(loop_scope="session")
async def test_a_matrix_transaction_pushed_to_both_instances_is_handled_once(
    matrix_pair: tuple[MatrixBridge, MatrixBridge], synapse: Homeserver, bob: MatrixUser
) -> None:
    first, second = matrix_pair
    await first.customer(text="oi")
    root, room = await first.thread_root(), await first.room("control")
    await bob.join(room)
    synapse.forwarder.swallow(lambda event: event.get("content", {}).get("body") == "uma vez")
    relation = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    content = {"msgtype": "m.text", "body": "uma vez", "m.relates_to": relation}
    await bob.send(room, content)
    events = await until(lambda: list(synapse.forwarder.swallowed), what="the push")
    rows_before = await _whatsapp_rows(first.db)
    assert await _push(first.listen_port, synapse.hs_token, "txn-9", events) == 200
    assert await _push(second.listen_port, synapse.hs_token, "txn-9", events) == 200
    # both answered: what each stored is committed
    assert await _count(first.db, "uma vez") == 1
    assert await _whatsapp_rows(first.db) == rows_before + 1
    await first.outbound(lambda m: m.get("text", "").endswith("uma vez"))
    first.bridge.outbox.wake()
    async with asyncio.timeout(10):
        await first.bridge.outbox.wait_idle()
    sent = [m["text"] for m in first.sim.outbound("acme/sales") + second.sim.outbound("acme/sales")]
    assert sent.count("*bob:*\numa vez") == 1
