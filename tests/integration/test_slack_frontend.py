"""The Slack frontend end to end: the real core and sim engine on one side, the strict
SlackFake (Web API + Socket Mode, or signed HTTP events) on the other."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.clock import FakeClock
from bridge.config import SlackConfig
from bridge.core.frontend import ChatAddress
from bridge.db.database import Database
from bridge.slack.frontend import SlackFrontend
from tests.fakes.slack import SlackFake
from tests.harness.slack import ADMIN, BOB, OPS, SALES, STRANGER, SlackHarness, until
from tests.harness.vcards import IOS

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PACED = {"chat.postMessage", "chat.update", "conversations.setTopic", "reactions.add"}
VCARD = "BEGIN:VCARD\nFN:Ana\nTEL:+5511911112222\nEND:VCARD"


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


async def attendant_says(
    h: SlackHarness, text: str, *, user: str = BOB, thread: str | None = None, **kw: Any
) -> dict[str, Any]:
    root = thread if thread is not None else h.thread_root()
    event = h.fake.user_message(SALES, user, text, thread_ts=root, **kw)
    await h.event(event)
    return event


# --- the core path ------------------------------------------------------------------


async def test_customer_text_opens_a_thread_with_a_card(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi, *preciso* de ajuda")
    root = bridge.thread_root()
    card = next(m for m in bridge.fake.messages(SALES) if m["ts"] == root)
    blocks = json.dumps(card["blocks"], ensure_ascii=False)
    for word in ("Ticket #1", "Maria", "+5511987654321", "pending"):
        assert word in card["text"] and word in blocks
    actions = [e.get("action_id") for b in card["blocks"] for e in b.get("elements", [])]
    assert {"ticket_accept", "ticket_close"} <= set(actions)
    post = bridge.customer_posts()[0]
    assert post["text"] == "Oi, *preciso* de ajuda"
    assert post["thread_ts"] == root
    # the greeting is shown in the thread as the bot
    assert any("Um atendente" in m["text"] and "username" not in m for m in bridge.replies())


async def test_customer_posts_carry_the_avatar_once_known(bridge: SlackHarness) -> None:
    await bridge.customer(text="sem foto")
    await bridge.customer(text="com foto", avatar_url="https://pics.example/maria.png")
    posts = [
        c.args
        for c in bridge.fake.calls_of("chat.postMessage")
        if c.args.get("username") == "Maria"
    ]
    assert [p["text"] for p in posts] == ["sem foto", "com foto"]
    assert "icon_url" not in posts[0]
    assert posts[1]["icon_url"] == "https://pics.example/maria.png"


async def test_attendant_reply_reaches_the_customer_signed(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    await attendant_says(bridge, "Posso *ajudar*?")
    sent = bridge.outbound()[-1]
    assert sent["text"] == "*Bob Silva:*\nPosso *ajudar*?"  # no display name → real name
    card = next(m for m in bridge.fake.messages(SALES) if m["ts"] == bridge.thread_root())
    assert "open" in card["text"]  # the card was updated with chat.update
    assert bridge.fake.calls_of("chat.update")


async def test_mentions_become_names(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    await attendant_says(bridge, f"<@{ADMIN}> vai ajudar")
    assert bridge.outbound()[-1]["text"].endswith("@Alice vai ajudar")


async def test_strangers_are_refused_ephemerally(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    before = len(bridge.outbound())
    await attendant_says(bridge, "sou intruso", user=STRANGER)
    assert len(bridge.outbound()) == before
    ephemeral = bridge.fake.calls_of("chat.postEphemeral")[-1].args
    assert ephemeral["user"] == STRANGER and "not an attendant" in ephemeral["text"]


async def test_bot_and_unthreaded_messages_are_ignored(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    before = len(bridge.outbound())
    own = {**bridge.fake.user_message(SALES, BOB, "eco", thread_ts=bridge.thread_root())}
    own.update(user=bridge.fake.bot_user_id, bot_id=bridge.fake.bot_id, subtype="bot_message")
    await bridge.event(own)
    await bridge.event(bridge.fake.user_message(SALES, BOB, "conversa solta"))
    assert len(bridge.outbound()) == before


async def test_close_command_in_the_thread(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    await attendant_says(bridge, "!close")
    assert bridge.outbound()[-1]["text"] == "Atendimento encerrado. Obrigado!"
    card = next(m for m in bridge.fake.messages(SALES) if m["ts"] == bridge.thread_root())
    assert "closed" in card["text"]
    replies = [m["text"] for m in bridge.replies()]
    assert any("#1" in text for text in replies)  # the command's reply, in the thread


async def test_a_command_with_a_file_runs_and_the_file_stays(bridge: SlackHarness) -> None:
    """``!close`` typed as a file's comment closes the ticket; the file is neither
    downloaded nor sent with "!close" as its caption."""
    await bridge.customer(text="Oi")
    file = bridge.fake.host_file("recibo.png", PNG, "image/png")
    await attendant_says(bridge, "!close", files=[file])
    assert bridge.fake.downloads == []
    assert [m["kind"] for m in bridge.outbound()][-1] == "text"
    assert bridge.outbound()[-1]["text"] == "Atendimento encerrado. Obrigado!"
    card = next(m for m in bridge.fake.messages(SALES) if m["ts"] == bridge.thread_root())
    assert "closed" in card["text"]


@pytest.mark.parametrize(
    ("action", "status"), [("ticket_accept", "open"), ("ticket_close", "closed")]
)
async def test_card_buttons(bridge: SlackHarness, action: str, status: str) -> None:
    await bridge.customer(text="Oi")
    root = bridge.thread_root()
    envelope = await bridge.fake.send_block_action(
        action, user_id=BOB, channel_id=SALES, message_ts=root, value="1"
    )
    await bridge.fake.wait_ack(envelope)
    await bridge.settle()
    card = next(m for m in bridge.fake.messages(SALES) if m["ts"] == root)
    assert status in card["text"]
    assert json.dumps(card["blocks"]).count(status) >= 1


async def test_slash_command_lists_tickets(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    envelope = await bridge.fake.send_slash_command(
        "/whatsapp", "tickets", user_id=BOB, channel_id=SALES
    )
    ack = await bridge.fake.wait_ack(envelope)
    assert "#1 pending Maria (+5511987654321)" in ack["payload"]["text"]


async def test_bang_command_at_channel_level(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi")
    await bridge.event(bridge.fake.user_message(SALES, BOB, "!tickets"))
    top_level = [m for m in bridge.fake.messages(SALES) if "thread_ts" not in m]
    assert any("#1 pending Maria" in m["text"] for m in top_level)


# --- every kind, both ways ------------------------------------------------------------

MEDIA = {"data_b64": base64.b64encode(PNG).decode(), "mimetype": "image/png", "caption": "foto"}


@pytest.mark.parametrize(
    ("kind", "fields", "filename"),
    [
        ("image", {"media": MEDIA}, "image-"),
        ("video", {"media": {**MEDIA, "mimetype": "video/mp4"}}, "video-"),
        ("audio", {"media": {**MEDIA, "mimetype": "audio/mpeg"}}, "audio-"),
        ("voice", {"media": {**MEDIA, "mimetype": "audio/ogg"}}, "voice-"),
        ("sticker", {"media": {**MEDIA, "mimetype": "image/webp"}}, "sticker-"),
        (
            "document",
            {"media": {**MEDIA, "mimetype": "application/pdf", "filename": "boleto.pdf"}},
            "boleto.pdf",
        ),
    ],
)
async def test_customer_media_is_uploaded_into_the_thread(
    bridge: SlackHarness, kind: str, fields: dict[str, Any], filename: str
) -> None:
    await bridge.customer(text="oi")
    await bridge.customer(kind, **fields)
    (file,) = bridge.fake.files.values()
    assert file.data == PNG
    assert file.name.startswith(filename)
    assert (file.channel, file.thread_ts) == (SALES, bridge.thread_root())
    assert file.initial_comment == "foto"
    assert bridge.fake.calls_of("files.completeUploadExternal")[-1].args["channel_id"] == SALES


async def test_customer_location_contact_and_unsupported(bridge: SlackHarness) -> None:
    await bridge.customer(text="oi")
    location = {"lat": -23.56, "lon": -46.65, "name": "MASP", "address": "Av. Paulista"}
    await bridge.customer("location", location=location)
    await bridge.customer("contact", contact={"display_name": "Ana", "vcard": VCARD})
    await bridge.customer("unsupported", type="poll")
    texts = [m["text"] for m in bridge.customer_posts()]
    assert any("MASP" in t and "Av. Paulista" in t and "maps" in t for t in texts)
    assert any("Ana" in t and "+5511911112222" in t for t in texts)
    assert any("unsupported message: poll" in t for t in texts)
    (vcf,) = bridge.fake.files.values()
    assert vcf.name == "Ana.vcf" and vcf.data == VCARD.encode()


async def test_customer_quote_is_rendered_as_a_quote(bridge: SlackHarness) -> None:
    first = await bridge.customer(text="meu pedido não chegou")
    await bridge.customer(text="é o 42", quote=first)
    assert bridge.customer_posts()[-1]["text"] == "> meu pedido não chegou\né o 42"


@pytest.mark.parametrize(
    ("name", "mimetype", "kind"),
    [
        ("foto.png", "image/png", "image"),
        ("clip.mp4", "video/mp4", "video"),
        ("som.mp3", "audio/mpeg", "audio"),
        ("nota.pdf", "application/pdf", "document"),
    ],
)
async def test_attendant_files_reach_the_customer(
    bridge: SlackHarness, name: str, mimetype: str, kind: str
) -> None:
    await bridge.customer(text="oi")
    file = bridge.fake.host_file(name, PNG, mimetype)
    await attendant_says(bridge, "segue", files=[file])
    sent = bridge.outbound()[-1]
    assert sent["kind"] == kind
    assert sent["media"]["size"] == len(PNG)
    assert sent["media"]["mimetype"].startswith(mimetype.split("/")[0])


@pytest.mark.parametrize("text", ["", "o contato da loja"])
async def test_an_attendants_vcf_reaches_the_customer_as_a_contact_card(
    bridge: SlackHarness, text: str
) -> None:
    await bridge.customer(text="oi")
    file = bridge.fake.host_file("maria.vcf", IOS.encode(), "text/vcard")
    await attendant_says(bridge, text, files=[file])
    await until(lambda: bridge.outbound()[-1]["kind"] == "contact", what="the contact card")
    kinds = [m["kind"] for m in bridge.outbound()[1:]]  # after the greeting
    assert kinds == (["text", "contact"] if text else ["contact"])
    card = bridge.outbound()[-1]["contact"]
    assert card["display_name"] == "Maria Souza"
    assert "waid=5511987654321" in card["vcard"]  # rewritten as phones write it


async def test_a_vcf_that_does_not_parse_goes_as_a_document(bridge: SlackHarness) -> None:
    await bridge.customer(text="oi")
    file = bridge.fake.host_file("broken.vcf", b"BEGIN:VCARD\nthis is not", "text/vcard")
    await attendant_says(bridge, "", files=[file])
    assert bridge.outbound()[-1]["kind"] == "document"


async def test_reactions_edits_and_deletions_both_ways(bridge: SlackHarness) -> None:
    first = await bridge.customer(text="meu pedido não chegou")
    root = bridge.thread_root()
    customer_ts = bridge.customer_posts()[0]["ts"]

    # customer → Slack
    await bridge.customer("reaction", target=first, emoji="👍")
    assert bridge.fake.reactions(SALES, customer_ts) == ["+1"]
    other = await bridge.customer(text="outra")
    await bridge.customer("reaction", target=other, emoji="🫩")  # newer than the data: text
    assert bridge.customer_posts()[-1]["text"] == "_reacted 🫩_"
    await bridge.customer("edit", target=first, text="meu pedido 42 não chegou")
    edited = next(m for m in bridge.fake.messages(SALES) if m["ts"] == customer_ts)
    assert edited["text"] == "meu pedido 42 não chegou"
    await bridge.customer("revoke", target=first)
    assert all(m["ts"] != customer_ts for m in bridge.fake.messages(SALES))

    # Slack → customer
    second = await bridge.customer(text="ainda aí?")
    second_ts = bridge.customer_posts()[-1]["ts"]
    reply = await attendant_says(bridge, "Vou verificar")
    sent = bridge.outbound()[-1]
    reaction = {"type": "reaction_added", "user": BOB, "reaction": "thumbsup"}
    reaction["item"] = {"type": "message", "channel": SALES, "ts": second_ts}
    await bridge.event(reaction)
    assert (bridge.outbound()[-1]["kind"], bridge.outbound()[-1]["emoji"]) == ("reaction", "👍")
    assert bridge.outbound()[-1]["target"] == second
    await bridge.event({**reaction, "type": "reaction_removed"})
    assert bridge.outbound()[-1]["emoji"] == ""
    changed = {
        "type": "message",
        "subtype": "message_changed",
        "channel": SALES,
        "hidden": True,
        "ts": "1800000000.000100",
        "message": {**_message_of(reply), "text": "Vou verificar já", "thread_ts": root},
        "previous_message": _message_of(reply),
    }
    await bridge.event(changed)
    assert bridge.outbound()[-1]["kind"] == "edit"
    assert bridge.outbound()[-1]["text"] == "Vou verificar já"
    assert bridge.outbound()[-1]["target"] == sent["id"]
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": SALES,
        "hidden": True,
        "ts": "1800000000.000200",
        "deleted_ts": reply["ts"],
        "previous_message": _message_of(reply),
    }
    await bridge.event(deleted)
    assert (bridge.outbound()[-1]["kind"], bridge.outbound()[-1]["target"]) == (
        "revoke",
        sent["id"],
    )


async def test_customer_changes_a_reaction(bridge: SlackHarness) -> None:
    first = await bridge.customer(text="oi")
    customer_ts = bridge.customer_posts()[0]["ts"]
    await bridge.customer("reaction", target=first, emoji="👍")
    await bridge.customer("reaction", target=first, emoji="❤️")
    assert bridge.fake.reactions(SALES, customer_ts) == ["heart"]
    assert not await bridge.db.fetch("SELECT id FROM outbox WHERE attempts > 0")


def _message_of(event: dict[str, Any]) -> dict[str, Any]:
    keys = ("type", "user", "text", "ts", "thread_ts", "team", "client_msg_id")
    return {k: event[k] for k in keys if k in event}


# --- ops channel and login ------------------------------------------------------------


async def test_login_in_the_ops_channel_uploads_the_qr_there(
    tmp_path: Path, db: Database, fake: SlackFake
) -> None:
    h = SlackHarness(tmp_path, db, fake, auto_pair=False)
    await h.start()
    try:
        await h.event(h.fake.user_message(OPS, ADMIN, "!login sales"))
        await until(lambda: any(f.channel == OPS for f in h.fake.files.values()), what="QR")
        qr = next(f for f in h.fake.files.values() if f.channel == OPS)
        assert qr.data.startswith(b"\x89PNG")
        assert "Scan this QR code" in (qr.initial_comment or "")
        await h.clock.advance(61)  # WhatsApp rotates the code: the old image goes
        await until(lambda: len(h.fake.calls_of("files.delete")) == 1, what="QR replaced")
        [current] = [f for f in h.fake.files.values() if f.channel == OPS]
        assert current.id != qr.id and current.data != qr.data
        assert "QRCODE" in h.fake.topic(SALES)  # the control channel's topic shows the status
        # a stranger is refused and nothing else happens
        await h.event(h.fake.user_message(OPS, STRANGER, "!logout sales"))
        assert any(c.args.get("user") == STRANGER for c in h.fake.calls_of("chat.postEphemeral"))
    finally:
        await h.stop()


async def test_ops_alerts_reach_the_ops_channel(bridge: SlackHarness) -> None:
    await bridge.sim.fault("acme/sales", "logout")
    await bridge.run_for(2)
    texts = [m["text"] for m in bridge.fake.messages(OPS)]
    assert any("LOGGED_OUT" in t for t in texts), texts


async def test_a_channel_the_bot_is_not_in_is_explained(
    tmp_path: Path, db: Database, fake: SlackFake
) -> None:
    h = SlackHarness(tmp_path, db, fake)
    fake.add_channel(SALES, "sales", bot_member=False)
    h.fake.add_channel = lambda *a, **k: None  # type: ignore[method-assign]
    await h.start()
    try:
        dead = await h.db.fetch("SELECT last_error FROM outbox WHERE status = 'dead'")
        errors = " ".join(str(r["last_error"]) for r in dead)
        assert "the bot is not in channel C0SALES: invite @zapbridge there" in errors
    finally:
        await h.stop()


# --- rate limits, redelivery, HTTP mode ----------------------------------------------------


async def test_429s_delay_but_keep_order_without_duplicates(bridge: SlackHarness) -> None:
    await bridge.customer(text="msg 0")
    bridge.fake.script("chat.postMessage", retry_after=1, times=3)
    bridge.fake.script_fraction("chat.postMessage", fraction=0.3, retry_after=1, seed=3)
    for n in range(1, 30):
        await bridge.customer(text=f"msg {n}", settle=False)
    await bridge.run_for(90, step=1)
    bridge.fake.script_fraction("chat.postMessage", fraction=0)
    await bridge.run_for(10, step=1)
    texts = [m["text"] for m in bridge.customer_posts()]
    assert texts == [f"msg {n}" for n in range(30)]
    assert any(c.response.get("error") == "ratelimited" for c in bridge.fake.calls)


async def test_pacing_keeps_about_one_message_per_second(
    tmp_path: Path, db: Database, fake: SlackFake
) -> None:
    """Every customer message is posted, in order, and the channel's writes never
    outrun a bucket of 3 refilled at one a second (times on the bridge's clock)."""
    h = SlackHarness(tmp_path, db, fake, burst=3)
    fake.timer = h.clock.monotonic  # the fake stamps calls with the bridge's time
    await h.start()
    try:
        started = h.clock.monotonic()

        def writes() -> list[float]:
            return [
                call.at
                for call in fake.calls
                if call.method in PACED and call.args.get("channel") == SALES
                if call.at >= started
            ]

        for n in range(8):
            await h.customer(text=f"m{n}", settle=False)
        await until(lambda: len(writes()) >= 3, what="the first burst")
        await asyncio.sleep(0.2)
        assert len(writes()) == 3  # the burst; the rest waits for time to pass
        await h.run_for(20, step=1)
        assert [m["text"] for m in h.customer_posts()] == [f"m{n}" for n in range(8)]
        times = writes()
        assert len(times) >= 8 + 1  # the card and the eight messages at least
        for j, later in enumerate(times):
            for i in range(j):  # writes i..j fit in a bucket of 3 refilled at 1/s
                assert j - i + 1 <= 3 + (later - times[i]) + 1e-6, (i, j, times)
    finally:
        await h.stop()


async def test_channel_pacing_follows_the_configuration(fake: SlackFake) -> None:
    """slack.per_channel_per_second 20 and per_channel_burst 50: fifty notices go at
    once, the fifty-first a twentieth of a second later."""
    fake.add_channel(SALES, "sales")
    clock = FakeClock()
    fake.timer = clock.monotonic
    config = SlackConfig(
        enabled=True,
        mode="http",
        bot_token=fake.bot_token,
        signing_secret=fake.signing_secret,
        api_url=fake.api_url,
        per_channel_per_second=20.0,
        per_channel_burst=50,
    )
    frontend = SlackFrontend(config, clock=clock)
    await frontend.start(NoInbox())  # type: ignore[arg-type]
    try:
        notices = [
            asyncio.create_task(frontend.notice(ChatAddress(SALES), f"n{n}", txn_id=f"zb-{n}"))
            for n in range(51)
        ]
        await until(lambda: len(fake.calls_of("chat.postMessage")) >= 50, what="the burst")
        await asyncio.sleep(0.2)
        assert len(fake.calls_of("chat.postMessage")) == 50  # the 51st waits for a token
        await clock.advance(0.05)
        await asyncio.gather(*notices)
        times = [call.at for call in fake.calls_of("chat.postMessage")]
        assert times == [0.0] * 50 + [pytest.approx(0.05)]
    finally:
        await frontend.stop()


class NoInbox:
    async def attendant_event(self, event: object) -> None:
        return None

    async def command(self, event: object, text: str) -> None:
        return None


async def test_socket_redelivery_does_not_duplicate(bridge: SlackHarness) -> None:
    await bridge.customer(text="oi")
    event = bridge.fake.user_message(SALES, BOB, "uma vez", thread_ts=bridge.thread_root())
    await bridge.event(event)
    await bridge.event(event, retry_attempt=1)  # Slack redelivers the same event
    assert [m["text"] for m in bridge.outbound()].count("*Bob Silva:*\numa vez") == 1
    assert not bridge.fake.unacked


async def test_http_mode_verifies_signatures(tmp_path: Path, db: Database, fake: SlackFake) -> None:
    h = SlackHarness(tmp_path, db, fake, mode="http")
    await h.start()
    try:
        await h.customer(text="oi")
        url = f"http://127.0.0.1:{h.port}/slack/events"

        def envelope(text: str) -> bytes:
            event = fake.user_message(SALES, BOB, text, thread_ts=h.thread_root())
            body = {"type": "event_callback", "team_id": fake.team_id, "event": event}
            body["event_id"] = f"Ev{text.replace(' ', '')}"
            body["api_app_id"] = fake.app_id
            return json.dumps(body).encode()

        async with aiohttp.ClientSession() as session:
            good = envelope("assinado")
            headers = {**fake.signed_headers(good), "Content-Type": "application/json"}
            async with session.post(url, data=good, headers=headers) as response:
                assert response.status == 200
            for body, headers in (
                (envelope("falso"), fake.signed_headers(b"other", secret="wrong")),
                (envelope("velho"), None),
            ):
                if headers is None:
                    stale = int(__import__("time").time()) - 400
                    headers = fake.signed_headers(body, timestamp=stale)
                headers = {**headers, "Content-Type": "application/json"}
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 401
        await h.settle()
        texts = [m.get("text") for m in h.outbound()]
        assert "*Bob Silva:*\nassinado" in texts
        assert not any("falso" in (t or "") or "velho" in (t or "") for t in texts)
    finally:
        await h.stop()
