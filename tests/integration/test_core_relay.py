"""The core end to end, on both database engines: the sim engine on one side, recording
fake frontends on the other, the real composition root in between."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import AuthorKind, ChatAddress
from bridge.db.database import Database
from bridge.errors import EngineError
from bridge.model import (
    ContactCard,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Message,
    Party,
    Reaction,
    Text,
    Unsupported,
)
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CUSTOMER, CoreHarness, until

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


@pytest.fixture
async def mirrored(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix"), FakeFrontend("slack")])
    await harness.start()
    yield harness
    await harness.stop()


def thread_of(fe: FakeFrontend, ticket_id: int = 1) -> ChatAddress:
    call = next(c for c in fe.of("thread") if c.args["card"].ticket_id == ticket_id)
    assert call.place is not None
    return call.place


def customer_posts(fe: FakeFrontend, ticket_id: int = 1) -> list:  # type: ignore[type-arg]
    posts = fe.posts_in(thread_of(fe, ticket_id).thread_root)  # type: ignore[arg-type]
    return [p for p in posts if p.args["author"].kind is AuthorKind.CUSTOMER]


async def test_ticket_lifecycle_with_auto_replies(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi, preciso de ajuda")

    place = thread_of(fe)
    card = fe.cards[place.thread_root]  # type: ignore[index]
    assert card.headline == f"Ticket #1 · Maria ({CUSTOMER}) · pending"
    first = fe.posts_in(place.thread_root)[0]  # type: ignore[arg-type]
    assert first.args["content"] == Text("Oi, preciso de ajuda")
    assert first.args["author"].kind is AuthorKind.CUSTOMER
    assert first.args["author"].name == "Maria"
    greeting = core.outbound()[0]
    assert (greeting["kind"], greeting["to"]) == ("text", CUSTOMER)
    assert greeting["text"] == "Olá! Um atendente já vai falar com você."

    await fe.attendant(place, "@bob:localhost", "Posso ajudar?", name="Bob")
    await core.settle()
    assert core.outbound()[-1]["text"] == "*Bob:*\nPosso ajudar?"
    card = fe.cards[place.thread_root]  # type: ignore[index]
    assert (card.status, card.assignee) == ("open", "@bob:localhost")

    _, reply = await fe.attendant(place, "@bob:localhost", "!close", name="Bob")
    await core.settle()
    assert reply is not None and "#1" in reply.text
    assert core.outbound()[-1]["text"] == "Atendimento encerrado. Obrigado!"
    assert fe.cards[place.thread_root].status == "closed"  # type: ignore[index]
    ticket = await core.bridge.repos.tickets.get(1)
    assert ticket is not None and ticket.closed_at and ticket.first_response_at
    assert ticket.first_response_at >= ticket.created_at
    metrics = core.bridge.metrics.render().decode()
    assert 'zapbridge_ticket_first_response_seconds_count{session="acme/sales"} 1.0' in metrics
    assert (
        'zapbridge_messages_total{direction="inbound",kind="text",session="acme/sales"}' in metrics
    )


MEDIA = {"data_b64": base64.b64encode(PNG).decode(), "mimetype": "image/png", "caption": "foto"}


@pytest.mark.parametrize(
    ("kind", "fields", "check"),
    [
        ("text", {"text": "*oi* _tudo_ bem?"}, lambda c: c == Text("*oi* _tudo_ bem?")),
        ("image", {"media": MEDIA}, lambda c: c.media_kind is MediaKind.IMAGE and c.data == PNG),
        (
            "video",
            {"media": {**MEDIA, "mimetype": "video/mp4"}},
            lambda c: c.media_kind is MediaKind.VIDEO,
        ),
        (
            "audio",
            {"media": {**MEDIA, "mimetype": "audio/mpeg"}},
            lambda c: c.media_kind is MediaKind.AUDIO,
        ),
        (
            "voice",
            {"media": {**MEDIA, "mimetype": "audio/ogg"}},
            lambda c: c.media_kind is MediaKind.VOICE,
        ),
        (
            "document",
            {"media": {**MEDIA, "mimetype": "application/pdf", "filename": "boleto.pdf"}},
            lambda c: c.media_kind is MediaKind.DOCUMENT and c.filename == "boleto.pdf",
        ),
        (
            "sticker",
            {"media": {**MEDIA, "mimetype": "image/webp"}},
            lambda c: c.media_kind is MediaKind.STICKER,
        ),
        (
            "location",
            {"location": {"lat": -23.56, "lon": -46.65, "name": "MASP", "address": "Av. Paulista"}},
            lambda c: c == Location(-23.56, -46.65, name="MASP", address="Av. Paulista"),
        ),
        (
            "contact",
            {
                "contact": {
                    "display_name": "Ana",
                    "vcard": "BEGIN:VCARD\nFN:Ana\nTEL:+5511911112222\nEND:VCARD",
                }
            },
            lambda c: isinstance(c, ContactCard) and c.display_name == "Ana",
        ),
        ("unsupported", {"type": "poll"}, lambda c: c == Unsupported("poll")),
    ],
)
async def test_every_kind_reaches_the_thread(
    core: CoreHarness, kind: str, fields: dict, check
) -> None:  # type: ignore[no-untyped-def,type-arg]
    await core.customer(kind, **fields)
    fe = core.frontends["matrix"]
    posts = customer_posts(fe)
    assert len(posts) == 1
    assert check(posts[0].args["content"]), posts[0].args["content"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (Text("_Bom dia_"), {"kind": "text", "text": "*Bob:*\n_Bom dia_"}),
        (
            Media(MediaKind.IMAGE, "image/png", data=PNG, filename="a.png", caption="veja"),
            {
                "kind": "image",
                "media": {"sha256": hashlib.sha256(PNG).hexdigest(), "size": len(PNG)},
            },
        ),
        (
            Media(MediaKind.DOCUMENT, "application/pdf", data=b"%PDF-1.4", filename="nota.pdf"),
            {"kind": "document", "media": {"filename": "nota.pdf", "mimetype": "application/pdf"}},
        ),
        (
            Media(MediaKind.VOICE, "audio/ogg; codecs=opus", data=b"OggS"),
            {"kind": "voice"},
        ),
        (
            Location(1.5, 2.5, name="Loja"),
            {"kind": "location", "location": {"lat": 1.5, "lon": 2.5}},
        ),
        (
            ContactCard("Suporte", "BEGIN:VCARD\nFN:Suporte\nTEL:+551130000000\nEND:VCARD"),
            {"kind": "contact", "contact": {"display_name": "Suporte"}},
        ),
    ],
)
async def test_every_kind_reaches_the_customer(core: CoreHarness, content, expected: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    await core.customer(text="oi")
    fe = core.frontends["matrix"]
    await fe.attendant(thread_of(fe), "@bob:localhost", content, name="Bob")
    await core.settle()
    sent = core.outbound()[-1]
    assert sent["to"] == CUSTOMER
    for key, value in expected.items():
        if isinstance(value, dict):
            assert value.items() <= sent[key].items(), sent
        else:
            assert sent[key] == value, sent


async def test_replies_reactions_edits_and_deletions_both_ways(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    first_wa = await core.customer(text="meu pedido não chegou")
    place = thread_of(fe)
    first_event = customer_posts(fe)[0].args["event"]

    # customer → thread: a quote, a reaction, an edit and a revoke of their own message
    await core.customer(text="é o pedido 42", quote=first_wa)
    quoted = customer_posts(fe)[-1]
    assert quoted.args["reply_to"] == first_event
    await core.customer("reaction", target=first_wa, emoji="😡")
    assert fe.of("react")[-1].args["target"] == first_event
    await core.customer("edit", target=first_wa, text="meu pedido 42 não chegou")
    assert fe.of("edit")[-1].args == {
        "author": fe.of("edit")[-1].args["author"],
        "target": first_event,
        "new": Text("meu pedido 42 não chegou"),
    }
    await core.customer("revoke", target=first_wa)
    assert fe.of("delete")[-1].args["target"] == first_event

    # thread → customer: a reply quoting the customer, a reaction, an edit and a deletion
    reply_event, _ = await fe.attendant(
        place, "@bob:localhost", "Vou verificar", name="Bob", reply_to=first_event
    )
    await core.settle()
    sent = core.outbound()[-1]
    assert sent["quote"] == first_wa
    await fe.attendant(place, "@bob:localhost", Reaction(first_event, "👍"), name="Bob")
    await fe.attendant(
        place, "@bob:localhost", Edit(reply_event, Text("Vou verificar já")), name="Bob"
    )
    await fe.attendant(place, "@bob:localhost", Deletion(reply_event), name="Bob")
    await core.settle()
    kinds = [(m["kind"], m.get("target")) for m in core.outbound()[-3:]]
    assert kinds == [("reaction", first_wa), ("edit", sent["id"]), ("revoke", sent["id"])]
    assert core.outbound()[-2]["text"] == "Vou verificar já"


async def test_redacting_a_customer_message_stays_on_the_frontend(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="spam")
    place = thread_of(fe)
    event = customer_posts(fe)[0].args["event"]
    before = len(core.outbound())
    await fe.attendant(place, "@bob:localhost", Deletion(event), name="Bob")
    await core.settle()
    assert len(core.outbound()) == before


async def test_two_frontends_mirror_each_other(mirrored: CoreHarness) -> None:
    matrix, slack = mirrored.frontends["matrix"], mirrored.frontends["slack"]
    await mirrored.customer(text="Oi")
    assert matrix.posts_in(thread_of(matrix).thread_root)  # type: ignore[arg-type]
    assert slack.posts_in(thread_of(slack).thread_root)  # type: ignore[arg-type]

    await slack.attendant(thread_of(slack), "U0BOB", "Olá Maria", name="Bob")
    await mirrored.settle()
    assert mirrored.outbound()[-1]["text"] == "*Bob:*\nOlá Maria"
    mirror = matrix.posts_in(thread_of(matrix).thread_root)[-1]  # type: ignore[arg-type]
    assert mirror.args["content"] == Text("Olá Maria")
    assert (mirror.args["author"].kind, mirror.args["author"].name) == (AuthorKind.ATTENDANT, "Bob")
    echoes = [
        p
        for p in slack.posts_in(thread_of(slack).thread_root)  # type: ignore[arg-type]
        if p.args["author"].kind is AuthorKind.ATTENDANT
    ]
    assert echoes == []  # what Bob wrote on Slack is not echoed back to Slack


async def test_order_per_ticket_holds_under_delivery_failures(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="m0")
    fe.fail_next("post", 3)
    for i in range(1, 11):
        await core.customer(text=f"m{i}")
    for _ in range(6):
        await core.clock.advance(10)
        await core.settle()
    texts = [c.args["content"].body for c in customer_posts(fe)]
    assert texts == [f"m{i}" for i in range(11)]


async def test_a_restart_delivers_what_was_persisted_exactly_once(
    tmp_path: Path, db: Database
) -> None:
    fe = FakeFrontend("matrix")
    core = CoreHarness(tmp_path, db, frontends=[fe])
    await core.start()
    fe.fail_next("post", 1000)  # the frontend is down: rows stay pending
    for i in range(5):
        await core.customer(text=f"m{i}")
    assert not customer_posts(fe)
    # a delivered row that a crash left pending is retried, but not posted twice
    fe._failures.clear()
    await core.clock.advance(10)
    await core.settle()
    assert len(customer_posts(fe)) == 5
    await db.execute("UPDATE outbox SET status = 'pending' WHERE destination = 'matrix'")
    fe.fail_next("post", 1000)
    await core.customer(text="m5")
    await core.stop()

    fe._failures.clear()
    core.bridge = core._new_bridge()
    await core.start()
    await core.clock.advance(10)  # past the backoff the failed attempt scheduled
    await core.settle()
    texts = [c.args["content"].body for c in customer_posts(fe)]
    assert texts == [f"m{i}" for i in range(6)]
    assert await core.bridge.repos.outbox.count_pending() == 0
    await core.stop()


async def test_a_dead_letter_is_told_in_the_thread_and_the_ops_channel(
    mirrored: CoreHarness,
) -> None:
    matrix, slack = mirrored.frontends["matrix"], mirrored.frontends["slack"]
    await mirrored.customer(text="Oi")
    matrix.fail_next("post", 10, error="M_FORBIDDEN: the bot was kicked")
    await mirrored.customer(text="alguém?")
    for _ in range(5):
        await mirrored.clock.advance(10)
        await mirrored.settle()
    notices = [c.args["text"] for c in slack.of("notice")]
    assert any("not delivered to matrix: M_FORBIDDEN: the bot was kicked" in t for t in notices)
    ops = [c.args["text"] for c in slack.of("notice") if c.place and c.place.room == "!ops-acme"]
    assert any("M_FORBIDDEN" in t and "#1" in t for t in ops), ops
    assert await mirrored.bridge.repos.outbox.count_dead() == 1


async def test_rows_an_earlier_version_wrote_are_delivered(core: CoreHarness) -> None:
    """Pending rows survive an upgrade: payloads written as the code before typed
    operations wrote them are still delivered."""
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await core.settle()
    outbox = core.bridge.repos.outbox
    await outbox.enqueue(
        "matrix",
        ordering_key="t1:matrix",
        payload={"op": "notice", "ticket": 1, "text": "written before"},
        now=core.clock.now(),
    )
    await outbox.enqueue(
        "whatsapp",
        ordering_key="t1:whatsapp",
        payload={"op": "send", "message": 1, "quote": None},  # "Oi": on WhatsApp already
        now=core.clock.now(),
    )
    await core.settle()
    assert "written before" in [c.args["text"] for c in fe.of("notice")]
    assert await outbox.count_pending() == 0 and await outbox.count_dead() == 0


@pytest.mark.parametrize(
    ("destination", "payload", "error"),
    [
        ("matrix", {"op": "teleport", "ticket": 1}, "unknown matrix delivery 'teleport'"),
        ("whatsapp", {"op": "post", "message": 1}, "unknown WhatsApp delivery 'post'"),
        ("matrix", {"op": "send", "message": 1}, "unknown matrix delivery 'send'"),
        ("matrix", {"op": "notice", "ticket": "one", "text": "x"}, "'ticket'"),
    ],
)
async def test_a_row_holding_no_operation_is_a_dead_letter_at_once(
    core: CoreHarness, destination: str, payload: dict[str, object], error: str
) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await core.settle()
    key = f"t1:{destination}"
    await core.bridge.repos.outbox.enqueue(
        destination, ordering_key=key, payload=payload, now=core.clock.now()
    )
    core.bridge.outbox.wake([key])
    await core.settle()
    [dead] = await core.bridge.repos.outbox.list_dead()
    assert dead.attempts == 1 and dead.last_error is not None and error in dead.last_error
    notices = [c.args["text"] for c in fe.of("notice")]
    assert any(t.startswith("⚠️ not delivered") and error in t for t in notices), notices


async def test_an_outsider_cannot_answer_in_a_thread(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    before = len(core.outbound())
    _, reply = await fe.attendant(thread_of(fe), "@gina:localhost", "Sou da Globex", name="Gina")
    await core.settle()
    assert reply is not None and "not an attendant of ACME Support" in reply.text
    assert len(core.outbound()) == before
    _, reply = await fe.attendant(thread_of(fe), "@gina:localhost", "!close", name="Gina")
    await core.settle()
    assert reply is not None and reply.ephemeral
    assert (await core.bridge.tickets.get(1)).status == "pending"


async def test_receipts_reach_the_frontend_and_the_metrics(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await fe.attendant(thread_of(fe), "@bob:localhost", "Olá", name="Bob")
    await core.settle()
    sent = core.outbound()[-1]
    await core.sim.receipt("acme/sales", sent["id"], "read")
    await until(lambda: fe.of("receipt"), what="receipt")
    assert fe.of("receipt")[-1].args["status"].value == "read"
    row = await core.bridge.repos.messages.find_by_wa_id(
        core.bridge.session_ids["acme/sales"], sent["id"]
    )
    assert row is not None and row.ack == "read"
    assert (
        'zapbridge_delivery_acks_total{status="read"} 1.0' in core.bridge.metrics.render().decode()
    )


async def test_a_duplicate_whatsapp_message_is_relayed_once(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    wa_id = await core.customer(text="uma vez")
    await core.sim.inbound(
        "acme/sales", {"from": CUSTOMER, "kind": "text", "text": "uma vez", "id": wa_id}
    )
    await core.settle()
    assert len(customer_posts(fe)) == 1


async def test_disconnect_alert_after_grace_then_resolved(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.sim.fault("acme/sales", "disconnect", 100)
    await core.clock.advance(30)
    await core.settle()

    def ops() -> list[str]:
        return [c.args["text"] for c in fe.of("notice") if c.place == ChatAddress("!ops-acme")]

    assert not any("DISCONNECTED" in t for t in ops())
    await core.clock.advance(31)
    await core.settle()
    assert any("acme/sales DISCONNECTED" in t for t in ops()), ops()
    for _ in range(40):
        await core.clock.advance(10)
        await core.settle()
        if str(core.bridge.sessions.status("acme/sales")) == "CONNECTED":
            break
    await core.settle()
    assert any("resolved after" in t for t in ops()), ops()
    assert "CONNECTED" in fe.topics["!control-acme-sales"]


async def test_login_posts_the_qr_where_it_was_typed_and_connects_on_scan(
    tmp_path: Path, db: Database
) -> None:
    fe = FakeFrontend("matrix")
    core = CoreHarness(tmp_path, db, frontends=[fe], auto_pair=False)
    await core.start()  # never paired: LOGGED_OUT
    control = ChatAddress("!control-acme-support")
    try:
        _, refused = await fe.attendant(control, "@bob:localhost", "!login", name="Bob")
        assert refused is not None and refused.ephemeral  # attendants may not log in
        _, reply = await fe.attendant(control, "@alice:localhost", "!login", name="Alice")
        await core.settle()
        assert reply is not None and "QR code" in reply.text
        assert str(core.bridge.sessions.status("acme/support")) == "QRCODE"
        image = fe.of("image")
        assert len(image) == 1 and image[0].place == control
        assert image[0].args["data"].startswith(b"\x89PNG")
        await core.clock.advance(61)  # WhatsApp rotates the code
        await core.settle()
        images = fe.of("image")
        assert len(images) == 2 and images[1].args["replaces"] is not None
        assert images[1].args["data"] != images[0].args["data"]
        await core.sim.scan("acme/support", "+5511900000099")
        await until(lambda: str(core.bridge.sessions.status("acme/support")) == "CONNECTED")
        await core.settle()
        ops = [c.args["text"] for c in fe.of("notice") if c.place == ChatAddress("!ops-acme")]
        assert any("acme/support CONNECTED as +5511900000099" in t for t in ops), ops
    finally:
        await core.stop()


async def test_stats_count_the_company_only(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="Oi")
    await core.customer(text="Oi", session="globex/main", sender="+14155550100")
    await fe.attendant(thread_of(fe), "@bob:localhost", "Olá", name="Bob")
    await core.settle()
    stats = await core.bridge.tickets.stats("acme")
    assert stats.by_status["open"] == 1 and stats.by_status["pending"] == 0
    assert (stats.messages_in, stats.messages_out) == (1, 2)  # the greeting and Bob


async def test_lazy_whatsapp_media_is_downloaded_before_posting(core: CoreHarness) -> None:
    """whatsmeow media arrive as a download ref; the delivery fetches the bytes (retrying
    while the download fails) and refuses files over media.max_size_mb visibly."""
    fe = core.frontends["matrix"]
    fetched: list[dict] = []  # type: ignore[type-arg]
    failures = [EngineError("media server said 503")]

    async def download(key: str, media: Media) -> bytes:
        if failures:
            raise failures.pop()
        fetched.append(media.ref or {})
        return PNG

    core.sim.download = download  # type: ignore[method-assign]
    customer = Party(phone=CUSTOMER, name="Maria")
    lazy = Media(MediaKind.IMAGE, "image/png", ref={"direct_path": "/v/1"}, size=len(PNG))
    huge = Media(MediaKind.VIDEO, "video/mp4", ref={"direct_path": "/v/2"}, size=500_000_000)
    for wa_id, media in (("LAZY1", lazy), ("HUGE1", huge)):
        message = Message(chat=customer, sender=customer, content=media, wa_id=wa_id)
        await core.bridge.relay.handle_whatsapp_message("acme/sales", message)
    for _ in range(6):
        await core.clock.advance(10)
        await core.settle()
    [posted] = [p.args["content"] for p in customer_posts(fe)]
    assert posted.data == PNG and fetched == [{"direct_path": "/v/1"}]
    notices = [c.args["text"] for c in fe.of("notice")]
    assert any("476.8 MB, over the 100 MB limit" in t for t in notices), notices


async def test_a_customer_changing_a_reaction_is_relayed_each_time(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    first = await core.customer(text="chegou!")
    await fe.attendant(thread_of(fe), "@bob:localhost", "Que bom", name="Bob")
    await core.settle()
    reply = core.outbound()[-1]["id"]
    for emoji in ("👍", "❤️", ""):
        await core.customer("reaction", target=reply, emoji=emoji)
    await core.customer("reaction", target=first, emoji="🎉")
    assert [c.args["emoji"] for c in fe.of("react")] == ["👍", "❤️", "", "🎉"]
    assert await core.bridge.repos.outbox.count_dead() == 0


async def test_the_customer_avatar_reaches_the_frontend_author(core: CoreHarness) -> None:
    fe = core.frontends["matrix"]
    await core.customer(text="sem foto")
    await core.customer(text="com foto", avatar_url="https://pics.example/maria.png")
    await core.customer(text="de novo")
    posts = customer_posts(fe)
    assert [p.args["author"].avatar_url for p in posts] == [
        None,
        "https://pics.example/maria.png",
        "https://pics.example/maria.png",
    ]
    contact = await core.bridge.repos.contacts.find(
        core.bridge.session_ids["acme/sales"], phone=CUSTOMER
    )
    assert contact is not None and contact.avatar_url == "https://pics.example/maria.png"
