"""Customers known only by their LID, end to end on Slack (the strict SlackFake, the
sim engine, both database engines): one contact and one ticket whatever order the
LID and the phone come in, replies reach a LID-only customer, and the card shows
the phone once WhatsApp links it (docs/messages.md,
"Customers known only by their LID")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.db.database import Database
from tests.fakes.slack import SlackFake
from tests.harness.slack import BOB, CUSTOMER, SALES, SlackHarness

LID = "123456789012345@lid"
LID_LABEL = "Maria (LID 123456789012345)"


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


async def by_lid(h: SlackHarness, **fields: Any) -> str:
    """Maria writes with her phone hidden: ``lid`` and no ``from``."""
    return await h.customer(sender=None, lid=LID, **fields)  # type: ignore[arg-type]


async def with_both(h: SlackHarness, **fields: Any) -> str:
    return await h.customer(sender=CUSTOMER, lid=LID, **fields)


async def attendant_says(h: SlackHarness, text: str, ticket_id: int = 1) -> None:
    root = h.thread_root(ticket_id=ticket_id)
    await h.event(h.fake.user_message(SALES, BOB, text, thread_ts=root))


def cards(h: SlackHarness) -> list[dict[str, Any]]:
    """The thread roots (ticket cards) of the sales channel, as they show now."""
    return [m for m in h.fake.messages(SALES) if m.get("blocks")]


def card_text(h: SlackHarness, ticket_id: int = 1) -> str:
    root = h.thread_root(ticket_id=ticket_id)
    return str(next(m for m in h.fake.messages(SALES) if m["ts"] == root)["text"])


async def counts(h: SlackHarness) -> tuple[int, int, int]:
    """(contacts, tickets, non-closed tickets) in the database."""
    db = h.db
    return (
        await db.fetchval("SELECT COUNT(*) FROM contacts"),
        await db.fetchval("SELECT COUNT(*) FROM tickets"),
        await db.fetchval("SELECT COUNT(*) FROM tickets WHERE status <> 'closed'"),
    )


async def test_lid_first_then_phone_and_lid_is_one_ticket_whose_card_gains_the_phone(
    bridge: SlackHarness,
) -> None:
    await by_lid(bridge, text="Oi, preciso de ajuda")
    assert card_text(bridge) == f"Ticket #1 · {LID_LABEL} · pending"
    greeting = bridge.outbound()[-1]
    assert (greeting["to"], greeting["kind"]) == (LID, "text")

    await attendant_says(bridge, "Posso ajudar?")
    reply = bridge.outbound()[-1]
    assert (reply["to"], reply["text"]) == (LID, "*Bob Silva:*\nPosso ajudar?")

    await with_both(bridge, text="Meu número apareceu")
    assert len(cards(bridge)) == 1  # no second ticket, no second thread
    assert card_text(bridge) == f"Ticket #1 · Maria ({CUSTOMER}) · open · {BOB}"
    await by_lid(bridge, text="E de novo só pelo LID")
    assert [p["text"] for p in bridge.customer_posts()] == [
        "Oi, preciso de ajuda",
        "Meu número apareceu",
        "E de novo só pelo LID",
    ]
    await attendant_says(bridge, "Anotado")
    assert bridge.outbound()[-1]["to"] == CUSTOMER  # the phone, once known
    assert await counts(bridge) == (1, 1, 1)


async def test_phone_first_then_phone_and_lid_then_lid_alone_is_one_ticket(
    bridge: SlackHarness,
) -> None:
    await bridge.customer(text="Oi")
    await with_both(bridge, text="agora com LID")
    await by_lid(bridge, text="só LID")
    assert len(cards(bridge)) == 1
    assert card_text(bridge) == f"Ticket #1 · Maria ({CUSTOMER}) · pending"
    assert [p["text"] for p in bridge.customer_posts()] == ["Oi", "agora com LID", "só LID"]
    await attendant_says(bridge, "Olá")
    assert bridge.outbound()[-1]["to"] == CUSTOMER
    assert await counts(bridge) == (1, 1, 1)


async def test_a_lid_only_customer_reacts_edits_deletes_and_reads(bridge: SlackHarness) -> None:
    mine = await by_lid(bridge, text="tpyo")
    await attendant_says(bridge, "Olá, Maria")
    ours = bridge.outbound()[-1]
    assert ours["to"] == LID

    await by_lid(bridge, kind="reaction", target=ours["id"], emoji="👍")
    bob_post = next(m for m in bridge.replies() if m["text"].endswith("Olá, Maria"))
    assert "+1" in bridge.fake.reactions(SALES, bob_post["ts"])
    await by_lid(bridge, kind="edit", target=mine, text="typo")
    assert [p["text"] for p in bridge.customer_posts()] == ["typo"]
    await bridge.sim.receipt("acme/sales", ours["id"], "read")
    await bridge.settle()
    acks = await bridge.db.fetch("SELECT ack FROM messages WHERE wa_id = $1", ours["id"])
    assert [row["ack"] for row in acks] == ["read"]
    await by_lid(bridge, kind="revoke", target=mine)
    assert bridge.customer_posts() == []


async def test_a_split_before_the_link_is_merged_into_the_older_ticket_with_a_notice(
    bridge: SlackHarness,
) -> None:
    await bridge.customer(text="pelo telefone")
    await by_lid(bridge, text="pelo LID")  # nobody can know yet that she is the same person
    assert len(cards(bridge)) == 2
    assert card_text(bridge, 2) == f"Ticket #2 · {LID_LABEL} · pending"

    await with_both(bridge, text="os dois")
    assert card_text(bridge, 2) == f"Ticket #2 · Maria ({CUSTOMER}) · closed"
    notices = [m["text"] for m in bridge.replies(ticket_id=2) if "username" not in m]
    assert any(
        "Ticket #2 closed: WhatsApp linked this customer to Maria (+5511987654321); "
        "the conversation goes on in ticket #1" in text
        for text in notices
    ), notices
    await by_lid(bridge, text="de novo só LID")
    assert [p["text"] for p in bridge.customer_posts(ticket_id=1)] == [
        "pelo telefone",
        "os dois",
        "de novo só LID",
    ]
    assert len(cards(bridge)) == 2
    assert await counts(bridge) == (1, 2, 1)
