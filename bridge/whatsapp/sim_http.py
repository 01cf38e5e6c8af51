"""The ``/sim`` HTTP API (DESIGN section 8, contract) that drives a :class:`SimEngine`.

Mount it only when ``whatsapp.engine: sim``::

    app.add_routes(sim_routes(sim, status_of=sessions.status_of, resolve=sessions.resolve))

``{s}`` is one path segment: ``<company>/<session>`` URL-encoded (``acme%2Fsales``)
or just ``<session>`` when that name is unique; ``resolve`` maps it to a session key
(``None`` → 404). aiohttp matches routes on the still-encoded path, so ``%2F`` stays
inside the segment and ``match_info`` hands over the decoded ``acme/sales``.
A raw ``acme/sales`` is not a session segment; it gets a 404 that says so.

Every answer is JSON. Bad requests get ``400 {"error": "<reason>"}``, unknown
sessions ``404``. Extensions beyond the contract: ``GET`` also answers
``"pair_code"``; an inbound body may carry ``"id"``;
``POST /sim/sessions/{s}/fail_sends {"count": n, "error": "…"}`` makes the next
``n`` sends fail (outbox retry tests against a running bridge).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from bridge.errors import BridgeError, InvalidInput
from bridge.whatsapp.sim import SimEngine

log = logging.getLogger("bridge.whatsapp.sim.http")

StatusOf = Callable[[str], str | None]
Resolve = Callable[[str], str | None]


def _json_error(exc_class: type[web.HTTPError], reason: str) -> web.HTTPError:
    return exc_class(text=json.dumps({"error": reason}), content_type="application/json")


@contextmanager
def _bad_request_on_invalid_input() -> Iterator[None]:
    try:
        yield
    except InvalidInput as exc:
        log.info("sim request refused: %s", exc.explanation)
        raise _json_error(web.HTTPBadRequest, exc.explanation) from exc
    except BridgeError as exc:
        # the bridge could not take the event (its database is down, say): like a
        # phone whose message was not acknowledged, the caller should send it again
        raise _json_error(web.HTTPServiceUnavailable, exc.explanation) from exc


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _json_error(web.HTTPBadRequest, f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _json_error(web.HTTPBadRequest, "body must be a JSON object")
    return body


def _string_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _json_error(web.HTTPBadRequest, f"{name} is required (a non-empty string)")
    return value


def sim_routes(sim: SimEngine, *, status_of: StatusOf, resolve: Resolve) -> web.RouteTableDef:
    """The ``/sim`` routes for ``sim``; add them with ``app.add_routes``.

    ``status_of(key)`` is the session manager's status of a session (``None`` when it
    has none yet: the sim's own view is shown instead); ``resolve(s)`` maps the URL's
    session segment to a key, or ``None`` for an unknown session.
    """
    routes = web.RouteTableDef()

    def key_of(request: web.Request) -> str:
        segment = request.match_info["s"]
        key = resolve(segment)
        if key is None:
            raise _json_error(web.HTTPNotFound, f"unknown session {segment!r}")
        return key

    def status(key: str) -> str:
        return status_of(key) or sim.link_status(key)

    @routes.get("/sim/sessions/{s}")
    async def get_session(request: web.Request) -> web.Response:
        key = key_of(request)
        return web.json_response(
            {
                "status": status(key),
                "phone": sim.phone_of(key),
                "qr": sim.current_qr(key),
                "pair_code": sim.current_pair_code(key),
            }
        )

    @routes.post("/sim/sessions/{s}/scan")
    async def scan(request: web.Request) -> web.Response:
        key = key_of(request)
        body = await _json_body(request)
        with _bad_request_on_invalid_input():
            await sim.scan(key, _string_field(body, "phone"))
        return web.json_response({"status": status(key), "phone": sim.phone_of(key)})

    @routes.post("/sim/sessions/{s}/inbound")
    async def inbound(request: web.Request) -> web.Response:
        key = key_of(request)
        body = await _json_body(request)
        current = status_of(key)
        if current is not None and current != "CONNECTED":
            raise _json_error(
                web.HTTPBadRequest, f"session {key} is not connected (status {current})"
            )
        with _bad_request_on_invalid_input():
            wa_id = await sim.inbound(key, body)
        return web.json_response({"id": wa_id})

    @routes.get("/sim/sessions/{s}/outbound")
    async def outbound(request: web.Request) -> web.Response:
        return web.json_response({"messages": sim.outbound(key_of(request))})

    @routes.post("/sim/sessions/{s}/receipt")
    async def receipt(request: web.Request) -> web.Response:
        key = key_of(request)
        body = await _json_body(request)
        wa_id, ack = _string_field(body, "id"), _string_field(body, "status")
        with _bad_request_on_invalid_input():
            await sim.receipt(key, wa_id, ack)
        return web.json_response({"id": wa_id, "status": ack})

    @routes.post("/sim/sessions/{s}/fault")
    async def fault(request: web.Request) -> web.Response:
        key = key_of(request)
        body = await _json_body(request)
        kind, seconds = _string_field(body, "kind"), body.get("seconds", 0)
        with _bad_request_on_invalid_input():
            await sim.fault(key, kind, seconds)
        return web.json_response({"kind": kind, "seconds": seconds, "status": status(key)})

    @routes.post("/sim/sessions/{s}/fail_sends")
    async def fail_sends(request: web.Request) -> web.Response:
        key = key_of(request)
        body = await _json_body(request)
        count = body.get("count")
        error = body.get("error", "sim: send failed")
        if not isinstance(error, str):
            raise _json_error(web.HTTPBadRequest, "error must be a string")
        with _bad_request_on_invalid_input():
            sim.fail_next_sends(key, count, error)  # type: ignore[arg-type]  # checked there
        return web.json_response({"count": count, "error": error})

    @routes.route("*", "/sim/sessions/{s}/{rest:.+}")
    async def unknown_endpoint(request: web.Request) -> web.Response:
        raise _json_error(
            web.HTTPNotFound,
            f"no sim endpoint {request.method} {request.path}; write the session as "
            "<company>%2F<session> (URL-encoded) or <session>",
        )

    return routes
