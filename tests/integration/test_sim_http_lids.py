"""The /sim HTTP API and LIDs (docs/sim.md, "LIDs"): ``lid`` in inbound bodies, ``from``
optional with it, 400 for a body with neither or a malformed LID, ``to`` = the LID."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.model import Party, Text
from bridge.whatsapp.engine import ContactUpdateEvent, MessageEvent, ReceiptEvent
from tests.integration.test_sim_http import CUSTOMER, KEY, Harness, harness

__all__ = ["harness"]  # the fixture, re-exported for pytest

LID = "123456789012345@lid"
INBOUND = "/sim/sessions/sales/inbound"


def senders(harness: Harness) -> list[Party]:
    return [e.message.sender for e in harness.sessions.events if isinstance(e, MessageEvent)]


async def test_a_customer_known_by_her_lid_alone(harness: Harness) -> None:
    await harness.connect()
    body = {"lid": LID, "push_name": "Maria", "kind": "text", "text": "Olá"}
    answer = await harness.call("POST", INBOUND, body)
    assert senders(harness) == [Party(lid="123456789012345", name="Maria")]

    sent = await harness.sim.send(KEY, LID, Text("Oi, Maria"))
    outbound = await harness.call("GET", "/sim/sessions/sales/outbound")
    assert [(m["to"], m["text"]) for m in outbound["messages"]] == [(LID, "Oi, Maria")]
    await harness.call("POST", "/sim/sessions/sales/receipt", {"id": sent, "status": "read"})
    [receipt] = [e for e in harness.sessions.events if isinstance(e, ReceiptEvent)]
    assert receipt.chat == Party(lid="123456789012345")

    reaction = {"lid": LID, "kind": "reaction", "target": answer["id"], "emoji": "👍"}
    await harness.call("POST", INBOUND, reaction)
    assert senders(harness)[-1] == Party(lid="123456789012345", name=None)


async def test_a_body_with_both_links_the_lid_to_the_phone(harness: Harness) -> None:
    await harness.connect()
    await harness.call("POST", INBOUND, {"lid": LID, "kind": "text", "text": "1"})
    await harness.call("POST", INBOUND, {"from": CUSTOMER, "lid": LID, "kind": "text", "text": "2"})
    await harness.call("POST", INBOUND, {"lid": LID, "kind": "text", "text": "3"})
    both = Party(phone=CUSTOMER, lid="123456789012345")
    assert senders(harness) == [Party(lid="123456789012345"), both, both]
    updates = [e for e in harness.sessions.events if isinstance(e, ContactUpdateEvent)]
    assert [u.party for u in updates] == [both]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "text", "text": "x"}, "from is required when there is no lid"),
        ({"lid": None, "kind": "text", "text": "x"}, "from is required when there is no lid"),
        ({"lid": 123, "kind": "text", "text": "x"}, "lid must be a string"),
        ({"lid": "123", "kind": "text", "text": "x"}, "lid must be a LID such as"),
        ({"lid": "9" * 25 + "@lid", "kind": "text", "text": "x"}, "lid must be a LID such as"),
        ({"lid": "x" * 10_000, "kind": "text", "text": "x"}, "lid is longer than 128"),
    ],
)
async def test_a_body_without_a_sender_or_with_a_bad_lid_is_400(
    harness: Harness, body: dict[str, Any], reason: str
) -> None:
    await harness.connect()
    answer = await harness.call("POST", INBOUND, body, status=400)
    assert answer["error"].startswith(reason)
    assert senders(harness) == []


async def test_a_lid_linked_to_another_phone_is_400(harness: Harness) -> None:
    await harness.connect()
    await harness.call("POST", INBOUND, {"from": CUSTOMER, "lid": LID, "kind": "text", "text": "1"})
    other = {"from": "+5511900000077", "lid": LID, "kind": "text", "text": "2"}
    answer = await harness.call("POST", INBOUND, other, status=400)
    assert answer["error"].startswith(f"lid {LID} is linked to another phone")
