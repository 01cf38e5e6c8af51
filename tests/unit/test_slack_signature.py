"""Slack request signatures (bridge.slack.signature): headers first, then the HMAC
over the exact body; every refusal a 4xx with a short reason."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bridge.errors import RequestRefused
from bridge.slack.signature import SignatureCheck

SECRET = "s3cret"
NOW = 1_700_000_000


def signed(body: bytes, *, stamp: str = str(NOW), secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {"X-Slack-Signature": f"v0={digest.hexdigest()}", "X-Slack-Request-Timestamp": stamp}


CHECK = SignatureCheck(SECRET, now=lambda: NOW)


def test_a_signed_body_passes() -> None:
    headers = signed(b'{"a": 1}')
    stamp = CHECK.timestamp(headers)
    assert stamp == str(NOW)
    CHECK.verify(headers, stamp, b'{"a": 1}')  # raises RequestRefused when it does not pass


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "not signed"),
        ({"X-Slack-Signature": "v0=00"}, 401, "not signed"),
        ({"X-Slack-Request-Timestamp": str(NOW)}, 401, "not signed"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "abc"}, 400, "Unix time"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "-5"}, 400, "Unix time"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1e9"}, 400, "Unix time"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "٣٣٣"}, 400, "Unix time"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "9" * 400}, 400, "Unix"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": str(NOW - 301)}, 401, "5 min"),
        ({"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": str(NOW + 301)}, 401, "5 min"),
    ],
)
def test_headers_are_checked_before_the_body(
    headers: dict[str, str], status: int, reason: str
) -> None:
    with pytest.raises(RequestRefused) as caught:
        CHECK.timestamp(headers)
    assert caught.value.status == status
    assert reason in caught.value.explanation


@pytest.mark.parametrize(
    "signature",
    [
        "v0=" + "0" * 64,
        "",
        "v0=ü" * 50,  # not ASCII: compared as bytes, never a TypeError
        "v1=" + signed(b"body")["X-Slack-Signature"][3:],
        signed(b"body", secret="other")["X-Slack-Signature"],
        signed(b"body")["X-Slack-Signature"] + "0",
        "x" * 10_000,
    ],
)
def test_a_wrong_signature_is_refused(signature: str) -> None:
    headers = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(NOW)}
    with pytest.raises(RequestRefused) as caught:
        CHECK.verify(headers, str(NOW), b"body")
    assert (caught.value.status, caught.value.explanation) == (
        401,
        "the request's signature is wrong",
    )


def test_the_signature_covers_the_timestamp_and_every_byte() -> None:
    headers = signed(b"body", stamp=str(NOW - 10))
    with pytest.raises(RequestRefused):
        CHECK.verify(headers, str(NOW), b"body")  # another timestamp
    with pytest.raises(RequestRefused):
        CHECK.verify(headers, str(NOW - 10), b"body ")
    CHECK.verify(headers, str(NOW - 10), b"body")
