"""A whole bridge whose ``acme/sales`` runs on the Cloud API engine, with the Matrix
frontend on a real Synapse (tests/harness/synapse.py): the strict fake Graph API
(tests/fakes/graph_api.py) stands for Meta, and Meta's webhook is posted, signed, to
the bridge's own HTTP server. ``acme/support`` stays on the sim. On both database
engines.

What an attendant sees in the ticket's thread (docs/cloud.md): the customer's text
and image posted by her ghost, the reply reaching Meta, a ``failed`` status as a
notice, ``read`` as the ghost's read receipt, and the 24-hour window refusing a late
reply while ``!template`` goes. What an admin sees of the session: the token alert
saying what to do, ``!login`` checking the token again, ``!logout``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bridge.app import Bridge
from bridge.config.schema import CloudConfig, CloudTemplate
from bridge.db import migrate
from bridge.db.database import Database
from bridge.matrix.frontend import MatrixFrontend
from bridge.whatsapp.cloud.engine import TOKEN_REFUSED_ACTION
from tests.conftest import ENGINES, open_test_database
from tests.fakes.graph_api import GraphApiFake
from tests.harness.cloud import with_cloud
from tests.harness.synapse import Homeserver, MatrixBridge, MatrixUser, alice, bob, synapse, until
from tests.integration.test_matrix_e2e import in_thread, text, threaded, wait_events

__all__ = ["alice", "bob", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

SESSION = "acme/sales"
NUMBER_ID = "1000001"
SECRET = "meta-app-secret"
VERIFY = "meta-verify-token"
CUSTOMER_DIGITS = "5511987654321"
GHOST = f"@wa_{CUSTOMER_DIGITS}:localhost"
BOT = "@whatsappbot:localhost"
HOUR = 60 * 60
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

Event = dict[str, Any]


class CloudMatrixBridge(MatrixBridge):
    """The Synapse harness's bridge with ``acme/sales`` on the Cloud API."""

    def __init__(self, hs: Homeserver, directory: Path, db: Database, graph: GraphApiFake):
        super().__init__(hs, directory, db)
        cloud = CloudConfig(
            phone_number_id=NUMBER_ID,
            access_token=graph.token,
            app_secret=SECRET,
            verify_token=VERIFY,
            base_url=graph.base_url,
            templates=(CloudTemplate("hello"),),
        )
        self.config = with_cloud(self.config, SESSION, cloud)
        self.frontend = MatrixFrontend(self.config)
        self.bridge = Bridge(
            self.config,
            clock=self.clock,
            frontends=[self.frontend],
            database=db,
            rng=self.bridge.rng,
        )

    async def post_webhook(self, value: Event) -> None:
        """One change of Meta's ``messages`` field, signed with the app secret."""
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100001", "phone_number_id": NUMBER_ID},
            **value,
        }
        body = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
        }
        raw = json.dumps(body).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        url = f"http://127.0.0.1:{self.config.http.port}/cloud/webhook"
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=raw, headers={"X-Hub-Signature-256": signature}) as response,
        ):
            assert response.status == 200, await response.text()

    async def customer_sends(self, kind: str, wamid: str, fields: Event) -> None:
        message = {
            "from": CUSTOMER_DIGITS,
            "id": wamid,
            "timestamp": str(int(self.clock.now())),
            "type": kind,
            kind: fields,
        }
        contacts = [{"profile": {"name": "Maria"}, "wa_id": CUSTOMER_DIGITS}]
        await self.post_webhook({"contacts": contacts, "messages": [message]})

    async def status(self, wamid: str, status: str, **extra: Any) -> None:
        at = str(int(self.clock.now()))
        entry = {"id": wamid, "status": status, "timestamp": at, "recipient_id": CUSTOMER_DIGITS}
        await self.post_webhook({"statuses": [{**entry, **extra}]})

    def session_status(self) -> str:
        return str(self.bridge.sessions.statuses()[SESSION])


@pytest_asyncio.fixture(loop_scope="session")
async def graph() -> AsyncIterator[GraphApiFake]:
    fake = await GraphApiFake(templates={"hello": ("en_US", 0)}).start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture(loop_scope="session", params=ENGINES)
async def bridge(
    request: pytest.FixtureRequest, synapse: Homeserver, tmp_path: Path, graph: GraphApiFake
) -> AsyncIterator[CloudMatrixBridge]:
    """A bridge of this test on the session's Synapse, on SQLite and on PostgreSQL."""
    async with open_test_database(request.param, tmp_path) as db:
        await migrate(db)
        harness = CloudMatrixBridge(synapse, tmp_path / "bridge", db, graph)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def sent_to_meta(bridge: CloudMatrixBridge, graph: GraphApiFake, body: str) -> str:
    """The wamid Meta gave the text ``body`` ends with, once the bridge sent it."""

    def found() -> str | None:
        for call in graph.calls_to("messages"):
            sent = call.json or {}
            if str(sent.get("text", {}).get("body", "")).endswith(body) and call.answer:
                return str(call.answer["messages"][0]["id"])
        return None

    return await until(found, what=f"{body!r} sent to the Graph API", clock=bridge.clock)


async def bot_says(bridge: CloudMatrixBridge, user: MatrixUser, room: str, *words: str) -> Event:
    [event] = await wait_events(
        user,
        room,
        lambda e: e["sender"] == BOT and all(w in e["content"].get("body", "") for w in words),
        what=f"the bot saying {words}",
        bridge=bridge,
    )
    return event


