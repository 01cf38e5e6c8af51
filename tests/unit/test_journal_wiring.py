"""Where the journals stand: the session manager's downstream path (every engine's
events), whatsmeow's report of an unhandled event, the ops sink and the ops notifier."""

from __future__ import annotations

import errno
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.core.operations import OpsMessage
from bridge.core.ops import OpsNotifier, OpsPost, Severity
from bridge.core.ops_sink import OpsRow, OpsRowCodec, OutboxOpsSink
from bridge.errors import DatabaseError
from bridge.journal import Journal, JournalStore
from bridge.journal import store as store_module
from bridge.metrics import Metrics
from bridge.model import AckStatus, Message, Party, Text
from bridge.whatsapp.engine import (
    EngineErrorEvent,
    EngineEvent,
    MessageEvent,
    QRCodeEvent,
    ReceiptEvent,
    SendFailedEvent,
)
from bridge.whatsapp.event_codec import EventCodec
from tests.fakes.neonize_client import EngineHarness
from tests.harness.core import until
from tests.unit.test_ops import Harness as OpsHarness
from tests.unit.test_ops import make_config
from tests.unit.test_sessions import KEY, Harness, started
from tests.unit.test_whatsmeow_engine import text_event

MARIA = Party(phone="+5511987654321", name="Maria")


def message(n: int) -> MessageEvent:
    return MessageEvent(KEY, message=Message(MARIA, MARIA, Text(f"m{n}"), wa_id=f"3EB0{n:04d}"))


class Downstream:
    """The relay's side: a database that can be down."""

    def __init__(self) -> None:
        self.down = False
        self.taken: list[EngineEvent] = []

    async def handle(self, event: EngineEvent) -> None:
        if self.down and not isinstance(event, QRCodeEvent):
            raise DatabaseError("connection to server was closed")
        self.taken.append(event)

    async def probe(self) -> None:
        if self.down:
            raise DatabaseError("connection refused")


async def with_journal(tmp_path: Path) -> tuple[Harness, Downstream, Journal[EngineEvent]]:
    h = await started()
    downstream = Downstream()
    h.manager.set_downstream(downstream.handle)
    journal: Journal[EngineEvent] = Journal(
        "whatsapp",
        JournalStore(tmp_path / "journal" / "whatsapp"),
        EventCodec(),
        handler=downstream.handle,
        probe=downstream.probe,
        clock=h.clock,
        rng=random.Random(3),
        metrics=h.metrics,
        on_failed=h.manager.set_aside_kept,
    )
    h.manager.keep_refused_in(journal)
    await journal.start()
    return h, downstream, journal


async def test_engine_events_the_database_refuses_are_kept_and_replayed_in_order(
    tmp_path: Path,
) -> None:
    h, downstream, journal = await with_journal(tmp_path)
    downstream.down = True
    await h.engine.send_event(message(1))  # not raised to the engine: kept
    receipt = ReceiptEvent(KEY, chat=MARIA, ids=("3EB0OURS",), status=AckStatus.READ, timestamp=5)
    await h.engine.send_event(receipt)
    await h.engine.send_event(QRCodeEvent(KEY, code="2@x", expires_in=60))  # not journaled
    assert journal.pending == 2
    downstream.down = False
    await h.engine.send_event(message(2))  # behind the kept ones
    await until(lambda: not journal.holding, clock=h.clock)
    await journal.stop()
    kinds = [
        e.message.wa_id if isinstance(e, MessageEvent) else type(e).__name__
        for e in downstream.taken
    ]
    assert kinds == ["QRCodeEvent", "3EB00001", "ReceiptEvent", "3EB00002"]
    # the last message went through the journal too, behind the kept ones
    assert h.metric('zapbridge_inbound_journaled_total{journal="whatsapp"}') == 3


async def test_a_failed_send_the_database_refuses_is_kept_and_replayed(tmp_path: Path) -> None:
    h, downstream, journal = await with_journal(tmp_path)
    downstream.down = True
    failed = SendFailedEvent(
        KEY, chat=MARIA, message_id="wamid.X", reason="undeliverable", code=131026, reference="r"
    )
    await h.engine.send_event(failed)  # not raised to the engine: kept
    assert journal.pending == 1
    downstream.down = False
    await until(lambda: not journal.holding, clock=h.clock)
    await journal.stop()
    assert downstream.taken == [failed]


async def test_a_message_neither_stored_nor_kept_is_raised_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, downstream, journal = await with_journal(tmp_path)
    downstream.down = True

    def disk_full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "write", disk_full)
    with pytest.raises(DatabaseError, match="not journaled"):
        await h.engine.send_event(message(1))  # the engine must not take it as delivered
    assert h.metric('zapbridge_inbound_dropped_total{journal="whatsapp"}') == 1
    await journal.stop()


async def test_a_kept_event_that_cannot_be_handled_is_reported_as_an_engine_error(
    tmp_path: Path,
) -> None:
    h, downstream, journal = await with_journal(tmp_path)
    await h.manager.set_aside_kept(message(7), DatabaseError("value too long"))
    [error] = downstream.taken
    assert isinstance(error, EngineErrorEvent)
    assert error.event_id == "3EB00007"
    assert error.explanation == "a kept MessageEvent could not be handled: value too long"
    await journal.stop()


# --- whatsmeow -----------------------------------------------------------------------------


