"""A strict local fake of Meta's Graph API for the WhatsApp Business Cloud API.

``GraphApiFake`` runs an aiohttp server on 127.0.0.1 with a free port
(``base_url``). It serves, under ``/{api_version}/``:

- ``POST /{phone_number_id}/messages``: a message, checked the way Meta's reference
  documents it (``messaging_product``, ``recipient_type``, ``to``, ``type`` and the
  object of that type, ``context.message_id``, ``biz_opaque_callback_data`` (a
  string of at most 512 characters, echoed in the message's statuses); unknown fields
  refused; the objects are checked in tests/fakes/graph_messages.py), answered
  ``{"messaging_product", "contacts": [{"input", "wa_id"}], "messages": [{"id"}]}``;
  or a read mark ``{"messaging_product", "status": "read", "message_id"}``,
  answered ``{"success": true}``;
- ``POST /{phone_number_id}/media``: a multipart upload (``file``, ``type``,
  ``messaging_product``) → ``{"id"}``;
- ``GET /{media_id}``: ``{url, mime_type, sha256, file_size, id, messaging_product}``,
  the ``url`` a download link on this fake valid for ``link_seconds``;
- ``GET /{phone_number_id}?fields=…``: the requested facts of the number.

The download links (``/files/{link}``) answer 404 once expired. Every call needs
``Authorization: Bearer <token>``; without it, or after :meth:`revoke_token`, the
answer is a 401 with Meta's error shape (``OAuthException``, code 190). A refused
request is a 400 with code 100 and the problem in ``error_data.details``.

Nothing has a magic value: failures are scripted per test (:meth:`fail_next`,
:meth:`expire_next_links`) and every request is recorded (:attr:`calls`). A failure
scripted ``applied=True`` (a message route only) takes the message first, as Meta
does when its answer is lost: the message is accepted and given its ``wamid``, then
the call is answered with the failure, or its connection dropped (``status=0``).
:meth:`status_of` builds the status webhook Meta would send for an accepted message.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.graph_messages import MESSAGE_TYPES, Refused, check_content, check_keys

JsonDict = dict[str, Any]

MAX_CALLBACK_DATA = 512  # biz_opaque_callback_data
_DIGITS = re.compile(r"\+?[1-9][0-9]{6,14}")


@dataclass
class GraphCall:
    """One request as received: ``route`` is ``messages``, ``media``, ``node`` (a
    phone number or media id) or ``file`` (a download link)."""

    method: str
    path: str
    route: str
    token: str | None
    json: JsonDict | None = None
    form: dict[str, str] = field(default_factory=dict)
    status: int = 200
    answer: JsonDict | None = None  # the JSON answered, when the call succeeded


@dataclass
class FakeMedia:
    id: str
    data: bytes
    mime_type: str
    filename: str | None = None
    reported_size: int | None = None  # the file_size to announce, when not the true one

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class PhoneNumber:
    id: str
    display_phone_number: str
    verified_name: str = "Acme Support"
    quality_rating: str = "GREEN"
    messaging_limit_tier: str = "TIER_1K"


@dataclass
class ScriptedFailure:
    status: int
    code: int | None
    message: str
    retry_after: str | None
    subcode: int | None
    route: str | None
    remaining: int
    applied: bool = False  # the message is taken before the failure is answered


class GraphApiFake:
    """Scripted per test; see the module docstring."""

    def __init__(
        self,
        *,
        token: str = "graph-test-token",
        api_version: str = "v21.0",
        numbers: Mapping[str, str] | None = None,
        templates: Mapping[str, tuple[str, int]] | None = None,
        link_seconds: float = 300.0,
    ) -> None:
        self.token = token
        self.api_version = api_version
        self.numbers = {
            pnid: PhoneNumber(pnid, shown)
            for pnid, shown in (numbers or {"1000001": "+1 555-010-0001"}).items()
        }
        # name → (language code, number of body parameters); None: any template
        self.templates = dict(templates) if templates is not None else None
        self.link_seconds = link_seconds
        self.calls: list[GraphCall] = []
        self.messages: list[JsonDict] = []  # accepted message bodies, in order
        self.message_ids: list[str] = []  # the wamid of each accepted message
        self.read_marks: list[str] = []
        self.media: dict[str, FakeMedia] = {}
        self._links: dict[str, tuple[str, float]] = {}  # link → (media id, expiry)
        self._expire_next = 0
        self._failures: list[ScriptedFailure] = []
        self._revoked = False
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> GraphApiFake:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_post("/{version}/{number}/messages", self._messages)
        app.router.add_post("/{version}/{number}/media", self._upload)
        app.router.add_get("/files/{link}", self._file)
        app.router.add_get("/{version}/{node}", self._node)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scripting -------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        code: int | None = None,
        *,
        message: str = "scripted failure",
        count: int = 1,
        retry_after: str | None = None,
        subcode: int | None = None,
        route: str | None = None,
        applied: bool = False,
    ) -> None:
        """Answer the next ``count`` calls (of ``route`` only, when given) with
        ``status`` and Meta's error ``code`` (no error body when ``code`` is None;
        ``status`` 0: the connection is dropped unanswered). ``applied``: a message
        is accepted first, as if only the answer were lost."""
        self._failures.append(
            ScriptedFailure(status, code, message, retry_after, subcode, route, count, applied)
        )

    def revoke_token(self) -> None:
        """From now on every call is refused with 190 (the token was revoked)."""
        self._revoked = True

    def add_media(
        self,
        data: bytes,
        mime_type: str,
        *,
        filename: str | None = None,
        reported_size: int | None = None,
    ) -> str:
        """A customer's file, as Meta holds it for a webhook's media id."""
        media_id = str(next(self._ids) + 900_000_000)
        self.media[media_id] = FakeMedia(media_id, data, mime_type, filename, reported_size)
        return media_id

    def expire_next_links(self, count: int = 1) -> None:
        """The next ``count`` download links handed out are already expired."""
        self._expire_next += count

    def sent(self, kind: str) -> list[JsonDict]:
        """The accepted messages of ``type`` ``kind``."""
        return [body for body in self.messages if body.get("type") == kind]

    def calls_to(self, route: str) -> list[GraphCall]:
        return [call for call in self.calls if call.route == route]

    def status_of(self, index: int, status: str, *, timestamp: float) -> JsonDict:
        """The ``statuses[]`` item Meta posts for the ``index``-th accepted message:
        its wamid, recipient and callback data as sent."""
        body = self.messages[index]
        item: JsonDict = {
            "id": self.message_ids[index],
            "status": status,
            "timestamp": str(int(timestamp)),
            "recipient_id": str(body["to"]).removeprefix("+"),
        }
        if "biz_opaque_callback_data" in body:
            item["biz_opaque_callback_data"] = body["biz_opaque_callback_data"]
        return item

    # --- the routes ------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.Response:
        call = self._record(request, "messages")
        try:
            body = await request.json()
        except ValueError:
            body = None
        call.json = body if isinstance(body, dict) else None
        failure = self._scripted(call)
        taken = isinstance(body, dict) and body.get("status") is None  # not a read mark
        if failure is not None and failure.applied and taken:
            try:
                self._check_number(request)
                self._message(body)
            except Refused as exc:
                return self._error(call, exc.status, exc.code, exc.details)
        refusal = self._refusal(request, call, failure)
        if refusal is not None:
            return refusal
        try:
            self._check_number(request)
            if not isinstance(body, dict):
                raise Refused("the body must be a JSON object")
            if body.get("status") is not None:
                return self._answer(call, self._read_mark(body))
            return self._answer(call, self._message(body))
        except Refused as exc:
            return self._error(call, exc.status, exc.code, exc.details)

    async def _upload(self, request: web.Request) -> web.Response:
        call = self._record(request, "media")
        form = await request.post() if request.content_type.startswith("multipart/") else None
        refusal = self._refusal(request, call)
        if refusal is not None:
            return refusal
        try:
            self._check_number(request)
            if form is None:
                raise Refused("the upload must be multipart/form-data")
            file = form.get("file")
            call.form = {k: v for k, v in form.items() if isinstance(v, str)}
            if form.get("messaging_product") != "whatsapp":
                raise Refused("messaging_product must be whatsapp")
            if not isinstance(file, web.FileField):
                raise Refused("file is required")
            mime_type = form.get("type")
            if not isinstance(mime_type, str) or mime_type != file.content_type:
                raise Refused("type must be the file's MIME type")
            media_id = self.add_media(file.file.read(), mime_type, filename=file.filename)
            return self._answer(call, {"id": media_id})
        except Refused as exc:
            return self._error(call, exc.status, exc.code, exc.details)

    async def _node(self, request: web.Request) -> web.Response:
        call = self._record(request, "node")
        refusal = self._refusal(request, call)
        if refusal is not None:
            return refusal
        node = request.match_info["node"]
        if request.match_info["version"] != self.api_version:
            return self._error(call, 400, 100, f"unknown version {request.match_info['version']}")
        if node in self.numbers:
            return self._answer(call, self._number_facts(node, request.query.get("fields")))
        media = self.media.get(node)
        if media is None:
            return self._error(call, 400, 100, f"Object with ID '{node}' does not exist")
        link = secrets.token_urlsafe(12)
        expired = self._expire_next > 0
        self._expire_next -= 1 if expired else 0
        self._links[link] = (
            media.id,
            -math.inf if expired else time.monotonic() + self.link_seconds,
        )
        return self._answer(
            call,
            {
                "messaging_product": "whatsapp",
                "url": f"{self.base_url}/files/{link}",
                "mime_type": media.mime_type,
                "sha256": media.sha256,
                "file_size": media.reported_size or len(media.data),
                "id": media.id,
            },
        )

    async def _file(self, request: web.Request) -> web.Response:
        call = self._record(request, "file")
        if call.token != self.token or self._revoked:
            call.status = 401
            return web.Response(status=401, text="unauthorized")
        media_id, expiry = self._links.get(request.match_info["link"], ("", -math.inf))
        if time.monotonic() > expiry or media_id not in self.media:
            call.status = 404
            return web.Response(status=404, text="link expired")
        media = self.media[media_id]
        return web.Response(body=media.data, content_type=media.mime_type)

    # --- messages --------------------------------------------------------------------

    def _message(self, body: JsonDict) -> JsonDict:
        kind = body.get("type")
        if kind not in MESSAGE_TYPES:
            raise Refused(f"type must be one of {', '.join(MESSAGE_TYPES)}")
        allowed = {
            "messaging_product",
            "recipient_type",
            "to",
            "type",
            "context",
            "biz_opaque_callback_data",
            kind,
        }
        extra = set(body) - allowed
        if extra:
            raise Refused(f"unexpected fields: {', '.join(sorted(extra))}")
        callback = body.get("biz_opaque_callback_data")
        if callback is not None and (
            not isinstance(callback, str) or len(callback) > MAX_CALLBACK_DATA
        ):
            raise Refused(
                f"biz_opaque_callback_data must be a string of at most {MAX_CALLBACK_DATA} "
                "characters"
            )
        if body.get("messaging_product") != "whatsapp":
            raise Refused("messaging_product must be whatsapp")
        if body.get("recipient_type", "individual") != "individual":
            raise Refused("recipient_type must be individual")
        to = body.get("to")
        if not isinstance(to, str) or _DIGITS.fullmatch(to) is None:
            raise Refused("to must be a phone number")
        if "context" in body:
            check_keys(body["context"], "context", required={"message_id": str})
        check_content(kind, body.get(kind), media=self.media, templates=self.templates)
        self.messages.append(body)
        wamid = f"wamid.{secrets.token_hex(16).upper()}"
        self.message_ids.append(wamid)
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.removeprefix("+")}],
            "messages": [{"id": wamid}],
        }

    def _read_mark(self, body: JsonDict) -> JsonDict:
        check_keys(
            body,
            "the body",
            required={"messaging_product": str, "status": str, "message_id": str},
        )
        if body["status"] != "read" or body["messaging_product"] != "whatsapp":
            raise Refused("status must be read and messaging_product whatsapp")
        if not body["message_id"].startswith("wamid."):
            raise Refused("message_id must be a WhatsApp message id")
        self.read_marks.append(body["message_id"])
        return {"success": True}

    def _number_facts(self, node: str, fields: str | None) -> JsonDict:
        number = self.numbers[node]
        wanted = (fields or "verified_name,display_phone_number,quality_rating").split(",")
        facts: JsonDict = {"id": number.id}
        for name in wanted:
            if not hasattr(number, name):
                raise Refused(f"unknown field {name}")
            facts[name] = getattr(number, name)
        return facts

    # --- common ------------------------------------------------------------------------

    def _record(self, request: web.Request, route: str) -> GraphCall:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        call = GraphCall(request.method, request.path_qs, route, token)
        self.calls.append(call)
        return call

    def _scripted(self, call: GraphCall) -> ScriptedFailure | None:
        """The scripted failure this call gets, counted; None when it gets none (a
        call with a bad token is refused before anything is scripted)."""
        if call.token is None or call.token != self.token or self._revoked:
            return None
        for failure in self._failures:
            if failure.remaining > 0 and failure.route in (None, call.route):
                failure.remaining -= 1
                return failure
        return None

    def _refusal(
        self, request: web.Request, call: GraphCall, failure: ScriptedFailure | None = None
    ) -> web.Response | None:
        """The answer for a bad token or a scripted failure, if any (``failure`` when
        the route counted it already)."""
        if call.token is None or call.token != self.token:
            return self._error(call, 401, 190, "Invalid OAuth access token - Cannot parse")
        if self._revoked:
            return self._error(
                call,
                401,
                190,
                "Error validating access token: the session was invalidated",
                subcode=463,
            )
        if failure is None and call.route != "messages":
            failure = self._scripted(call)
        if failure is None:
            return None
        if failure.status == 0:
            call.status = 0
            assert request.transport is not None
            request.transport.close()  # the client sees the connection drop
            raise web.HTTPInternalServerError()  # never written: the socket is closed
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        if failure.code is None:
            call.status = failure.status
            return web.Response(status=failure.status, text="failure", headers=headers)
        return self._error(
            call,
            failure.status,
            failure.code,
            failure.message,
            subcode=failure.subcode,
            headers=headers,
        )

    def _check_number(self, request: web.Request) -> None:
        if request.match_info["version"] != self.api_version:
            raise Refused(f"unknown version {request.match_info['version']}")
        if request.match_info["number"] not in self.numbers:
            raise Refused(f"Object with ID '{request.match_info['number']}' does not exist")

    def _answer(self, call: GraphCall, body: JsonDict) -> web.Response:
        call.status = 200
        call.answer = body
        return web.json_response(body)

    def _error(
        self,
        call: GraphCall,
        status: int,
        code: int,
        details: str,
        *,
        subcode: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        call.status = status
        error: JsonDict = {
            "message": f"(#{code}) {details}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": secrets.token_urlsafe(9),
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        return web.json_response({"error": error}, status=status, headers=headers)