# --- the ticket's thread ------------------------------------------------------------------


async def test_a_cloud_ticket_on_matrix_both_ways_with_statuses_and_the_window(
    bridge: CloudMatrixBridge, graph: GraphApiFake, bob: MatrixUser
) -> None:
    assert bridge.session_status() == "CONNECTED" and graph.calls_to("node")
    await bridge.customer_sends("text", "wamid.IN1", {"body": "Olá, meu pedido?"})
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    await wait_events(
        bob,
        room,
        lambda e: (
            in_thread(root)(e)
            and e["sender"] == GHOST
            and e["content"].get("body") == "Olá, meu pedido?"
        ),
        what="the customer's text from her ghost",
        bridge=bridge,
    )

    # her image: Meta holds the bytes, the webhook names them by id
    media_id = graph.add_media(PNG, "image/png")
    sha = hashlib.sha256(PNG).hexdigest()
    image = {"id": media_id, "mime_type": "image/png", "sha256": sha, "caption": "a nota"}
    await bridge.customer_sends("image", "wamid.IN2", image)
    [picture] = await wait_events(
        bob,
        room,
        lambda e: (
            in_thread(root)(e) and e["sender"] == GHOST and e["content"].get("msgtype") == "m.image"
        ),
        what="the customer's image",
        bridge=bridge,
    )
    assert await bob.download(picture["content"]["url"]) == PNG
    assert picture["content"]["info"]["mimetype"] == "image/png"

    # bob's reply reaches Meta; Meta's statuses come back
    mine = await bob.send(room, threaded(text("Chega amanhã."), root))
    delivered = await sent_to_meta(bridge, graph, "Chega amanhã.")
    await bridge.status(delivered, "read")

    async def ghost_read() -> bool:
        data = await bob.request("GET", "/_matrix/client/v3/sync?timeout=0")
        ephemeral = data["rooms"]["join"].get(room, {}).get("ephemeral", {}).get("events", [])
        receipts = [e["content"] for e in ephemeral if e["type"] == "m.receipt"]
        return any(GHOST in r.get(mine, {}).get("m.read", {}) for r in receipts)

    await until(ghost_read, what="the ghost's read receipt", clock=bridge.clock)

    await bob.send(room, threaded(text("Segue o código."), root))
    lost = await sent_to_meta(bridge, graph, "Segue o código.")
    error = {"code": 131026, "title": "Message undeliverable"}
    await bridge.status(lost, "failed", errors=[error])
    notice = await bot_says(bridge, bob, room, "Message undeliverable", "131026")
    assert in_thread(root)(notice) and "Segue o código." in notice["content"]["body"]

    # a day later the window is closed: a free-form reply stays here, a template goes
    for _ in range(25):
        await bridge.clock.advance(HOUR)
    texts_before = len(graph.sent("text"))
    await bob.send(room, threaded(text("Ainda aí?"), root))
    refusal = await bot_says(bridge, bob, room, "24-hour window closed")
    assert in_thread(root)(refusal) and "!template" in refusal["content"]["body"]
    await bob.send(room, threaded(text("!template hello"), root))
    await until(lambda: graph.sent("template"), what="the template sent", clock=bridge.clock)
    (template,) = graph.sent("template")
    assert template["template"]["name"] == "hello"
    assert template["to"].lstrip("+") == CUSTOMER_DIGITS
    assert len(graph.sent("text")) == texts_before, "nothing free-form after the window"


# --- the session, as an admin sees it -------------------------------------------------------


async def test_a_refused_token_is_alerted_with_what_to_do_and_login_checks_it_again(
    bridge: CloudMatrixBridge, graph: GraphApiFake, alice: MatrixUser
) -> None:
    ops = await bridge.room("ops", session=None)
    control = await bridge.room("control")
    await alice.join(ops)
    await alice.join(control)

    # Meta refuses the token at the next periodic check
    graph.fail_next(401, 190, message="Error validating access token", route="node")
    await bridge.clock.advance(301)
    await until(lambda: bridge.session_status() == "LOGGED_OUT", what="LOGGED_OUT")
    alert = await bot_says(bridge, alice, ops, "🛑 acme/sales LOGGED_OUT")
    assert "access token expired or was revoked" in alert["content"]["body"]
    assert TOKEN_REFUSED_ACTION in alert["content"]["body"]
    assert "phone unlinked" not in alert["content"]["body"]

    # !login on the Cloud API: no QR code; Meta takes the token again
    await alice.send(control, text("!login"))
    answer = await bot_says(bridge, alice, control, "no QR code", "Meta accepts the token")
    assert "CONNECTED as +15550100001" in answer["content"]["body"]
    assert bridge.session_status() == "CONNECTED"
    assert not [
        e for e in await alice.messages(control) if e["content"].get("msgtype") == "m.image"
    ]

    await alice.send(control, text("!login phone +5511900000001"))
    await bot_says(bridge, alice, control, "Type !login alone to check the token")

    await alice.send(control, text("!logout"))
    await bot_says(bridge, alice, control, "no longer uses its Cloud API number")
    assert bridge.session_status() == "LOGGED_OUT"
    checks = len(graph.calls_to("node"))
    await bridge.clock.advance(3 * 301)
    assert len(graph.calls_to("node")) == checks, "a logged-out session checks nothing"

    graph.revoke_token()
    await alice.send(control, text("!login"))
    await bot_says(bridge, alice, control, "Meta refuses the token (LOGGED_OUT)", "restart")
    assert bridge.session_status() == "LOGGED_OUT"
