"""A strict local fake of Slack's Web API and Socket Mode, for tests and benchmarks.

``SlackFake`` runs an aiohttp server on 127.0.0.1 with a free port. It serves:

- the Web API at ``api_url`` (``.../api/<method>``), validating tokens and arguments
  the way Slack's method reference documents them and recording every call;
- the files v2 upload URLs handed out by ``files.getUploadURLExternal``;
- ``url_private`` downloads of files (bot token required, like Slack);
- Socket Mode: ``apps.connections.open`` hands out a one-time websocket URL; the
  socket says ``hello``, delivers envelopes and collects acks; with several sockets
  open (one per bridge instance) each envelope goes to one of them, in turn.

Failures are scripted per test (``script``, ``script_fraction``); no token or channel
name has a magic meaning. Arguments are recorded as received, except the JSON-typed
ones (``blocks``, ``attachments``, ``files``, ``metadata``), which are decoded when
they arrive as form strings so tests see the same shape either way.

Message metadata follows Slack's reference: ``chat.postMessage``/``chat.update`` take
``metadata`` as a JSON object ``{"event_type", "event_payload"}`` (not an object:
``invalid_metadata_format``; a missing or malformed part: ``invalid_metadata_schema``)
and store it on the message; ``conversations.replies`` and ``conversations.history``
return it only with ``include_all_metadata`` true. Both read methods paginate with
``limit`` and ``cursor`` (``has_more``, ``response_metadata.next_cursor``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import mimetypes
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

# a reaction name: an emoji name, with Slack's skin tone when it has one
# ("+1", "thumbsup::skin-tone-2"); colons elsewhere, spaces or an empty name are refused
_REACTION_NAME = re.compile(r"[a-z0-9_+'-]{1,100}(::skin-tone-[2-6](-[2-6])?)?")

JsonDict = dict[str, Any]

JSON_ARGS = ("blocks", "attachments", "files", "metadata")
MAX_TEXT = 40_000
EVENT_TYPE_PATTERN = re.compile(r"[A-Za-z0-9_]+")  # "alphanumeric", snake case advised
REPLIES_LIMIT = 1000  # conversations.replies: default and maximum page
HISTORY_LIMIT = 100  # conversations.history: default page (maximum 1000)


@dataclass
class ApiCall:
    method: str
    args: JsonDict
    token: str | None
    at: float
    response: JsonDict = field(default_factory=dict)
    peer: object = None  # the client's (host, port): which connection the call came on


@dataclass
class FakeFile:
    id: str
    name: str
    title: str
    data: bytes
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    mimetype: str = "application/octet-stream"
    length: int = 0  # the length announced to files.getUploadURLExternal
    uploaded: bool = False
    completed: bool = False


@dataclass
class _Channel:
    id: str
    name: str
    bot_member: bool
    members: set[str] = field(default_factory=set)
    topic: str = ""


@dataclass
class _Failure:
    error: str | None
    status: int
    retry_after: int | None
    applied: bool = False  # the call took effect; only its answer is the failure


class SlackError(Exception):
    """A Web API method refuses the call with Slack's error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


# --- scripted failures ---------------------------------------------------------------


class _FailureScript:
    """The failures a test asked for: exact ones first, then a random fraction."""

    def __init__(self) -> None:
        self._queued: dict[str, list[_Failure]] = {}
        self._fraction: tuple[str | None, float, int, random.Random] | None = None

    def add(self, method: str, failure: _Failure, times: int) -> None:
        self._queued.setdefault(method, []).extend([failure] * times)

    def set_fraction(
        self, method: str | None, fraction: float, retry_after: int, seed: int
    ) -> None:
        self._fraction = (method, fraction, retry_after, random.Random(seed))

    def next_for(self, method: str) -> _Failure | None:
        queue = self._queued.get(method)
        if queue:
            return queue.pop(0)
        if self._fraction is not None:
            target, fraction, retry_after, rng = self._fraction
            if target in (None, method) and rng.random() < fraction:
                return _Failure(error="ratelimited", status=429, retry_after=retry_after)
        return None


# --- Socket Mode ---------------------------------------------------------------------


@dataclass
class _Envelope:
    id: str
    type: str
    payload: JsonDict
    accepts_response_payload: bool
    retry_attempt: int
    delivered: bool = False
    socket: web.WebSocketResponse | None = None  # where it was last delivered
    delivered_at: float = 0.0  # time.monotonic() of the last delivery

    def frame(self) -> JsonDict:
        return {
            "envelope_id": self.id,
            "type": self.type,
            "payload": self.payload,
            "accepts_response_payload": self.accepts_response_payload,
            "retry_attempt": self.retry_attempt,
            "retry_reason": "timeout" if self.retry_attempt else "",
        }


