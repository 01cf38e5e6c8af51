"""Queues as whole bridges on each frontend (docs/tickets.md#queues): the strict Slack
fake and a real Synapse. The menu goes to the customer, the answer routes the ticket,
the card shows `queue: <name>`, the thread says why, and an attendant who does not
work the queue is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.db import migrate
from bridge.db.database import Database
from tests.conftest import open_test_database
from tests.fakes.slack import SlackFake
from tests.harness import slack as slack_harness
from tests.harness import synapse as synapse_harness
from tests.harness.slack import ADMIN, BOB, SALES, SlackHarness, until
from tests.harness.synapse import Homeserver, MatrixBridge, MatrixUser, synapse

__all__ = ["synapse"]  # the fixture, re-exported for pytest

MENU = "Escolha uma opção:\n*1* - Financeiro\n*2* - Técnico"
BILLING_HELLO = "Financeiro aqui."
TECH_HELLO = "Suporte técnico aqui."
REFUSED = "Ticket #1 is in queue billing, which you do not work"


def with_queues(template: str, *, billing: str) -> str:
    """The harness's config with two queues on acme/sales; ``billing``: the one
    attendant (an admin) of the billing queue."""
    line = '        farewell: "Atendimento encerrado. Obrigado!"\n'
    assert template.count(line) == 1
    queues = (
        "        queues:\n"
        f'          - {{{{name: billing, option: 1, label: Financeiro, attendants: ["{billing}"], '
        f'greeting: "{BILLING_HELLO}"}}}}\n'
        f'          - {{{{name: tech, option: 2, label: Técnico, greeting: "{TECH_HELLO}"}}}}\n'
        '        menu: {{text: "Escolha uma opção:", default_queue: tech}}\n'
    )
    return template.replace(line, line + queues)


def texts_to_customer(h: SlackHarness) -> list[str]:
    return [m["text"] for m in h.outbound() if m["kind"] == "text"]


def block_texts(message: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in message.get("blocks", []) if "text" in b)


async def test_slack_the_menu_routes_and_the_card_shows_the_queue(
    tmp_path: Path, db: Database
) -> None:
    async with SlackFake() as fake:
        config = with_queues(slack_harness.CONFIG, billing="{admin}")
        h = SlackHarness(tmp_path, db, fake, config=config)
        await h.start()
        try:
            await h.customer(text="Oi")
            assert texts_to_customer(h) == [MENU]
            await h.customer(text="1.")
            assert texts_to_customer(h) == [MENU, BILLING_HELLO]

            root = h.thread_root()
            card = fake.messages(SALES, root)[0]
            assert "queue: billing" in card["text"]  # the notification text
            assert "queue: billing" in block_texts(card)  # and the card's blocks
            replies = [m.get("text", "") for m in h.replies()]
            assert "Ticket #1 routed to queue billing: the customer chose 1" in replies
            assert [m["text"] for m in h.customer_posts()] == ["Oi", "1."]  # nothing lost
            assert sum(1 for m in fake.messages(SALES) if m.get("blocks")) == 1  # one card

            sent = len(h.outbound())
            await h.event(fake.user_message(SALES, BOB, "Bom dia!", thread_ts=root))
            click = fake.block_action_payload(
                "ticket_accept", user_id=BOB, channel_id=SALES, message_ts=root
            )
            await h.fake.wait_ack(await h.fake.send_event(click, envelope_type="interactive"))
            await h.settle()
            refusals = [
                c.args["text"]
                for c in fake.calls_of("chat.postEphemeral")
                if c.args.get("user") == BOB
            ]
            assert len(refusals) == 2 and all(r.startswith(REFUSED) for r in refusals)
            assert len(h.outbound()) == sent
            row = await h.bridge.repos.tickets.get(1)
            assert row is not None and (row.status, row.assignee) == ("pending", None)

            await h.event(fake.user_message(SALES, ADMIN, "!transfer tech", thread_ts=root))
            await until(
                lambda: "queue: tech" in fake.messages(SALES, root)[0]["text"],
                what="the card showing the new queue",
                clock=h.clock,
            )
            await h.event(fake.user_message(SALES, BOB, "Agora sim!", thread_ts=root))
            assert h.outbound()[-1]["text"] == "*Bob Silva:*\nAgora sim!"
        finally:
            await h.stop()


async def test_slack_no_answer_goes_to_the_default_queue(tmp_path: Path, db: Database) -> None:
    async with SlackFake() as fake:
        config = with_queues(slack_harness.CONFIG, billing="{admin}")
        h = SlackHarness(tmp_path, db, fake, config=config)
        await h.start()
        try:
            await h.customer(text="Oi")
            await h.run_for(301)
            await until(
                lambda: TECH_HELLO in texts_to_customer(h), what="the default", clock=h.clock
            )
            root = h.thread_root()
            assert "queue: tech" in fake.messages(SALES, root)[0]["text"]
            notice = "Ticket #1 routed to queue tech: no answer to the menu within 300 s"
            assert notice in [m.get("text", "") for m in h.replies()]
        finally:
            await h.stop()


async def _thread_bodies(user: MatrixUser, room: str, root: str) -> list[str]:
    bodies = []
    for event in await user.messages(room):
        content = event.get("content", {})
        relates = content.get("m.relates_to") or {}
        if relates.get("event_id") == root and relates.get("rel_type") == "m.thread":
            bodies.append(str(content.get("body", "")))
    return bodies


async def _card_of(user: MatrixUser, room: str, root: str) -> str:
    """What the root shows: its newest edit's text, else its own."""
    shown = ""
    for event in await user.messages(room):  # oldest first
        content = event.get("content", {})
        relates = content.get("m.relates_to") or {}
        if event.get("event_id") == root:
            shown = shown or str(content.get("body", ""))
        elif relates.get("rel_type") == "m.replace" and relates.get("event_id") == root:
            shown = str(content.get("m.new_content", {}).get("body", ""))
    return shown


