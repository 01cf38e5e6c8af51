"""Homeserver failures become the right delivery errors: a 429 with ``retry_after_ms``
is retried no sooner than the server asked, 5xx is retried, refusals are permanent.
Against a scripted homeserver on a free port (Synapse does not rate-limit on demand)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from mautrix.api import Method
from mautrix.api import Path as MatrixPath

from bridge.config import parse_config
from bridge.errors import DeliveryError, PermanentDeliveryError
from bridge.matrix.appservice import BridgeAppService
from bridge.matrix.calls import matrix_call
from tests.harness.core import free_port

ANSWERS = {
    "limited": (429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many", "retry_after_ms": 2500}),
    "broken": (502, {"errcode": "M_UNKNOWN", "error": "Bad gateway"}),
    "forbidden": (403, {"errcode": "M_FORBIDDEN", "error": "You are not in this room"}),
}


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[BridgeAppService]:
    async def answer(request: web.Request) -> web.Response:
        status, body = ANSWERS[request.match_info["room"].split(":")[0].lstrip("!")]
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_put("/_matrix/client/v3/rooms/{room}/send/{type}/{txn}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    config = parse_config(
        f"""\
homeserver: {{address: "http://127.0.0.1:{port}", domain: localhost}}
appservice: {{port: {free_port()}, as_token: as-token-1234, hs_token: hs-token-4321}}
whatsapp: {{engine: sim}}
companies:
  - {{id: acme, name: ACME, admins: ["@alice:localhost"], sessions: [{{name: s, matrix: true}}]}}
""",
        path=tmp_path / "config.yaml",
    )
    svc = BridgeAppService(homeserver=config.homeserver, appservice=config.appservice)
    await svc._listener.start("127.0.0.1", config.appservice.port)
    yield svc
    await svc.stop()
    await runner.cleanup()


async def send(svc: BridgeAppService, room: str) -> None:
    path = MatrixPath.v3.rooms[room].send["m.room.message"]["txn1"]
    async with matrix_call("send the message"):
        await svc.bot.api.request(Method.PUT, path, {"msgtype": "m.text", "body": "oi"})


async def test_a_rate_limit_is_retried_after_the_time_the_server_asked(
    service: BridgeAppService,
) -> None:
    with pytest.raises(DeliveryError) as info:
        await send(service, "!limited:localhost")
    assert not isinstance(info.value, PermanentDeliveryError)
    assert info.value.retry_after == 2.5
    assert "rate limited" in info.value.explanation


async def test_a_server_failure_is_retried_and_a_refusal_is_not(
    service: BridgeAppService,
) -> None:
    with pytest.raises(DeliveryError) as broken:
        await send(service, "!broken:localhost")
    assert not isinstance(broken.value, PermanentDeliveryError)
    assert broken.value.retry_after is None
    with pytest.raises(PermanentDeliveryError, match="M_FORBIDDEN"):
        await send(service, "!forbidden:localhost")
