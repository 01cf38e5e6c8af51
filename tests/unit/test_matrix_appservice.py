"""The appservice listener (bridge.matrix.appservice) on a free port, with a scripted
homeserver where one is needed: one event that cannot be handled is set aside and
the next one goes on; only a failure to persist answers 500; bodies are read after
the token, within limits; pings and transactions feed the health tracking."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.clock import FakeClock
from bridge.config import parse_config
from bridge.errors import DatabaseError
from bridge.matrix import appservice
from bridge.matrix.appservice import TRANSACTION_LIMIT, BridgeAppService
from bridge.matrix.fields import MalformedEvent
from bridge.matrix.health import PING_EVERY_SECONDS, STALE_AFTER_SECONDS
from tests.harness.core import free_port, until

HS_TOKEN = "hs-token-4321"
AUTH = {"Authorization": f"Bearer {HS_TOKEN}"}


@dataclass
class Homeserver:
    """Answers what ``BridgeAppService.start`` asks, and pings the appservice back
    when asked to, like Synapse (``ping_answer`` scripts a failure instead)."""

    port: int = field(default_factory=free_port)
    as_port: int = field(default_factory=free_port)
    ping_answer: tuple[int, dict[str, Any]] | None = None
    pings: int = 0

    async def ping(self, _request: web.Request) -> web.Response:
        self.pings += 1
        if self.ping_answer is not None:
            status, body = self.ping_answer
            return web.json_response(body, status=status)
        url = f"http://127.0.0.1:{self.as_port}/_matrix/app/v1/ping"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"transaction_id": None}, headers=AUTH) as resp:
                status = resp.status
        if status != 200:
            body = {"errcode": "M_AS_PING_BAD_STATUS", "error": f"HTTP {status}"}
            return web.json_response(body, status=502)
        return web.json_response({"duration_ms": 1})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_matrix/client/v3/register", self._ok)
        app.router.add_get("/_matrix/client/v3/profile/{user}/displayname", self._name)
        app.router.add_post("/_matrix/client/v1/appservice/{id}/ping", self.ping)
        return app

    async def _ok(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    async def _name(self, _request: web.Request) -> web.Response:
        return web.json_response({"displayname": "WhatsApp bridge"})


@dataclass
class Recorded:
    handled: list[str] = field(default_factory=list)
    set_aside: list[tuple[str, str]] = field(default_factory=list)  # (event id, error)
    fail: dict[str, Exception] = field(default_factory=dict)  # event id → raised handling it
    aside_fails: Exception | None = None

    async def handle(self, raw: dict[str, Any]) -> None:
        event_id = raw["event_id"]
        if event_id in self.fail:
            raise self.fail[event_id]
        self.handled.append(event_id)

    async def aside(self, raw: dict[str, Any], error: Exception) -> None:
        if self.aside_fails is not None:
            raise self.aside_fails
        self.set_aside.append((raw.get("event_id"), type(error).__name__))


@pytest.fixture
async def homeserver() -> AsyncIterator[Homeserver]:
    hs = Homeserver()
    runner = web.AppRunner(hs.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hs.port).start()
    yield hs
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def service(
    tmp_path: Path, homeserver: Homeserver, clock: FakeClock
) -> AsyncIterator[tuple[BridgeAppService, Recorded]]:
    config = parse_config(
        f"""\
homeserver: {{address: "http://127.0.0.1:{homeserver.port}", domain: localhost}}
appservice: {{port: {homeserver.as_port}, as_token: as-token-1234, hs_token: {HS_TOKEN}}}
whatsapp: {{engine: sim}}
companies:
  - {{id: acme, name: ACME, admins: ["@alice:localhost"], sessions: [{{name: s, matrix: true}}]}}
