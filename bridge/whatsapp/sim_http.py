"""The ``/sim`` HTTP API (docs/sim.md) that drives a :class:`SimEngine`.

Mount it only when ``whatsapp.engine: sim``::

    app.add_routes(
        sim_routes(sim, status_of=..., resolve=..., media_bytes=config.media.max_size_bytes)
    )

``{s}`` is one path segment: ``<company>/<session>`` URL-encoded (``acme%2Fsales``)
or just ``<session>`` when that name is unique; ``resolve`` maps it to a session key
(``None`` → 404). aiohttp matches routes on the still-encoded path, so ``%2F`` stays
inside the segment and ``match_info`` hands over the decoded ``acme/sales``.
A raw ``acme/sales`` is not a session segment; it gets a 404 that says so.

Every answer is JSON; every refusal is ``{"error": "<short reason>"}`` with

- ``400`` for a body that is not a JSON object (strict JSON: no ``NaN``, no lone
  surrogates, nesting at most 64 deep) or a field of the wrong type or range
  (:mod:`bridge.whatsapp.sim_bodies` lists the limits);
- ``413`` for a body over its limit, refused before it is read when it says its
  length: an inbound body may carry one file of ``media.max_size_mb`` in base64
  (:func:`inbound_body_limit`), the other bodies :data:`SMALL_BODY_BYTES`;
- ``408`` for a body that has not arrived within ``body_seconds`` (30 s);
- ``404`` for an unknown session or endpoint, ``405`` for another method;
- ``503`` when the bridge could not take an inbound message: neither stored nor kept
  in its journal (bridge/journal: a database that refuses it and a disk that is
  full). The phone sends it again, as WhatsApp does with an unacknowledged message.
  A database outage alone is a ``200``: the message is journaled and replayed in
  order once the database is back, as with whatsmeow, which acknowledges a message
  before the bridge handles it.

An inbound body may carry ``"lid"`` (``"<digits>@lid"``) and then leave out
``from`` (docs/sim.md, "Inbound bodies"); one with neither is a 400, and so is one
linking a LID to a second phone.

With a shared network (``whatsapp.sim.network: database``, docs/sim.md "Shared
network") an inbound message is held by the network, whichever instance it is posted
to and whether or not the session is connected (it needs a linked device), and
``outbound`` lists what every instance sent. ``scan``, ``receipt``, ``fault`` and
``fail_sends`` act on the session as this instance runs it: send them to its owner.

Extensions beyond the contract: ``GET`` also answers ``"pair_code"``; an inbound
body may carry ``"id"`` and ``"avatar_url"``;
``POST /sim/sessions/{s}/fail_sends {"count": n, "error": "…"}`` makes the next
``n`` sends fail (outbox retry tests against a running bridge).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bridge.errors import BridgeError, InvalidInput, RequestRefused
from bridge.http_input import BODY_TIMEOUT_SECONDS, read_json
from bridge.whatsapp import sim_bodies, sim_wire
from bridge.whatsapp.sim import SimEngine

log = logging.getLogger("bridge.whatsapp.sim.http")

StatusOf = Callable[[str], str | None]
Resolve = Callable[[str], str | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SMALL_BODY_BYTES = 64 * 1024  # scan, receipt, fault, fail_sends: a few hundred bytes each
# An inbound body's fields besides its file: the longest text and vCard even when
# every character is written as a 12-byte surrogate-pair escape.
INBOUND_FIELDS_BYTES = 2 * 1024 * 1024


def inbound_body_limit(media_bytes: int) -> int:
    """The largest inbound body: a file of ``media_bytes`` in base64, 1/16 more for
    JSON encoders that escape ``/`` as ``\\/``, and the other fields."""
    base64_chars = 4 * math.ceil(media_bytes / 3)
    return base64_chars + base64_chars // 16 + INBOUND_FIELDS_BYTES


def _answer(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _refusals(handler: Handler) -> Handler:
    """Turns what the sender got wrong into its 4xx, and a bridge that could not
    take the event into 503; logs one short line, never the body."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RequestRefused as exc:
            log.info(
                "sim %s %s refused (%d): %s",
                request.method,
                _short(request.path),
                exc.status,
                exc.explanation,
            )
            return _answer(exc.status, exc.explanation)
        except InvalidInput as exc:
            log.info("sim %s %s refused: %s", request.method, _short(request.path), exc.explanation)
            return _answer(400, exc.explanation)
        except BridgeError as exc:
            # the bridge could not take the event (neither stored nor journaled): like
            # a phone whose message was not acknowledged, the caller should send it again
            log.warning(
                "sim %s %s failed: %s", request.method, _short(request.path), exc.explanation
            )
            return _answer(503, exc.explanation)

    return guarded


