"""HTTP mode (``slack.mode: http``): Events API, interactivity and slash commands all
arrive at ``POST /slack/events`` on the bridge's own HTTP server.

The route is open to the world, so it does everything before slack-bolt sees a byte,
in this order, each step refusing with a 4xx and one short WARNING line (never the
body):

1. the signature headers are there and the timestamp is within five minutes
   (401; 400 for a timestamp that is not a number), before the body is read;
2. the content type is one Slack sends (415);
3. the body is read with a limit and a deadline (413, 408; ``bridge.http_input``);
4. the signature is checked over those exact bytes (401);
5. the body is parsed strictly: JSON, or a form with a ``payload`` JSON field (400);
6. the fields bolt reads on its own have the shapes it assumes (400;
   ``bridge.slack.payload.check_envelope``).

bolt then gets the parsed payload as a dict: its ``socket_mode`` request kind is the
one that takes a dict instead of re-parsing the text (a second, lenient parser that
reads a form mentioning ``payload`` anywhere as an interaction). That kind also
skips bolt's own signature check, which step 4 made redundant, and bolt's check is
off anyway (``request_verification_enabled=False``): on a mismatch it logs the
whole body at INFO. ``url_verification`` challenges are answered by bolt. Listeners
run to completion before the answer (``process_before_response``), so a retry of an
unanswered event only reaches work the relay already dedupes; what a listener raises
is answered by ``bridge.slack.failures``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bridge.errors import InvalidInput, RequestRefused
from bridge.http_input import parse_json, read_body
from bridge.slack.payload import check_envelope
from bridge.slack.signature import SignatureCheck

log = logging.getLogger("bridge.slack.http")

EVENTS_PATH = "/slack/events"

# The largest body accepted. What Slack sends is far smaller: a message's text is at
# most 40,000 characters (160 KB of UTF-8 at worst), a message has at most 50 blocks
# and 10 files, a message_changed event carries the message twice (with its blocks,
# which mirror the text), a modal has at most 100 blocks; a slash command is a short
# form. That is a few hundred KB at the very most. The limit also bounds what one
# request costs: until its signature is checked a body is only held as bytes, and
# the strict parse of a signed one holds the event loop for 30-65 ms per MiB.
MAX_BODY_BYTES = 1024 * 1024
# Slack sends a body at once and gives up on an answer after 3 seconds.
BODY_SECONDS = 10.0

JSON_TYPE = "application/json"  # the Events API
FORM_TYPE = "application/x-www-form-urlencoded"  # interactivity and slash commands
MAX_FORM_FIELDS = 64  # a slash command has about 15

_BOLT_HEADERS = ("X-Slack-Retry-Num", "X-Slack-Retry-Reason")


def slack_routes(
    app: AsyncApp, *, signing_secret: str, ready: Callable[[], bool]
) -> list[web.RouteDef]:
    """The route to mount on the bridge's web server (before it starts)."""
    check = SignatureCheck(signing_secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        if not ready():  # started later than the web server: Slack retries
            return web.json_response({"error": "starting"}, status=503)
        try:
            payload = await verified_payload(request, check)
        except InvalidInput as exc:
            status = exc.status if isinstance(exc, RequestRefused) else 400
            log.warning(
                "Slack request from %s refused (%d): %s", request.remote, status, exc.explanation
            )
            return web.json_response({"error": exc.explanation}, status=status)
        headers: dict[str, str | Sequence[str]] = {
            name: request.headers[name] for name in _BOLT_HEADERS if name in request.headers
        }
        bolt_request = AsyncBoltRequest(body=payload, headers=headers, mode="socket_mode")
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    return [web.post(EVENTS_PATH, handle)]


async def verified_payload(request: web.Request, check: SignatureCheck) -> dict[str, Any]:
    """Steps 1–6 of the module docstring: the payload, or InvalidInput."""
    stamp = check.timestamp(request.headers)
    content_type = request.content_type
    if content_type not in (JSON_TYPE, FORM_TYPE):
        raise RequestRefused(415, f"expected {JSON_TYPE} or {FORM_TYPE}")
    body = await read_body(request, limit=MAX_BODY_BYTES, seconds=BODY_SECONDS)
    check.verify(request.headers, stamp, body)
    return check_envelope(parse_body(body, content_type))


def parse_body(body: bytes, content_type: str) -> object:
    """A JSON body, or a form: an interaction's ``payload`` field holds JSON, a slash
    command's fields are the payload themselves."""
    if content_type == JSON_TYPE:
        return parse_json(body)
    fields = _form(body)
    if "payload" in fields:
        return parse_json(fields["payload"])
    return fields


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeError:
        raise RequestRefused(400, "the form is not UTF-8") from None
    except ValueError:
        raise RequestRefused(400, f"the form has more than {MAX_FORM_FIELDS} fields") from None
    return dict(pairs)