""",
        path=tmp_path / "config.yaml",
    )
    svc = BridgeAppService(homeserver=config.homeserver, appservice=config.appservice, clock=clock)
    recorded = Recorded()
    svc.on_event(recorded.handle, set_aside=recorded.aside)
    await svc.start(bot_name="WhatsApp bridge")
    yield svc, recorded
    await svc.stop()


def event(event_id: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "room_id": "!r:localhost",
        "sender": "@bob:localhost",
        "content": {"msgtype": "m.text", "body": "oi"},
    }


async def put(
    port: int, txn: str, body: Any, *, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = f"http://127.0.0.1:{port}/_matrix/app/v1/transactions/{txn}"
    async with aiohttp.ClientSession() as http:
        async with http.put(url, data=data, headers=AUTH if headers is None else headers) as r:
            return r.status, await r.json(content_type=None)


# --- one event at a time ------------------------------------------------------------


async def test_an_event_that_cannot_be_handled_is_set_aside_and_the_next_one_goes_on(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver
) -> None:
    svc, recorded = service
    recorded.fail = {
        "$poison": MalformedEvent("content.m.relates_to is a string"),
        "$bug": KeyError("x"),
    }
    events = [event("$poison"), "not an event", event("$bug"), event("$fine")]
    assert await put(homeserver.as_port, "t1", {"events": events}) == (200, {})
    assert recorded.handled == ["$fine"]
    assert recorded.set_aside == [("$poison", "MalformedEvent"), ("$bug", "KeyError")]
    assert svc.health.problems() == []


async def test_a_failure_to_persist_answers_500_until_a_retry_persists(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver
) -> None:
    svc, recorded = service
    recorded.fail = {"$a": DatabaseError("the database is unreachable")}
    body = {"events": [event("$a"), event("$b")]}
    for _ in range(3):
        status, answer = await put(homeserver.as_port, "t2", body)
        assert (status, answer["errcode"]) == (500, "M_UNKNOWN")
    assert recorded.handled == [] and recorded.set_aside == []  # $b waits behind $a
    [problem] = svc.health.problems()
    assert problem.startswith("the last 3 transactions were refused: 500 not persisted")

    del recorded.fail["$a"]
    assert await put(homeserver.as_port, "t2", body) == (200, {})
    assert recorded.handled == ["$a", "$b"]
    assert svc.health.problems() == []


async def test_a_failure_to_record_the_set_aside_event_answers_500(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver
) -> None:
    _, recorded = service
    recorded.fail = {"$poison": MalformedEvent("content is a list, not an object")}
    recorded.aside_fails = DatabaseError("the database is unreachable")
    body = {"events": [event("$poison"), event("$next")]}
    assert (await put(homeserver.as_port, "t3", body))[0] == 500
    assert recorded.handled == []
    recorded.aside_fails = RuntimeError("a bug in the quarantine")  # not persistence: skipped
    assert await put(homeserver.as_port, "t3", body) == (200, {})
    assert recorded.handled == ["$next"]


# --- bodies ---------------------------------------------------------------------------


async def raw_request(port: int, head: str) -> bytes:
    """Send only a request head; what the server answers before any body arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        ("", b"401"),
        ("Authorization: Bearer wrong\r\n", b"403"),
        (f"Authorization: Bearer {HS_TOKEN}\r\n", b"413"),
    ],
)
async def test_a_large_body_is_never_read_without_the_token_nor_over_the_limit(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver, auth: str, status: bytes
) -> None:
    head = (
        "PUT /_matrix/app/v1/transactions/big HTTP/1.1\r\nHost: x\r\n"
        f"{auth}Content-Type: application/json\r\nContent-Length: {TRANSACTION_LIMIT + 1}\r\n\r\n"
    )
    answer = await raw_request(homeserver.as_port, head)
    assert answer.split(b" ", 2)[1] == status  # at once: the body was never sent


async def test_what_the_homeserver_got_wrong_is_a_400_and_content_is_never_refused(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver
) -> None:
    _, recorded = service
    port = homeserver.as_port
    for body, errcode in [
        (b"\xff not utf-8", "M_NOT_JSON"),
        (b"{", "M_NOT_JSON"),
        (b'{"events": [NaN]}', "M_NOT_JSON"),
        (b"[]", "M_BAD_JSON"),
        (b'{"events": {}}', "M_BAD_JSON"),
    ]:
        status, answer = await put(port, "bad", body)
        assert (status, answer["errcode"]) == (400, errcode), body
    odd = {**event("$odd"), "content": {"body": "a\ud800\x00", "x": [[[[[[[[[[[[1]]]]]]]]]]]]}}
    big = [{**event(f"$big{n}"), "content": {"body": "x" * 60_000}} for n in range(40)]
    assert await put(port, "odd", {"events": [odd, *big]}) == (200, {})  # 2.4 MB
    assert recorded.handled == ["$odd", *(f"$big{n}" for n in range(40))]


