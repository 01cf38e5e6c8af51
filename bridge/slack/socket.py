"""Socket Mode: envelopes over the websocket Slack opens for the app token.

slack-bolt's handler acknowledges an envelope only when the app answered 200, so a
payload the bridge refuses (a 4xx from ``bridge.slack.failures``) would stay
unacknowledged and come back. :class:`SocketHandler` acknowledges those as well,
after one WARNING line; an envelope whose work was not persisted (a 5xx) stays
unacknowledged, so Slack delivers it again. Each payload passes
:func:`~bridge.slack.payload.check_envelope` before bolt reads it.
"""

from __future__ import annotations

import logging
import time

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import (
    run_async_bolt_app,
    send_async_response,
)
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bridge.errors import InvalidInput
from bridge.slack.payload import check_envelope

log = logging.getLogger("bridge.slack.socket")

_ENVELOPE_TYPES = frozenset({"events_api", "interactive", "slash_commands"})


class SocketHandler(AsyncSocketModeHandler):
    async def handle(  # type: ignore[override]
        self, client: AsyncBaseSocketModeClient, req: SocketModeRequest
    ) -> None:
        start = time.time()
        try:
            check_envelope(req.payload)
        except InvalidInput as exc:
            kind = req.type if req.type in _ENVELOPE_TYPES else "unknown"
            log.warning("Slack %s envelope set aside: %s", kind, exc.explanation)
            await self._ack(client, req)
            return
        response = await run_async_bolt_app(self.app, req)
        if 400 <= response.status < 500:
            await self._ack(client, req)  # refused and logged: a redelivery cannot help
        elif response.status < 400:
            await send_async_response(client, req, response, start)
        # 5xx: not persisted; without an ack Slack delivers the envelope again

    @staticmethod
    async def _ack(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
