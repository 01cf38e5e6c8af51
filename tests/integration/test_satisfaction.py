"""Satisfaction ratings end to end on both database engines (docs/tickets.md#satisfaction):
the sim engine, a recording fake frontend, the real composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import ChatAddress
from bridge.db.database import Database
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CONFIG, CoreHarness
from tests.integration.test_core_relay import thread_of

GREETING = "Olá! Um atendente já vai falar com você."
FAREWELL = "Atendimento encerrado. Obrigado!"
QUESTION = "De 1 a 5, como foi o atendimento?"
THANKS = "Obrigado pela nota!"
CSAT_CONFIG = CONFIG.replace(
    f'        farewell: "{FAREWELL}"\n',
    f'        farewell: "{FAREWELL}"\n'
    f'        csat: {{{{enabled: true, question: "{QUESTION}", thanks: "{THANKS}", '
    "window_minutes: 30}}\n",
)
BOB = "@bob:localhost"


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    assert CSAT_CONFIG != CONFIG
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")], config=CSAT_CONFIG)
    await harness.start()
    yield harness
    await harness.stop()


async def closed_ticket(core: CoreHarness, session: str = "acme/sales") -> ChatAddress:
    """A ticket answered by Bob and closed with !close; its thread."""
    fe = core.frontends["matrix"]
    await core.customer(text="Oi, preciso de ajuda", session=session)
    place = thread_of(fe)
    await fe.attendant(place, BOB, "Resolvido!", name="Bob")
    await fe.attendant(place, BOB, "!close", name="Bob")
    await core.settle()
    return place


def texts_to_customer(core: CoreHarness, session: str = "acme/sales") -> list[str]:
    return [m["text"] for m in core.outbound(session) if m["kind"] == "text"]


def notices_in(fe: FakeFrontend, place: ChatAddress) -> list[str]:
    return [
        c.args["text"]
        for c in fe.of("notice")
        if c.place is not None and c.place.thread_root == place.thread_root
    ]


async def test_close_asks_and_a_digit_within_the_window_is_the_rating(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    place = await closed_ticket(core)
    assert texts_to_customer(core)[-2:] == [FAREWELL, QUESTION]

    await core.clock.advance(29 * 60)
    await core.customer(text=" 4 ")

    ticket = await core.bridge.repos.tickets.get(1)
    assert ticket is not None
    assert (ticket.status, ticket.csat_score) == ("closed", 4)
    assert ticket.csat_rated_at == core.clock.now()
    assert "⭐ Rating: 4/5" in notices_in(fe, place)
    assert fe.cards[place.thread_root].status == "closed"  # type: ignore[index]
    assert len(fe.of("thread")) == 1  # no new ticket
    assert texts_to_customer(core)[-1] == THANKS
    assert texts_to_customer(core).count(GREETING) == 1  # the first ticket's only
    assert await core.bridge.repos.tickets.find_latest(core.bridge.session_ids["acme/sales"], 1)
    metrics = core.bridge.metrics.render().decode()
    assert 'zapbridge_csat_ratings_total{score="4",session="acme/sales"} 1.0' in metrics


async def test_a_digit_after_the_window_is_a_normal_message(core: CoreHarness) -> None:
    await closed_ticket(core)
    await core.clock.advance(31 * 60)
    await core.customer(text="5")

    ticket = await core.bridge.repos.tickets.get(1)
    assert ticket is not None
    assert ticket.csat_score is None
    assert ticket.status == "open"  # reopened as any message within the reopen window
    assert THANKS not in texts_to_customer(core)
    assert "zapbridge_csat_ratings_total{" not in core.bridge.metrics.render().decode()


async def test_a_non_digit_is_a_normal_message(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    place = await closed_ticket(core)
    await core.customer(text="obrigado, 5 estrelas")

    ticket = await core.bridge.repos.tickets.get(1)
    assert ticket is not None
    assert (ticket.status, ticket.csat_score) == ("open", None)
    assert not any(n.startswith("⭐") for n in notices_in(fe, place))
    assert THANKS not in texts_to_customer(core)


async def test_one_rating_per_ticket_a_second_digit_is_a_message(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    place = await closed_ticket(core)
    await core.customer(text="5")
    await core.customer(text="3")

    ticket = await core.bridge.repos.tickets.get(1)
    assert ticket is not None
    assert (ticket.status, ticket.csat_score) == ("open", 5)  # the "3" reopened it
    assert [n for n in notices_in(fe, place) if n.startswith("⭐")] == ["⭐ Rating: 5/5"]
    assert texts_to_customer(core).count(THANKS) == 1


async def test_a_rating_after_the_reopen_window_opens_no_ticket(
    tmp_path: Path, db: Database
) -> None:
    """The rating is decided before the reopen window or a new ticket: even when a
    message would start a new ticket (with its greeting), a rating does not."""
    config = CSAT_CONFIG.replace("reopen_window_minutes: 120", "reopen_window_minutes: 0")
    core = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")], config=config)
    await core.start()
    try:
        await closed_ticket(core)
        await core.clock.advance(10 * 60)
        await core.customer(text="2")
        assert len(core.frontends["matrix"].of("thread")) == 1
        assert texts_to_customer(core).count(GREETING) == 1
        assert texts_to_customer(core)[-1] == THANKS
        ticket = await core.bridge.repos.tickets.get(1)
        assert ticket is not None and ticket.csat_score == 2
    finally:
        await core.stop()


async def test_a_session_without_csat_asks_nothing(core: CoreHarness) -> None:
    await closed_ticket(core, session="acme/support")
    assert QUESTION not in texts_to_customer(core, "acme/support")
    await core.customer(text="5", session="acme/support")
    ticket = await core.bridge.repos.tickets.get(1)
    assert ticket is not None
    assert (ticket.status, ticket.csat_asked_at, ticket.csat_score) == ("open", None, None)


async def test_stats_show_the_average_and_count(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await closed_ticket(core)
    await core.customer(text="5")
    await core.customer(text="Oi de novo", sender="+5511900000002", name="João")
    second = thread_of(fe, 2)
    await fe.attendant(second, BOB, "!close", name="Bob")
    await core.settle()
    await core.customer(text="2", sender="+5511900000002", name="João")

    stats = await core.bridge.tickets.stats("acme")
    assert (stats.csat_count, stats.csat_average) == (2, 3.5)
    _, reply = await fe.attendant(ChatAddress("!ops-acme"), "@alice:localhost", "!stats")
    assert reply is not None
    assert reply.text.endswith("\nSatisfaction: 3.5/5 average over 2 ratings")
    assert (await core.bridge.tickets.stats("globex")).csat_count == 0