@pytest.fixture
async def wm(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    harness = EngineHarness(tmp_path)
    yield harness
    await harness.engine.close()


async def test_whatsmeow_does_not_report_a_database_error_as_an_engine_error(
    wm: EngineHarness, caplog: pytest.LogCaptureFixture
) -> None:
    client = await wm.connected()
    events: list[EngineEvent] = []

    async def refusing(event: EngineEvent) -> None:
        events.append(event)
        if isinstance(event, MessageEvent):
            raise DatabaseError("refused by the database and not journaled (disk full)")

    wm.engine._handler = refusing
    await client.deliver(text_event("oi", "3EB0A", push=""))
    assert [type(e) for e in events] == [MessageEvent]  # no EngineErrorEvent after it
    await client.deliver(text_event("oi de novo", "3EB0B", push=""))
    assert [type(e) for e in events] == [MessageEvent, MessageEvent]
    assert not client.stopped


# --- the ops sink and the notifier ------------------------------------------------------


class RefusingOutbox:
    """Just enough of the outbox repository and worker."""

    def __init__(self) -> None:
        self.down = False
        self.rows: list[tuple[str, str, dict[str, Any]]] = []

    async def enqueue(
        self, destination: str, *, ordering_key: str, payload: dict[str, Any], now: float
    ) -> int:
        if self.down:
            raise DatabaseError("connection refused")
        self.rows.append((destination, ordering_key, dict(payload)))
        return len(self.rows)

    def wake(self) -> None:
        pass

    async def probe(self) -> None:
        if self.down:
            raise DatabaseError("connection refused")


class OpsFrontend:
    name = "matrix"

    def serves_ops(self, company: Any) -> bool:
        return True

    def serves_session(self, session: Any) -> bool:
        return True


async def test_ops_rows_the_database_refuses_are_kept_and_enqueued_later(tmp_path: Path) -> None:
    clock = FakeClock()
    outbox = RefusingOutbox()
    sink = OutboxOpsSink(
        make_config(),
        outbox,  # type: ignore[arg-type]
        outbox,  # type: ignore[arg-type]
        frontends={"matrix": OpsFrontend()},  # type: ignore[dict-item]
        clock=clock,
    )
    metrics = Metrics()
    journal: Journal[OpsRow] = Journal(
        "ops",
        JournalStore(tmp_path / "ops"),
        OpsRowCodec(),
        handler=sink.enqueue,
        probe=outbox.probe,
        clock=clock,
        rng=random.Random(1),
        metrics=metrics,
    )
    sink.keep_refused_in(journal)
    await journal.start()
    outbox.down = True
    for n in range(3):
        await sink.post_ops(OpsPost(company_id="acme", text=f"alert {n}", severity="warning"))
    assert outbox.rows == [] and journal.pending == 3
    outbox.down = False
    await until(lambda: not journal.holding, clock=clock)
    await journal.stop()
    assert [payload["text"] for _, _, payload in outbox.rows] == ["alert 0", "alert 1", "alert 2"]
    assert {key for _, key, _ in outbox.rows} == {"ops:acme:matrix"}


def test_ops_rows_round_trip_and_bad_ones_are_refused() -> None:
    codec = OpsRowCodec()
    message = OpsMessage(company="acme", session=None, text="⚠️ x", topic=None, severity="warning")
    row = OpsRow("slack", "ops:acme:slack", message)
    assert codec.decode(codec.encode(row)) == row
    with pytest.raises(ValueError):
        codec.decode({"destination": "slack", "key": 3, "payload": {}})
    with pytest.raises(ValueError):
        codec.decode({"destination": "slack", "key": "t1:slack", "payload": {"op": "rooms"}})


def test_an_ops_record_kept_by_an_earlier_version_is_read_back() -> None:
    body = {
        "destination": "matrix",
        "key": "ops:acme:matrix",
        "payload": {
            "op": "ops",
            "company": "acme",
            "session": "acme/sales",
            "text": "",
            "topic": "🟢 connected",
            "severity": "info",
        },
    }
    row = OpsRowCodec().decode(body)
    assert row.message == OpsMessage(
        company="acme", session="acme/sales", text="", topic="🟢 connected", severity="info"
    )
    assert OpsRowCodec().encode(row) == body


async def test_the_notifier_warns_once_past_the_threshold_and_says_when_it_is_back() -> None:
    h = OpsHarness()
    await h.notifier.on_journal_backlog("whatsapp", pending=10_001, over=True)
    await h.notifier.on_journal_backlog("whatsapp", pending=0, over=False)
    [warning, resolved] = [m for m in h.sink.messages if m.company_id == "acme"]
    assert warning.severity == Severity.WARNING
    assert warning.text.startswith("⚠️ The database is refusing WhatsApp events: 10001 are kept")
    assert resolved.severity == Severity.RESOLVED
    assert resolved.text.startswith("✅ The database takes WhatsApp events again")
    await h.notifier.stop()


async def test_the_notifier_reports_a_loss_as_critical() -> None:
    h = OpsHarness()
    await h.notifier.on_journal_loss("whatsapp", reason="the journal cannot be written: full")
    [loss] = [m for m in h.sink.messages if m.company_id == "acme"]
    assert loss.severity == Severity.CRITICAL
    assert loss.text == (
        "❌ One of the WhatsApp events was lost: the database refused it and "
        "the journal cannot be written: full"
    )
    await h.notifier.stop()


async def test_an_ops_post_neither_stored_nor_kept_is_one_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Lost:
        async def post_ops(self, post: OpsPost) -> None:
            raise DatabaseError("refused by the database and not journaled (disk full)")

    notifier = OpsNotifier(make_config(), Lost(), clock=FakeClock())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="bridge.core.ops"):
        await notifier.on_journal_loss("ops", reason="x")
    records = [r for r in caplog.records if r.name == "bridge.core.ops"]
    assert len(records) == 2  # one line per company told, no traceback
    for record in records:
        assert "lost (refused by the database and not journaled" in record.getMessage()
        assert record.exc_info is None
    await notifier.stop()
