"""The /sim HTTP API (DESIGN section 8) over aiohttp's test client."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.clock import FakeClock
from bridge.errors import DatabaseError, EngineError
from bridge.model import Media, MediaKind, Text
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    DisconnectedEvent,
    EngineEvent,
    LoggedOutEvent,
    MessageEvent,
    PairSuccessEvent,
    QRCodeEvent,
    ReceiptEvent,
    SessionSpec,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.sim import SimEngine
from bridge.whatsapp.sim_http import sim_routes

KEY = "acme/sales"
CUSTOMER = "+5511987654321"
SESSIONS = ("acme/sales", "acme/support", "beta/support")


class FakeSessions:
    """Just enough of a session manager: statuses from events, keys from URLs."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self.statuses: dict[str, str] = dict.fromkeys(SESSIONS, "LOGGED_OUT")
        self.refuse_messages: str | None = None  # the bridge cannot persist messages

    async def handle(self, event: EngineEvent) -> None:
        if self.refuse_messages and isinstance(event, MessageEvent):
            raise DatabaseError(self.refuse_messages)
        self.events.append(event)
        status = {
            QRCodeEvent: "QRCODE",
            ConnectedEvent: "CONNECTED",
            DisconnectedEvent: "DISCONNECTED",
            LoggedOutEvent: "LOGGED_OUT",
            TemporaryBanEvent: "BANNED",
            StreamReplacedEvent: "STOPPED",
            ClientOutdatedEvent: "OUTDATED",
        }.get(type(event))
        if status is not None:
            self.statuses[event.session] = status

    def status_of(self, key: str) -> str | None:
        return self.statuses.get(key)

    def resolve(self, segment: str) -> str | None:
        if segment in self.statuses:
            return segment
        matches = [k for k in self.statuses if k.split("/")[1] == segment]
        return matches[0] if len(matches) == 1 else None


class Harness:
    def __init__(self, client: TestClient, sim: SimEngine, sessions: FakeSessions) -> None:
        self.client, self.sim, self.sessions = client, sim, sessions

    async def call(
        self, method: str, path: str, body: Any = None, *, status: int = 200
    ) -> dict[str, Any]:
        resp = await self.client.request(method, path, json=body)
        assert resp.status == status, await resp.text()
        assert resp.content_type == "application/json"
        data: dict[str, Any] = await resp.json()
        return data

    async def connect(self, key: str = KEY) -> None:
        company, name = key.split("/")
        await self.sim.login(SessionSpec(key, company, name, device_dir=Path("unused")))
        await self.sim.scan(key, "+5511900000042")


AiohttpClient = Callable[[web.Application], Awaitable[TestClient]]


