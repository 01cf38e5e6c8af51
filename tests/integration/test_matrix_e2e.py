"""End-to-end scenarios of the Matrix frontend against a real Synapse: every kind both
ways, replies, customer actions and receipts, the ticket lifecycle, ``!login``, ops
alerts, a restart, size limits and idempotent retries.

The bridge runs the sim engine on a fake clock; alice (admin) and bob (attendant)
are real Matrix users. Waits poll a condition with a timeout and nudge the clock so
retries come due."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.core.frontend import ChatAddress, TicketCard
from bridge.db import migrate
from bridge.matrix.local_synapse import free_port
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
from tests.harness.vcards import ANDROID_21, IOS

__all__ = ["alice", "bob", "bridge", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

SESSION = "acme/sales"
CUSTOMER = "+5511987654321"
GHOST = "@wa_5511987654321:localhost"
BOT = "@whatsappbot:localhost"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:João Silva\nTEL;type=CELL:+5511912345678\nEND:VCARD\n"

Event = dict[str, Any]
Match = Callable[[Event], bool]


# --- fixtures and helpers ---------------------------------------------------------


def relation(event: Event) -> Event:
    return event.get("content", {}).get("m.relates_to") or {}


def in_thread(root: str) -> Match:
    return lambda e: relation(e).get("rel_type") == "m.thread" and relation(e)["event_id"] == root


def card_edit(root: str, words: str) -> Match:
    def match(e: Event) -> bool:
        new = e["content"].get("m.new_content") or {}
        return (
            relation(e).get("rel_type") == "m.replace"
            and relation(e)["event_id"] == root
            and words in new.get("body", "")
        )

    return match


async def wait_events(
    user: MatrixUser,
    room: str,
    match: Match,
    *,
    what: str,
    bridge: MatrixBridge,
    count: int = 1,
    limit: int = 100,
) -> list[Event]:
    """The events of ``room`` matching ``match``, once there are ``count`` of them."""

    async def found() -> list[Event] | None:
        events = [e for e in await user.messages(room, limit) if match(e)]
        return events if len(events) >= count else None

    return await until(found, what=what, clock=bridge.clock)


def threaded(content: Event, root: str, *, quote: str | None = None) -> Event:
    """``content`` in the thread ``root``; ``quote`` makes it a real reply."""
    return {
        **content,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": quote is None,
            "m.in_reply_to": {"event_id": quote or root},
        },
    }


def text(body: str, **extra: Any) -> Event:
    return {"msgtype": "m.text", "body": body, **extra}


def media(data: bytes, mimetype: str, filename: str | None = None, **extra: Any) -> Event:
    fields = {"data_b64": base64.b64encode(data).decode(), "mimetype": mimetype, **extra}
    return {"media": fields | ({"filename": filename} if filename else {})}


async def open_ticket(bridge: MatrixBridge, bob: MatrixUser) -> tuple[str, str, str]:
    """Maria writes; bob joins the control room. → (room, thread root, her wa id)."""
    wa_id = await bridge.customer(text="Oi, preciso de ajuda")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    return room, root, wa_id


async def event_of(bridge: MatrixBridge, wa_id: str) -> str:
    """The Matrix event id of a WhatsApp message, once it is posted."""
    repos = bridge.bridge.repos
    session_id = bridge.bridge.session_ids[SESSION]

    async def ref() -> str | None:
        message = await repos.messages.find_by_wa_id(session_id, wa_id)
        found = await repos.message_refs.get(message.id, "matrix") if message else None
        return found.event_id if found else None

    return await until(ref, what=f"the event of {wa_id}", clock=bridge.clock)


# --- 1. customer → thread, every kind ----------------------------------------------


async def test_every_customer_kind_reaches_the_thread_with_its_bytes(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    room, root, _ = await open_ticket(bridge, bob)
    files = {
        "image": (PNG, "image/png", None),
        "video": (b"\x00\x00\x00\x18ftypmp42video", "video/mp4", None),
        "audio": (b"ID3audio-bytes", "audio/mpeg", "song.mp3"),
        "voice": (b"OggSvoice-bytes", "audio/ogg; codecs=opus", None),
        "document": (b"%PDF-1.4 contract", "application/pdf", "contrato.pdf"),
        "sticker": (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp", None),
    }
    await bridge.customer(text="*negrito* e _itálico_")
    for kind, (data, mimetype, filename) in files.items():
        await bridge.customer(kind, **media(data, mimetype, filename))
    await bridge.customer("location", location={"lat": -23.5, "lon": -46.6, "name": "Loja"})
    await bridge.customer("contact", contact={"display_name": "João Silva", "vcard": VCARD})
    await bridge.customer("unsupported", type="poll")

    events = await wait_events(
        bob,
        room,
        lambda e: in_thread(root)(e) and e["sender"] == GHOST,
        what="all kinds",
        bridge=bridge,
        count=12,
    )
    by_type = {e["content"].get("msgtype") or e["type"]: e for e in events}
    formatted = next(e for e in events if "negrito" in e["content"].get("body", ""))
    assert formatted["content"]["format"] == "org.matrix.custom.html"
    assert "<strong>negrito</strong>" in formatted["content"]["formatted_body"]
    assert "<em>itálico</em>" in formatted["content"]["formatted_body"]

    pdf = next(e for e in events if e["content"].get("body") == "contrato.pdf")
    by_type["m.file"] = pdf
    for msgtype, kind in (("m.image", "image"), ("m.video", "video"), ("m.file", "document")):
        content = by_type[msgtype]["content"]
        assert await bob.download(content["url"]) == files[kind][0], kind
        assert content["info"]["mimetype"] == files[kind][1]
    audios = [e["content"] for e in events if e["content"].get("msgtype") == "m.audio"]
    voice = next(c for c in audios if "org.matrix.msc3245.voice" in c)
    song = next(c for c in audios if "org.matrix.msc3245.voice" not in c)
    assert await bob.download(voice["url"]) == files["voice"][0]
    assert await bob.download(song["url"]) == files["audio"][0]
    assert song["body"] == "song.mp3"
    sticker = by_type["m.sticker"]["content"]
    assert await bob.download(sticker["url"]) == files["sticker"][0]

    location = by_type["m.location"]["content"]
    assert location["geo_uri"] == "geo:-23.5,-46.6" and "Loja" in location["body"]
    card = next(e for e in events if e["content"].get("body", "").startswith("Contact:"))
    assert "João Silva" in card["content"]["body"] and "+5511912345678" in card["content"]["body"]
    vcf = next(e for e in events if e["content"].get("body", "").endswith(".vcf"))
    assert vcf["content"]["msgtype"] == "m.file"
    assert (await bob.download(vcf["content"]["url"])).decode() == VCARD
    notice = by_type["m.notice"]["content"]
    assert "poll" in notice["body"]


# --- 2. attendant → customer, every kind ----------------------------------------------


async def test_every_attendant_kind_reaches_the_customer(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    room, root, _ = await open_ticket(bridge, bob)
    html = "<b>negrito</b> e <em>itálico</em> e <del>riscado</del>"
    await bob.send(
        room,
        threaded(
            text(
                "negrito e itálico e riscado", format="org.matrix.custom.html", formatted_body=html
            ),
            root,
        ),
    )
    sent = await bridge.outbound(lambda m: "negrito" in m.get("text", ""))
    assert sent["text"] == "*bob:*\n*negrito* e _itálico_ e ~riscado~"

    uploads = {
        "image": (PNG, "image/png", "m.image", {}),
        "video": (b"\x00\x00\x00\x18ftypmp42bob", "video/mp4", "m.video", {}),
        "audio": (b"ID3bob-audio", "audio/mpeg", "m.audio", {}),
        "voice": (
            b"OggSbob-voice",
            "audio/ogg",
            "m.audio",
            {"org.matrix.msc3245.voice": {}, "org.matrix.msc1767.audio": {"duration": 2000}},
        ),
        "document": (b"%PDF-1.4 bob", "application/pdf", "m.file", {}),
    }
    for kind, (data, mimetype, msgtype, extra) in uploads.items():
        name = f"bob-{kind}.bin"
        url = await bob.upload(data, mimetype, name)
        info = {"mimetype": mimetype, "size": len(data)}
        content = {"msgtype": msgtype, "body": name, "url": url, "info": info, **extra}
        await bob.send(room, threaded(content, root))
    webp = b"RIFF\x00\x00\x00\x00WEBPVP8 bob"
    url = await bob.upload(webp, "image/webp", "sticker.webp")
    sticker = {"body": "sticker", "url": url, "info": {"mimetype": "image/webp"}}
    await bob.send(room, threaded(sticker, root), event_type="m.sticker")
    await bob.send(
        room,
        threaded({"msgtype": "m.location", "body": "Loja", "geo_uri": "geo:-23.5,-46.6"}, root),
    )

    for kind, (data, _, _, _) in uploads.items():
        out = await bridge.outbound(lambda m, k=kind: m.get("kind") == k)
        assert out["media"]["sha256"] == hashlib.sha256(data).hexdigest(), kind
        assert out["to"] == CUSTOMER
    assert (await bridge.outbound(lambda m: m.get("kind") == "document"))["media"][
        "filename"
    ] == "bob-document.bin"
    out_sticker = await bridge.outbound(lambda m: m.get("kind") == "sticker")
    assert out_sticker["media"]["sha256"] == hashlib.sha256(webp).hexdigest()
    location = await bridge.outbound(lambda m: m.get("kind") == "location")
    assert (location["location"]["lat"], location["location"]["lon"]) == (-23.5, -46.6)


# --- 3. replies both ways -------------------------------------------------------------


async def test_replies_both_ways(bridge: MatrixBridge, bob: MatrixUser) -> None:
    room, root, first = await open_ticket(bridge, bob)
    first_event = await event_of(bridge, first)
    await bridge.customer(text="Sobre a mensagem acima", quote=first)
    [reply] = await wait_events(
        bob,
        room,
        lambda e: e["content"].get("body") == "Sobre a mensagem acima",
        what="customer reply",
        bridge=bridge,
    )
    assert relation(reply)["rel_type"] == "m.thread" and relation(reply)["event_id"] == root
    assert relation(reply)["is_falling_back"] is False
    assert relation(reply)["m.in_reply_to"]["event_id"] == first_event

    await bob.send(room, threaded(text("Respondendo a você"), root, quote=first_event))
    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Respondendo a você"))
    assert sent["quote"] == first


# --- 4. customer reactions, edits, revokes, read receipts ---------------------------------


async def test_customer_actions_and_read_receipts_show_on_matrix(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    room, root, first = await open_ticket(bridge, bob)
    first_event = await event_of(bridge, first)
    mine = await bob.send(room, threaded(text("Um momento"), root))
    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Um momento"))

    await bridge.customer("reaction", target=sent["id"], emoji="🙏")
    [reaction] = await wait_events(
        bob,
        room,
        lambda e: e["type"] == "m.reaction" and e["sender"] == GHOST,
        what="ghost reaction",
        bridge=bridge,
    )
    assert relation(reaction) == {"rel_type": "m.annotation", "event_id": mine, "key": "🙏"}

    await bridge.customer("edit", target=first, text="Oi, preciso de ajuda urgente")
    [edit] = await wait_events(
        bob,
        room,
        lambda e: relation(e).get("rel_type") == "m.replace" and e["sender"] == GHOST,
        what="ghost edit",
        bridge=bridge,
    )
    assert relation(edit)["event_id"] == first_event
    assert edit["content"]["m.new_content"]["body"] == "Oi, preciso de ajuda urgente"

    await bridge.sim.receipt(SESSION, sent["id"], "read")

    async def ghost_read() -> bool:
        data = await bob.request("GET", "/_matrix/client/v3/sync?timeout=0")
        ephemeral = data["rooms"]["join"].get(room, {}).get("ephemeral", {}).get("events", [])
        receipts = [e["content"] for e in ephemeral if e["type"] == "m.receipt"]
        return any(GHOST in r.get(mine, {}).get("m.read", {}) for r in receipts)

    await until(ghost_read, what="the ghost's read receipt", clock=bridge.clock)

    await bridge.customer("revoke", target=first)
    [redaction] = await wait_events(
        bob,
        room,
        lambda e: e["type"] == "m.room.redaction" and e["sender"] == GHOST,
        what="ghost redaction",
        bridge=bridge,
    )
    assert redaction["redacts"] == first_event or redaction["content"]["redacts"] == first_event
    original = await bob.request("GET", f"/_matrix/client/v3/rooms/{room}/event/{first_event}")
    assert original["content"] == {}


# --- 5. lifecycle and auto replies ----------------------------------------------------


async def test_ticket_lifecycle_in_a_thread(bridge: MatrixBridge, bob: MatrixUser) -> None:
    room, root, _ = await open_ticket(bridge, bob)
    await bridge.outbound(lambda m: m.get("text") == "Olá! Um atendente já vai falar com você.")
    await wait_events(
        bob,
        room,
        lambda e: in_thread(root)(e) and e["sender"] == BOT and "Olá!" in e["content"]["body"],
        what="greeting in the thread",
        bridge=bridge,
    )

    await bob.send(room, threaded(text("!accept"), root))
    await wait_events(bob, room, card_edit(root, "· open · "), what="accepted", bridge=bridge)
    await bob.send(room, threaded(text("Resolvido?"), root))  # answered: a reopen is "open"
    await bridge.outbound(lambda m: m.get("text", "").endswith("Resolvido?"))

    await bob.send(room, threaded(text("!close"), root))
    await bridge.outbound(lambda m: m.get("text") == "Atendimento encerrado. Obrigado!")
    await wait_events(bob, room, card_edit(root, "· closed"), what="closed", bridge=bridge)

    await bridge.customer(text="Esqueci uma coisa")
    await wait_events(
        bob,
        room,
        lambda e: in_thread(root)(e) and e["content"].get("body") == "Esqueci uma coisa",
        what="the message in the same thread",
        bridge=bridge,
    )
    edits = await wait_events(
        bob, room, card_edit(root, "· open"), what="reopened", bridge=bridge, count=2
    )
    assert "closed" not in edits[-1]["content"]["m.new_content"]["body"]
    assert await bridge.bridge.repos.threads.get(2, "matrix") is None  # no second ticket

    await bob.send(room, text("!tickets"))
    [listing] = await wait_events(
        bob,
        room,
        lambda e: (
            e["sender"] == BOT
            and not in_thread(root)(e)
            and re.search(r"^#1 \w+ Maria", e["content"].get("body", ""), re.MULTILINE) is not None
        ),
        what="!tickets answer",
        bridge=bridge,
    )
    assert f"#1 open Maria ({CUSTOMER})" in listing["content"]["body"].splitlines()


def is_qr(event: Event) -> bool:
    return event["sender"] == BOT and event["content"].get("msgtype") == "m.image"


# --- 6. !login → QR → rotation → scan → CONNECTED ---------------------------------------


async def test_login_qr_rotates_and_a_scan_connects(
    synapse: Homeserver, tmp_path: Path, alice: MatrixUser
) -> None:
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db, auto_pair=False)
        await harness.start()
        try:
            room = await harness.room("control")
            ops = await harness.room("ops", session=None)
            await alice.join(room)
            await alice.join(ops)
            await alice.send(room, text("!login"))
            [first] = await wait_events(alice, room, is_qr, what="QR", bridge=harness)
            assert (await alice.download(first["content"]["url"])).startswith(b"\x89PNG")

            await harness.clock.advance(harness.config.whatsapp.sim.qr_first_seconds + 1)
            # the old image may be redacted (no longer a QR) before the room is read
            rotated, *_ = await wait_events(
                alice,
                room,
                lambda e: is_qr(e) and e["event_id"] != first["event_id"],
                what="rotated QR",
                bridge=harness,
            )
            assert (await alice.download(rotated["content"]["url"])).startswith(b"\x89PNG")
            await wait_events(
                alice,
                room,
                lambda e: e["type"] == "m.room.redaction" and e.get("redacts") == first["event_id"],
                what="the old QR redacted",
                bridge=harness,
            )

            await harness.sim.scan(SESSION, "+5511900000001")
            await until(
                lambda: str(harness.bridge.sessions.statuses()[SESSION]) == "CONNECTED",
                what="CONNECTED",
                clock=harness.clock,
            )
            await wait_events(
                alice,
                ops,
                lambda e: e["sender"] == BOT and "CONNECTED" in e["content"].get("body", ""),
                what="ops CONNECTED",
                bridge=harness,
            )
        finally:
            await harness.stop()


# --- 7. disconnect → grace → alert → resolved ---------------------------------------------


async def test_a_disconnect_is_alerted_after_the_grace_and_resolved(
    bridge: MatrixBridge, alice: MatrixUser
) -> None:
    ops = await bridge.room("ops", session=None)
    control = await bridge.room("control")
    await alice.join(ops)
    await bridge.sim.fault(SESSION, "disconnect", 100)
    await until(
        lambda: str(bridge.bridge.sessions.statuses()[SESSION]) != "CONNECTED",
        what="disconnected",
        clock=None,
    )
    assert not [
        e for e in await alice.messages(ops) if "DISCONNECTED" in e["content"].get("body", "")
    ]  # not before the grace period
    await bridge.clock.advance(bridge.config.ops.alert_grace_seconds + 1)
    await wait_events(
        alice,
        ops,
        lambda e: e["sender"] == BOT and "DISCONNECTED" in e["content"].get("body", ""),
        what="DISCONNECTED alert",
        bridge=bridge,
    )
    await alice.join(control)
    topic = (await alice.state(control, "m.room.topic")).get("topic", "")
    assert "DISCONNECTED" in topic or "OPENING" in topic, topic

    async def resolved_notice() -> Event | None:
        await bridge.clock.advance(20)  # past the fault's 100 s and the reconnect backoff
        events = await alice.messages(ops)
        return next((e for e in events if "resolved after" in e["content"].get("body", "")), None)

    resolved = await until(resolved_notice, what="resolved")
    assert "CONNECTED" in resolved["content"]["body"]

    async def topic_says_connected() -> bool:
        topic = (await alice.state(control, "m.room.topic")).get("topic", "")
        return "CONNECTED" in topic and "DISCONNECTED" not in topic

    await until(topic_says_connected, what="the topic", clock=bridge.clock)


# --- 8. restart -------------------------------------------------------------------------


async def test_a_restart_keeps_rooms_threads_and_tickets(
    synapse: Homeserver, tmp_path: Path, bob: MatrixUser
) -> None:
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        first = MatrixBridge(synapse, tmp_path / "bridge", db)
        await first.start()
        stopped = False
        try:
            room, root, _ = await open_ticket(first, bob)
            await wait_events(
                bob,
                room,
                lambda e: in_thread(root)(e) and e["sender"] == GHOST,
                what="first message",
                bridge=first,
            )
            await first.stop(leave_rooms=False)
            stopped = True
            second = MatrixBridge(synapse, tmp_path / "bridge", db)
            await second.start()
            stopped = False
            first = second
            await second.customer(text="Voltei depois do restart")
            [again] = await wait_events(
                bob,
                room,
                lambda e: e["content"].get("body") == "Voltei depois do restart",
                what="message after restart",
                bridge=second,
            )
            assert in_thread(root)(again) and again["sender"] == GHOST
            assert await second.room("control") == room
            assert await second.thread_root() == root
            assert await second.bridge.repos.threads.get(2, "matrix") is None
            assert room not in await bob.invited_rooms()  # no new room to be invited to
        finally:
            if not stopped:
                await first.stop()


# --- 9. too big for media.max_size_mb ----------------------------------------------------


async def test_a_file_over_the_limit_gets_a_notice_in_the_thread(
    synapse: Homeserver, tmp_path: Path, bob: MatrixUser
) -> None:
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db, max_size_mb=1)
        await harness.start()
        try:
            room, root, _ = await open_ticket(harness, bob)
            big = b"\x00" * (1024 * 1024 + 10)
            await harness.customer("document", **media(big, "application/zip", "grande.zip"))
            [notice] = await wait_events(
                bob,
                room,
                lambda e: (
                    in_thread(root)(e)
                    and e["sender"] == BOT
                    and "not delivered" in e["content"].get("body", "")
                ),
                what="not-delivered notice",
                bridge=harness,
            )
            assert "max_size_mb" in notice["content"]["body"]
        finally:
            await harness.stop()


# --- 10. retries of update_card and post_image -----------------------------------------------


async def test_card_updates_and_images_are_idempotent(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    room, root, _ = await open_ticket(bridge, bob)
    card = TicketCard(1, SESSION, "Maria", CUSTOMER, False, "open", "Retry Tester")
    for _ in range(3):  # one delivery retried after its answer was lost
        await bridge.frontend.update_card(ChatAddress(room, root), card)
    edits = await wait_events(
        bob, room, card_edit(root, "Retry Tester"), what="card edit", bridge=bridge
    )
    assert len(edits) == 1

    place = ChatAddress(room)
    kwargs = {"data": PNG, "filename": "login-acme-sales.png", "caption": "scan me"}
    first = await bridge.frontend.post_image(place, replaces=None, **kwargs)
    again = await bridge.frontend.post_image(place, replaces=None, **kwargs)
    assert again == first
    rotated = await bridge.frontend.post_image(
        place, replaces=first, **{**kwargs, "data": PNG + b"rotated"}
    )
    assert rotated != first
    images = [e for e in await bob.messages(room) if e["content"].get("body") == "scan me"]
    assert [e["event_id"] for e in images] == [rotated]  # the first one is redacted


# --- contact avatars ------------------------------------------------------------------


async def test_the_customer_avatar_becomes_the_ghost_avatar(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    hits: list[str] = []

    async def picture(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/ana.png", picture)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ghost = "@wa_5511955554444:localhost"
    try:
        url = f"http://127.0.0.1:{port}/ana.png"
        sender = {"from": "+5511955554444", "push_name": "Ana"}
        await bridge.customer(text="Oi, sou a Ana", avatar_url=url, **sender)
        await bridge.customer(text="de novo", avatar_url=url, **sender)

        async def avatar() -> str | None:
            try:
                profile = await bob.request("GET", f"/_matrix/client/v3/profile/{ghost}")
            except AssertionError:  # 404 until the ghost is registered
                return None
            return profile.get("avatar_url")

        mxc = await until(avatar, what="the ghost's avatar", clock=bridge.clock)
        assert mxc.startswith("mxc://")
        assert await bob.download(mxc) == PNG
        room = await bridge.room("control")
        await bob.join(room)
        await wait_events(
            bob,
            room,
            lambda e: e["sender"] == ghost and e["content"].get("body") == "de novo",
            what="Ana's second message",
            bridge=bridge,
        )
        assert hits == ["/ana.png"], "downloaded once while the URL stays the same"
    finally:
        await runner.cleanup()


# --- shared contacts (vCards) both ways ------------------------------------------------


async def test_a_phone_shaped_contact_shows_every_number_with_its_label(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    """As an iPhone's WhatsApp shares it: grouped ``item1.TEL;waid=…`` lines with
    ``X-ABLabel`` labels, CRLF (issue 12: the thread said "no phone number")."""
    room, root, _ = await open_ticket(bridge, bob)
    await bridge.customer("contact", contact={"display_name": "Maria Souza", "vcard": IOS})
    [card] = await wait_events(
        bob,
        room,
        lambda e: in_thread(root)(e) and e["content"].get("body", "").startswith("Contact:"),
        what="the contact's text",
        bridge=bridge,
    )
    assert card["sender"] == GHOST
    assert card["content"]["body"] == (
        "Contact: Maria Souza (Padaria Pão Quente) — Celular: +55 11 98765-4321,"
        " Trabalho: +55 11 3333-4444, Home: +55 11 2222-1111, maria@padaria.com.br"
    )
    [vcf] = await wait_events(
        bob,
        room,
        lambda e: in_thread(root)(e) and e["content"].get("msgtype") == "m.file",
        what="the .vcf",
        bridge=bridge,
    )
    assert vcf["content"]["body"] == "Maria Souza.vcf"
    assert vcf["content"]["info"]["mimetype"] == "text/vcard"
    assert await bob.download(vcf["content"]["url"]) == IOS.encode()


async def test_an_attendants_vcf_reaches_the_customer_as_a_contact_card(
    bridge: MatrixBridge, bob: MatrixUser
) -> None:
    """A .vcf bob attaches becomes a WhatsApp contact card (the vCard rewritten as
    phones write it); one that does not parse still goes as a document."""
    room, root, _ = await open_ticket(bridge, bob)
    for data, mimetype, name in (
        (ANDROID_21.encode(), "text/x-vcard", "joao.vcf"),
        (b"BEGIN:VCARD\nFN:Broken", "text/vcard", "broken.vcf"),
    ):
        url = await bob.upload(data, mimetype, name)
        info = {"mimetype": mimetype, "size": len(data)}
        await bob.send(
            room, threaded({"msgtype": "m.file", "body": name, "url": url, "info": info}, root)
        )

    contact = await bridge.outbound(lambda m: m.get("kind") == "contact")
    assert contact["to"] == CUSTOMER
    assert contact["contact"]["display_name"] == "João Conceição da Silva"
    assert "item1.TEL:+5511912345678\r\nitem1.X-ABLabel:Mobile\r\n" in contact["contact"]["vcard"]
    document = await bridge.outbound(lambda m: m.get("kind") == "document")
    assert document["media"]["filename"] == "broken.vcf"
    assert document["media"]["sha256"] == hashlib.sha256(b"BEGIN:VCARD\nFN:Broken").hexdigest()
    kinds = [
        m["kind"] for m in bridge.sim.outbound(SESSION) if m["kind"] in ("contact", "document")
    ]
    assert kinds == ["contact", "document"]
