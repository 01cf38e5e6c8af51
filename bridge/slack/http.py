"""HTTP mode (``slack.mode: http``): Events API, interactivity and slash commands all
arrive at ``POST /slack/events`` on the bridge's own HTTP server.

Bolt verifies each request's signature (``X-Slack-Signature`` over the body with the
signing secret) and refuses a timestamp more than five minutes away with 401 before
any listener runs; ``url_verification`` challenges are answered by bolt too. The
listeners run to completion before the response (``process_before_response``), so
Slack's retry of an unanswered event only reaches work the relay already dedupes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

log = logging.getLogger("bridge.slack.http")

EVENTS_PATH = "/slack/events"


def slack_routes(app: AsyncApp, *, ready: Callable[[], bool]) -> list[web.RouteDef]:
    """The route to mount on the bridge's web server (before it starts)."""

    async def handle(request: web.Request) -> web.Response:
        if not ready():  # started later than the web server: Slack retries
            return web.json_response({"error": "starting"}, status=503)
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        if bolt_response.status == 401:
            log.warning("Slack request with a bad or stale signature refused")
        return await to_aiohttp_response(bolt_response)

    return [web.post(EVENTS_PATH, handle)]