class _SocketHub:
    """Websocket connections, envelopes waiting for acks, and the acks received."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.tickets: set[str] = set()
        self.sockets: list[web.WebSocketResponse] = []
        self.opened = 0
        self.envelopes: dict[str, _Envelope] = {}  # unacknowledged, in order
        self.acks: dict[str, JsonDict] = {}
        self.protocol_errors: list[str] = []
        self._changed = asyncio.Condition()
        self._send_lock = asyncio.Lock()  # hello, redeliveries and new envelopes stay in order
        self._tasks: set[asyncio.Task[Any]] = set()
        self._turn = 0  # round robin over the open sockets

    def _pick(self, avoid: web.WebSocketResponse | None = None) -> web.WebSocketResponse:
        """The socket for the next delivery: each in turn, as Slack spreads events over
        an app's connections (one socket: always it); ``avoid`` (where a retried
        envelope went last) is skipped when another socket is open."""
        choices = [ws for ws in self.sockets if ws is not avoid] or self.sockets
        self._turn += 1
        return choices[self._turn % len(choices)]

    async def notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], seconds: float) -> None:
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(predicate)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self.tickets:
            return web.Response(status=401, text="invalid or used ticket")
        self.tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async with self._send_lock:
            self.sockets.append(ws)
            self.opened += 1
            await ws.send_json(self._hello())
            await self._redeliver_orphans(ws)
        await self.notify()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._receive(message.data)
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
            if self.sockets:
                async with self._send_lock:
                    await self._redeliver_orphans(None)
            await self.notify()
        return ws

    async def _redeliver_orphans(self, ws: web.WebSocketResponse | None) -> None:
        """Envelopes never delivered, or delivered on a socket now gone, go to ``ws``
        (None: to the open sockets in turn)."""
        for envelope in list(self.envelopes.values()):
            if envelope.socket is None or envelope.socket not in self.sockets:
                await self._deliver(ws or self._pick(), envelope)

    def _hello(self) -> JsonDict:
        return {
            "type": "hello",
            "num_connections": len(self.sockets),
            "debug_info": {"host": "applink-fake", "build_number": 1},
            "connection_info": {"app_id": self.app_id},
        }

    async def _deliver(self, ws: web.WebSocketResponse, envelope: _Envelope) -> None:
        if envelope.delivered:
            envelope.retry_attempt += 1
        envelope.delivered, envelope.socket = True, ws
        envelope.delivered_at = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            await ws.send_json(envelope.frame())

    async def _receive(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except json.JSONDecodeError:
            self.protocol_errors.append(f"not JSON: {data[:200]!r}")
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        if envelope_id not in self.envelopes:
            self.protocol_errors.append(f"ack for unknown envelope: {data[:200]!r}")
            return
        del self.envelopes[envelope_id]
        self.acks[envelope_id] = ack
        await self.notify()

    async def send(self, envelope: _Envelope) -> str:
        async with self._send_lock:
            self.envelopes[envelope.id] = envelope
            if self.sockets:
                await self._deliver(self._pick(), envelope)
        return envelope.id

    async def retry_unacked(self, after: float) -> int:
        """Deliver again every envelope delivered ``after`` s ago or more and not acked."""
        now, count = time.monotonic(), 0
        async with self._send_lock:
            for envelope in list(self.envelopes.values()):
                if self.sockets and envelope.delivered and now - envelope.delivered_at >= after:
                    await self._deliver(self._pick(avoid=envelope.socket), envelope)
                    count += 1
        return count

    def drop_all(self) -> None:
        sockets, self.sockets = self.sockets, []
        if not sockets:
            return
        loop = asyncio.get_running_loop()
        for ws in sockets:
            task = loop.create_task(ws.close(code=1001, message=b"dropped by test"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


# --- the fake ------------------------------------------------------------------------


class SlackFake:
    bot_token = "xoxb-fake-bot-token"
    app_token = "xapp-1-fake-app-token"
    signing_secret = "fake-signing-secret"
    team_id = "T0FAKE"
    team_domain = "fake"
    bot_user_id = "U0BOT"
    bot_id = "B0BOT"
    app_id = "A0FAKE"

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        # What stamps ApiCall.at: a test on a fake clock sets its monotonic here.
        self.timer: Callable[[], float] = time.monotonic
        self.files: dict[str, FakeFile] = {}
        self.downloads: list[str] = []  # file ids asked for at url_private, in order
        self._channels: dict[str, _Channel] = {}
        self._users: dict[str, JsonDict] = {}
        self._messages: dict[str, list[JsonDict]] = {}  # channel → messages, oldest first
        self._reactions: dict[tuple[str, str], list[str]] = {}
        self._ts = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._script = _FailureScript()
        self._socket = _SocketHub(self.app_id)
        self._runner: web.AppRunner | None = None
        self._base = ""
        self.add_user(self.bot_user_id, name="zapbridge", real_name="zapbridge", is_bot=True)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._serve_api)
        app.router.add_post("/upload/{file_id}", self._serve_upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._serve_download)
        app.router.add_get("/socket", self._socket.serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._base = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackFake:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        return f"http://{self._base}/api/"

    @property
    def origin(self) -> str:
        """Where the fake serves everything, ``url_private`` files included."""
        return f"http://{self._base}"

    # --- workspace state -----------------------------------------------------------

    def add_channel(self, channel_id: str, name: str, *, bot_member: bool = True) -> None:
        self._channels[channel_id] = _Channel(channel_id, name, bot_member)
        self._messages.setdefault(channel_id, [])

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        display_name: str = "",
        real_name: str = "",
        is_bot: bool = False,
    ) -> None:
        self._users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": is_bot,
            "profile": {
                "display_name": display_name,
                "display_name_normalized": display_name,
                "real_name": real_name,
                "real_name_normalized": real_name,
                "image_72": f"http://{self._base or '127.0.0.1'}/avatars/{user_id}_72.png",
                "team": self.team_id,
            },
        }

    def calls_of(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict]:
        """Messages as they stand now, oldest first: the whole channel (thread replies
        included) when ``thread_ts`` is None, else that thread's root and replies."""
        found = self._messages.get(channel, [])
        if thread_ts is not None:
            found = [m for m in found if thread_ts in (m["ts"], m.get("thread_ts"))]
        return [json.loads(json.dumps(m)) for m in found]

    def reactions(self, channel: str, ts: str) -> list[str]:
        return list(self._reactions.get((channel, ts), []))

    @property
    def unacked(self) -> set[str]:
        return set(self._socket.envelopes)

    @property
    def connections(self) -> int:
        """Websockets open right now."""
        return len(self._socket.sockets)

    @property
    def connections_opened(self) -> int:
        """Websockets accepted since start (reconnects count)."""
        return self._socket.opened

    @property
    def socket_protocol_errors(self) -> list[str]:
        """Frames the client sent that Slack would not understand (unknown acks, junk)."""
        return list(self._socket.protocol_errors)

    # --- scripting -----------------------------------------------------------------

    def script(
        self,
        method: str,
        *,
        error: str | None = None,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        applied: bool = False,
    ) -> None:
        """The next ``times`` calls of ``method`` fail: ``{"ok": false, "error": error}``
        with HTTP ``status`` (200 like Slack), or HTTP 429 + ``Retry-After`` and error
        ``ratelimited`` when ``retry_after`` is set. With ``applied`` the call takes
        effect first and only its answer fails (a 5xx or timeout after Slack posted)."""
        if retry_after is not None:
            failure = _Failure(error or "ratelimited", 429, retry_after, applied)
        else:
            failure = _Failure(error or "internal_error", status, None, applied)
        self._script.add(method, failure, times)

    def script_fraction(
        self, method: str | None, *, fraction: float, retry_after: int = 1, seed: int = 0
    ) -> None:
        """About ``fraction`` of the calls of ``method`` (every method when None) get
        HTTP 429 with ``Retry-After``, reproducibly for a ``seed``; 0 turns it off."""
        self._script.set_fraction(method, fraction, retry_after, seed)

    # --- Socket Mode ---------------------------------------------------------------

    def event_payload(self, event: dict) -> JsonDict:
        """An Events API payload (``event_callback``) around ``event``, as Slack sends
        it over Socket Mode or HTTP; a fresh ``event_id`` each time."""
        return {
            "token": "fake-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-fake-{uuid.uuid4().hex[:8]}",
        }

    async def send_event(
        self, event: dict, *, envelope_type: str = "events_api", retry_attempt: int = 0
    ) -> str:
        """Sends an Events API ``event`` (or, with another ``envelope_type``, ``event``
        as the payload itself); returns the envelope id. Without an open socket the
        envelope waits for the next connection, as Slack queues briefly."""
        payload = self.event_payload(event) if envelope_type == "events_api" else event
        envelope = _Envelope(
            id=str(uuid.uuid4()),
            type=envelope_type,
            payload=payload,
            accepts_response_payload=envelope_type != "events_api",
            retry_attempt=retry_attempt,
        )
        return await self._socket.send(envelope)

    async def retry_unacked(self, *, after: float = 3.0) -> int:
        """Slack retries an event not acknowledged within 3 s (then after 1 and 5
        minutes): call this to redeliver every envelope unacknowledged for ``after`` s,
        with ``retry_attempt`` raised; returns how many were sent again."""
        return await self._socket.retry_unacked(after)

    def slash_command_payload(
        self, command: str, text: str, *, user_id: str, channel_id: str
    ) -> dict[str, str]:
        """A slash command's fields (a form over HTTP, an object over Socket Mode)."""
        channel = self._channels.get(channel_id)
        user = self._users.get(user_id, {})
        return {
            "token": "fake-verification-token",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel.name if channel else "unknown",
            "user_id": user_id,
            "user_name": user.get("name", user_id),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": f"http://{self._base}/commands/{uuid.uuid4().hex}",
            "trigger_id": f"{uuid.uuid4().int % 10**13}.fake",
        }

    async def send_slash_command(
        self, command: str, text: str, *, user_id: str, channel_id: str
    ) -> str:
        payload = self.slash_command_payload(command, text, user_id=user_id, channel_id=channel_id)
        return await self.send_event(payload, envelope_type="slash_commands")

    def block_action_payload(
        self, action_id: str, *, user_id: str, channel_id: str, message_ts: str, value: str = ""
    ) -> JsonDict:
        """A ``block_actions`` payload: ``user_id`` clicked ``action_id`` on a message."""
        channel = self._channels.get(channel_id)
        user = self._users.get(user_id, {})
        message = self._find(channel_id, message_ts) or {"type": "message", "ts": message_ts}
        return {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": user.get("name", user_id),
                "name": user.get("name", user_id),
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": "fake-verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": f"{uuid.uuid4().int % 10**13}.fake",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": channel.name if channel else "unknown"},
            "message": json.loads(json.dumps(message)),
            "state": {"values": {}},
            "response_url": f"http://{self._base}/actions/{uuid.uuid4().hex}",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": _block_id_of(message, action_id),
                    "text": {"type": "plain_text", "text": action_id, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    async def send_block_action(
        self, action_id: str, *, user_id: str, channel_id: str, message_ts: str, value: str = ""
    ) -> str:
        payload = self.block_action_payload(
            action_id, user_id=user_id, channel_id=channel_id, message_ts=message_ts, value=value
        )
        return await self.send_event(payload, envelope_type="interactive")

    async def wait_ack(self, envelope_id: str, *, timeout: float = 5) -> dict:  # noqa: ASYNC109
        """The ack frame the client sent for ``envelope_id``: ``{"envelope_id", "payload"?}``."""
        try:
            await self._socket.wait_for(lambda: envelope_id in self._socket.acks, timeout)
        except TimeoutError:
            raise TimeoutError(f"no ack for envelope {envelope_id} in {timeout}s") from None
        return self._socket.acks[envelope_id]

    async def wait_connected(self, *, count: int = 1, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Waits until ``connections_opened`` reaches ``count`` and a socket is open."""
        await self._socket.wait_for(
            lambda: self._socket.opened >= count and bool(self._socket.sockets), timeout
        )

    def disconnect_socket(self) -> None:
        """Drops every websocket; unacked envelopes are redelivered on the next one."""
        self._socket.drop_all()

    # --- HTTP mode -----------------------------------------------------------------

    def http_request(
        self, kind: str, payload: JsonDict, *, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and signed headers Slack would POST to a Request URL: Events API
        payloads (``events_api``) as JSON, interactions (``interactive``) as a form
        whose ``payload`` field holds the JSON, slash commands as a form."""
        if kind == "events_api":
            body, content_type = json.dumps(payload).encode(), "application/json"
        elif kind == "interactive":
            body = urlencode({"payload": json.dumps(payload)}).encode()
            content_type = "application/x-www-form-urlencoded"
        elif kind == "slash_commands":
            body, content_type = urlencode(payload).encode(), "application/x-www-form-urlencoded"
        else:
            raise ValueError(f"unknown request kind {kind!r}")
        headers = self.signed_headers(body, timestamp=timestamp)
        return body, {**headers, "Content-Type": content_type}

    def signed_headers(
        self, body: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        secret = secret if secret is not None else self.signing_secret
        return signed_headers(body, secret=secret, timestamp=timestamp)

    # --- a human in Slack ----------------------------------------------------------

    def user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        files: list[dict] | None = None,
    ) -> dict:
        """Records a message typed by ``user`` and returns its ``message`` event."""
        ts = self._next_ts()
        message: JsonDict = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": [],
        }
        if files:
            message["subtype"] = "file_share"
            message["files"] = files
            message["upload"] = False
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        self._store(channel, message)
        event = dict(message, channel=channel, event_ts=ts, channel_type="channel")
        return json.loads(json.dumps(event))

    def host_file(self, name: str, data: bytes, mimetype: str) -> dict:
        """A file a human uploaded; its ``url_private`` needs the bot token."""
        file = FakeFile(
            id=self._next_file_id(), name=name, title=name, data=data, mimetype=mimetype
        )
        file.length, file.uploaded, file.completed = len(data), True, True
        self.files[file.id] = file
        return self._file_object(file)

    # --- HTTP handlers -------------------------------------------------------------

    async def _serve_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, body_token, parse_error = await _read_args(request)
        token = _bearer(request) or body_token
        peer = request.transport.get_extra_info("peername") if request.transport else None
        call = ApiCall(method=method, args=args, token=token, at=self.timer(), peer=peer)
        self.calls.append(call)
        status, headers = 200, {}
        failure = self._script.next_for(method)
        if failure is not None:
            if failure.applied:
                self._answer(method, args, token, parse_error)
            call.response = {"ok": False, "error": failure.error}
            status = failure.status
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
        else:
            call.response = self._answer(method, args, token, parse_error)
        return web.json_response(call.response, status=status, headers=headers)

    def _answer(
        self, method: str, args: JsonDict, token: str | None, parse_error: str | None
    ) -> JsonDict:
        handler = self._handlers().get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        try:
            _check_token(token, method, bot=self.bot_token, app=self.app_token)
            if parse_error:
                raise SlackError(parse_error)
            result = handler(args)
        except SlackError as exc:
            return {"ok": False, "error": exc.error}
        return {"ok": True, **result}

    async def _serve_upload(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["file_id"])
        if file is None or file.uploaded:
            return web.Response(status=404, text="upload url not valid")
        data = await _read_upload_body(request)
        file.data, file.uploaded = data, True
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _serve_download(self, request: web.Request) -> web.Response:
        self.downloads.append(request.match_info["file_id"])
        if _bearer(request) != self.bot_token:
            return web.Response(status=403, text="forbidden")
        file = self.files.get(request.match_info["file_id"])
        if file is None or not file.uploaded:
            return web.Response(status=404, text="not found")
        return web.Response(body=file.data, content_type=file.mimetype)

    # --- Web API methods -----------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[JsonDict], JsonDict]]:
        return {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "reactions.add": self._reaction_add,
            "reactions.remove": self._reaction_remove,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "files.info": self._file_info,
            "conversations.info": self._conversation_info,
            "conversations.setTopic": self._set_topic,
            "files.delete": self._file_delete,
            "conversations.members": self._conversation_members,
            "conversations.join": self._conversation_join,
            "conversations.replies": self._conversation_replies,
            "conversations.history": self._conversation_history,
            "users.info": self._user_info,
        }

    def _auth_test(self, args: JsonDict) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Fake Workspace",
            "user": "zapbridge",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _connections_open(self, args: JsonDict) -> JsonDict:
        ticket = uuid.uuid4().hex
        self._socket.tickets.add(ticket)
        return {"url": f"ws://{self._base}/socket?ticket={ticket}&app_id={self.app_id}"}

    def _post_message(self, args: JsonDict) -> JsonDict:
        channel = self._member_channel(args)
        text = _text_of(args)
        _check_metadata(args)
        message: JsonDict = {
            "type": "message",
            "subtype": "bot_message",
            "text": text,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "ts": self._next_ts(),
        }
        for key in ("blocks", "attachments", "username", "icon_url", "icon_emoji", "metadata"):
            if args.get(key) not in (None, ""):
                message[key] = args[key]
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        self._store(channel.id, message)
        return {"channel": channel.id, "ts": message["ts"], "message": message}

    def _update(self, args: JsonDict) -> JsonDict:
        channel = self._known_channel(args)
        message = self._own_message(channel.id, _required(args, "ts"), "cant_update_message")
        if not any(args.get(k) not in (None, "") for k in ("text", "blocks", "attachments")):
            raise SlackError("no_text")
        _check_metadata(args)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args:
                message[key] = args[key]
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {"channel": channel.id, "ts": message["ts"], "text": message["text"]}

    def _delete(self, args: JsonDict) -> JsonDict:
        channel = self._known_channel(args)
        message = self._own_message(channel.id, _required(args, "ts"), "cant_delete_message")
        self._messages[channel.id].remove(message)
        self._reactions.pop((channel.id, message["ts"]), None)
        return {"channel": channel.id, "ts": message["ts"]}

    def _set_topic(self, args: JsonDict) -> JsonDict:
        channel = self._member_channel(args)
        topic = str(args.get("topic", ""))
        if len(topic) > 250:
            raise SlackError("too_long")
        channel.topic = topic
        return {"channel": {"id": channel.id, "topic": {"value": topic}}}

    def _file_delete(self, args: JsonDict) -> JsonDict:
        file = self.files.pop(_required(args, "file", error="file_not_found"), None)
        if file is None:
            raise SlackError("file_not_found")
        if file.channel is not None:  # its file_share message goes with it
            self._messages[file.channel] = [
                m
                for m in self._messages.get(file.channel, [])
                if file.id not in {f.get("id") for f in m.get("files", [])}
            ]
        return {}

    def topic(self, channel: str) -> str:
        """The channel's topic as conversations.setTopic left it."""
        return self._channels[channel].topic

    def _post_ephemeral(self, args: JsonDict) -> JsonDict:
        channel = self._member_channel(args)
        user = _required(args, "user", error="user_not_found")
        if user not in self._users:
            raise SlackError("user_not_found")
        _text_of(args)
        return {"message_ts": self._next_ts(), "channel": channel.id}

    def _permalink(self, args: JsonDict) -> JsonDict:
        channel = self._known_channel(args)
        ts = _required(args, "message_ts", error="message_not_found")
        if self._find(channel.id, ts) is None:
            raise SlackError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
        return {"channel": channel.id, "permalink": link}

    def _reaction_target(self, args: JsonDict) -> tuple[str, str]:
        name = args.get("name")
        if not args.get("channel") or not args.get("timestamp"):
            raise SlackError("no_item_specified")
        if not isinstance(name, str) or not _REACTION_NAME.fullmatch(name):
            raise SlackError("invalid_name")
        channel = self._known_channel(args)
        if self._find(channel.id, args["timestamp"]) is None:
            raise SlackError("message_not_found")
        return channel.id, args["timestamp"]

    def _reaction_add(self, args: JsonDict) -> JsonDict:
        key = self._reaction_target(args)
        names = self._reactions.setdefault(key, [])
        if args["name"] in names:
            raise SlackError("already_reacted")
        names.append(args["name"])
        return {}

    def _reaction_remove(self, args: JsonDict) -> JsonDict:
        key = self._reaction_target(args)
        names = self._reactions.get(key, [])
        if args["name"] not in names:
            raise SlackError("no_reaction")
        names.remove(args["name"])
        return {}

    def _upload_url(self, args: JsonDict) -> JsonDict:
        filename = args.get("filename")
        try:
            length = int(args.get("length") or 0)
        except (TypeError, ValueError):
            raise SlackError("invalid_arguments") from None
        if not filename or length <= 0:
            raise SlackError("missing_argument" if filename else "invalid_arguments")
        mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        file = FakeFile(
            id=self._next_file_id(), name=filename, title=filename, data=b"", mimetype=mimetype
        )
        file.length = length
        self.files[file.id] = file
        return {"upload_url": f"http://{self._base}/upload/{file.id}", "file_id": file.id}

    def _complete_upload(self, args: JsonDict) -> JsonDict:
        entries = args.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        files = [self._uploaded_file(entry) for entry in entries]
        channel_id = args.get("channel_id") or (args.get("channels") or "").split(",")[0] or None
        if channel_id is not None:
            channel = self._channels.get(channel_id)
            if channel is None:
                raise SlackError("invalid_channel")
            if not channel.bot_member:
                raise SlackError("posting_to_channel_denied")
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        comment = args.get("initial_comment") or None
        for file, entry in zip(files, entries, strict=True):
            file.title = entry.get("title") or file.name
            file.channel, file.thread_ts, file.initial_comment = channel_id, thread_ts, comment
            file.completed = True
        if channel_id is not None:
            self._share(channel_id, files, thread_ts=thread_ts, comment=comment)
        return {"files": [{"id": f.id, "title": f.title} for f in files]}

    def _uploaded_file(self, entry: Any) -> FakeFile:
        if not isinstance(entry, dict) or "id" not in entry:
            raise SlackError("invalid_arguments")
        file = self.files.get(entry["id"])
        if file is None or not file.uploaded or file.completed:
            raise SlackError("file_not_found")
        return file

    def _share(
        self, channel: str, files: list[FakeFile], *, thread_ts: str | None, comment: str | None
    ) -> None:
        message: JsonDict = {
            "type": "message",
            "subtype": "file_share",
            "text": comment or "",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "files": [self._file_object(f) for f in files],
            "upload": True,
            "ts": self._next_ts(),
        }
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        self._store(channel, message)

    def _file_info(self, args: JsonDict) -> JsonDict:
        file = self.files.get(args.get("file") or "")
        if file is None or not file.completed:
            raise SlackError("file_not_found")
        return {"file": self._file_object(file)}

    def _conversation_info(self, args: JsonDict) -> JsonDict:
        channel = self._known_channel(args)
        return {"channel": self._channel_object(channel)}

    def _conversation_members(self, args: JsonDict) -> JsonDict:
        channel = self._known_channel(args)
        members = sorted(channel.members | ({self.bot_user_id} if channel.bot_member else set()))
        return {"members": members, "response_metadata": {"next_cursor": ""}}

    def _conversation_join(self, args: JsonDict) -> JsonDict:
        channel = self._known_channel(args)
        channel.bot_member = True
        return {"channel": self._channel_object(channel)}

    def _conversation_replies(self, args: JsonDict) -> JsonDict:
        channel = self._member_channel(args)
        ts = _required(args, "ts", error="thread_not_found")
        if self._find(channel.id, ts) is None:
            raise SlackError("thread_not_found")
        return _page(self.messages(channel.id, ts), args, default_limit=REPLIES_LIMIT)

    def _conversation_history(self, args: JsonDict) -> JsonDict:
        """Top-level messages of the channel (thread replies left out), newest first."""
        channel = self._member_channel(args)
        found = [m for m in self.messages(channel.id) if m.get("thread_ts") in (None, m["ts"])]
        return _page(found[::-1], args, default_limit=HISTORY_LIMIT)

    def _user_info(self, args: JsonDict) -> JsonDict:
        user = self._users.get(args.get("user") or "")
        if user is None:
            raise SlackError("user_not_found")
        return {"user": json.loads(json.dumps(user))}

    # --- internals -----------------------------------------------------------------

    def _known_channel(self, args: JsonDict) -> _Channel:
        channel = self._channels.get(args.get("channel") or "")
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def _member_channel(self, args: JsonDict) -> _Channel:
        channel = self._known_channel(args)
        if not channel.bot_member:
            raise SlackError("not_in_channel")
        return channel

    def _own_message(self, channel: str, ts: str, not_own_error: str) -> JsonDict:
        message = self._find(channel, ts)
        if message is None:
            raise SlackError("message_not_found")
        if message.get("user") != self.bot_user_id:
            raise SlackError(not_own_error)
        return message

    def _find(self, channel: str, ts: str) -> JsonDict | None:
        return next((m for m in self._messages.get(channel, []) if m["ts"] == ts), None)

    def _store(self, channel: str, message: JsonDict) -> None:
        self._messages.setdefault(channel, []).append(message)
        if channel in self._channels and message.get("user"):
            self._channels[channel].members.add(message["user"])
        thread_ts = message.get("thread_ts")
        root = self._find(channel, thread_ts) if thread_ts else None
        if root is not None and root is not message:
            root["thread_ts"] = root["ts"]
            root["reply_count"] = root.get("reply_count", 0) + 1
            root["latest_reply"] = message["ts"]
            users = root.setdefault("reply_users", [])
            if message.get("user") and message["user"] not in users:
                users.append(message["user"])

    def _next_ts(self) -> str:
        micros = 1_700_000_000_000_000 + next(self._ts) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_file_id(self) -> str:
        return f"F0FAKE{next(self._file_ids):05d}"

    def _file_object(self, file: FakeFile) -> JsonDict:
        return {
            "id": file.id,
            "name": file.name,
            "title": file.title,
            "mimetype": file.mimetype,
            "size": len(file.data),
            "user": self.bot_user_id,
            "url_private": f"http://{self._base}/files-pri/{file.id}/{file.name}",
            "url_private_download": f"http://{self._base}/files-pri/{file.id}/{file.name}",
        }

    def _channel_object(self, channel: _Channel) -> JsonDict:
        return {
            "id": channel.id,
            "name": channel.name,
            "is_channel": True,
            "is_private": False,
            "is_archived": False,
            "is_member": channel.bot_member,
            "context_team_id": self.team_id,
        }


# --- request parsing -----------------------------------------------------------------


def signed_headers(body: bytes, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """``X-Slack-Signature`` and ``X-Slack-Request-Timestamp`` for ``body``, as Slack
    signs a request with the app's signing secret (now, unless ``timestamp``)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": ts}


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None


async def _read_args(request: web.Request) -> tuple[JsonDict, str | None, str | None]:
    """Query string + body (form, multipart or JSON) → (args, token in body, error)."""
    args: JsonDict = dict(request.query)
    body_token = args.pop("token", None)
    error = None
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                body, error = {}, "invalid_json"
            if not isinstance(body, dict):
                body, error = {}, "invalid_json"
            body.pop("token", None)  # Slack reads a JSON body's token only from the header
            args.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            body_token = fields.pop("token", body_token)
            args.update(fields)
        else:
            error = "invalid_post_type"
    for key in JSON_ARGS:
        if isinstance(args.get(key), str) and args[key]:
            try:
                args[key] = json.loads(args[key])
            except json.JSONDecodeError:
                malformed = "invalid_metadata_format" if key == "metadata" else "invalid_arguments"
                error = error or malformed
    return args, body_token, error


async def _read_upload_body(request: web.Request) -> bytes:
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "filename", None) or getattr(part, "name", None) == "file":
                return bytes(await part.read())  # type: ignore[union-attr]
        return b""
    return await request.read()


def _check_token(token: str | None, method: str, *, bot: str, app: str) -> None:
    if not token:
        raise SlackError("not_authed")
    if token not in (bot, app):
        raise SlackError("invalid_auth")
    app_only = method == "apps.connections.open"
    if (token == app) != app_only:
        raise SlackError("not_allowed_token_type")


def _required(args: JsonDict, key: str, *, error: str = "message_not_found") -> str:
    value = args.get(key)
    if not value:
        raise SlackError(error)
    return str(value)


def _check_metadata(args: JsonDict) -> None:
    """Slack's rules for ``metadata``: an object with a non-empty alphanumeric
    ``event_type`` and an ``event_payload`` object whose values are strings, numbers,
    booleans, objects of those, or lists of such objects."""
    metadata = args.get("metadata")
    if metadata in (None, ""):
        return
    if not isinstance(metadata, dict):
        raise SlackError("invalid_metadata_format")
    event_type = metadata.get("event_type")
    payload = metadata.get("event_payload")
    if not isinstance(event_type, str) or not EVENT_TYPE_PATTERN.fullmatch(event_type):
        raise SlackError("invalid_metadata_schema")
    if not isinstance(payload, dict) or not all(_payload_value(v) for v in payload.values()):
        raise SlackError("invalid_metadata_schema")


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value is not None


def _flat_object(value: Any) -> bool:
    return isinstance(value, dict) and all(_scalar(v) for v in value.values())


def _payload_value(value: Any) -> bool:
    if isinstance(value, list):
        return all(_flat_object(item) for item in value)
    return _scalar(value) or _flat_object(value)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _page(messages: list[JsonDict], args: JsonDict, *, default_limit: int) -> JsonDict:
    """One page of ``messages`` (``limit``/``cursor``), metadata only when asked for."""
    try:
        limit = int(args.get("limit") or default_limit)
    except (TypeError, ValueError):
        raise SlackError("invalid_limit") from None
    limit = max(1, min(limit, 1000))
    start = 0
    if args.get("cursor"):
        try:
            start = int(base64.b64decode(str(args["cursor"])).decode().removeprefix("offset:"))
        except ValueError:
            raise SlackError("invalid_cursor") from None
    page = messages[start : start + limit]
    if not _truthy(args.get("include_all_metadata")):
        for message in page:
            message.pop("metadata", None)
    more = start + limit < len(messages)
    cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return {"messages": page, "has_more": more, "response_metadata": {"next_cursor": cursor}}


def _text_of(args: JsonDict) -> str:
    text = args.get("text") or ""
    if not text and not args.get("blocks") and not args.get("attachments"):
        raise SlackError("no_text")
    if "blocks" in args and not isinstance(args["blocks"], list):
        raise SlackError("invalid_blocks")
    if len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")
    return str(text)


def _block_id_of(message: JsonDict, action_id: str) -> str:
    for block in message.get("blocks") or []:
        for element in block.get("elements") or []:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id", "actions"))
    return "actions"
