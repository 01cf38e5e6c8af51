"""The one-hot session status gauge: each change moves the 1, a cleared session
is gone from /metrics, and one set again afterwards is back (bridge/metrics.py)."""

from __future__ import annotations

from bridge.metrics import SESSION_STATUSES, Metrics


def shown(metrics: Metrics, session: str) -> dict[str, float]:
    prefix = f'zapbridge_session_status{{session="{session}",status="'
    values = {}
    for line in metrics.render().decode().splitlines():
        if line.startswith(prefix):
            name, value = line[len(prefix) :].split('"} ')
            values[name] = float(value)
    return values


def test_status_moves_clears_and_comes_back() -> None:
    metrics = Metrics()
    metrics.set_session_status("acme/a", "OPENING")
    metrics.set_session_status("acme/a", "CONNECTED")
    metrics.set_session_status("acme/b", "LOGGED_OUT")
    assert shown(metrics, "acme/a") == {n: float(n == "CONNECTED") for n in SESSION_STATUSES}
    assert shown(metrics, "acme/b") == {n: float(n == "LOGGED_OUT") for n in SESSION_STATUSES}
    metrics.clear_session_status("acme/a")
    assert shown(metrics, "acme/a") == {}
    metrics.set_session_status("acme/a", "DISCONNECTED")
    assert shown(metrics, "acme/a") == {n: float(n == "DISCONNECTED") for n in SESSION_STATUSES}
