"""Idle tickets end to end on both database engines (docs/tickets.md#idle-tickets): the
sweep closes silent tickets and reports unanswered ones, driven by the fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import ChatAddress
from bridge.db.database import Database
from bridge.db.tickets import TicketRow
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CONFIG, CoreHarness, until
from tests.integration.test_core_relay import thread_of

FAREWELL = "Atendimento encerrado. Obrigado!"
IDLE_MESSAGE = "Encerramos por falta de resposta."
QUESTION = "De 1 a 5, como foi?"
HOUR = 3600.0
BOB = "@bob:localhost"
OPS = "!ops-acme"
IDLE_CONFIG = CONFIG.replace(
    "ops: {{alert_grace_seconds: 60}}",
    "ops: {{alert_grace_seconds: 60, unanswered_alert_minutes: 15}}",
).replace(
    f'        farewell: "{FAREWELL}"\n',
    f'        farewell: "{FAREWELL}"\n'
    "        auto_close_hours: 24\n"
    f'        auto_close_message: "{IDLE_MESSAGE}"\n'
    f'        csat: {{{{enabled: true, question: "{QUESTION}"}}}}\n',
)


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    assert "auto_close_hours: 24" in IDLE_CONFIG and "unanswered_alert_minutes" in IDLE_CONFIG
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")], config=IDLE_CONFIG)
    await harness.start()
    yield harness
    await harness.stop()


async def ticket(core: CoreHarness, ticket_id: int = 1) -> TicketRow:
    row = await core.bridge.repos.tickets.get(ticket_id)
    assert row is not None
    return row


async def swept(core: CoreHarness) -> None:
    """One more pass of the sweep for sure, and what it published delivered."""
    await core.bridge.idle_tickets.sweep()
    await core.settle()


async def closed(core: CoreHarness, ticket_id: int = 1) -> bool:
    return (await ticket(core, ticket_id)).status == "closed"


def texts_to_customer(core: CoreHarness) -> list[str]:
    return [m["text"] for m in core.outbound() if m["kind"] == "text"]


def ops_notices(fe: FakeFrontend) -> list[str]:
    return [c.args["text"] for c in fe.of("notice") if c.place and c.place.room == OPS]


def thread_notices(fe: FakeFrontend, place: ChatAddress) -> list[str]:
    return [
        c.args["text"]
        for c in fe.of("notice")
        if c.place is not None and c.place.thread_root == place.thread_root
    ]


async def answered_ticket(core: CoreHarness) -> ChatAddress:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    place = thread_of(fe)
    await fe.attendant(place, BOB, "Olá, em que posso ajudar?", name="Bob")
    await core.settle()
    return place


# --- auto close -----------------------------------------------------------------------------


async def test_a_silent_ticket_closes_after_the_hours_with_the_message(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    place = await answered_ticket(core)
    await core.clock.advance(24 * HOUR - 60)
    await swept(core)
    assert not await closed(core)

    await core.clock.advance(120)
    await until(lambda: closed(core), what="ticket closed for silence", clock=core.clock)
    await core.settle()
    notice = "Ticket #1 closed after 24 h without a message from the customer"
    assert notice in thread_notices(fe, place)
    assert fe.cards[place.thread_root].status == "closed"  # type: ignore[index]
    sent = texts_to_customer(core)
    assert sent[-2:] == [IDLE_MESSAGE, QUESTION]  # instead of the farewell; then the csat
    assert FAREWELL not in sent
    await swept(core)
    assert texts_to_customer(core).count(IDLE_MESSAGE) == 1  # closed once


async def test_a_customer_who_wrote_keeps_the_ticket(core: CoreHarness) -> None:
    await answered_ticket(core)
    await core.clock.advance(20 * HOUR)
    await core.customer(text="Ainda estou aqui")
    await core.clock.advance(10 * HOUR)  # 30 h since the first message, 10 since the last
    await swept(core)
    assert not await closed(core)
    assert IDLE_MESSAGE not in texts_to_customer(core)
    await core.clock.advance(15 * HOUR)
    await until(lambda: closed(core), what="ticket closed for silence", clock=core.clock)


async def test_a_reopened_ticket_counts_from_its_reopening(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    place = await answered_ticket(core)
    await fe.attendant(place, BOB, "!close", name="Bob")
    await core.clock.advance(30 * HOUR)
    await fe.attendant(place, BOB, "!reopen", name="Bob")
    await swept(core)
    assert not await closed(core)


async def test_the_timer_survives_a_restart(core: CoreHarness) -> None:
    await answered_ticket(core)
    await core.clock.advance(10 * HOUR)
    await core.restart(away_seconds=15 * HOUR)  # no bridge ran when the 24 h passed
    await until(lambda: closed(core), what="ticket closed after the restart", clock=core.clock)
    await core.settle()
    assert texts_to_customer(core).count(IDLE_MESSAGE) == 1


async def test_sessions_without_auto_close_keep_their_tickets(core: CoreHarness) -> None:
    await core.customer(text="Oi", session="acme/support")
    await core.clock.advance(100 * HOUR)
    await swept(core)
    assert not await closed(core)


# --- unanswered alerts ----------------------------------------------------------------------


UNANSWERED = "⏰ Ticket #1 (Maria (+5511987654321)) on acme/sales has had no answer for 15 min"


async def test_an_unanswered_ticket_is_reported_once_and_resolved_when_answered(
    core: CoreHarness,
) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await core.clock.advance(14 * 60)
    await swept(core)
    assert not [n for n in ops_notices(fe) if n.startswith("⏰")]

    await core.clock.advance(2 * 60)
    await until(lambda: UNANSWERED in ops_notices(fe), what="unanswered alert", clock=core.clock)
    await core.restart(away_seconds=30 * 60)
    await swept(core)
    assert ops_notices(fe).count(UNANSWERED) == 1
    assert (await ticket(core)).unanswered_alerted_at is not None

    await fe.attendant(thread_of(fe), BOB, "Desculpe a demora!", name="Bob")
    await core.clock.advance(61)
    resolved = "✅ Ticket #1 on acme/sales answered"
    await until(lambda: resolved in ops_notices(fe), what="resolved notice", clock=core.clock)
    await swept(core)
    assert ops_notices(fe).count(resolved) == 1
    assert ops_notices(fe).count(UNANSWERED) == 1


async def test_a_ticket_closed_unanswered_is_resolved_as_closed(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await core.clock.advance(16 * 60)
    await until(lambda: UNANSWERED in ops_notices(fe), what="unanswered alert", clock=core.clock)
    await fe.attendant(thread_of(fe), BOB, "!close", name="Bob")
    await swept(core)
    assert "✅ Ticket #1 on acme/sales closed without an answer" in ops_notices(fe)


async def test_an_answered_ticket_is_never_reported(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.clock.advance(5 * 60)
    await answered_ticket(core)
    await core.clock.advance(60 * 60)
    await swept(core)
    assert not [n for n in ops_notices(fe) if n.startswith(("⏰", "✅ Ticket"))]
    assert (await ticket(core)).unanswered_alerted_at is None