@pytest.mark.asyncio(loop_scope="session")
async def test_matrix_the_menu_routes_and_the_card_shows_the_queue(
    synapse: Homeserver, tmp_path: Path
) -> None:
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        config = with_queues(synapse_harness.CONFIG, billing="@alice:localhost")
        h = MatrixBridge(synapse, tmp_path / "bridge", db, config=config)
        await h.start()
        try:
            bob = synapse.user("bob")
            await h.customer(text="Oi")
            await h.outbound(lambda m: m.get("text") == MENU)
            await h.customer(text="1")
            await h.outbound(lambda m: m.get("text") == BILLING_HELLO)
            root = await h.thread_root()
            room = await h.room("control")
            await bob.join(room)

            async def routed() -> bool:
                card = await _card_of(bob, room, root)
                notice = "Ticket #1 routed to queue billing: the customer chose 1"
                return "queue: billing" in card and notice in await _thread_bodies(bob, room, root)

            await until(routed, what="the card and notice of the queue", clock=h.clock)

            thread = {"rel_type": "m.thread", "event_id": root}
            await bob.send(room, {"msgtype": "m.text", "body": "Bom dia", "m.relates_to": thread})

            async def refused() -> bool:
                bodies = await _thread_bodies(bob, room, root)
                return any(REFUSED in body for body in bodies)

            await until(refused, what="Bob refused in the billing thread", clock=h.clock)
            assert not [m for m in h.sim.outbound("acme/sales") if "Bom dia" in m.get("text", "")]

            alice = synapse.user("alice")
            await alice.join(room)
            await alice.send(
                room, {"msgtype": "m.text", "body": "!transfer tech", "m.relates_to": thread}
            )

            async def moved() -> bool:
                return "queue: tech" in await _card_of(bob, room, root)

            await until(moved, what="the card showing queue tech", clock=h.clock)
            await bob.send(room, {"msgtype": "m.text", "body": "Agora sim", "m.relates_to": thread})
            await h.outbound(lambda m: m.get("text", "").endswith("Agora sim"))
        finally:
            await h.stop()
