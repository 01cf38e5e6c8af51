"""Socket Mode: envelopes over the websocket Slack opens for the app token.

slack-bolt's handler acknowledges an envelope only when the app answered 200, so a
payload the bridge refuses (a 4xx from ``bridge.slack.failures``) would stay
unacknowledged and come back. :class:`SocketHandler` acknowledges those as well,
after one WARNING line; an envelope whose work was not persisted (a 5xx) stays
unacknowledged, so Slack delivers it again. Each payload passes
:func:`~bridge.slack.payload.check_envelope` before bolt reads it.

A ``message`` event (every attendant's post) skips bolt: it goes straight to
``messages`` (``SlackEvents.message_envelope``, what bolt's listener runs), and what
it raises is answered by the same ``answer_failure`` bolt would call, so the
acknowledgement follows the same rules. Bolt's dispatch (a request object, a context
with a fresh Web API client, its middleware chain, matching every listener, the
listener's keyword arguments) cost more than the listener's own checks of the event
(docs/architecture.md, "What a message costs"). What its middleware does for a
message the listener does too: ``SlackEvents`` ignores the bot's own messages.
Every other envelope goes through bolt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import (
    run_async_bolt_app,
    send_async_response,
)
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bridge.errors import InvalidInput
from bridge.slack.failures import answer_failure
from bridge.slack.payload import check_envelope

log = logging.getLogger("bridge.slack.socket")

_ENVELOPE_TYPES = frozenset({"events_api", "interactive", "slash_commands"})

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]


class SocketHandler(AsyncSocketModeHandler):
    def __init__(
        self, app: AsyncApp, app_token: str, *, messages: MessageHandler | None = None
    ) -> None:
        """``messages`` runs a ``message`` event's work without bolt (the module
        docstring); None: every envelope through bolt."""
        super().__init__(app, app_token)
        self._messages = messages

    async def handle(  # type: ignore[override]
        self, client: AsyncBaseSocketModeClient, req: SocketModeRequest
    ) -> None:
        start = time.time()
        try:
            payload = check_envelope(req.payload)
        except InvalidInput as exc:
            kind = req.type if req.type in _ENVELOPE_TYPES else "unknown"
            log.warning("Slack %s envelope set aside: %s", kind, exc.explanation)
            await self._ack(client, req)
            return
        if self._messages is not None and _is_message(req.type, payload):
            status = await self._message(self._messages, payload)
            if status < 500:
                await self._ack(client, req)  # done, or refused and logged
            return
        response = await run_async_bolt_app(self.app, req)
        if 400 <= response.status < 500:
            await self._ack(client, req)  # refused and logged: a redelivery cannot help
        elif response.status < 400:
            await send_async_response(client, req, response, start)
        # 5xx: not persisted; without an ack Slack delivers the envelope again

    @staticmethod
    async def _message(messages: MessageHandler, payload: dict[str, Any]) -> int:
        """The status bolt would have answered: 200 once persisted, else the one
        ``answer_failure`` gives what the listener raised."""
        try:
            await messages(payload)
        except Exception as exc:  # answered and logged as bolt's error handler would
            request = AsyncBoltRequest(body=payload, mode="socket_mode")
            return (await answer_failure(exc, request)).status
        return 200

    @staticmethod
    async def _ack(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))


def _is_message(kind: str, payload: dict[str, Any]) -> bool:
    """An Events API ``message`` event (any subtype)."""
    if kind != "events_api" or payload.get("type") != "event_callback":
        return False
    event = payload.get("event")
    return isinstance(event, dict) and event.get("type") == "message"
