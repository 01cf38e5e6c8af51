"""Customers known only by their LID, end to end on Matrix (a real Synapse, the sim
engine, both database engines): one contact, one ticket and one thread whatever
order the LID and the phone come in; replies reach a LID-only customer; the card
shows the phone once WhatsApp links it (docs/messages.md,
"Customers known only by their LID").

Ghosts: a LID-only customer posts as ``@wa_lid-<digits>``, named ``Maria (LID …)``.
Once the phone is known she posts as the phone's ghost ``@wa_<digits>`` (the one
every session and mention uses); the LID ghost, having spoken, is renamed
``Maria (+55…)`` so her earlier messages read as the same person."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio

from bridge.db import migrate
from tests.conftest import ENGINES, open_test_database
from tests.harness.synapse import (
    Homeserver,
    MatrixBridge,
    MatrixUser,
    alice,
    bob,
    synapse,
    until,
)
from tests.integration.test_matrix_e2e import (
    card_edit,
    in_thread,
    relation,
    text,
    threaded,
    wait_events,
)

__all__ = ["alice", "bob", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

SESSION = "acme/sales"


class Customer:
    """Maria, with a LID and a phone of this test only: the homeserver (and its
    ghosts) outlives the test."""

    def __init__(self) -> None:
        self.digits = "9" + "".join(secrets.choice("0123456789") for _ in range(14))
        self.lid = f"{self.digits}@lid"
        self.phone = f"+55119{self.digits[-8:]}"
        self.lid_ghost = f"@wa_lid-{self.digits}:localhost"
        self.phone_ghost = f"@wa_{self.phone[1:]}:localhost"

    def body(self, *, phone: bool, lid: bool, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"push_name": "Maria", "kind": "text", **fields}
        if phone:
            body["from"] = self.phone
        if lid:
            body["lid"] = self.lid
        return body


@pytest.fixture
def maria() -> Customer:
    return Customer()


@pytest_asyncio.fixture(loop_scope="session", params=ENGINES)
async def bridge(
    request: pytest.FixtureRequest, synapse: Homeserver, tmp_path: Path
) -> AsyncIterator[MatrixBridge]:
    """A bridge of this test on the session's Synapse, on SQLite and on PostgreSQL."""
    async with open_test_database(request.param, tmp_path) as db:
        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def writes(
    bridge: MatrixBridge, maria: Customer, *, phone: bool, lid: bool, **kw: Any
) -> str:
    return await bridge.sim.inbound(SESSION, maria.body(phone=phone, lid=lid, **kw))


async def posted_by(
    bob: MatrixUser, bridge: MatrixBridge, room: str, root: str, sender: str, body: str
) -> dict[str, Any]:
    [event] = await wait_events(
        bob,
        room,
        lambda e: in_thread(root)(e) and e["sender"] == sender and e["content"].get("body") == body,
        what=f"{body!r} from {sender}",
        bridge=bridge,
    )
    return event


async def display_name(user: MatrixUser, mxid: str) -> str | None:
    data = await user.request("GET", f"/_matrix/client/v3/profile/{quote(mxid)}")
    return data.get("displayname")


async def counts(bridge: MatrixBridge) -> tuple[int, int, int]:
    """(contacts, tickets, threads) in the database."""
    db = bridge.db
    return (
        await db.fetchval("SELECT COUNT(*) FROM contacts"),
        await db.fetchval("SELECT COUNT(*) FROM tickets"),
        await db.fetchval("SELECT COUNT(*) FROM thread_refs"),
    )


async def root_body(bob: MatrixUser, room: str, root: str) -> str:
    event = await bob.request("GET", f"/_matrix/client/v3/rooms/{quote(room)}/event/{root}")
    return str(event["content"]["body"])


async def test_lid_first_then_phone_and_lid_is_one_ticket_and_the_card_gains_the_phone(
    bridge: MatrixBridge, bob: MatrixUser, maria: Customer
) -> None:
    await writes(bridge, maria, phone=False, lid=True, text="Oi, preciso de ajuda")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    await posted_by(bob, bridge, room, root, maria.lid_ghost, "Oi, preciso de ajuda")
    lid_label = f"Maria (LID {maria.digits})"
    assert await root_body(bob, room, root) == f"Ticket #1 · {lid_label} · pending"
    assert await display_name(bob, maria.lid_ghost) == lid_label

    await bob.send(room, threaded(text("Posso ajudar?"), root))
    reply = await bridge.outbound(lambda m: m.get("text", "").endswith("Posso ajudar?"))
    assert reply["to"] == maria.lid

    await writes(bridge, maria, phone=True, lid=True, text="Meu número apareceu")
    await posted_by(bob, bridge, room, root, maria.phone_ghost, "Meu número apareceu")
    phone_label = f"Maria ({maria.phone})"
    await wait_events(bob, room, card_edit(root, phone_label), what="card", bridge=bridge)
    assert await display_name(bob, maria.phone_ghost) == phone_label
    assert await display_name(bob, maria.lid_ghost) == phone_label  # the same person

    await writes(bridge, maria, phone=False, lid=True, text="De novo só pelo LID")
    await posted_by(bob, bridge, room, root, maria.phone_ghost, "De novo só pelo LID")
    await bob.send(room, threaded(text("Anotado"), root))
    later = await bridge.outbound(lambda m: m.get("text", "").endswith("Anotado"))
    assert later["to"] == maria.phone
    assert await counts(bridge) == (1, 1, 1)


