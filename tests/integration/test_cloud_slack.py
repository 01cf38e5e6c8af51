"""A whole bridge whose ``acme/sales`` runs on the Cloud API engine, with the Slack
frontend: the strict fake Graph API (tests/fakes/graph_api.py) on one side, the
strict Slack fake on the other, and Meta's webhook posted, signed, to the bridge's
own HTTP server. ``acme/support`` stays on the sim: both engines run side by side
(bridge/whatsapp/engine_router.py). On both database engines."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.config.schema import CloudConfig, CloudTemplate
from bridge.db.database import Database
from bridge.whatsapp.cloud.engine import CloudEngine
from bridge.whatsapp.sim import SimEngine
from tests.fakes.graph_api import GraphApiFake
from tests.fakes.slack import SlackFake
from tests.harness.cloud import with_cloud
from tests.harness.core import until
from tests.harness.slack import BOB, SALES, SlackHarness

NUMBER_ID = "1000001"
SECRET = "meta-app-secret"
VERIFY = "meta-verify-token"
CUSTOMER_DIGITS = "5511987654321"
DAY = 24 * 60 * 60


@pytest.fixture
async def graph() -> AsyncIterator[GraphApiFake]:
    fake = await GraphApiFake(templates={"hello": ("en_US", 0)}).start()
    yield fake
    await fake.close()


@pytest.fixture
async def slack() -> AsyncIterator[SlackFake]:
    async with SlackFake() as fake:
        yield fake


@pytest.fixture
async def h(
    tmp_path: Path, db: Database, slack: SlackFake, graph: GraphApiFake
) -> AsyncIterator[SlackHarness]:
    harness = SlackHarness(tmp_path, db, slack)
    cloud = CloudConfig(
        phone_number_id=NUMBER_ID,
        access_token=graph.token,
        app_secret=SECRET,
        verify_token=VERIFY,
        base_url=graph.base_url,
        templates=(CloudTemplate("hello"),),
    )
    harness.config = with_cloud(harness.config, "acme/sales", cloud)
    harness.bridge = Bridge(
        harness.config,
        clock=harness.clock,
        frontends=[harness.slack],
        database=db,
        rng=harness.bridge.rng,
    )
    await harness.start()
    yield harness
    await harness.stop()


def webhook_body(value: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100001", "phone_number_id": NUMBER_ID},
        **value,
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(body).encode()


async def post_webhook(h: SlackHarness, raw: bytes, *, secret: str = SECRET) -> int:
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    url = f"http://127.0.0.1:{h.port}/cloud/webhook"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=raw, headers={"X-Hub-Signature-256": signature}) as response,
    ):
        return response.status


async def customer_writes(h: SlackHarness, text: str, *, wamid: str) -> None:
    at = str(int(h.clock.now()))
    raw = webhook_body(
        {
            "contacts": [{"profile": {"name": "Maria"}, "wa_id": CUSTOMER_DIGITS}],
            "messages": [
                {
                    "from": CUSTOMER_DIGITS,
                    "id": wamid,
                    "timestamp": at,
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        }
    )
    assert await post_webhook(h, raw) == 200
    await h.settle()


async def attendant_says(h: SlackHarness, text: str) -> None:
    root = h.thread_root()
    await h.event(h.fake.user_message(SALES, BOB, text, thread_ts=root))


def thread_texts(h: SlackHarness) -> list[str]:
    return [str(m.get("text", "")) for m in h.replies()]


async def test_both_engines_run_side_by_side_and_cloud_connects_by_its_token(
    h: SlackHarness, graph: GraphApiFake
) -> None:
    assert isinstance(h.bridge.engines["cloud"], CloudEngine)
    assert isinstance(h.bridge.engines["sim"], SimEngine)
    statuses = {k: str(v) for k, v in h.bridge.sessions.statuses().items()}
    assert statuses == {"acme/sales": "CONNECTED", "acme/support": "CONNECTED"}
    assert graph.calls_to("node"), "the token was checked against the Graph API"


async def test_a_customer_message_by_webhook_reaches_the_thread_and_the_reply_reaches_meta(
    h: SlackHarness, graph: GraphApiFake
) -> None:
    await customer_writes(h, "Olá, meu pedido?", wamid="wamid.IN1")
    assert [m["text"] for m in h.customer_posts()] == ["Olá, meu pedido?"]
    await attendant_says(h, "Chega amanhã.")
    await until(lambda: graph.sent("text"), what="the reply sent to the Graph API")
    (sent,) = [m for m in graph.sent("text") if "Chega amanhã." in m["text"]["body"]]
    assert sent["to"] in (CUSTOMER_DIGITS, "+" + CUSTOMER_DIGITS)
    # the greeting went the same way, before the reply
    bodies = [m["text"]["body"] for m in graph.sent("text")]
    assert bodies[0] == "Olá! Um atendente já vai falar com você."


async def test_a_redelivered_webhook_makes_no_second_message(h: SlackHarness) -> None:
    await customer_writes(h, "uma vez", wamid="wamid.SAME")
    await customer_writes(h, "uma vez", wamid="wamid.SAME")  # Meta redelivers
    assert [m["text"] for m in h.customer_posts()] == ["uma vez"]


async def test_a_badly_signed_webhook_is_refused_and_nothing_reaches_the_thread(
    h: SlackHarness,
) -> None:
    raw = webhook_body(
        {"messages": [{"from": CUSTOMER_DIGITS, "id": "wamid.X", "timestamp": "1",
                       "type": "text", "text": {"body": "forjado"}}]}
    )  # fmt: skip
    assert await post_webhook(h, raw, secret="not-the-secret") == 401
    await h.settle()
    assert not [m for m in h.fake.messages(SALES) if "forjado" in str(m.get("text"))]


async def test_a_failed_status_shows_in_the_thread_and_the_window_refuses_late_replies(
    h: SlackHarness, graph: GraphApiFake
) -> None:
    await customer_writes(h, "oi", wamid="wamid.IN2")
    await attendant_says(h, "Olá!")
    await until(
        lambda: any("Olá!" in m["text"]["body"] for m in graph.sent("text")), what="reply sent"
    )
    (reply,) = [m for m in graph.messages if m.get("text", {}).get("body", "").endswith("Olá!")]
    wamid = graph.calls_to("messages")[-1].answer["messages"][0]["id"]
    assert reply["to"]
    status = {
        "id": wamid,
        "status": "failed",
        "timestamp": str(int(h.clock.now())),
        "recipient_id": CUSTOMER_DIGITS,
        "errors": [{"code": 131026, "title": "Message undeliverable"}],
    }
    assert await post_webhook(h, webhook_body({"statuses": [status]})) == 200
    await h.settle()
    assert any("Message undeliverable" in t and "131026" in t for t in thread_texts(h))

    sent_before = len(graph.messages)
    await h.run_for(DAY + 60, step=3600)
    await attendant_says(h, "Ainda aí?")
    assert len(graph.messages) == sent_before, "nothing free-form after the 24-hour window"
    await attendant_says(h, "!template hello")
    await until(lambda: graph.sent("template"), what="the template sent")
    (template,) = graph.sent("template")
    assert template["template"]["name"] == "hello"


# --- sending twice (docs/cloud.md, "Sending twice") ---------------------------------


async def post_status(h: SlackHarness, item: dict[str, Any]) -> None:
    assert await post_webhook(h, webhook_body({"statuses": [item]})) == 200
    await h.settle()


def taken(graph: GraphApiFake, text: str) -> list[int]:
    """The indexes of the messages Meta took whose text ends with ``text``."""
    return [
        index
        for index, body in enumerate(graph.messages)
        if body.get("text", {}).get("body", "").endswith(text)
    ]


async def reply_whose_answer_is_lost(
    h: SlackHarness, graph: GraphApiFake, text: str, *, status: int = 500
) -> int:
    """The attendant's ``text`` taken by Meta, but its answer lost (``status`` 500, or
    0: the connection dropped); the index of the message Meta took."""
    await customer_writes(h, "oi", wamid="wamid.IN3")
    graph.fail_next(status, route="messages", applied=True)
    await attendant_says(h, text)
    await until(lambda: taken(graph, text), what="the reply taken by Meta")
    await h.settle()
    assert await h.bridge.repos.outbox.count_pending() == 1, "the delivery waits for its retry"
    (index,) = taken(graph, text)
    return index


async def reply_row(h: SlackHarness, text: str) -> Any:
    rows = await h.bridge.repos.messages.list_by_ticket(1)
    (row,) = [r for r in rows if str(r.content.get("body")) == text]
    return row


@pytest.mark.parametrize("status", [500, 0], ids=["answered 500", "connection dropped"])
async def test_a_status_after_a_lost_answer_prevents_the_second_send(
    h: SlackHarness, graph: GraphApiFake, status: int
) -> None:
    index = await reply_whose_answer_is_lost(h, graph, "Chega amanhã.", status=status)
    sent = graph.status_of(index, "sent", timestamp=h.clock.now())
    assert sent["biz_opaque_callback_data"].startswith("zb1:")
    await post_status(h, sent)
    assert (await reply_row(h, "Chega amanhã.")).wa_id == graph.message_ids[index]
    await h.run_for(120, step=5)  # the outbox's retry comes, and finds it sent
    assert taken(graph, "Chega amanhã.") == [index], "exactly one message at Meta"
    assert await h.bridge.repos.outbox.count_pending() == 0
    assert await h.bridge.repos.outbox.count_dead() == 0
    await post_status(h, graph.status_of(index, "delivered", timestamp=h.clock.now()))
    assert (await reply_row(h, "Chega amanhã.")).ack == "delivered"  # receipts as usual


async def test_without_a_status_the_retry_sends_it_again(
    h: SlackHarness, graph: GraphApiFake
) -> None:
    first = await reply_whose_answer_is_lost(h, graph, "Chega amanhã.")
    await h.run_for(120, step=5)
    first_again, second = taken(graph, "Chega amanhã.")  # what remains possible
    assert first_again == first
    row = await reply_row(h, "Chega amanhã.")
    assert row.wa_id == graph.message_ids[second]
    # the first one's late status changes nothing: the message keeps the id it was sent with
    await post_status(h, graph.status_of(first, "sent", timestamp=h.clock.now()))
    assert (await reply_row(h, "Chega amanhã.")).wa_id == graph.message_ids[second]


async def test_a_status_after_the_answer_is_a_receipt_as_usual(
    h: SlackHarness, graph: GraphApiFake
) -> None:
    await customer_writes(h, "oi", wamid="wamid.IN4")
    await attendant_says(h, "Pronto.")
    await until(lambda: taken(graph, "Pronto."), what="the reply sent")
    await h.settle()
    (index,) = taken(graph, "Pronto.")
    assert (await reply_row(h, "Pronto.")).wa_id == graph.message_ids[index]
    await post_status(h, graph.status_of(index, "read", timestamp=h.clock.now()))
    row = await reply_row(h, "Pronto.")
    assert (row.wa_id, row.ack) == (graph.message_ids[index], "read")


async def test_a_reference_not_ours_attaches_nothing(h: SlackHarness, graph: GraphApiFake) -> None:
    index = await reply_whose_answer_is_lost(h, graph, "Chega amanhã.")
    sent = graph.status_of(index, "sent", timestamp=h.clock.now())
    prefix, row_id, derived = sent["biz_opaque_callback_data"].split(":")
    forged = [
        f"{prefix}:{row_id}:3EB0{'0' * 18}",  # the right row, not its derived id
        f"{prefix}:{int(row_id) - 1}:{derived}",  # another row
        "an id of some other software",
    ]
    for reference in forged:
        await post_status(h, {**sent, "biz_opaque_callback_data": reference})
    assert (await reply_row(h, "Chega amanhã.")).wa_id is None
    await h.run_for(120, step=5)
    assert len(taken(graph, "Chega amanhã.")) == 2
