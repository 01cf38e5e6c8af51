"""The Matrix frontend against a real Synapse: the bridge (sim engine) on one side,
alice (admin) and bob (attendant) as real Matrix users on the other."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from mautrix.errors import MatrixConnectionError
from mautrix.types import RoomID

from bridge.core.frontend import ChatAddress
from bridge.errors import DeliveryError
from tests.conftest import open_test_database
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

CUSTOMER = "+5511987654321"
GHOST = "@wa_5511987654321:localhost"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def relation(event: dict[str, Any]) -> dict[str, Any]:
    return event["content"].get("m.relates_to") or {}


def from_ghost(event: dict[str, Any], root: str) -> bool:
    """A customer's message in the thread ``root`` (rooms are reused across tests)."""
    return (
        event["sender"] == GHOST
        and event["type"] == "m.room.message"
        and relation(event).get("event_id") == root
    )


async def events_in(
    user: MatrixUser,
    room: str,
    predicate: Any,
    *,
    what: str,
    count: int = 1,
    bridge: MatrixBridge | None = None,
) -> list[dict[str, Any]]:
    """Events of ``room`` matching ``predicate``; the bridge's fake clock is nudged so
    deliveries that failed once are retried meanwhile."""

    async def found() -> list[dict[str, Any]] | None:
        events = [e for e in await user.messages(room) if predicate(e)]
        return events if len(events) >= count else None

    return await until(found, what=what, clock=bridge.clock if bridge else None)


async def ticket(
    bridge: MatrixBridge, bob: MatrixUser, text: str = "Oi, preciso de ajuda"
) -> tuple[str, str]:
    """A customer writes; bob joins the control room. → (room, thread root)."""
    await bridge.customer(text=text)
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    return room, root


async def test_control_and_ops_rooms_follow_the_contract(
    bridge: MatrixBridge, alice: MatrixUser, bob: MatrixUser
) -> None:
    control = await bridge.room("control")
    ops = await bridge.room("ops", session=None)
    assert {control, ops} <= await alice.invited_rooms()
    await alice.join(control)
    await alice.join(ops)
    state = await alice.state(control, "io.zapbridge.room")
    assert state == {"kind": "control", "company": "acme", "session": "sales"}
    assert await alice.state(ops, "io.zapbridge.room") == {"kind": "ops", "company": "acme"}
    assert (await alice.state(control, "m.room.name"))["name"] == "ACME Support · sales"
    assert (await alice.state(ops, "m.room.name"))["name"] == "ACME Support · ops"
    levels = await alice.state(control, "m.room.power_levels")
    assert levels["users"]["@alice:localhost"] == 50
    assert control in await bob.invited_rooms()
    assert ops not in await bob.invited_rooms()  # attendants are not in the ops room


async def test_a_room_found_again_invites_whoever_is_missing(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    control = await bridge.room("control")
    await bob.join(control)
    await bob.request("POST", f"/_matrix/client/v3/rooms/{quote(control)}/leave", {})

    async def membership_of_bob() -> str:
        members = await bridge.frontend.bot.get_members(RoomID(control))
        return next(str(e.content.membership) for e in members if e.state_key == "@bob:localhost")

    assert await membership_of_bob() == "leave"
    company = bridge.config.companies[0]
    again = await bridge.frontend.ensure_control_room(company, company.sessions[0])
    assert again == control  # the same room, not a new one
    assert await membership_of_bob() == "invite"


async def test_customer_text_opens_a_thread_and_bob_answers(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    room, root = await ticket(bridge, bob)
    events = await bob.messages(room)
    card = next(e for e in events if e["event_id"] == root)
    assert card["content"]["msgtype"] == "m.notice"
    assert card["content"]["body"] == f"Ticket #1 · Maria ({CUSTOMER}) · pending"
    [message] = await events_in(bob, room, lambda e: from_ghost(e, root), what="ghost message")
    assert message["content"]["body"] == "Oi, preciso de ajuda"
    assert relation(message)["rel_type"] == "m.thread" and relation(message)["event_id"] == root
    ghost = await bob.state(room, "m.room.member", GHOST)
    assert ghost["displayname"] == f"Maria ({CUSTOMER})"

    await bob.send(
        room,
        {
            "msgtype": "m.text",
            "body": "Posso ajudar?",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": message["event_id"]},
            },
        },
    )
    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Posso ajudar?"))
    assert sent["text"] == "*bob:*\nPosso ajudar?"  # bob has no display name: his localpart
    assert sent.get("quote") is None  # a thread's reply fallback is no quote


async def test_close_command_in_the_thread(bridge: MatrixBridge, bob: MatrixUser) -> None:
    room, root = await ticket(bridge, bob)
    await bob.send(room, _in_thread(root, "!close"))
    await bridge.outbound(lambda m: m.get("text") == "Atendimento encerrado. Obrigado!")
    edits = await events_in(
        bob,
        room,
        lambda e: (
            relation(e).get("rel_type") == "m.replace"
            and relation(e)["event_id"] == root
            and " · closed" in e["content"]["m.new_content"]["body"]
        ),
        what="card edited to closed",
        bridge=bridge,
    )
    assert edits[-1]["content"]["m.new_content"]["body"].startswith("Ticket #1 · Maria")
    replies = await events_in(
        bob,
        room,
        lambda e: (
            e["sender"] == "@whatsappbot:localhost"
            and "#1" in e["content"].get("body", "")
            and relation(e).get("event_id") == root
            and e["content"].get("msgtype") == "m.notice"
        ),
        what="command reply",
        bridge=bridge,
    )
    assert replies


def _in_thread(root: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "msgtype": "m.text",
        "body": body,
        **extra,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        },
    }


