"""What a Slack request that failed in a listener is answered.

slack-bolt turns an exception in a listener (or in its own middleware) into an
answer through the app's error handler (``AsyncApp.error``); by default that is a
500 and a traceback at ERROR. :func:`answer_failure` replaces it:

- :class:`InvalidInput`: a payload the bridge cannot understand. 400 with the short
  reason, one WARNING line. Socket Mode acknowledges it (``bridge.slack.socket``),
  since Slack would only deliver it again.
- any other :class:`BridgeError` (the database, a Slack file host that did not
  answer, the frontend not started yet): nothing was persisted. 503, one WARNING
  line; the envelope stays unacknowledged, so Slack retries (an event three times).
- anything else is a bug: 500 and the traceback at ERROR, once.

A request no listener handles (``BoltUnhandledRequestError``: an interaction or a
slash command the bridge does not offer) is answered 404 and logged at INFO.
"""

from __future__ import annotations

import json
import logging
import re

from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bridge.errors import BridgeError, InvalidInput

log = logging.getLogger("bridge.slack.failures")

__all__ = ["answer_failure"]


async def answer_failure(error: Exception, request: AsyncBoltRequest) -> BoltResponse:
    """slack-bolt's error handler (``app.error(answer_failure)``)."""
    what = _describe(request)
    if isinstance(error, InvalidInput):
        log.warning("Slack %s refused: %s", what, error.explanation)
        return _answer(400, error.explanation)
    if isinstance(error, BridgeError):
        log.warning("Slack %s not handled, Slack will retry: %s", what, error.explanation)
        return _answer(503, "not stored; try again")
    if isinstance(error, BoltUnhandledRequestError):
        log.info("Slack %s: no listener in the bridge handles it", what)
        return _answer(404, "the bridge does not handle this")
    log.error("Slack %s failed", what, exc_info=error)
    return _answer(500, "the bridge failed to handle this")


def _answer(status: int, reason: str) -> BoltResponse:
    return BoltResponse(
        status=status,
        body=json.dumps({"error": reason}),
        headers={"content-type": "application/json"},
    )


def _describe(request: AsyncBoltRequest) -> str:
    """``event Ev0123`` / ``block_actions payload`` / ``slash command``: what the
    request was, without echoing anything but a well-formed event id."""
    body = request.body
    kind = body.get("type")
    if kind == "event_callback":
        event_id = body.get("event_id")
        known = isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id)
        return f"event {event_id}" if known else "event"
    if isinstance(kind, str) and kind in _KNOWN_TYPES:
        return f"{kind} payload"
    return "slash command" if "command" in body else "request"


_EVENT_ID = re.compile(r"Ev[A-Za-z0-9]{1,40}")
_KNOWN_TYPES = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action"}
)
