"""``/cloud/webhook``: where Meta delivers a Cloud API session's messages and statuses.

Mount it on the bridge's HTTP server (``app.add_routes(webhook.routes())``) when a
session runs on the Cloud API. One webhook serves every Cloud API session; Meta
calls it for each app subscribed to it:

- ``GET /cloud/webhook?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`` is
  Meta's verification when the callback URL is set: the challenge comes back as
  ``text/plain`` when the token equals the ``verify_token`` of a Cloud API session
  (compared in constant time); 403 otherwise, 400 for a missing parameter.
- ``POST /cloud/webhook`` carries events. The body is read bounded
  (:mod:`bridge.http_input`: 413 past ``max_body_bytes``, 408 when it trickles, 415
  when compressed); then ``X-Hub-Signature-256: sha256=<hex>`` must be the
  HMAC-SHA256 of the exact bytes with the ``app_secret`` of one of the sessions:
  otherwise 401, and nothing is parsed (a missing or malformed header is refused
  before the body is read). Only then is the JSON parsed, strictly (400), and the
  envelope read (:func:`bridge.whatsapp.cloud.inbound.read_changes`: 400 for a
  wrong shape, 413 past its limits).

Each change goes to the session whose ``phone_number_id`` it names, among the
sessions whose app secret signed the body: an app cannot speak for another app's
number. A change for a number no such session has is logged and left out, and the
answer is still 200, since Meta sends a refused body again and again. The events
are emitted in order (the session manager's handler, which stores or journals each
before it returns), and the answer is 200 only once every emit has returned. An
emit that raises (the bridge could not take the event) is answered 500, the one
5xx, so that Meta delivers the body again later; the events emitted before it
arrive twice then, which the core tolerates (a message is dropped by its WhatsApp
id, a receipt applied twice is the same receipt).

Every refusal is a short reason in ``text/plain`` and one log line; neither shows
the body, a secret or a token. Setting the webhook up in Meta's tools: docs/cloud.md.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from bridge.config.schema import CloudConfig
from bridge.errors import RequestRefused
from bridge.http_input import BODY_TIMEOUT_SECONDS, parse_json, read_body
from bridge.whatsapp.cloud.inbound import Change, events_of, read_changes
from bridge.whatsapp.engine import EngineEvent

__all__ = ["MAX_BODY_BYTES", "PATH", "SIGNATURE_HEADER", "CloudWebhook", "Emit"]

log = logging.getLogger(__name__)

Emit = Callable[[EngineEvent], Awaitable[None]]

PATH = "/cloud/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BODY_BYTES = 1024 * 1024  # Meta's bodies are a few KB; a batch of 1,000 statuses ~500 KB
MAX_CHALLENGE_CHARS = 256  # Meta's challenges are a number of about ten digits
VERIFY_PARAMETERS = ("hub.mode", "hub.verify_token", "hub.challenge")

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_CHALLENGE = re.compile(rf"[!-~]{{1,{MAX_CHALLENGE_CHARS}}}")  # printable ASCII, no spaces


class CloudWebhook:
    """The webhook of the Cloud API sessions ``sessions`` (keyed by session key);
    their events go to ``emit``."""

    def __init__(
        self,
        sessions: Mapping[str, CloudConfig],
        emit: Emit,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        body_seconds: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self._sessions = dict(sessions)
        self._emit = emit
        self._limit = max_body_bytes
        self._body_seconds = body_seconds
        self._by_number: dict[str, str] = {}
        for key, cloud in sessions.items():
            first = self._by_number.setdefault(cloud.phone_number_id, key)
            if first != key:
                log.warning(
                    "sessions %s and %s name the same phone_number_id: %s gets it",
                    first,
                    key,
                    first,
                )
        self._secrets = tuple(dict.fromkeys(_secret(c.app_secret) for c in sessions.values()))
        self._tokens = tuple(dict.fromkeys(_secret(c.verify_token) for c in sessions.values()))

    def routes(self) -> list[web.RouteDef]:
        """``GET`` and ``POST`` of :data:`PATH`."""
        return [web.get(PATH, self.verify), web.post(PATH, self.receive)]

    # --- GET: Meta's verification ------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """The challenge, when the verify token is one of ours."""
        mode, token, challenge = (request.query.get(name, "") for name in VERIFY_PARAMETERS)
        for name, value in zip(VERIFY_PARAMETERS, (mode, token, challenge), strict=True):
            if not value:
                return _refused(request, 400, f"{name} is missing")
        if mode != "subscribe":
            return _refused(request, 400, "hub.mode must be subscribe")
        if _CHALLENGE.fullmatch(challenge) is None:
            reason = f"hub.challenge must be up to {MAX_CHALLENGE_CHARS} printable ASCII characters"
            return _refused(request, 400, reason)
        given = token.encode("utf-8", "replace")
        # every token compared, in constant time each: the answer's timing says nothing
        if not any([hmac.compare_digest(given, known) for known in self._tokens if known]):
            return _refused(request, 403, "the verify token is not one of this bridge's")
        log.info("Meta verified the Cloud API webhook")
        return web.Response(text=challenge, content_type="text/plain")

    # --- POST: events ------------------------------------------------------------------

    async def receive(self, request: web.Request) -> web.Response:
        """Read, check, route and emit one body's events; 200 once all are taken."""
        try:
            body, secrets = await self._signed_body(request)
            changes = read_changes(parse_json(body))
        except RequestRefused as exc:
            return _refused(request, exc.status, exc.explanation)
        events = self._routed(changes, secrets)
        for event in events:
            try:
                await self._emit(event)
            except Exception:  # the boundary: logged once, answered, Meta retries
                log.exception(
                    "a Cloud API event for %s was not taken; Meta will resend the body",
                    event.session,
                )
                return web.Response(status=500, text="the bridge could not take the events")
        log.debug("Cloud API webhook: %d changes, %d events", len(changes), len(events))
        return web.Response(text="ok")

    async def _signed_body(self, request: web.Request) -> tuple[bytes, frozenset[bytes]]:
        """The raw body and the app secrets whose signature it carries (at least one)."""
        header = request.headers.get(SIGNATURE_HEADER)
        if not header:
            raise RequestRefused(401, f"the request is not signed ({SIGNATURE_HEADER})")
        signature = _SIGNATURE.fullmatch(header.strip())
        if signature is None:
            raise RequestRefused(401, f"{SIGNATURE_HEADER} is not sha256=<64 hex digits>")
        body = await read_body(request, limit=self._limit, seconds=self._body_seconds)
        given = signature.group(1).lower().encode()
        signed = frozenset(
            secret
            for secret in self._secrets
            if secret
            and hmac.compare_digest(
                hmac.new(secret, body, hashlib.sha256).hexdigest().encode(), given
            )
        )
        if not signed:
            raise RequestRefused(401, "the request's signature is not one of this bridge's apps'")
        return body, signed

    def _routed(self, changes: list[Change], secrets: frozenset[bytes]) -> list[EngineEvent]:
        """The events of each change, for the session of its number; a change for a
        number no session of the signing apps has is logged and left out."""
        events: list[EngineEvent] = []
        for change in changes:
            key = self._by_number.get(change.phone_number_id)
            if key is None:
                log.warning(
                    "a Cloud API change for phone_number_id %r left out: no session has it",
                    change.phone_number_id[:64],
                )
                continue
            if _secret(self._sessions[key].app_secret) not in secrets:
                log.warning("a Cloud API change for %s left out: signed by another app", key)
                continue
            events.extend(events_of(key, change))
        return events


def _secret(text: str) -> bytes:
    return text.encode("utf-8")


def _refused(request: web.Request, status: int, reason: str) -> web.Response:
    log.info("Cloud API webhook %s refused (%d): %s", request.method, status, reason)
    return web.Response(status=status, text=reason)