@pytest.fixture
async def harness(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[Harness]:
    sessions = FakeSessions()
    sim = SimEngine(sessions.handle, data_dir=tmp_path, clock=FakeClock(), seed=3)
    app = web.Application()
    app.add_routes(sim_routes(sim, status_of=sessions.status_of, resolve=sessions.resolve))
    yield Harness(await aiohttp_client(app), sim, sessions)
    await sim.close()


SALES_FORMS = ["/sim/sessions/acme%2Fsales", "/sim/sessions/sales"]


@pytest.mark.parametrize("base", SALES_FORMS)
async def test_get_session_before_and_during_login(harness: Harness, base: str) -> None:
    assert await harness.call("GET", base) == {
        "status": "LOGGED_OUT",
        "phone": None,
        "qr": None,
        "pair_code": None,
    }
    await harness.sim.login(SessionSpec(KEY, "acme", "sales", device_dir=Path("unused")))
    answer = await harness.call("GET", base)
    assert answer["status"] == "QRCODE"
    assert answer["qr"] == harness.sim.current_qr(KEY)
    assert answer["qr"].startswith("2@")


@pytest.mark.parametrize("base", SALES_FORMS)
async def test_scan_completes_a_pending_login(harness: Harness, base: str) -> None:
    await harness.sim.login(SessionSpec(KEY, "acme", "sales", device_dir=Path("unused")))
    answer = await harness.call("POST", f"{base}/scan", {"phone": "+5511900000001"})
    assert answer == {"status": "CONNECTED", "phone": "+5511900000001"}
    assert [type(e) for e in harness.sessions.events[-2:]] == [PairSuccessEvent, ConnectedEvent]
    got = await harness.call("GET", base)
    assert got == {"status": "CONNECTED", "phone": "+5511900000001", "qr": None, "pair_code": None}


async def test_scan_without_pending_login_is_400(harness: Harness) -> None:
    answer = await harness.call(
        "POST", "/sim/sessions/sales/scan", {"phone": "+5511900000001"}, status=400
    )
    assert "no pending login" in answer["error"]
    answer = await harness.call("POST", "/sim/sessions/sales/scan", {}, status=400)
    assert answer == {"error": "phone is required (a non-empty string)"}


@pytest.mark.parametrize("base", SALES_FORMS)
async def test_inbound_reaches_the_handler(harness: Harness, base: str) -> None:
    await harness.connect()
    body = {"from": CUSTOMER, "push_name": "Maria", "kind": "text", "text": "Olá"}
    answer = await harness.call("POST", f"{base}/inbound", body)
    [event] = [e for e in harness.sessions.events if isinstance(e, MessageEvent)]
    assert answer == {"id": event.message.wa_id}
    assert event.message.content == Text("Olá")


async def test_inbound_the_bridge_cannot_persist_is_503(harness: Harness) -> None:
    await harness.connect()
    harness.sessions.refuse_messages = "cannot connect to postgres://zap@db/zap: refused"
    body = {"from": CUSTOMER, "push_name": "Maria", "kind": "text", "text": "Olá"}
    answer = await harness.call("POST", "/sim/sessions/sales/inbound", body, status=503)
    assert answer == {"error": "cannot connect to postgres://zap@db/zap: refused"}
    harness.sessions.refuse_messages = None  # the phone sends it again: it arrives
    await harness.call("POST", "/sim/sessions/sales/inbound", body)
    assert [e for e in harness.sessions.events if isinstance(e, MessageEvent)]


async def test_inbound_media(harness: Harness) -> None:
    await harness.connect()
    data = b"%PDF-1.4 fake"
    body = {
        "from": CUSTOMER,
        "kind": "document",
        "media": {
            "data_b64": base64.b64encode(data).decode(),
            "mimetype": "application/pdf",
            "filename": "boleto.pdf",
        },
    }
    await harness.call("POST", "/sim/sessions/acme%2Fsales/inbound", body)
    [event] = [e for e in harness.sessions.events if isinstance(e, MessageEvent)]
    assert event.message.content.data == data  # type: ignore[union-attr]


async def test_inbound_validation_is_400(harness: Harness) -> None:
    await harness.connect()
    body = {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "%%%"}}
    answer = await harness.call("POST", "/sim/sessions/sales/inbound", body, status=400)
    assert answer == {"error": "media.data_b64 is not valid base64"}


async def test_inbound_on_a_session_that_is_not_connected_is_400(harness: Harness) -> None:
    body = {"from": CUSTOMER, "kind": "text", "text": "hi"}
    answer = await harness.call("POST", "/sim/sessions/sales/inbound", body, status=400)
    assert answer == {"error": "session acme/sales is not connected (status LOGGED_OUT)"}


async def test_inbound_uses_the_session_manager_status(harness: Harness) -> None:
    await harness.connect()
    harness.sessions.statuses[KEY] = "OPENING"
    body = {"from": CUSTOMER, "kind": "text", "text": "hi"}
    answer = await harness.call("POST", "/sim/sessions/sales/inbound", body, status=400)
    assert answer == {"error": "session acme/sales is not connected (status OPENING)"}


@pytest.mark.parametrize("base", SALES_FORMS)
async def test_outbound_lists_what_the_bridge_sent(harness: Harness, base: str) -> None:
    assert await harness.call("GET", f"{base}/outbound") == {"messages": []}
    await harness.connect()
    first = await harness.sim.send(KEY, CUSTOMER, Text("*Bob:*\nOlá"))
    await harness.sim.revoke(KEY, CUSTOMER, target=first)
    answer = await harness.call("GET", f"{base}/outbound")
    assert [(m["kind"], m["to"]) for m in answer["messages"]] == [
        ("text", CUSTOMER),
        ("revoke", CUSTOMER),
    ]
    assert answer["messages"][0]["text"] == "*Bob:*\nOlá"
    assert answer["messages"][0]["id"] == first
    assert answer["messages"][1]["target"] == first
    assert isinstance(answer["messages"][0]["timestamp"], float)


async def test_outbound_media_gives_hash_and_size(harness: Harness) -> None:
    await harness.connect()
    data = b"\x89PNG..."
    media = Media(media_kind=MediaKind.IMAGE, mimetype="image/png", data=data, caption="veja")
    await harness.sim.send(KEY, CUSTOMER, media)
    [entry] = (await harness.call("GET", "/sim/sessions/sales/outbound"))["messages"]
    assert entry["kind"] == "image"
    assert entry["media"] == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "mimetype": "image/png",
        "filename": None,
        "caption": "veja",
    }


