"""Attendants' ``message`` events over Socket Mode, which skip bolt's dispatch
(``bridge.slack.socket``): acknowledged once persisted, acknowledged and set aside
when malformed, left for Slack to deliver again when nothing was persisted, and the
bot's own messages ignored. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.db.database import Database
from bridge.errors import DatabaseError
from tests.fakes.slack import SlackFake
from tests.harness.slack import BOB, SALES, SlackHarness

REPLY = "*Bob Silva:*\nbom dia"


@pytest.fixture
async def h(tmp_path: Path, db: Database) -> AsyncIterator[SlackHarness]:
    async with SlackFake() as fake:
        harness = SlackHarness(tmp_path, db, fake)
        await harness.start()
        await harness.customer(text="Oi")
        yield harness
        await harness.stop()


def texts(h: SlackHarness) -> list[Any]:
    return [m.get("text") for m in h.outbound()]


async def test_an_attendant_reply_is_acknowledged_once_relayed(h: SlackHarness) -> None:
    ack = await h.event(h.fake.user_message(SALES, BOB, "bom dia", thread_ts=h.thread_root()))
    assert set(ack) == {"envelope_id"}  # an Events API ack carries no payload
    assert texts(h).count(REPLY) == 1
    assert not h.fake.unacked and not h.fake.socket_protocol_errors


async def test_a_failure_to_persist_leaves_the_envelope_for_slack_to_redeliver(
    h: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = h.bridge.relay
    attendant_event = relay.attendant_event
    failures = iter([DatabaseError("database is down")])

    async def failing(*args: Any, **kwargs: Any) -> Any:
        for failure in failures:
            raise failure
        return await attendant_event(*args, **kwargs)

    monkeypatch.setattr(relay, "attendant_event", failing)
    event = h.fake.user_message(SALES, BOB, "bom dia", thread_ts=h.thread_root())
    envelope = await h.fake.send_event(event)
    with pytest.raises(TimeoutError):
        await h.fake.wait_ack(envelope, timeout=1)
    assert await h.fake.retry_unacked(after=0) == 1
    await h.fake.wait_ack(envelope)
    await h.settle()
    assert texts(h).count(REPLY) == 1


async def test_a_malformed_message_is_acknowledged_and_set_aside(
    h: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    event = h.fake.user_message(SALES, BOB, "bom dia", thread_ts=h.thread_root())
    event["user"] = {"id": BOB}  # an object where Slack sends an id
    before = texts(h)
    with caplog.at_level(logging.WARNING, logger="bridge.slack"):
        await h.event(event)
    assert texts(h) == before
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert not h.fake.unacked


async def test_the_bots_own_message_is_acknowledged_and_not_relayed(h: SlackHarness) -> None:
    event = h.fake.user_message(SALES, h.fake.bot_user_id, "eco", thread_ts=h.thread_root())
    event["bot_id"] = h.fake.bot_id
    before = texts(h)
    await h.event(event)
    assert texts(h) == before
    assert not h.fake.unacked