async def test_phone_first_then_phone_and_lid_then_lid_alone_is_one_ticket(
    bridge: MatrixBridge, bob: MatrixUser, alice: MatrixUser, maria: Customer
) -> None:
    await writes(bridge, maria, phone=True, lid=False, text="Oi")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    await writes(bridge, maria, phone=True, lid=True, text="agora com LID")
    await writes(bridge, maria, phone=False, lid=True, text="só LID")
    for body in ("Oi", "agora com LID", "só LID"):
        await posted_by(bob, bridge, room, root, maria.phone_ghost, body)
    assert await root_body(bob, room, root) == f"Ticket #1 · Maria ({maria.phone}) · pending"
    with pytest.raises(AssertionError, match="404"):  # no LID ghost was ever needed
        await display_name(alice, maria.lid_ghost)
    await bob.send(room, threaded(text("Olá"), root))
    reply = await bridge.outbound(lambda m: m.get("text", "").endswith("Olá"))
    assert reply["to"] == maria.phone
    assert await counts(bridge) == (1, 1, 1)


async def test_a_lid_only_customer_reacts_and_reads_as_her_lid_ghost(
    bridge: MatrixBridge, bob: MatrixUser, maria: Customer
) -> None:
    await writes(bridge, maria, phone=False, lid=True, text="Oi")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    mine = await bob.send(room, threaded(text("Um momento"), root))
    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Um momento"))
    assert sent["to"] == maria.lid

    await writes(
        bridge, maria, phone=False, lid=True, kind="reaction", target=sent["id"], emoji="🙏"
    )
    [reaction] = await wait_events(
        bob,
        room,
        lambda e: e["type"] == "m.reaction" and e["sender"] == maria.lid_ghost,
        what="the LID ghost's reaction",
        bridge=bridge,
    )
    assert relation(reaction) == {"rel_type": "m.annotation", "event_id": mine, "key": "🙏"}

    await bridge.sim.receipt(SESSION, sent["id"], "read")

    async def ghost_read() -> bool:
        data = await bob.request("GET", "/_matrix/client/v3/sync?timeout=0")
        ephemeral = data["rooms"]["join"].get(room, {}).get("ephemeral", {}).get("events", [])
        receipts = [e["content"] for e in ephemeral if e["type"] == "m.receipt"]
        return any(maria.lid_ghost in r.get(mine, {}).get("m.read", {}) for r in receipts)

    await until(ghost_read, what="the LID ghost's read receipt", clock=bridge.clock)


async def test_after_the_link_she_edits_and_deletes_what_she_wrote_by_lid(
    bridge: MatrixBridge, bob: MatrixUser, maria: Customer
) -> None:
    first = await writes(bridge, maria, phone=False, lid=True, text="tpyo")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    original = await posted_by(bob, bridge, room, root, maria.lid_ghost, "tpyo")
    await writes(bridge, maria, phone=True, lid=True, text="linked")
    await posted_by(bob, bridge, room, root, maria.phone_ghost, "linked")

    await writes(bridge, maria, phone=True, lid=True, kind="edit", target=first, text="typo")
    [edit] = await wait_events(
        bob,
        room,
        lambda e: (
            relation(e).get("rel_type") == "m.replace"
            and relation(e)["event_id"] == original["event_id"]
        ),
        what="her edit",
        bridge=bridge,
    )
    assert edit["sender"] == maria.lid_ghost  # an edit counts only from the same sender
    assert edit["content"]["m.new_content"]["body"] == "typo"

    await writes(bridge, maria, phone=False, lid=True, kind="revoke", target=first)
    [redaction] = await wait_events(
        bob,
        room,
        lambda e: e["type"] == "m.room.redaction",
        what="her deletion",
        bridge=bridge,
    )
    assert redaction["sender"] == maria.lid_ghost
    assert original["event_id"] in (redaction.get("redacts"), redaction["content"].get("redacts"))
    dead = await bridge.db.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
    assert dead == 0