@pytest.mark.parametrize("base", SALES_FORMS)
@pytest.mark.parametrize("status", ["delivered", "read"])
async def test_receipt(harness: Harness, base: str, status: str) -> None:
    await harness.connect()
    wa_id = await harness.sim.send(KEY, CUSTOMER, Text("hi"))
    answer = await harness.call("POST", f"{base}/receipt", {"id": wa_id, "status": status})
    assert answer == {"id": wa_id, "status": status}
    [event] = [e for e in harness.sessions.events if isinstance(e, ReceiptEvent)]
    assert event.ids == (wa_id,) and event.status.value == status


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"id": "3EB0NOPE", "status": "read"}, "no message '3EB0NOPE'"),
        ({"status": "read"}, "id is required"),
        ({"id": "X", "status": "played"}, "status must be one of delivered, read"),
    ],
)
async def test_bad_receipt_is_400(harness: Harness, body: dict[str, Any], reason: str) -> None:
    await harness.connect()
    if body.get("status") == "played":
        body["id"] = await harness.sim.send(KEY, CUSTOMER, Text("hi"))
    answer = await harness.call("POST", "/sim/sessions/sales/receipt", body, status=400)
    assert reason in answer["error"]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("disconnect", "DISCONNECTED"),
        ("logout", "LOGGED_OUT"),
        ("ban", "BANNED"),
        ("outdated", "OUTDATED"),
        ("stream_replaced", "STOPPED"),
    ],
)
@pytest.mark.parametrize("base", SALES_FORMS)
async def test_fault(harness: Harness, base: str, kind: str, status: str) -> None:
    await harness.connect()
    answer = await harness.call("POST", f"{base}/fault", {"kind": kind, "seconds": 30})
    assert answer == {"kind": kind, "seconds": 30, "status": status}
    assert harness.sessions.statuses[KEY] == status


async def test_fault_seconds_default_to_zero(harness: Harness) -> None:
    await harness.connect()
    await harness.call("POST", "/sim/sessions/sales/fault", {"kind": "disconnect"})
    await harness.sim.connect(SessionSpec(KEY, "acme", "sales", device_dir=Path("unused")))
    assert harness.sessions.statuses[KEY] == "CONNECTED"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "meteor"}, "kind must be one of disconnect, logout, ban, outdated"),
        ({"kind": "ban", "seconds": -5}, "seconds must be a non-negative number"),
        ({"seconds": 5}, "kind is required"),
    ],
)
async def test_bad_fault_is_400(harness: Harness, body: dict[str, Any], reason: str) -> None:
    answer = await harness.call("POST", "/sim/sessions/sales/fault", body, status=400)
    assert reason in answer["error"]


async def test_fail_sends_extension(harness: Harness) -> None:
    await harness.connect()
    answer = await harness.call("POST", "/sim/sessions/sales/fail_sends", {"count": 1})
    assert answer == {"count": 1, "error": "sim: send failed"}
    with pytest.raises(EngineError):
        await harness.sim.send(KEY, CUSTOMER, Text("hi"))
    await harness.call("POST", "/sim/sessions/sales/fail_sends", {"count": "x"}, status=400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sim/sessions/nobody"),
        ("GET", "/sim/sessions/support"),  # two companies have it: ambiguous
        ("GET", "/sim/sessions/acme%2Fnobody"),
        ("GET", "/sim/sessions/nobody/outbound"),
        ("POST", "/sim/sessions/nobody/scan"),
        ("POST", "/sim/sessions/nobody/inbound"),
        ("POST", "/sim/sessions/nobody/receipt"),
        ("POST", "/sim/sessions/nobody/fault"),
    ],
)
async def test_unknown_session_is_404(harness: Harness, method: str, path: str) -> None:
    answer = await harness.call(method, path, {}, status=404)
    assert "unknown session" in answer["error"]


async def test_unambiguous_names_in_other_companies_resolve(harness: Harness) -> None:
    answer = await harness.call("GET", "/sim/sessions/beta%2Fsupport")
    assert answer["status"] == "LOGGED_OUT"


async def test_raw_slash_gets_a_helpful_404(harness: Harness) -> None:
    answer = await harness.call("GET", "/sim/sessions/acme/sales", status=404)
    assert "acme%2Fsales" not in answer["error"]  # the hint is generic
    assert "URL-encoded" in answer["error"]
    await harness.call("POST", "/sim/sessions/acme/sales/scan", {}, status=404)


@pytest.mark.parametrize("endpoint", ["scan", "inbound", "receipt", "fault"])
async def test_non_json_body_is_400(harness: Harness, endpoint: str) -> None:
    for data in (b"not json", b"", b"\xff\xfe"):
        resp = await harness.client.post(f"/sim/sessions/sales/{endpoint}", data=data)
        assert resp.status == 400
        assert (await resp.json())["error"].startswith("body is not valid JSON")
    resp = await harness.client.post(f"/sim/sessions/sales/{endpoint}", json=[1, 2])
    assert resp.status == 400
    assert await resp.json() == {"error": "body must be a JSON object"}
