"""Catch-up against a real Synapse: an attendant's reply that Synapse believes it
pushed (the forwarder acknowledges it without forwarding, as synapse#11637 loses it
in a restart) reaches the customer once the bridge reads the room back, exactly
once; a reply the bridge already handled is not relayed again."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from tests.harness.synapse import (
    Homeserver,
    MatrixBridge,
    MatrixUser,
    alice,
    bob,
    bridge,
    synapse,
    until,
)

__all__ = ["alice", "bob", "bridge", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOB = "@bob:localhost"


def in_thread(root: str, text: str) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": text,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True},
    }


def texts_to_customer(bridge: MatrixBridge) -> list[str]:
    return [m.get("text", "") for m in bridge.sim.outbound("acme/sales")]


async def lost_reply(bridge: MatrixBridge, bob: MatrixUser, synapse: Homeserver) -> str:
    """A ticket where bob's first reply was relayed and his second one was never
    pushed to the bridge (Synapse believes it was). → the lost reply's event id."""
    await bridge.customer(text="Oi, preciso de ajuda")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    await bob.send(room, in_thread(root, "handled before"))
    await bridge.outbound(lambda m: m.get("text", "").endswith("handled before"))
    synapse.forwarder.swallow(lambda e: e.get("sender") == BOB)
    lost = await bob.send(room, in_thread(root, "lost in the restart"))

    def swallowed() -> bool:
        return any(e.get("event_id") == lost for e in synapse.forwarder.swallowed)

    await until(swallowed, what="Synapse's push of the reply, swallowed")
    return lost


async def assert_each_reached_the_customer_once(bridge: MatrixBridge) -> None:
    await bridge.outbound(lambda m: m.get("text", "").endswith("lost in the restart"))
    texts = texts_to_customer(bridge)
    # deliveries keep the thread's order: a second "handled before" would be in by now
    assert sum(t.endswith("handled before") for t in texts) == 1
    assert sum(t.endswith("lost in the restart") for t in texts) == 1


async def test_a_reply_never_pushed_reaches_the_customer_once_after_a_catch_up(
    bridge: MatrixBridge, bob: MatrixUser, synapse: Homeserver
) -> None:
    since = time.time()
    await lost_reply(bridge, bob, synapse)
    assert not any(t.endswith("lost in the restart") for t in texts_to_customer(bridge))
    watch = bridge.frontend.watch
    runs = watch.runs
    watch.request(since)  # what the watch does when the homeserver is reachable again
    await until(lambda: watch.runs > runs, what="the catch-up", clock=bridge.clock)
    await assert_each_reached_the_customer_once(bridge)

    watch.request(since)  # a second catch-up of the same window changes nothing
    await until(lambda: watch.runs > runs + 1, what="the second catch-up", clock=bridge.clock)
    await bridge.clock.advance(5)
    await assert_each_reached_the_customer_once(bridge)


async def test_a_transaction_numbered_from_the_start_again_triggers_a_catch_up(
    bridge: MatrixBridge, bob: MatrixUser, synapse: Homeserver
) -> None:
    await lost_reply(bridge, bob, synapse)
    runs = bridge.frontend.watch.runs
    # Synapse on SQLite numbers its transactions from 1 again after a restart
    url = f"http://127.0.0.1:{bridge.listen_port}/_matrix/app/v1/transactions/0"
    headers = {"Authorization": f"Bearer {synapse.hs_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.put(url, json={"events": []}, headers=headers) as resp:
            assert resp.status == 200
    await until(lambda: bridge.frontend.watch.runs > runs, what="the catch-up", clock=bridge.clock)
    await assert_each_reached_the_customer_once(bridge)