async def test_images_both_ways_keep_their_bytes(bridge: MatrixBridge, bob: MatrixUser) -> None:
    room, root = await ticket(bridge, bob)
    media = {"data_b64": base64.b64encode(PNG).decode(), "mimetype": "image/png", "caption": "foto"}
    await bridge.customer("image", media=media)
    [image] = await events_in(
        bob,
        room,
        lambda e: e["content"].get("msgtype") == "m.image" and relation(e).get("event_id") == root,
        what="image",
        bridge=bridge,
    )
    assert image["sender"] == GHOST
    assert image["content"]["body"] == "foto" and image["content"]["filename"]
    assert image["content"]["info"]["mimetype"] == "image/png"
    assert image["content"]["info"]["size"] == len(PNG)
    assert await bob.download(image["content"]["url"]) == PNG

    data = PNG + b"bob"
    url = await bob.upload(data, "image/png", "bob.png")
    content = {
        "msgtype": "m.image",
        "body": "veja",
        "filename": "bob.png",
        "url": url,
        "info": {"mimetype": "image/png", "size": len(data)},
    }
    await bob.send(room, _with_thread(content, root))
    sent = await bridge.outbound(lambda m: m.get("kind") == "image")
    assert sent["media"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert sent["media"]["caption"] == "veja"


def _with_thread(content: dict[str, Any], root: str) -> dict[str, Any]:
    return {
        **content,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        },
    }


async def test_reaction_edit_and_redaction_reach_whatsapp(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    room, root = await ticket(bridge, bob)
    message = (await events_in(bob, room, lambda e: from_ghost(e, root), what="ghost"))[0]
    mine = await bob.send(room, _in_thread(root, "Vou verificar"))
    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Vou verificar"))
    wa_customer = (
        await bridge.bridge.repos.messages.find_by_ref(
            "matrix", room_id=room, event_id=message["event_id"]
        )
    ).wa_id

    await bob.send(
        room,
        {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": message["event_id"],
                "key": "👍",
            }
        },
        event_type="m.reaction",
    )
    reaction = await bridge.outbound(lambda m: m.get("kind") == "reaction")
    assert (reaction["target"], reaction["emoji"]) == (wa_customer, "👍")

    await bob.send(
        room,
        {
            "msgtype": "m.text",
            "body": "* Vou verificar já",
            "m.new_content": {"msgtype": "m.text", "body": "Vou verificar já"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": mine},
        },
    )
    edit = await bridge.outbound(lambda m: m.get("kind") == "edit")
    assert (edit["target"], edit["text"]) == (sent["id"], "Vou verificar já")

    await bob.redact(room, mine)
    revoke = await bridge.outbound(lambda m: m.get("kind") == "revoke")
    assert revoke["target"] == sent["id"]


async def test_login_posts_a_qr_image_in_the_control_room(
    synapse: Homeserver, tmp_path: Path, alice: MatrixUser
) -> None:
    async with open_test_database("sqlite", tmp_path) as db:
        from bridge.db import migrate

        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db, auto_pair=False)
        await harness.start()
        try:
            room = await harness.room("control", session="acme/support")
            await alice.join(room)
            await alice.send(room, {"msgtype": "m.text", "body": "!login"})
            [image] = await events_in(
                alice, room, lambda e: e["content"].get("msgtype") == "m.image", what="QR image"
            )
            assert image["sender"] == "@whatsappbot:localhost"
            assert (await alice.download(image["content"]["url"])).startswith(b"\x89PNG")
        finally:
            await harness.stop()


