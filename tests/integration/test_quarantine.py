"""Setting aside events a frontend could not handle, through the real core (sim
engine, recording fake frontend) on both databases: recorded once, reported once in
the ops channel with the event id, counted; a failure to record propagates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import ChatAddress
from bridge.db.database import Database
from bridge.errors import DatabaseError
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CoreHarness

CONTROL = "!control-acme-sales"
OPS = "!ops-acme"


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


def ops_texts(core: CoreHarness) -> list[str]:
    fe = core.frontends["matrix"]
    return [c.args["text"] for c in fe.of("notice") if c.place and c.place.room == OPS]


def counted(core: CoreHarness) -> float:
    value = core.bridge.metrics.registry.get_sample_value(
        "zapbridge_events_quarantined_total", {"source": "matrix"}
    )
    return value or 0.0


async def test_an_event_is_recorded_reported_once_and_counted(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    assert await fe.unhandled(ChatAddress(CONTROL, "$root"), "$poison", "content is not an object")
    await core.settle()
    row = await core.bridge.repos.quarantine.get("matrix", "$poison")
    assert row is not None
    assert (row.company_id, row.reason) == ("acme", "content is not an object")
    assert row.excerpt == '{"id": "$poison"}'
    [alert] = [t for t in ops_texts(core) if "set aside" in t]
    assert "$poison" in alert and "content is not an object" in alert
    assert counted(core) == 1
    elsewhere = [c for c in fe.of("notice") if "set aside" in c.args["text"]]
    assert {c.place.room for c in elsewhere if c.place} == {OPS}  # not globex's

    # the source redelivers it (a retried transaction, the catch-up): skipped quietly
    assert not await fe.unhandled(ChatAddress(CONTROL), "$poison", "content is not an object")
    await core.settle()
    assert len([t for t in ops_texts(core) if "set aside" in t]) == 1
    assert counted(core) == 1


async def test_an_event_outside_any_company_is_recorded_but_reported_nowhere(
    core: CoreHarness,
) -> None:
    fe = core.frontends["matrix"]
    assert await fe.unhandled(ChatAddress("!elsewhere:hs"), "$stray", "junk")
    assert await fe.unhandled(None, "$nowhere", "junk")
    await core.settle()
    stray = await core.bridge.repos.quarantine.get("matrix", "$stray")
    assert stray is not None and stray.company_id is None
    assert await core.bridge.repos.quarantine.get("matrix", "$nowhere") is not None
    assert not [t for t in ops_texts(core) if "set aside" in t]
    assert counted(core) == 2


async def test_alike_events_are_throttled_like_other_alerts(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    for n in range(3):
        assert await fe.unhandled(ChatAddress(CONTROL), f"$flood{n}", "the same reason")
    await core.settle()
    assert len([t for t in ops_texts(core) if "set aside" in t]) == 1
    assert await core.bridge.repos.quarantine.count() == 3
    await core.clock.advance(core.config.ops.throttle_seconds + 1)
    assert await fe.unhandled(ChatAddress(CONTROL), "$flood3", "the same reason")
    await core.settle()
    last = [t for t in ops_texts(core) if "set aside" in t][-1]
    assert "$flood3" in last and "2 similar alerts suppressed" in last


async def test_long_and_unstorable_values_are_bounded_and_cleaned(core: CoreHarness) -> None:
    quarantine = core.bridge.relay.quarantine
    assert quarantine is not None
    assert await quarantine.set_aside(
        source="matrix",
        event_id="$nul\x00" + "x" * 1000,
        company_id=None,
        reason="bad \ud800 surrogate " + "r" * 1000,
        excerpt="e" * 10_000,
    )
    [row] = await core.db.fetch("SELECT event_id, reason, excerpt FROM quarantined_events")
    assert row["event_id"].startswith("$nulxxx") and len(row["event_id"]) <= 255
    assert row["reason"].startswith("bad \ufffd surrogate") and len(row["reason"]) <= 500
    assert len(row["excerpt"].encode()) <= 2048


async def test_a_failure_to_record_propagates_and_reports_nothing(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.db.execute("DROP TABLE quarantined_events")
    with pytest.raises(DatabaseError):
        await fe.unhandled(ChatAddress(CONTROL), "$lost", "junk")
    await core.settle()
    assert not [t for t in ops_texts(core) if "set aside" in t]
    assert counted(core) == 0


async def test_what_an_engine_cannot_read_is_set_aside_and_reported_once(
    core: CoreHarness,
) -> None:
    from bridge.whatsapp.engine import EngineErrorEvent

    event = EngineErrorEvent(
        session="acme/sales",
        explanation="a WhatsApp message (3EB0BAD) could not be read: no JID",
        event_id="3EB0BAD",
    )
    await core.bridge.sessions.handle_event(event)
    await core.bridge.sessions.handle_event(event)  # seen again: not reported again
    await core.settle()
    row = await core.bridge.repos.quarantine.get("whatsapp", "3EB0BAD")
    assert row is not None and row.company_id == "acme"
    assert "could not be read: no JID" in row.reason
    [alert] = [t for t in ops_texts(core) if "set aside" in t]
    assert "3EB0BAD" in alert and "acme/sales" in alert
