"""Presence on a real Synapse (docs/presence.md): bob's real read receipt in a ticket
thread marks the customer's messages read on the sim, once; his real typing shows
the customer "typing…" and then stops it. The receipts and typing travel as Synapse
pushes them (ephemeral events of appservice transactions)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.harness.synapse import MatrixBridge, MatrixUser, bob, bridge, synapse, until

__all__ = ["bob", "bridge", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

SESSION = "acme/sales"


async def matrix_event_of(bridge: MatrixBridge, wa_id: str) -> str:
    """The Matrix event showing the customer's message ``wa_id``."""
    repos = bridge.bridge.repos

    async def shown() -> str | None:
        row = await repos.messages.find_by_wa_id(bridge.bridge.session_ids[SESSION], wa_id)
        ref = await repos.message_refs.get(row.id, "matrix") if row else None
        return ref.event_id if ref else None

    return await until(shown, what=f"{wa_id} on Matrix", clock=bridge.clock)


async def read_receipt(user: MatrixUser, room: str, event: str, thread: str) -> None:
    path = f"/_matrix/client/v3/rooms/{quote(room)}/receipt/m.read/{quote(event)}"
    await user.request("POST", path, {"thread_id": thread})


async def set_typing(user: MatrixUser, room: str, typing: bool) -> None:
    path = f"/_matrix/client/v3/rooms/{quote(room)}/typing/{quote(user.user_id)}"
    await user.request("PUT", path, {"typing": typing, "timeout": 30000})


def presence(bridge: MatrixBridge) -> dict[str, Any]:
    return bridge.sim.presence(SESSION)


async def test_bobs_read_receipt_and_typing_reach_the_customer(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    first = await bridge.customer(text="Oi")
    second = await bridge.customer(text="Alguém aí?")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    shown_second = await matrix_event_of(bridge, second)
    assert presence(bridge)["read"] == []

    await read_receipt(bob, room, shown_second, root)
    await until(
        lambda: presence(bridge)["read"] == [first, second],
        what="both messages marked read",
        clock=bridge.clock,
    )

    await set_typing(bob, room, True)
    await until(
        lambda: [t["state"] for t in presence(bridge)["typing"]] == ["composing"],
        what="typing shown",
        clock=bridge.clock,
    )
    assert presence(bridge)["typing"][0]["to"] == "+5511987654321"
    await set_typing(bob, room, False)
    await until(
        lambda: [t["state"] for t in presence(bridge)["typing"]] == ["composing", "paused"],
        what="typing stopped",
        clock=bridge.clock,
    )

    # a new message, read: only it is marked; the old ones are not marked again
    third = await bridge.customer(text="Obrigada")
    await read_receipt(bob, room, await matrix_event_of(bridge, third), root)
    await until(
        lambda: presence(bridge)["read"] == [first, second, third],
        what="the third marked read",
        clock=bridge.clock,
    )
    # a receipt on the card (no message): up to the newest message shown, all marked
    await read_receipt(bob, room, root, root)
    # behind it on the ticket's presence key, a typing change: the barrier
    await set_typing(bob, room, True)
    await until(
        lambda: len(presence(bridge)["typing"]) == 3,
        what="typing shown again",
        clock=bridge.clock,
    )
    assert presence(bridge)["read"] == [first, second, third]  # nothing marked twice


async def test_the_customers_read_is_the_ghosts_threaded_receipt_on_bobs_reply(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    await bridge.customer(text="Oi")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    relation = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    body = {"msgtype": "m.text", "body": "Um momento", "m.relates_to": relation}
    mine = await bob.send(room, body)
    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Um momento"))
    await bridge.sim.receipt(SESSION, sent["id"], "delivered")  # no Matrix form
    await bridge.sim.receipt(SESSION, sent["id"], "read")

    async def ghost_receipt() -> dict[str, Any] | None:
        data = await bob.request("GET", "/_matrix/client/v3/sync?timeout=0")
        ephemeral = data["rooms"]["join"].get(room, {}).get("ephemeral", {}).get("events", [])
        for event in ephemeral:
            if event["type"] == "m.receipt":
                for user, receipt in event["content"].get(mine, {}).get("m.read", {}).items():
                    if user == "@wa_5511987654321:localhost":  # the ghost of the customer
                        return dict(receipt)
        return None

    receipt = await until(ghost_receipt, what="the ghost's read receipt", clock=bridge.clock)
    assert receipt["thread_id"] == root
