"""/health and /metrics as docs/operations.md ("Health", "Command line") states."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.metrics import Metrics
from bridge.web import WebServer


def _server(statuses: dict[str, str], dead: int = 0) -> WebServer:
    async def dead_letters() -> int:
        return dead

    return WebServer(
        host="127.0.0.1",
        port=0,
        metrics=Metrics(),
        statuses=lambda: statuses,
        dead_letters=dead_letters,
    )


@pytest.mark.parametrize(
    ("statuses", "dead", "expected"),
    [
        ({"acme/sales": "CONNECTED", "acme/support": "CONNECTED"}, 0, "ok"),
        ({}, 0, "ok"),
        ({"acme/sales": "CONNECTED", "acme/support": "LOGGED_OUT"}, 0, "degraded"),
        ({"acme/sales": "DISCONNECTED"}, 0, "degraded"),
        ({"acme/sales": "CONNECTED"}, 2, "degraded"),
    ],
)
async def test_health_reports_sessions_and_degradation(
    aiohttp_client: Any, statuses: dict[str, str], dead: int, expected: str
) -> None:
    client = await aiohttp_client(_server(statuses, dead).app)
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == expected
    assert body["sessions"] == statuses


async def test_metrics_exposes_every_contract_name(aiohttp_client: Any) -> None:
    server = _server({})
    server._metrics.messages.labels("inbound", "text", "acme/sales").inc()
    server._metrics.delivery_acks.labels("read").inc()
    server._metrics.set_session_status("acme/sales", "QRCODE")
    client = await aiohttp_client(server.app)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    for name in (
        'zapbridge_messages_total{direction="inbound",kind="text",session="acme/sales"} 1.0',
        'zapbridge_session_status{session="acme/sales",status="QRCODE"} 1.0',
        'zapbridge_session_status{session="acme/sales",status="CONNECTED"} 0.0',
        "zapbridge_outbox_pending 0.0",
        "# TYPE zapbridge_ticket_first_response_seconds histogram",
        "# TYPE zapbridge_relay_latency_seconds histogram",
        'zapbridge_delivery_acks_total{status="read"} 1.0',
    ):
        assert name in text, name


async def test_port_in_use_is_one_clear_error() -> None:
    first = _server({})
    await first.start()
    try:
        second = WebServer(
            host="127.0.0.1",
            port=first.port,
            metrics=Metrics(),
            statuses=dict,
            dead_letters=first._dead_letters,
        )
        from bridge.errors import BridgeError

        with pytest.raises(BridgeError, match=rf"cannot listen on http://127.0.0.1:{first.port}"):
            await second.start()
    finally:
        await first.stop()
