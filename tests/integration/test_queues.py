"""Queues end to end on both database engines (docs/tickets.md#queues): the menu, its
answers, the timeout on the injected clock and across a restart, who works a queue,
and the commands, through the real composition root with the sim engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import AuthorKind, ChatAddress
from bridge.db.database import Database
from bridge.db.tickets import TicketRow
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CONFIG, CoreHarness, until
from tests.integration.test_core_relay import MEDIA, thread_of

GREETING = "Olá! Um atendente já vai falar com você."
FAREWELL = "Atendimento encerrado. Obrigado!"
QUESTION = "De 1 a 5, como foi?"
THANKS = "Valeu!"
MENU = "Escolha uma opção:\n*1* - Financeiro\n*2* - tech"
BILLING_HELLO = "Financeiro aqui."
BILLING_CLOSED = "O financeiro atende das 9h às 17h."
TECH_HELLO = "Suporte técnico aqui."
ALICE, BOB, CAROL = "@alice:localhost", "@bob:localhost", "@carol:localhost"
CONTROL = ChatAddress("!control-acme-sales")
QUEUES = f"""\
        groups: true
        csat: {{{{enabled: true, question: "{QUESTION}", thanks: "{THANKS}"}}}}
        queues:
          - name: billing
            option: 1
            label: Financeiro
            attendants: ["{CAROL}"]
            greeting: "{BILLING_HELLO}"
            business_hours: {{{{timezone: UTC, days: mon-fri, hours: "09:00-17:00"}}}}
            out_of_hours: "{BILLING_CLOSED}"
          - {{{{name: tech, option: 2, greeting: "{TECH_HELLO}"}}}}
        menu: {{{{text: "Escolha uma opção:", default_queue: tech, max_invalid: 2}}}}
