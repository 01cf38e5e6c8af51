"""What a Slack request that failed in a listener is answered (bridge.slack.failures)."""

from __future__ import annotations

import json
import logging

import pytest
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bridge.errors import DatabaseError, DeliveryError, InvalidInput
from bridge.slack.failures import answer_failure

EVENT = {"type": "event_callback", "event_id": "Ev0123", "event": {"type": "message"}}


def request(body: dict) -> AsyncBoltRequest:
    return AsyncBoltRequest(body=body, mode="socket_mode")


@pytest.mark.parametrize(
    ("error", "status", "level", "line"),
    [
        (
            InvalidInput("event.channel: expected a Slack id"),
            400,
            logging.WARNING,
            "Slack event Ev0123 refused: event.channel: expected a Slack id",
        ),
        (
            DatabaseError("database is locked"),
            503,
            logging.WARNING,
            "Slack event Ev0123 not handled, Slack will retry: database is locked",
        ),
        (
            DeliveryError("Slack's file host answered HTTP 502"),
            503,
            logging.WARNING,
            "Slack event Ev0123 not handled, Slack will retry: Slack's file host answered HTTP 502",
        ),
        (KeyError("boom"), 500, logging.ERROR, "Slack event Ev0123 failed"),
    ],
)
async def test_errors_become_statuses_and_one_log_line(
    caplog: pytest.LogCaptureFixture, error: Exception, status: int, level: int, line: str
) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.slack"):
        response = await answer_failure(error, request(EVENT))
    assert isinstance(response, BoltResponse) and response.status == status
    assert set(json.loads(response.body)) == {"error"}
    (record,) = caplog.records
    assert (record.levelno, record.getMessage()) == (level, line)
    assert bool(record.exc_info) is (level == logging.ERROR)  # a traceback only for bugs


async def test_an_unhandled_request_is_a_404_at_info(caplog: pytest.LogCaptureFixture) -> None:
    req = request({"command": "/other", "text": "x"})
    error = BoltUnhandledRequestError(request=req, current_response=None)
    with caplog.at_level(logging.INFO, logger="bridge.slack"):
        response = await answer_failure(error, req)
    assert response.status == 404
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "Slack slash command: no listener in the bridge handles it")
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"type": {"a": 1}},
        {"type": "event_callback", "event_id": "Ev\nforged line"},
        {"type": "weird\ntype"},
        {"type": ["x"]},
    ],
)
async def test_the_log_line_never_echoes_what_the_sender_wrote(
    caplog: pytest.LogCaptureFixture, body: dict
) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.slack"):
        await answer_failure(InvalidInput("bad"), request(body))
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "forged" not in record.getMessage()