async def test_wrong_hs_token_is_refused_and_nothing_processed(
    bridge: MatrixBridge, synapse: Homeserver
) -> None:
    url = f"http://127.0.0.1:{synapse.as_port}/_matrix/app/v1/transactions/evil1"
    body = {"events": [_fake_event("!x:localhost", "$evil", "!close")]}
    async with aiohttp.ClientSession() as http:
        async with http.put(url, json=body) as resp:
            assert resp.status == 401
        async with http.put(url, json=body, headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 403
    assert not await bridge.bridge.repos.events.seen_before(
        "matrix", "!x:localhost:$evil", now=bridge.clock.now()
    )


def _fake_event(room: str, event_id: str, body: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": room,
        "event_id": event_id,
        "sender": "@bob:localhost",
        "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
    }


async def test_a_transaction_id_reused_for_new_events_is_processed(
    bridge: MatrixBridge, synapse: Homeserver, bob: MatrixUser
) -> None:
    """Synapse on SQLite numbers transactions from 1 again after a restart."""
    room, root = await ticket(bridge, bob)
    url = f"http://127.0.0.1:{synapse.as_port}/_matrix/app/v1/transactions/reused-txn"
    headers = {"Authorization": f"Bearer {synapse.hs_token}"}
    async with aiohttp.ClientSession() as http:
        for n in (1, 2):
            event = _fake_event(room, f"$reused-{n}", f"antes e depois {n}")
            event["content"] = _in_thread(root, f"antes e depois {n}")
            async with http.put(url, json={"events": [event]}, headers=headers) as resp:
                assert resp.status == 200
    await bridge.outbound(lambda m: m.get("text", "").endswith("antes e depois 2"))
    texts = [m.get("text", "") for m in bridge.sim.outbound("acme/sales")]
    assert [t.rpartition(" ")[2] for t in texts if "antes e depois" in t] == ["1", "2"]


async def test_a_duplicate_transaction_is_processed_once(
    bridge: MatrixBridge, synapse: Homeserver, bob: MatrixUser
) -> None:
    room, root = await ticket(bridge, bob)
    event = _fake_event(room, "$dup-1", "uma vez")
    event["content"] = _in_thread(root, "uma vez")
    url = f"http://127.0.0.1:{synapse.as_port}/_matrix/app/v1/transactions/dup-txn"
    headers = {"Authorization": f"Bearer {synapse.hs_token}"}
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.put(url, json={"events": [event]}, headers=headers) as resp:
                assert resp.status == 200
    await bridge.outbound(lambda m: m.get("text", "").endswith("uma vez"))
    texts = [m.get("text", "") for m in bridge.sim.outbound("acme/sales")]
    assert sum(t.endswith("uma vez") for t in texts) == 1


async def test_a_send_whose_answer_was_lost_is_looked_for_before_it_is_sent_again(
    bridge: MatrixBridge, bob: MatrixUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event reached Synapse but the answer did not reach the bridge (Synapse
    restarting, say). Synapse remembers appservice txn ids only in memory, so the retry
    must find the event instead of sending it again."""
    room, root = await ticket(bridge, bob)
    api = bridge.frontend.bot.api
    real_request = api.request
    sends: list[str] = []

    async def answer_lost_once(method: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        result = await real_request(method, path, *args, **kwargs)
        if "/send/" in str(path):
            sends.append(str(path))
            if len(sends) == 1:
                raise MatrixConnectionError("connection reset while reading the answer")
        return result

    monkeypatch.setattr(api, "request", answer_lost_once)
    place = ChatAddress(room, root)
    with pytest.raises(DeliveryError) as lost:
        await bridge.frontend.notice(place, "aviso único", txn_id="zb-notice-lost")
    assert lost.value.ambiguous
    event_id = await bridge.frontend.notice(place, "aviso único", txn_id="zb-notice-lost")
    assert len(sends) == 1  # found, not sent again
    shown = [e for e in await bob.messages(room) if e["content"].get("body") == "aviso único"]
    assert [e["event_id"] for e in shown] == [event_id]
    assert shown[0]["content"]["io.zapbridge.txn"] == "zb-notice-lost"