"""
QUEUE_CONFIG = CONFIG.replace(
    f'        farewell: "{FAREWELL}"\n', f'        farewell: "{FAREWELL}"\n{QUEUES}'
).replace(f'attendants: ["{BOB}", "U0BOB"]', f'attendants: ["{BOB}", "{CAROL}", "U0BOB"]')


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    assert "queues:" in QUEUE_CONFIG and CAROL in QUEUE_CONFIG.split("sessions:")[0]
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")], config=QUEUE_CONFIG)
    await harness.start()
    yield harness
    await harness.stop()


async def ticket(core: CoreHarness, ticket_id: int = 1) -> TicketRow:
    row = await core.bridge.repos.tickets.get(ticket_id)
    assert row is not None
    return row


def texts_to_customer(core: CoreHarness) -> list[str]:
    return [m["text"] for m in core.outbound() if m["kind"] == "text"]


def notices_in(fe: FakeFrontend, place: ChatAddress) -> list[str]:
    return [
        c.args["text"]
        for c in fe.of("notice")
        if c.place is not None and c.place.thread_root == place.thread_root
    ]


def customer_texts(fe: FakeFrontend, place: ChatAddress) -> list[str]:
    """What the customer wrote, as the thread shows it (a file by its caption)."""
    posts = fe.posts_in(place.thread_root)  # type: ignore[arg-type]
    contents = [p.args["content"] for p in posts if p.args["author"].kind is AuthorKind.CUSTOMER]
    return [getattr(c, "body", None) or getattr(c, "caption", "") for c in contents]


async def routed_to(core: CoreHarness, answer: str) -> ChatAddress:
    """A new ticket whose customer answered the menu with ``answer``; its thread."""
    await core.customer(text="Oi")
    await core.customer(text=answer)
    return thread_of(core.frontends["matrix"])


# --- the menu ---------------------------------------------------------------------------------


async def test_the_menu_is_the_first_reply_and_the_answer_routes_the_ticket(
    core: CoreHarness,
) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi, boa noite")
    assert texts_to_customer(core) == [MENU]  # instead of the session's greeting
    place = thread_of(fe)
    assert fe.cards[place.thread_root].queue is None  # type: ignore[index]
    row = await ticket(core)
    assert row.menu_deadline == core.clock.now() + 300

    await core.customer(text=" 2. ")
    row = await ticket(core)
    assert (row.queue, row.menu_deadline, row.status) == ("tech", None, "pending")
    assert texts_to_customer(core) == [MENU, TECH_HELLO]
    assert "Ticket #1 routed to queue tech: the customer chose 2" in notices_in(fe, place)
    card = fe.cards[place.thread_root]  # type: ignore[index]
    assert card.queue == "tech" and "queue: tech" in card.headline
    assert customer_texts(fe, place) == ["Oi, boa noite", " 2. "]  # nothing lost
    assert len(fe.of("thread")) == 1  # the answer started no ticket

    await core.customer(text="1")  # routed: later digits are ordinary messages
    assert (await ticket(core)).queue == "tech"
    assert texts_to_customer(core) == [MENU, TECH_HELLO]
    assert routes(core) == {("tech", "chosen"): 1.0}


async def test_a_queue_closed_by_its_own_hours_says_so_after_its_greeting(
    core: CoreHarness,
) -> None:
    # The fake clock starts on a Tuesday at 22:13 UTC: billing (09:00-17:00) is closed.
    await routed_to(core, "1️⃣")
    assert (await ticket(core)).queue == "billing"
    assert texts_to_customer(core) == [MENU, BILLING_HELLO, BILLING_CLOSED]
    await core.customer(text="Alô?")
    assert texts_to_customer(core).count(BILLING_CLOSED) == 1  # once per closed period


async def test_invalid_answers_repeat_the_menu_then_the_default_queue(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await core.customer(text="quero pagar um boleto")
    await core.customer(text="7")  # no such option
    assert texts_to_customer(core) == [MENU, MENU, MENU]
    assert (await ticket(core)).menu_invalid == 2

    await core.customer(kind="image", media=MEDIA)  # a file is no answer either
    row = await ticket(core)
    assert row.queue == "tech"
    assert texts_to_customer(core) == [MENU, MENU, MENU, TECH_HELLO]
    place = thread_of(fe)
    notice = "Ticket #1 routed to queue tech after 3 answers naming no option"
    assert notice in notices_in(fe, place)
    assert routes(core) == {("tech", "invalid"): 1.0}
    assert customer_texts(fe, place)[:3] == ["Oi", "quero pagar um boleto", "7"]


async def test_no_answer_within_the_timeout_goes_to_the_default_queue(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await core.clock.advance(299)
    assert await core.bridge.menu_timeouts.sweep() == 0
    assert (await ticket(core)).queue is None

    await core.clock.advance(2)  # the running sweep wakes at the deadline
    await until(lambda: _queue_is(core, "tech"), what="routed after the timeout", clock=core.clock)
    await core.settle()
    notice = "Ticket #1 routed to queue tech: no answer to the menu within 300 s"
    assert notice in notices_in(fe, thread_of(fe))
    assert texts_to_customer(core) == [MENU, TECH_HELLO]
    assert fe.cards[thread_of(fe).thread_root].queue == "tech"  # type: ignore[index]
    assert await core.bridge.menu_timeouts.sweep() == 0  # once
    assert routes(core) == {("tech", "timeout"): 1.0}


async def test_an_invalid_answer_restarts_the_timer(core: CoreHarness) -> None:
    await core.customer(text="Oi")
    await core.clock.advance(200)
    await core.customer(text="hã?")
    await core.clock.advance(200)  # 400 s after the menu, 200 s after its repetition
    assert await core.bridge.menu_timeouts.sweep() == 0
    assert (await ticket(core)).queue is None


async def test_the_menu_survives_a_restart_mid_choice(core: CoreHarness) -> None:
    await core.customer(text="Oi")
    await core.restart(away_seconds=60)
    await core.customer(text="1")  # the answer still routes after the restart
    assert (await ticket(core)).queue == "billing"
    assert texts_to_customer(core) == [MENU, BILLING_HELLO, BILLING_CLOSED]


async def test_a_deadline_passed_while_no_bridge_ran_is_honoured_at_start(
    core: CoreHarness,
) -> None:
    await core.customer(text="Oi")
    await core.clock.advance(100)
    await core.restart(away_seconds=600)  # the deadline passed while stopped
    await until(lambda: _queue_is(core, "tech"), what="routed at start", clock=core.clock)
    greeted = lambda: TECH_HELLO in texts_to_customer(core)  # noqa: E731
    await until(greeted, what="the queue's greeting", clock=core.clock)  # once connected
    assert texts_to_customer(core) == [MENU, TECH_HELLO]  # the menu is not sent again


async def test_a_rating_is_no_menu_answer_and_a_reopened_ticket_keeps_its_queue(
    core: CoreHarness,
) -> None:
    fe = core.frontends["matrix"]
    place = await routed_to(core, "2")
    await fe.attendant(place, BOB, "Resolvido!", name="Bob")
    await fe.attendant(place, BOB, "!close", name="Bob")
    await core.settle()
    await core.customer(text="5")
    assert (await ticket(core)).csat_score == 5
    assert texts_to_customer(core)[-1] == THANKS
    await core.customer(text="Mais uma coisa")  # within the reopen window
    row = await ticket(core)
    assert (row.status, row.queue) == ("open", "tech")
    assert texts_to_customer(core).count(MENU) == 1
    assert len(fe.of("thread")) == 1


async def test_a_group_gets_no_menu_and_goes_to_the_default_queue(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    group = {"id": "120363000000000001@g.us", "name": "Família"}
    await core.customer(text="Oi, grupo", group=group)
    row = await ticket(core)
    assert (row.queue, row.menu_sent_at) == ("tech", None)
    assert texts_to_customer(core) == [TECH_HELLO]
    assert "Ticket #1 routed to queue tech" in notices_in(fe, thread_of(fe))
    assert routes(core) == {("tech", "direct"): 1.0}


async def test_a_ticket_transferred_in_gets_the_menu_at_the_next_message(
    core: CoreHarness,
) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi", session="acme/support")
    _, reply = await fe.attendant(thread_of(fe), BOB, "!transfer sales", name="Bob")
    assert reply is not None and reply.text == "Ticket #1 transferred to acme/sales by Bob."
    await core.settle()
    assert (await ticket(core, 2)).queue is None
    assert texts_to_customer(core) == []  # the transfer itself sends nothing
    await core.customer(text="Oi de novo")
    assert texts_to_customer(core) == [MENU]
    await core.customer(text="2")
    assert (await ticket(core, 2)).queue == "tech"


async def test_a_session_without_queues_is_unchanged(core: CoreHarness) -> None:
    await core.customer(text="Oi", session="acme/support")
    row = await ticket(core)
    assert (row.queue, row.menu_sent_at, row.menu_deadline) == (None, None, None)
    assert not [m for m in core.outbound("acme/support") if m["kind"] == "text"]


# --- who works a queue ------------------------------------------------------------------------


REFUSED = "Ticket #1 is in queue billing, which you do not work"


async def test_only_the_queue_attendants_and_admins_act_on_its_tickets(
    core: CoreHarness,
) -> None:
    fe = core.frontends["matrix"]
    place = await routed_to(core, "1")
    sent = len(core.outbound())

    _, reply = await fe.attendant(place, BOB, "Oi, sou o Bob", name="Bob")
    assert reply is not None and reply.text.startswith(REFUSED) and reply.ephemeral
    _, reply = await fe.attendant(place, BOB, "!accept", name="Bob")
    assert reply is not None and reply.text.startswith(REFUSED)
    await core.settle()
    assert len(core.outbound()) == sent  # nothing reached the customer
    assert (await ticket(core)).assignee is None

    _, reply = await fe.attendant(place, CAROL, "Oi, sou a Carol", name="Carol")
    assert reply is None
    _, reply = await fe.attendant(place, ALICE, "Alice, supervisora", name="Alice")
    assert reply is None
    await core.settle()
    texts = texts_to_customer(core)
    assert texts[-2:] == ["*Carol:*\nOi, sou a Carol", "*Alice:*\nAlice, supervisora"]
    assert (await ticket(core)).assignee == CAROL

    _, reply = await fe.attendant(place, CAROL, f"!assign {BOB}", name="Carol")
    assert reply is not None and "does not work queue billing" in reply.text


async def test_a_ticket_still_choosing_is_open_to_every_attendant(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    _, reply = await fe.attendant(thread_of(fe), BOB, "Posso ajudar?", name="Bob")
    assert reply is None
    await core.settle()
    assert texts_to_customer(core)[-1] == "*Bob:*\nPosso ajudar?"


async def test_tickets_lists_what_the_sender_works_and_filters_by_queue(
    core: CoreHarness,
) -> None:
    fe = core.frontends["matrix"]
    await routed_to(core, "1")  # #1 billing
    await core.customer(text="Oi", sender="+5511900000002", name="João")
    await core.customer(text="2", sender="+5511900000002", name="João")  # #2 tech
    await core.customer(text="Oi", sender="+5511900000003", name="Ana")  # #3 choosing

    _, reply = await fe.attendant(CONTROL, BOB, "!tickets", name="Bob")
    assert reply is not None
    assert reply.text.splitlines() == [
        "#3 pending Ana (+5511900000003)",
        "#2 pending João (+5511900000002) · queue tech",
    ]
    _, reply = await fe.attendant(CONTROL, CAROL, "!tickets pending billing", name="Carol")
    assert reply is not None
    assert reply.text == "#1 pending Maria (+5511987654321) · queue billing"
    _, reply = await fe.attendant(CONTROL, BOB, "!tickets billing", name="Bob")
    assert reply is not None and reply.text == "No pending or open tickets in queue billing."
    _, reply = await fe.attendant(CONTROL, ALICE, "!tickets tech open", name="Alice")
    assert reply is not None and reply.text == "No open tickets in queue tech."
    _, reply = await fe.attendant(CONTROL, ALICE, "!tickets nope", name="Alice")
    assert reply is not None and reply.text.startswith("Usage: !tickets")


async def test_transfer_to_a_queue_moves_the_ticket_and_unassigns_it(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    place = await routed_to(core, "1")
    await fe.attendant(place, CAROL, "!accept", name="Carol")
    _, reply = await fe.attendant(place, CAROL, "!transfer tech", name="Carol")
    assert reply is not None and reply.text == "Ticket #1 transferred to queue tech by Carol."
    await core.settle()
    row = await ticket(core)
    assert (row.queue, row.assignee, row.status) == ("tech", None, "open")
    assert fe.cards[place.thread_root].queue == "tech"  # type: ignore[index]
    assert f"Ticket #1 transferred to queue tech by {CAROL}" in notices_in(fe, place)
    _, reply = await fe.attendant(place, BOB, "!accept", name="Bob")  # tech is everyone's
    assert reply is not None and "accepted" in reply.text

    _, reply = await fe.attendant(place, BOB, "!transfer tech", name="Bob")
    assert reply is not None and "already in queue tech" in reply.text
    _, reply = await fe.attendant(place, BOB, "!transfer support", name="Bob")  # a session
    assert reply is not None and reply.text == "Ticket #1 transferred to acme/support by Bob."
    assert (await ticket(core)).status == "closed"


async def test_stats_by_queue(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await routed_to(core, "1")
    await core.customer(text="Oi", sender="+5511900000002", name="João")
    await core.customer(text="2", sender="+5511900000002", name="João")
    await core.customer(text="Oi", sender="+5511900000003", name="Ana")

    _, reply = await fe.attendant(CONTROL, ALICE, "!stats", name="Alice")
    assert reply is not None
    assert "Not closed by queue: billing 1, tech 1, no queue 1" in reply.text
    _, reply = await fe.attendant(CONTROL, ALICE, "!stats billing", name="Alice")
    assert reply is not None
    lines = reply.text.splitlines()
    assert lines[0].startswith("*ACME Support* tickets in queue billing: 1 pending, 0 open")
    assert "Messages: 2 in, 3 out" in lines  # Oi and 1; the menu, greeting and hours text
    _, reply = await fe.attendant(CONTROL, ALICE, "!stats nope", name="Alice")
    assert reply is not None and reply.text.startswith("No queue named 'nope'")


def routes(core: CoreHarness) -> dict[tuple[str, str], float]:
    """``zapbridge_queue_routes_total`` of acme/sales, by (queue, how)."""
    found = {}
    for family in core.bridge.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "zapbridge_queue_routes_total":
                labels = sample.labels
                assert labels["session"] == "acme/sales"
                found[(labels["queue"], labels["how"])] = sample.value
    return found


async def _queue_is(core: CoreHarness, name: str) -> bool:
    return (await ticket(core)).queue == name