async def test_a_slow_request_head_is_cut_off(
    tmp_path: Path, homeserver: Homeserver, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(appservice.SERVER_OPTIONS, "keepalive_timeout", 0.3)
    config = parse_config(
        f"""\
homeserver: {{address: "http://127.0.0.1:{homeserver.port}", domain: localhost}}
appservice: {{port: {homeserver.as_port}, as_token: as-token-1234, hs_token: {HS_TOKEN}}}
whatsapp: {{engine: sim}}
companies:
  - {{id: acme, name: ACME, admins: ["@alice:localhost"], sessions: [{{name: s, matrix: true}}]}}
""",
        path=tmp_path / "config.yaml",
    )
    svc = BridgeAppService(homeserver=config.homeserver, appservice=config.appservice, clock=clock)
    await svc.start(bot_name="WhatsApp bridge")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", homeserver.as_port)
        writer.write(b"PUT /_matrix/app/v1/transactions/slow HTTP/1.1\r\n")  # and no more
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the server
        writer.close()
    finally:
        await svc.stop()


# --- pings and health -----------------------------------------------------------------


async def test_the_homeserver_is_asked_to_ping_and_silence_makes_health_degraded(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver, clock: FakeClock
) -> None:
    svc, _ = service
    assert homeserver.pings == 1  # at start
    await clock.advance(PING_EVERY_SECONDS)
    await until(lambda: homeserver.pings == 2)
    assert svc.health.problems() == []

    homeserver.ping_answer = (
        502,
        {"errcode": "M_AS_PING_CONNECTION_FAILED", "error": "Connection refused"},
    )
    await clock.advance(STALE_AFTER_SECONDS + 1)
    await until(lambda: len(svc.health.problems()) == 2)
    stale, failed = svc.health.problems()
    assert (
        stale
        == f"the homeserver has not reached the appservice for {STALE_AFTER_SECONDS + 1:.0f} s"
    )
    assert failed == (
        "the homeserver cannot reach the appservice: M_AS_PING_CONNECTION_FAILED: "
        "Connection refused"
    )

    homeserver.ping_answer = None  # it reaches us again
    await clock.advance(PING_EVERY_SECONDS)
    await until(lambda: svc.health.problems() == [])


async def test_only_an_authenticated_ping_counts(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver, clock: FakeClock
) -> None:
    svc, _ = service
    homeserver.ping_answer = (502, {"errcode": "M_AS_PING_BAD_STATUS", "error": "HTTP 500"})
    await clock.advance(STALE_AFTER_SECONDS + 1)
    url = f"http://127.0.0.1:{homeserver.as_port}/_matrix/app/v1/ping"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={}) as resp:
            assert resp.status == 401
        async with http.post(url, data=b"[1]", headers=AUTH) as resp:
            assert resp.status == 400
        async with http.post(url, data=b"x" * 100_000, headers=AUTH) as resp:
            assert resp.status == 413
        assert any("has not reached" in p for p in svc.health.problems())
        async with http.post(url, json={"transaction_id": "t"}, headers=AUTH) as resp:
            assert resp.status == 200
    assert not any("has not reached" in p for p in svc.health.problems())


async def test_a_homeserver_without_the_ping_is_not_judged_by_its_silence(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver, clock: FakeClock
) -> None:
    svc, _ = service
    homeserver.ping_answer = (404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"})
    await clock.advance(PING_EVERY_SECONDS)
    await until(lambda: homeserver.pings == 2)
    await clock.advance(10 * STALE_AFTER_SECONDS)
    assert homeserver.pings == 2  # no more asking
    assert svc.health.problems() == []


async def test_a_token_of_any_bytes_is_refused_with_a_403(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver
) -> None:
    for token in (b"Bearer \xff\xfe\xed\xa0\x80", b"Bearer " + b"\xc3\xa9" * 50):
        reader, writer = await asyncio.open_connection("127.0.0.1", homeserver.as_port)
        writer.write(
            b"PUT /_matrix/app/v1/transactions/t HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + token
            + b"\r\nContent-Length: 2\r\n\r\n{}"
        )
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n")).split(b" ", 2)[1] == b"403"
        writer.close()


# --- ephemeral events (read receipts, typing: docs/presence.md) -------------------------


def typing_of(*users: str) -> dict[str, Any]:
    return {"type": "m.typing", "room_id": "!r:localhost", "content": {"user_ids": list(users)}}


@dataclass
class RecordedEphemeral:
    handled: list[list[str]] = field(default_factory=list)
    fail: Exception | None = None

    async def handle(self, raw: dict[str, Any]) -> None:
        users = raw["content"]["user_ids"]
        if not isinstance(users, list):
            raise MalformedEvent("content.user_ids is not a list")
        if self.fail is not None:
            raise self.fail
        self.handled.append(users)


async def test_ephemeral_events_come_after_the_events_and_a_bad_one_is_set_aside(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver
) -> None:
    svc, recorded = service
    ephemeral = RecordedEphemeral()
    svc.on_ephemeral(ephemeral.handle)
    bad = {"type": "m.typing", "room_id": "!r:localhost", "content": {"user_ids": "bob"}}
    body = {
        "events": [event("$a")],
        "ephemeral": [bad, "not an event", typing_of("@bob:localhost")],
        "de.sorunome.msc2409.ephemeral": [typing_of("@eve:localhost")],  # the same, unstable
    }
    assert await put(homeserver.as_port, "e1", body) == (200, {})
    assert recorded.handled == ["$a"]
    assert ephemeral.handled == [["@bob:localhost"]]
    [(aside_id, error)] = recorded.set_aside
    assert aside_id.startswith("ephemeral:") and error == "MalformedEvent"

    # the same id with other ephemeral events is another transaction (Synapse restarted)
    body = {"events": [], "de.sorunome.msc2409.ephemeral": [typing_of()]}
    assert await put(homeserver.as_port, "e1", body) == (200, {})
    assert ephemeral.handled == [["@bob:localhost"], []]


async def test_an_ephemeral_event_never_fails_the_transaction(
    service: tuple[BridgeAppService, Recorded], homeserver: Homeserver
) -> None:
    svc, recorded = service
    ephemeral = RecordedEphemeral(fail=DatabaseError("the database is unreachable"))
    svc.on_ephemeral(ephemeral.handle)
    body = {"events": [event("$b")], "ephemeral": [typing_of("@bob:localhost")]}
    assert await put(homeserver.as_port, "e2", body) == (200, {})
    assert recorded.handled == ["$b"]
    assert ephemeral.handled == [] and recorded.set_aside == []
