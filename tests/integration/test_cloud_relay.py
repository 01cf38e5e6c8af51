"""The core with a Cloud API session (``acme/sales``), on both database engines: the
customer's 24-hour window, ``!template``, sends WhatsApp refused or reported failed,
and ``!status``'s account facts. ``acme/support`` stays on the sim, as before."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.core.frontend import AuthorKind, ChatAddress, Reply
from bridge.db.database import Database
from bridge.model import AckStatus, Party, Reaction, Text
from bridge.whatsapp.engine import ReceiptEvent, SendFailedEvent
from tests.fakes.frontend import FakeFrontend
from tests.harness.cloud_bridge import CloudHarness
from tests.harness.core import CUSTOMER

DAY = 24 * 60 * 60
ADVICE = (
    "WhatsApp only lets you send an approved template now: "
    "!template <name> [params…] (listed by !template)."
)
BOB = "@bob:localhost"


@pytest.fixture
async def cloud(tmp_path: Path, db: Database) -> AsyncIterator[CloudHarness]:
    harness = CloudHarness(tmp_path, db, frontends=[FakeFrontend("matrix"), FakeFrontend("slack")])
    await harness.start()
    yield harness
    await harness.stop()


def thread_of(fe: FakeFrontend, ticket_id: int = 1) -> ChatAddress:
    call = next(c for c in fe.of("thread") if c.args["card"].ticket_id == ticket_id)
    assert call.place is not None
    return call.place


def texts_posted(fe: FakeFrontend, place: ChatAddress) -> list[str]:
    assert place.thread_root is not None
    return [
        c.args["content"].body
        for c in fe.posts_in(place.thread_root)
        if isinstance(c.args["content"], Text)
    ]


def notices_in(fe: FakeFrontend, place: ChatAddress) -> list[str]:
    return [c.args["text"] for c in fe.of("notice") if c.place == place]


async def messages_of(cloud: CloudHarness, ticket_id: int = 1) -> list[str]:
    rows = await cloud.bridge.repos.messages.list_by_ticket(ticket_id)
    return [str(row.content.get("body")) for row in rows]


async def test_a_reply_inside_the_window_is_sent(cloud: CloudHarness) -> None:
    matrix, slack = cloud.frontends["matrix"], cloud.frontends["slack"]
    await cloud.customer(text="Oi")
    await cloud.clock.advance(DAY - 60)
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "Posso ajudar?", name="Bob")
    await cloud.settle()
    assert reply is None
    assert cloud.outbound()[-1]["text"] == "*Bob:*\nPosso ajudar?"
    assert "Posso ajudar?" in texts_posted(slack, thread_of(slack))  # mirrored


async def test_a_reply_after_the_window_is_refused_and_goes_nowhere(cloud: CloudHarness) -> None:
    matrix, slack = cloud.frontends["matrix"], cloud.frontends["slack"]
    await cloud.customer(text="Oi")
    wrote_at = cloud.clock.now()
    sent_before = len(cloud.outbound())
    await cloud.clock.advance(DAY + 1)
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "Ainda aí?", name="Bob")
    await cloud.settle()
    closed = _utc(wrote_at + DAY)
    assert reply == Reply(
        f"The customer's 24-hour window closed at {closed}; {ADVICE}", ephemeral=True
    )
    assert len(cloud.outbound()) == sent_before  # nothing to WhatsApp
    assert "Ainda aí?" not in await messages_of(cloud)  # nothing stored
    assert "Ainda aí?" not in texts_posted(slack, thread_of(slack))  # nor mirrored
    assert await cloud.bridge.repos.outbox.count_pending() == 0


async def test_a_reaction_after_the_window_is_refused(cloud: CloudHarness) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi")
    place = thread_of(matrix)
    customer_post = next(
        c
        for c in matrix.posts_in(place.thread_root)  # type: ignore[arg-type]
        if c.args["author"].kind is AuthorKind.CUSTOMER
    )
    await cloud.clock.advance(DAY + 1)
    target = customer_post.args["event"]
    _, reply = await matrix.attendant(place, BOB, Reaction(target, "👍"), name="Bob")
    await cloud.settle()
    assert reply is not None and reply.text.startswith("The customer's 24-hour window closed at")
    assert not [m for m in cloud.outbound() if m["kind"] == "reaction"]


async def test_a_session_on_another_engine_has_no_window(cloud: CloudHarness) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi", session="acme/support")
    await cloud.clock.advance(3 * DAY)
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "Voltei", name="Bob")
    await cloud.settle()
    assert reply is None
    assert cloud.outbound("acme/support")[-1]["text"] == "Voltei"


async def test_a_ticket_the_customer_never_wrote_on_has_no_window(cloud: CloudHarness) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi", session="acme/support")
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!transfer sales", name="Bob")
    assert reply is not None and "transferred to acme/sales" in reply.text
    await cloud.settle()
    _, reply = await matrix.attendant(thread_of(matrix, 2), BOB, "Olá", name="Bob")
    assert reply == Reply(
        "The customer has not written on this ticket, so WhatsApp's 24-hour window is not "
        f"open; your message was not sent. {ADVICE}",
        ephemeral=True,
    )
    await cloud.settle()
    assert cloud.outbound() == []


async def test_a_template_goes_outside_the_window_and_does_not_reopen_it(
    cloud: CloudHarness,
) -> None:
    matrix, slack = cloud.frontends["matrix"], cloud.frontends["slack"]
    await cloud.customer(text="Oi")
    await cloud.clock.advance(2 * DAY)
    place = thread_of(matrix)
    _, listed = await matrix.attendant(place, BOB, "!template", name="Bob")
    assert listed is not None and "order_update (pt_BR, 2 params)" in listed.text
    _, reply = await matrix.attendant(place, BOB, "!template order_update 1234 Maria", name="Bob")
    assert reply == Reply("Template order_update is on its way to the customer of ticket #1.")
    await cloud.settle()
    assert cloud.cloud.templates == [
        {
            "session": "acme/sales",
            "to": CUSTOMER,
            "name": "order_update",
            "language": "pt_BR",
            "params": ("1234", "Maria"),
            "id": "wamid.T1",
        }
    ]
    shown = "[template order_update: 1234, Maria]"
    assert shown in texts_posted(matrix, place)
    assert shown in texts_posted(slack, thread_of(slack))
    row = await cloud.bridge.repos.messages.find_by_wa_id(
        cloud.bridge.session_ids["acme/sales"], "wamid.T1"
    )
    assert row is not None and row.direction == "out" and row.sender == BOB
    ticket = await cloud.bridge.tickets.get(1)
    assert (ticket.status, ticket.assignee) == ("open", BOB)  # a reply like any other
    _, still = await matrix.attendant(place, BOB, "Recebeu?", name="Bob")
    assert still is not None and still.text.startswith("The customer's 24-hour window closed")


async def test_a_template_with_the_wrong_parameters_is_not_sent(cloud: CloudHarness) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi")
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!template order_update 1")
    assert reply is not None and reply.ephemeral
    assert reply.text.startswith("Template order_update takes 2 parameters")
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!template bye")
    assert reply is not None and reply.text.startswith("No template named bye")
    await cloud.settle()
    assert cloud.cloud.templates == []


async def test_whatsapp_refusing_the_window_is_told_in_the_thread(cloud: CloudHarness) -> None:
    matrix, slack = cloud.frontends["matrix"], cloud.frontends["slack"]
    await cloud.customer(text="Oi")
    cloud.cloud.window_closed.add("acme/sales")  # Meta's clock says closed, ours open
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "Posso ajudar?", name="Bob")
    assert reply is None
    await cloud.settle()
    expected = (
        "⚠️ not delivered to the customer: (#131047) Re-engagement message. "
        f"The customer's 24-hour window is closed: {ADVICE}"
    )
    for fe in (matrix, slack):
        assert notices_in(fe, thread_of(fe)).count(expected) == 1
    assert await cloud.bridge.repos.outbox.count_dead() == 1
    rows = await cloud.bridge.repos.messages.list_by_ticket(1)
    assert [r.ack for r in rows if r.content.get("body") == "Posso ajudar?"] == ["failed"]


async def test_a_failed_send_is_told_in_the_thread_once(cloud: CloudHarness) -> None:
    matrix, slack = cloud.frontends["matrix"], cloud.frontends["slack"]
    await cloud.customer(text="Oi")
    await matrix.attendant(thread_of(matrix), BOB, "Seu pedido chegou", name="Bob")
    await cloud.settle()
    sent = cloud.outbound()[-1]
    failure = SendFailedEvent(
        "acme/sales",
        chat=Party(phone=CUSTOMER),
        message_id=sent["id"],
        reason="Message undeliverable",
        code=131026,
    )
    for _ in range(2):  # Meta redelivers statuses
        await cloud.sim.emit(failure)
        await cloud.settle()
    expected = (
        "⚠️ WhatsApp did not deliver this message: Message undeliverable (code 131026)\n"
        "> Seu pedido chegou"
    )
    for fe in (matrix, slack):
        assert notices_in(fe, thread_of(fe)).count(expected) == 1, notices_in(fe, thread_of(fe))
    row = await cloud.bridge.repos.messages.find_by_wa_id(
        cloud.bridge.session_ids["acme/sales"], sent["id"]
    )
    assert row is not None and row.ack == "failed"
    metrics = cloud.bridge.metrics.render().decode()
    assert 'zapbridge_delivery_acks_total{status="failed"} 1.0' in metrics


async def test_a_failure_outside_the_window_gives_the_template_advice(
    cloud: CloudHarness,
) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi")
    await matrix.attendant(thread_of(matrix), BOB, "Olá", name="Bob")
    await cloud.settle()
    await cloud.sim.emit(
        SendFailedEvent(
            "acme/sales",
            chat=Party(phone=CUSTOMER),
            message_id=cloud.outbound()[-1]["id"],
            reason="Re-engagement message",
            code=131047,
        )
    )
    await cloud.settle()
    assert (
        "⚠️ WhatsApp did not deliver this message: Re-engagement message (code 131047). "
        f"{ADVICE}\n> Olá"
    ) in notices_in(matrix, thread_of(matrix))


async def test_a_failure_of_an_unknown_message_is_only_logged(
    cloud: CloudHarness, caplog: pytest.LogCaptureFixture
) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi")
    before = len(matrix.of("notice"))
    with caplog.at_level(logging.INFO, logger="bridge.core.delivery_news"):
        await cloud.sim.emit(
            SendFailedEvent(
                "acme/sales", chat=Party(phone=CUSTOMER), message_id="wamid.NOPE", reason="gone"
            )
        )
        await cloud.settle()
    assert len(matrix.of("notice")) == before
    assert "WhatsApp did not deliver wamid.NOPE, unknown here: gone" in caplog.text
    assert 'status="failed"' not in cloud.bridge.metrics.render().decode()


async def test_status_shows_the_account_facts(cloud: CloudHarness) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi")
    cloud.cloud.facts["acme/sales"] = {"quality_rating": "GREEN", "messaging_limit": "TIER_1K"}
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!status")
    assert reply is not None
    assert reply.text.endswith("\nCloud API: quality rating GREEN, messaging limit TIER_1K")


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def test_a_status_before_the_sends_answer_records_the_same_id(
    cloud: CloudHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Meta's ``sent`` may reach the webhook before the send's own answer: both name
    the same message, once (docs/cloud.md, "Sending twice")."""
    matrix = cloud.frontends["matrix"]
    engine = cloud.cloud
    plain_send = engine.send
    references: list[str | None] = []

    async def report_then_answer(
        key: str, to: str, content: Any, *, quote: Any = None, message_id: str | None = None
    ) -> str:
        await plain_send(key, to, content, quote=quote, message_id=message_id)
        references.append(message_id)
        status = ReceiptEvent(
            key,
            chat=Party(phone=to),
            ids=("wamid.EARLY",),
            status=AckStatus.DELIVERED,  # its receipt is kept: the message is known by then
            timestamp=cloud.clock.now(),
            reference=message_id,
        )
        await engine.emit(status)  # the webhook's status, before this answer
        return "wamid.EARLY"

    await cloud.customer(text="Oi")
    monkeypatch.setattr(engine, "send", report_then_answer)
    await matrix.attendant(thread_of(matrix), BOB, "Um momento", name="Bob")
    await cloud.settle()
    (reference,) = references
    assert reference is not None and reference.startswith("zb1:")
    session_id = cloud.bridge.session_ids["acme/sales"]
    row = await cloud.bridge.repos.messages.find_by_wa_id(session_id, "wamid.EARLY")
    assert row is not None and row.content.get("body") == "Um momento"
    assert row.ack == "delivered"
    assert await cloud.bridge.repos.outbox.count_pending() == 0
    assert [m for m in cloud.outbound() if m.get("text") == "*Bob:*\nUm momento"] != []
