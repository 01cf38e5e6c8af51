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
