"""Secrets never reach the logs: not in messages, arguments, URLs or tracebacks."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bridge.logs import Redactor, configure_logging

SECRETS = {
    "bot": "xoxb-1111-2222-abcdefghijkl",
    "app": "xapp-1-A111-222-abcdef",
    "as": "as_token_Zq8xWm2Pq7",
    "hs": "hs_token_Kk4Lm9Nn1",
}


@pytest.fixture(params=["text", "json"])
def captured(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    handler = configure_logging(
        level="DEBUG", fmt=request.param, redactor=Redactor(SECRETS.values()), stream=stream
    )
    yield request.param, stream
    logging.getLogger().removeHandler(handler)


def test_known_secrets_are_redacted_everywhere(captured) -> None:  # type: ignore[no-untyped-def]
    fmt, stream = captured
    log = logging.getLogger("bridge.test.secrets")
    log.info("tokens %s and %s", SECRETS["as"], SECRETS["hs"])
    try:
        raise RuntimeError(f"slack said no to {SECRETS['bot']} / {SECRETS['app']}")
    except RuntimeError:
        log.exception("failed with token")
    out = stream.getvalue()
    for secret in SECRETS.values():
        assert secret not in out
    assert out.count("***") >= 4
    assert "bridge.test.secrets" in out
    if fmt == "json":
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert lines[0]["logger"] == "bridge.test.secrets"
        assert "RuntimeError" in lines[1]["exception"]


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        (
            "cannot connect to postgres://zap:s3cr3tpw@db:5432/zap",
            "s3cr3tpw",
            "postgres://zap:***@db",
        ),
        ("GET /_matrix?access_token=syt_abc_123&x=1", "syt_abc_123", "access_token=***"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi", "Bearer ***"),
        ("token xoxp-9-8-7 leaked", "xoxp-9-8-7", "token *** leaked"),
        ("dsn host=db password=hunter22 user=zap", "hunter22", "password=***"),
    ],
)
def test_secret_shapes_are_redacted_without_being_configured(
    text: str, hidden: str, kept: str
) -> None:
    redacted = Redactor()(text)
    assert hidden not in redacted
    assert kept in redacted
