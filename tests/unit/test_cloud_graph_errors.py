"""bridge/whatsapp/cloud/graph.py: a refused Graph API call → the bridge's error."""

from __future__ import annotations

import json

import pytest

from bridge.errors import DeliveryError, PermanentDeliveryError, WindowClosed
from bridge.whatsapp.cloud.graph import (
    DEFAULT_RETRY_AFTER,
    GraphFailure,
    TokenRejected,
    failure_of,
    graph_error,
)

# (name, status, code, Retry-After, error type, retry_after, words in the explanation)
CASES: list[tuple[str, int, int | None, str | None, type, float | None, str]] = [
    ("token expired", 401, 190, None, TokenRejected, None, "expired or was revoked"),
    ("190 under another status", 400, 190, None, TokenRejected, None, "expired or was revoked"),
    ("401 without a body", 401, None, None, TokenRejected, None, "expired or was revoked"),
    ("HTTP 429 with Retry-After", 429, None, "12", DeliveryError, 12.0, "throttling"),
    ("HTTP 429 without", 429, 130429, None, DeliveryError, DEFAULT_RETRY_AFTER, "throttling"),
    ("code 4 (app calls)", 400, 4, None, DeliveryError, DEFAULT_RETRY_AFTER, "code 4"),
    ("code 80007 (account)", 400, 80007, "30", DeliveryError, 30.0, "code 80007"),
    ("code 130429 (throughput)", 400, 130429, None, DeliveryError, DEFAULT_RETRY_AFTER, "130429"),
    ("code 131048 (spam rate)", 400, 131048, None, DeliveryError, DEFAULT_RETRY_AFTER, "131048"),
    ("code 131056 (pair rate)", 400, 131056, "5", DeliveryError, 5.0, "131056"),
    ("an HTTP date", 429, None, "Wed, 21 Oct 2026 07:28:00 GMT", DeliveryError, 60.0, "throttl"),
    ("a negative Retry-After", 429, None, "-3", DeliveryError, DEFAULT_RETRY_AFTER, "throttl"),
    ("window closed", 400, 131047, None, WindowClosed, None, "24-hour window is closed"),
    ("invalid parameter", 400, 100, None, PermanentDeliveryError, None, "refused the request"),
    ("not a WhatsApp user", 400, 131026, None, PermanentDeliveryError, None, "code 131026"),
    ("forbidden", 403, 10, None, PermanentDeliveryError, None, "code 10"),
    ("server error", 500, 1, None, DeliveryError, None, "HTTP 500"),
    ("bad gateway, no body", 502, None, None, DeliveryError, None, "HTTP 502"),
    ("unavailable", 503, 2, None, DeliveryError, None, "HTTP 503"),
]


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "kind", "wait", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_graph_error(
    status: int,
    code: int | None,
    retry_after: str | None,
    kind: type,
    wait: float | None,
    words: str,
) -> None:
    error = graph_error(GraphFailure(status, code, "Meta says no", retry_after))
    assert type(error) is kind
    assert words in error.explanation
    assert "Meta says no" in error.explanation
    if isinstance(error, DeliveryError):
        assert error.retry_after == wait
        # a plain server failure may have taken effect; a refusal or a throttle did not
        assert error.ambiguous is (wait is None and kind is DeliveryError)


def meta_body(**error: object) -> bytes:
    return json.dumps({"error": error}).encode()


FAILURES: list[tuple[str, bytes, GraphFailure]] = [
    (
        "Meta's shape with details",
        meta_body(
            message="(#131047) Re-engagement message",
            type="OAuthException",
            code=131047,
            error_data={"messaging_product": "whatsapp", "details": "More than 24 hours"},
            fbtrace_id="A1",
        ),
        GraphFailure(400, 131047, "(#131047) Re-engagement message: More than 24 hours"),
    ),
    (
        "no details",
        meta_body(message="Invalid OAuth access token", code=190, error_subcode=463),
        GraphFailure(400, 190, "Invalid OAuth access token"),
    ),
    ("not JSON", b"<html>bad gateway</html>", GraphFailure(400, None, "HTTP 400")),
    ("JSON, not an object", b"[1, 2]", GraphFailure(400, None, "HTTP 400")),
    ("nested too deeply", b"[" * 100_000, GraphFailure(400, None, "HTTP 400")),
    ("not UTF-8", b'{"error": {"message": "\xff"}}', GraphFailure(400, None, "HTTP 400")),
    ("a code that is not a number", meta_body(code="190"), GraphFailure(400, None, "HTTP 400")),
    ("a boolean code", meta_body(code=True, message="m"), GraphFailure(400, None, "m")),
]


@pytest.mark.parametrize(
    ("body", "expected"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_failure_of(body: bytes, expected: GraphFailure) -> None:
    assert failure_of(400, body, None) == expected


def test_failure_keeps_retry_after_and_cuts_long_messages() -> None:
    failure = failure_of(429, meta_body(message="m" * 2000, code=4), "7")
    assert failure.retry_after == "7"
    assert len(failure.message) == 500
