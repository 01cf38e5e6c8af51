"""The /sim HTTP API (docs/sim.md) over aiohttp's test client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.clock import FakeClock
from bridge.errors import DatabaseError, EngineError
from bridge.http_input import SERVER_OPTIONS
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
from bridge.whatsapp.sim_http import SMALL_BODY_BYTES, inbound_body_limit, sim_routes

KEY = "acme/sales"
CUSTOMER = "+5511987654321"
SESSIONS = ("acme/sales", "acme/support", "beta/support")
MEDIA_BYTES = 30_000


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


AiohttpClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def harness(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[Harness]:
    sessions = FakeSessions()
    sim = SimEngine(sessions.handle, data_dir=tmp_path, clock=FakeClock(), seed=3)
    app = web.Application()
    routes = sim_routes(
        sim,
        status_of=sessions.status_of,
        resolve=sessions.resolve,
        media_bytes=MEDIA_BYTES,
        body_seconds=0.5,
    )
    app.add_routes(routes)
    server = TestServer(app)  # with the options of the bridge's own servers
    await server.start_server(**SERVER_OPTIONS)  # (no decompression, a head deadline)
    yield Harness(await aiohttp_client(server), sim, sessions)
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
    assert answer == {"error": "phone is required"}


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


async def test_presence_lists_read_marks_and_typing_apart_from_outbound(
    harness: Harness,
) -> None:
    assert await harness.call("GET", "/sim/sessions/sales/presence") == {"read": [], "typing": []}
    await harness.connect()
    await harness.sim.mark_read(KEY, CUSTOMER, ids=["A", "B"], sender=CUSTOMER)
    assert await harness.sim.chat_presence(KEY, CUSTOMER, state="composing") is True
    await harness.sim.chat_presence(KEY, CUSTOMER, state="paused")
    answer = await harness.call("GET", "/sim/sessions/sales/presence")
    assert answer["read"] == ["A", "B"]
    assert [(t["to"], t["state"]) for t in answer["typing"]] == [
        (CUSTOMER, "composing"),
        (CUSTOMER, "paused"),
    ]
    assert isinstance(answer["typing"][0]["at"], float)
    assert await harness.call("GET", "/sim/sessions/sales/outbound") == {"messages": []}


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
        ({"kind": "ban", "seconds": -5}, "seconds must be a number from 0 to 2592000"),
        ({"kind": "ban", "seconds": 10**300}, "seconds must be a number from 0 to 2592000"),
        ({"kind": "ban", "seconds": "30"}, "seconds must be a number"),
        ({"kind": ["ban"]}, "kind must be a string"),
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
        ("GET", "/sim/sessions/nobody/presence"),
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


POST_ENDPOINTS = ["scan", "inbound", "receipt", "fault", "fail_sends"]


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "the body is not valid JSON"),
        (b"", "the body is not valid JSON"),
        (b"\xff\xfe", "the body is not UTF-8"),
        (b'{"kind": NaN}', "the body is not valid JSON: NaN is not JSON"),
        (b'{"seconds": Infinity}', "the body is not valid JSON: Infinity is not JSON"),
        (b'{"text": "\\ud800"}', "the JSON holds a lone surrogate"),
        (b"[" * 30_000 + b"]" * 30_000, "the JSON is nested deeper than 64 levels"),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, "the JSON is nested deeper than 64 levels"),
        (b"[1, 2]", "body must be a JSON object"),
        (b'"text"', "body must be a JSON object"),
        (b"null", "body must be a JSON object"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_400(
    harness: Harness, endpoint: str, data: bytes, reason: str
) -> None:
    await harness.connect()
    resp = await harness.client.post(f"/sim/sessions/sales/{endpoint}", data=data)
    assert resp.status == 400
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"].startswith(reason)


@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
async def test_a_body_over_its_limit_is_413_before_it_is_read(
    harness: Harness, endpoint: str
) -> None:
    size = inbound_body_limit(MEDIA_BYTES) + 1 if endpoint == "inbound" else SMALL_BODY_BYTES + 1
    resp = await harness.client.post(f"/sim/sessions/sales/{endpoint}", data=b" " * size)
    assert resp.status == 413
    assert (await resp.json())["error"].startswith("the body is over")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_compressed_body_is_415_whatever_it_holds(harness: Harness, encoding: str) -> None:
    resp = await harness.client.post(
        "/sim/sessions/sales/fault", data=b"not compressed", headers={"Content-Encoding": encoding}
    )
    assert resp.status == 415
    assert await resp.json() == {"error": "compressed bodies are not accepted (Content-Encoding)"}


async def test_a_chunked_body_is_cut_off_at_its_limit(harness: Harness) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(1000):
            yield b" " * 1024

    resp = await harness.client.post("/sim/sessions/sales/fault", data=chunks())
    assert resp.status == 413


async def test_a_trickled_body_is_cut_off_at_the_deadline(harness: Harness) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"kind": '
        await asyncio.sleep(5)
        yield b'"ban"}'

    started = time.monotonic()
    resp = await harness.client.post("/sim/sessions/sales/fault", data=trickle())
    assert resp.status == 408
    assert (await resp.json())["error"] == "the body did not arrive within 0.5 s"
    assert time.monotonic() - started < 3


async def test_the_largest_media_is_taken(harness: Harness) -> None:
    await harness.connect()
    data = bytes(range(256)) * (MEDIA_BYTES // 256)
    body = {
        "from": CUSTOMER,
        "kind": "document",
        "media": {"data_b64": base64.b64encode(data).decode(), "caption": "😀" * 65_536},
    }
    encoded = json.dumps(body).replace("/", "\\/").encode()  # ASCII escapes, escaped "/"
    assert len(encoded) <= inbound_body_limit(MEDIA_BYTES)
    resp = await harness.client.post("/sim/sessions/sales/inbound", data=encoded)
    assert resp.status == 200, await resp.text()
    [event] = [e for e in harness.sessions.events if isinstance(e, MessageEvent)]
    assert isinstance(event.message.content, Media) and event.message.content.data == data


async def test_a_nul_in_text_is_passed_on(harness: Harness) -> None:
    await harness.connect()
    body = {"from": CUSTOMER, "push_name": "Ma\x00ria", "kind": "text", "text": "a\x00b"}
    await harness.call("POST", "/sim/sessions/sales/inbound", body)
    [event] = [e for e in harness.sessions.events if isinstance(e, MessageEvent)]
    # WhatsApp can send it; the session manager cleans every engine's text
    assert event.message.content == Text("a\x00b")
    assert event.message.sender.name == "Ma\x00ria"


@pytest.mark.parametrize(
    ("endpoint", "body", "reason"),
    [
        ("fail_sends", {"count": 10**6}, "count must be an integer from 0 to 1000"),
        ("fail_sends", {"count": -1}, "count must be an integer from 0 to 1000"),
        ("fail_sends", {"count": 1.5}, "count must be an integer from 0 to 1000"),
        ("fail_sends", {"count": True}, "count must be an integer from 0 to 1000"),
        ("fail_sends", {"count": 1, "error": 5}, "error must be a string"),
        ("fail_sends", {"count": 1, "error": "e" * 1025}, "error is longer than 1024"),
        ("receipt", {"id": 5, "status": "read"}, "id must be a string"),
        ("receipt", {"id": "X", "status": ["read"]}, "status must be a string"),
        ("receipt", {"id": "3EB0\n", "status": "read"}, "id must be printable ASCII"),
        ("scan", {"phone": "+٥٥abc"}, "phone: not a phone number"),
        ("scan", {"phone": 5511900000001}, "phone must be a string"),
    ],
)
async def test_fields_of_the_wrong_type_or_range_are_400(
    harness: Harness, endpoint: str, body: dict[str, Any], reason: str
) -> None:
    await harness.connect()
    answer = await harness.call("POST", f"/sim/sessions/sales/{endpoint}", body, status=400)
    assert answer["error"].startswith(reason)


@pytest.mark.parametrize(
    ("endpoint", "data", "reason"),
    [
        ("fault", b'{"kind": "ban", "seconds": 1e400}', "seconds must be a number from 0 to"),
        ("fault", b'{"kind": "ban", "seconds": -0.5e-400}', None),  # -0.0: zero seconds
        ("fault", b'{"kind": "ban", "seconds": 1' + b"0" * 4000 + b"}", "seconds must be a"),
        ("fault", b'{"kind": "ban", "seconds": 1' + b"0" * 5000 + b"}", "the body is not valid"),
        (
            "inbound",
            b'{"from": "+5511987654321", "kind": "location", "location": {"lat": -1e999, '
            b'"lon": 0}}',
            "location.lat must be a number from -90 to 90",
        ),
    ],
)
async def test_numbers_json_parses_to_infinity_or_huge_are_refused(
    harness: Harness, endpoint: str, data: bytes, reason: str | None
) -> None:
    await harness.connect()
    resp = await harness.client.post(f"/sim/sessions/sales/{endpoint}", data=data)
    if reason is None:
        assert resp.status == 200
        return
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(reason)


async def test_other_methods_and_paths_are_json_4xx(harness: Harness) -> None:
    answer = await harness.call("POST", "/sim/sessions/sales", {}, status=405)
    assert "use GET" in answer["error"]
    answer = await harness.call("PUT", "/sim/sessions/sales/inbound", {}, status=404)
    assert "no sim endpoint PUT" in answer["error"]
    answer = await harness.call("GET", "/sim/sessions/" + "x" * 5000, status=404)
    assert len(answer["error"]) < 200
