"""SimEngine and LIDs (docs/sim.md, "LIDs"): a customer known by LID alone, the link
with the phone learned from a body carrying both, sends and receipts to a LID."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.errors import InvalidInput
from bridge.model import AckStatus, Party, Quote, Text
from bridge.whatsapp.engine import ContactUpdateEvent, MessageEvent, ReceiptEvent
from bridge.whatsapp.sim import SimEngine
from tests.unit.test_sim_engine import (
    CUSTOMER,
    INBOUND_CASES,
    KEY,
    MakeSim,
    Recorder,
    clock,
    connected,
    events,
    make_sim,
    sim,
    spec,
)

__all__ = ["clock", "connected", "events", "make_sim", "sim"]  # fixtures, re-exported

LID = "123456789012345@lid"
DIGITS = "123456789012345"


def last_message(events: Recorder) -> MessageEvent:
    return events.of(MessageEvent)[-1]


# --- who writes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "content"),
    INBOUND_CASES,
    ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(INBOUND_CASES)],
)
async def test_every_kind_may_come_from_a_lid_alone(
    connected: SimEngine, events: Recorder, kind: str, fields: dict[str, Any], content: Any
) -> None:
    wa_id = await connected.inbound(KEY, {"lid": LID, "push_name": "Maria", "kind": kind, **fields})
    message = last_message(events).message
    assert message.sender == message.chat == Party(lid=DIGITS, name="Maria")
    assert (message.content, message.wa_id) == (content, wa_id)
    assert message.sender.address == LID


async def test_a_null_from_with_a_lid_is_a_lid_only_customer(
    connected: SimEngine, events: Recorder
) -> None:
    await connected.inbound(KEY, {"from": None, "lid": LID, "kind": "text", "text": "oi"})
    assert last_message(events).message.sender == Party(lid=DIGITS)


async def test_a_lid_only_member_of_a_group(connected: SimEngine, events: Recorder) -> None:
    group = {"id": "120363000000000001@g.us", "name": "Família"}
    await connected.inbound(KEY, {"lid": LID, "kind": "text", "text": "oi", "group": group})
    message = last_message(events).message
    assert message.chat == Party(group=group["id"], name="Família")
    assert message.sender == Party(lid=DIGITS)


async def test_a_lid_only_customer_gets_a_contact_update_for_a_new_push_name(
    connected: SimEngine, events: Recorder
) -> None:
    for _ in range(2):
        await connected.inbound(
            KEY, {"lid": LID, "push_name": "Maria", "kind": "text", "text": "x"}
        )
    updates = events.of(ContactUpdateEvent)
    assert [u.party for u in updates] == [Party(lid=DIGITS, name="Maria")]


async def test_replies_quote_a_lid_only_customer_by_her_lid(
    connected: SimEngine, events: Recorder
) -> None:
    first = await connected.inbound(KEY, {"lid": LID, "kind": "text", "text": "pergunta"})
    await connected.inbound(KEY, {"lid": LID, "kind": "text", "text": "e?", "quote": first})
    assert last_message(events).message.quote == Quote(first, sender=LID, text="pergunta")


# --- the link ---------------------------------------------------------------------


async def test_a_body_with_both_links_them_and_later_bodies_carry_both(
    connected: SimEngine, events: Recorder, tmp_path: Path
) -> None:
    await connected.inbound(KEY, {"lid": LID, "push_name": "Maria", "kind": "text", "text": "1"})
    assert last_message(events).message.sender == Party(lid=DIGITS, name="Maria")

    body = {"from": "+55 11 98765-4321", "lid": LID, "push_name": "Maria", "kind": "text"}
    await connected.inbound(KEY, {**body, "text": "2"})
    both = Party(phone=CUSTOMER, lid=DIGITS, name="Maria")
    assert last_message(events).message.sender == both
    assert events.of(ContactUpdateEvent)[-1].party == both  # the link, as whatsmeow tells it

    await connected.inbound(KEY, {"lid": LID, "push_name": "Maria", "kind": "text", "text": "3"})
    assert last_message(events).message.sender == both  # the store knows her phone now
    await connected.inbound(KEY, {"from": CUSTOMER, "kind": "text", "text": "4"})
    assert last_message(events).message.chat == Party(phone=CUSTOMER, lid=DIGITS)
    assert len(events.of(ContactUpdateEvent)) == 2  # once for the name, once for the link

    store = tmp_path / "data" / "sim" / "acme" / "sales" / "lids.jsonl"
    assert [json.loads(line) for line in store.read_text().splitlines()] == [
        {"lid": DIGITS, "phone": CUSTOMER}
    ]
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


async def test_the_link_survives_a_restart(
    connected: SimEngine, make_sim: MakeSim, tmp_path: Path, events: Recorder
) -> None:
    await connected.inbound(KEY, {"from": CUSTOMER, "lid": LID, "kind": "text", "text": "1"})
    restarted = make_sim()
    await restarted.connect(spec(tmp_path))
    await restarted.inbound(KEY, {"lid": LID, "kind": "text", "text": "2"})
    assert last_message(events).message.sender == Party(phone=CUSTOMER, lid=DIGITS)


async def test_phone_first_then_both_then_lid_alone(connected: SimEngine, events: Recorder) -> None:
    await connected.inbound(KEY, {"from": CUSTOMER, "kind": "text", "text": "1"})
    assert last_message(events).message.sender == Party(phone=CUSTOMER)
    await connected.inbound(KEY, {"from": CUSTOMER, "lid": LID, "kind": "text", "text": "2"})
    await connected.inbound(KEY, {"lid": LID, "kind": "text", "text": "3"})
    assert last_message(events).message.sender == Party(phone=CUSTOMER, lid=DIGITS)


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        ({"from": "+5511900000077", "lid": LID}, "lid 123456789012345@lid is linked to another"),
        ({"from": CUSTOMER, "lid": "999@lid"}, "+5511987654321 is linked to another LID"),
    ],
)
async def test_a_second_phone_for_a_lid_or_lid_for_a_phone_is_refused(
    connected: SimEngine, events: Recorder, second: dict[str, str], reason: str
) -> None:
    await connected.inbound(KEY, {"from": CUSTOMER, "lid": LID, "kind": "text", "text": "1"})
    events.clear()
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        await connected.inbound(KEY, {**second, "kind": "text", "text": "2"})
    assert events.events == []


# --- sends, receipts and actions to a LID ------------------------------------------


async def test_sends_to_a_lid_only_customer_go_to_her_lid(
    connected: SimEngine, events: Recorder, clock: FakeClock
) -> None:
    theirs = await connected.inbound(KEY, {"lid": LID, "kind": "text", "text": "oi"})
    sent = await connected.send(KEY, LID, Text("olá"), quote=Quote(theirs, sender=LID))
    await connected.react(KEY, LID, target=theirs, target_sender=LID, emoji="👍")
    await connected.edit(KEY, LID, target=sent, text="olá!")
    await connected.revoke(KEY, LID, target=sent)
    entries = [{k: v for k, v in e.items() if k != "timestamp"} for e in connected.outbound(KEY)]
    assert [e["to"] for e in entries] == [LID] * 4
    assert [e["kind"] for e in entries] == ["text", "reaction", "edit", "revoke"]
    assert entries[0]["quote"] == theirs

    events.clear()
    await connected.receipt(KEY, sent, "read")
    assert events.events == [
        ReceiptEvent(
            KEY, chat=Party(lid=DIGITS), ids=(sent,), status=AckStatus.READ, timestamp=clock.now()
        )
    ]


async def test_a_lid_only_customer_reacts_edits_and_revokes(
    connected: SimEngine, events: Recorder
) -> None:
    ours = await connected.send(KEY, LID, Text("olá"))
    theirs = await connected.inbound(KEY, {"lid": LID, "kind": "text", "text": "tpyo"})
    for body in (
        {"kind": "reaction", "target": ours, "emoji": "❤"},
        {"kind": "edit", "target": theirs, "text": "typo"},
        {"kind": "revoke", "target": theirs},
    ):
        await connected.inbound(KEY, {"lid": LID, **body})
        assert last_message(events).message.sender == Party(lid=DIGITS)
    assert [m.message.content.kind for m in events.of(MessageEvent)] == [
        "text",
        "reaction",
        "edit",
        "deletion",
    ]


# --- checks at the edge ------------------------------------------------------------

LID_RULE = "lid must be a LID such as 123456789012345@lid (1 to 24 digits)"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "from is required when there is no lid"),
        ({"from": None, "lid": None}, "from is required when there is no lid"),
        ({"lid": 123456789012345}, "lid must be a string"),
        ({"lid": ""}, "lid must not be empty"),
        ({"lid": "123456789012345"}, LID_RULE),  # no @lid
        ({"lid": "@lid"}, LID_RULE),
        ({"lid": "abc@lid"}, LID_RULE),
        ({"lid": "١٢٣@lid"}, LID_RULE),  # digits, but not ASCII ones
        ({"lid": "123@LID"}, LID_RULE),
        ({"lid": "123@lid "}, LID_RULE),
        ({"lid": "123@s.whatsapp.net"}, LID_RULE),
        ({"lid": "1" * 25 + "@lid"}, LID_RULE),
        ({"lid": "1" * 129}, "lid is longer than 128"),
        ({"lid": ["123@lid"]}, "lid must be a string"),
        ({"from": "12", "lid": LID}, "from: not a phone number"),
    ],
)
async def test_bad_lids_name_the_field(
    connected: SimEngine, events: Recorder, fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        await connected.inbound(KEY, {"kind": "text", "text": "x", **fields})
    assert events.events == []


async def test_the_longest_lid_is_taken(connected: SimEngine, events: Recorder) -> None:
    await connected.inbound(KEY, {"lid": "9" * 24 + "@lid", "kind": "text", "text": "x"})
    assert last_message(events).message.sender == Party(lid="9" * 24)