def sim_routes(
    sim: SimEngine,
    *,
    status_of: StatusOf,
    resolve: Resolve,
    media_bytes: int,
    body_seconds: float = BODY_TIMEOUT_SECONDS,
) -> web.RouteTableDef:
    """The ``/sim`` routes for ``sim``; add them with ``app.add_routes``.

    ``status_of(key)`` is the session manager's status of a session (``None`` when it
    has none yet: the sim's own view is shown instead); ``resolve(s)`` maps the URL's
    session segment to a key, or ``None`` for an unknown session. ``media_bytes`` is
    the largest file an inbound body may carry (``media.max_size_mb``);
    ``body_seconds`` how long a body may take to arrive.
    """
    routes = web.RouteTableDef()
    inbound_limit = inbound_body_limit(media_bytes)

    async def body_of(request: web.Request, limit: int = SMALL_BODY_BYTES) -> Any:
        return await read_json(request, limit=limit, seconds=body_seconds)

    def status(key: str) -> str:
        return status_of(key) or sim.link_status(key)

    def known(handler: Callable[[web.Request, str], Awaitable[web.StreamResponse]]) -> Handler:
        """Resolves the session first: an unknown one is 404, its body unread."""

        @_refusals
        @functools.wraps(handler)
        async def with_key(request: web.Request) -> web.StreamResponse:
            segment = request.match_info["s"]
            key = resolve(segment)
            if key is None:
                return _answer(404, f"unknown session {_short(segment)!r}")
            return await handler(request, key)

        return with_key

    @routes.get("/sim/sessions/{s}")
    @known
    async def get_session(request: web.Request, key: str) -> web.Response:
        await sim.load(key)  # a shared network: the device as the database has it
        view = sim_wire.session_view(
            status=status(key),
            phone=sim.phone_of(key),
            qr=sim.current_qr(key),
            pair_code=sim.current_pair_code(key),
        )
        return web.json_response(view)

    @routes.post("/sim/sessions/{s}/scan")
    @known
    async def scan(request: web.Request, key: str) -> web.Response:
        phone = sim_bodies.read_scan(await body_of(request))
        await sim.scan(key, phone)
        return web.json_response({"status": status(key), "phone": sim.phone_of(key)})

    @routes.post("/sim/sessions/{s}/inbound")
    @known
    async def inbound(request: web.Request, key: str) -> web.Response:
        body = await body_of(request, inbound_limit)
        current = status_of(key)
        # a shared network holds it for the instance that runs the session
        if not sim.shared and current is not None and current != "CONNECTED":
            raise InvalidInput(f"session {key} is not connected (status {current})")
        wa_id = await sim.inbound(key, body)
        return web.json_response({"id": wa_id})

    @routes.get("/sim/sessions/{s}/outbound")
    @known
    async def outbound(request: web.Request, key: str) -> web.Response:
        return web.json_response({"messages": await sim.outbound_log(key)})

    @routes.get("/sim/sessions/{s}/presence")
    @known
    async def presence(request: web.Request, key: str) -> web.Response:
        return web.json_response(sim.presence(key))

    @routes.post("/sim/sessions/{s}/receipt")
    @known
    async def receipt(request: web.Request, key: str) -> web.Response:
        ask = sim_bodies.read_receipt(await body_of(request))
        await sim.receipt(key, ask.wa_id, ask.status.value)
        return web.json_response({"id": ask.wa_id, "status": ask.status.value})

    @routes.post("/sim/sessions/{s}/fault")
    @known
    async def fault(request: web.Request, key: str) -> web.Response:
        ask = sim_bodies.read_fault(await body_of(request))
        await sim.fault(key, ask.kind, ask.seconds)
        return web.json_response({"kind": ask.kind, "seconds": ask.seconds, "status": status(key)})

    @routes.post("/sim/sessions/{s}/fail_sends")
    @known
    async def fail_sends(request: web.Request, key: str) -> web.Response:
        ask = sim_bodies.read_fail_sends(await body_of(request))
        sim.fail_next_sends(key, ask.count, ask.error)
        return web.json_response({"count": ask.count, "error": ask.error})

    @routes.route("*", "/sim/sessions/{s}")
    async def other_method(request: web.Request) -> web.Response:
        answer = _answer(405, f"{_short(request.method, 20)} is not allowed here; use GET")
        answer.headers["Allow"] = "GET, HEAD"
        return answer

    @routes.route("*", "/sim/sessions/{s}/{rest:.+}")
    async def unknown_endpoint(request: web.Request) -> web.Response:
        return _answer(
            404,
            f"no sim endpoint {_short(request.method, 20)} {_short(request.path)}; write the "
            "session as <company>%2F<session> (URL-encoded) or <session>",
        )

    return routes
