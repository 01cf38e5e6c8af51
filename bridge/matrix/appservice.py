"""The appservice side: the HTTP listener the homeserver pushes transactions to, and
the intents (the bot and the ghosts) the bridge acts through.

Built on ``mautrix.appservice.AppService``, with its transaction and ping endpoints
replaced:

- the ``hs_token`` is checked first: no token → 401 ``M_UNAUTHORIZED``, a wrong one
  → 403 ``M_FORBIDDEN``, and not a byte of the body is read;
- then the body is read with a limit sized from Synapse's own batch limits
  (:data:`TRANSACTION_LIMIT`) and a deadline; a body that is not JSON, not an
  object or has no ``events`` list is the homeserver's fault: 400. Nothing inside a
  transaction refuses it: strings with lone surrogates or NUL are cleaned where they
  are read (``bridge.matrix.fields``), any nesting is accepted;
- each event is handled in turn (:func:`handle_or_set_aside`): an event that cannot
  be handled (malformed, or a bug the bridge hits on it) is set aside (recorded,
  reported once in the ops channel, skipped; ``bridge.core.quarantine``) and the
  next one goes on; only a failure to persist (``DatabaseError``, handling it or
  recording it) answers 500, and the homeserver retries the whole transaction
  (events already handled are recognised by the core's event log);
- then its ephemeral events (read receipts, typing: ``bridge.matrix.ephemeral``), each
  handled or set aside the same way; they are never worth a retry, so a failure to
  persist one is logged and the transaction still acknowledged;
- a transaction is acknowledged only after every event was handled or set aside;
  one already acknowledged (the same id with the same events) is answered ``{}``
  without processing; the same one arriving twice at once is processed once (a lock
  per transaction). An id reused for other events is a new transaction: Synapse on
  SQLite numbers transactions from 1 again after it restarts;
- the other routes (ping, user and room queries) take small bodies only, and a
  connection must send a whole request head within ``HEAD_TIMEOUT_SECONDS``;
- what reaches the listener feeds :class:`~bridge.matrix.health.AppserviceHealth`
  (``/health``), and the homeserver is asked to ping it every
  ``PING_EVERY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, cast

import aiohttp
from aiohttp import web
from mautrix.appservice import AppService, AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixConnectionError, MatrixRequestError
from mautrix.types import JSON, SerializerError, StateEvent, UserID

from bridge.cache import bounded
from bridge.clock import Clock, SystemClock
from bridge.config import AppserviceConfig, HomeserverConfig
from bridge.errors import DatabaseError, InvalidInput, RequestRefused
from bridge.http_input import SERVER_OPTIONS, parse_json, read_body
from bridge.matrix.ephemeral import ephemeral_of, with_id
from bridge.matrix.fields import Fields, MalformedEvent
from bridge.matrix.health import PING_EVERY_SECONDS, AppserviceHealth
from bridge.model import clean_text

__all__ = [
    "TRANSACTION_LIMIT",
    "BridgeAppService",
    "EventHandler",
    "SetAsideHook",
    "TransactionHook",
    "event_id_of",
    "handle_or_set_aside",
    "retry_after_of_last_429",
]

log = logging.getLogger("bridge.matrix.appservice")

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
TransactionHook = Callable[[str, list[Any]], Awaitable[None]]  # (txn id, its events)
# (an event, what went wrong with it) → set aside; raises DatabaseError if not recorded
SetAsideHook = Callable[[dict[str, Any], Exception], Awaitable[None]]

_REMEMBERED_TRANSACTIONS = 10_000

# The largest transaction Synapse sends, from its own limits (synapse 1.163:
# synapse/appservice/scheduler.py, synapse/api/constants.py), in units of 64 KiB (an
# event's limit, MAX_PDU_SIZE, measured in the canonical JSON Synapse pushes with):
# - 100 events (MAX_PERSISTENT_EVENTS_PER_TRANSACTION), each with an ``unsigned``
#   that can hold about one more event (a state event's ``prev_content``, a
#   ``redacted_because``): 100 × 2 = 200;
# - 100 ephemeral events (MAX_EPHEMERAL_EVENTS_PER_TRANSACTION) of up to 64 KiB
#   (SOFT_MAX_EDU_SIZE), sent twice since our registration asks for them under the
#   stable and the MSC2409 key: 100 × 2 = 200;
# - 100 to-device messages (MAX_TO_DEVICE_MESSAGES_PER_TRANSACTION) of up to 64 KiB
#   (MAX_TO_DEVICE_CONTENT_SIZE): 100.
# That is 500 units, 31.25 MiB; 40 MiB leaves room for the stripped room state an
# invite carries and for the JSON around it all. Only an authenticated homeserver
# gets a read this large; it is refused with 413 over it, which Synapse would retry
# for ever, so the limit errs on the large side.
TRANSACTION_LIMIT = 40 * 1024 * 1024
TRANSACTION_SECONDS = 60.0  # Synapse itself gives up on a push after 60 s
SMALL_BODY_LIMIT = 64 * 1024  # every other route (ping, queries): tiny bodies
PING_LIMIT = 4 * 1024  # ``{"transaction_id": "..."}``
# The state events the intents' state store keeps (mautrix's update_state).
_TRACKED_STATE = frozenset(
    {"m.room.member", "m.room.power_levels", "m.room.encryption", "m.room.create"}
)


# mautrix's errors drop the body of an M_LIMIT_EXCEEDED answer; a request hook keeps its
# ``retry_after_ms`` here, in the context of the task that made the request.
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "bridge_matrix_retry_after", default=None
)


def retry_after_of_last_429() -> float | None:
    """Seconds the homeserver asked to wait in this task's last 429 answer, if any."""
    return _retry_after.get()


async def _on_request_end(
    _session: aiohttp.ClientSession, _ctx: object, params: aiohttp.TraceRequestEndParams
) -> None:
    response = params.response
    if response.status != 429:
        return
    seconds: float | None = None
    try:
        body = await response.json(content_type=None)
        seconds = float(body["retry_after_ms"]) / 1000
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        header = response.headers.get("Retry-After", "")
        seconds = float(header) if header.isdigit() else None
    _retry_after.set(seconds)


class _MemoryStateStore(MemoryStateStore, ASStateStore):
    """Membership and power levels as seen by this process (rebuilt from the server)."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


class _Listener(AppService):
    """mautrix's AppService with a transaction endpoint that acknowledges late and
    sets aside what it cannot handle (see the module docstring)."""

    handle_raw_event: EventHandler | None = None
    handle_ephemeral: EventHandler | None = None
    note_transaction: TransactionHook | None = None
    set_aside_event: SetAsideHook | None = None

    def __init__(self, *args: Any, health: AppserviceHealth, **kwargs: Any) -> None:
        kwargs["aiohttp_params"] = {"client_max_size": SMALL_BODY_LIMIT}
        super().__init__(*args, **kwargs)
        self.health = health
        self._acknowledged: MutableMapping[str, None] = bounded(_REMEMBERED_TRANSACTIONS)
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        """mautrix's start, with a client session that notes 429 back-off times and a
        server that cuts off a slow request head."""
        await self.state_store.open()
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(_on_request_end)
        self._http_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connection_limit),
            headers={"User-Agent": self.default_ua},
            trace_configs=[trace],
        )
        self._intent = AppServiceAPI(
            base_url=self.server,
            bot_mxid=self.bot_mxid,
            log=self.log,
            token=self.as_token,
            state_store=self.state_store,
            bridge_name=self.bridge_name,
            client_session=self._http_session,
            default_retry_count=self.default_http_retry_count,
        ).bot_intent()
        self.runner = web.AppRunner(self.app, **SERVER_OPTIONS)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port).start()

    def _token_problem(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        token = token or request.rel_url.query.get("access_token")
        if not token:
            return _error(401, "M_UNAUTHORIZED", "no hs_token given")
        given = token.encode("utf-8", "surrogatepass")  # a header may hold any bytes
        if not hmac.compare_digest(given, self.hs_token.encode()):
            return _error(403, "M_FORBIDDEN", "wrong hs_token")
        return None

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        problem = self._token_problem(request)
        if problem is not None:
            log.warning("transaction refused: %s", problem.reason)
            return problem
        txn_id = request.match_info["transaction_id"]
        response = await self._transaction(txn_id, request)
        self.health.transaction_answered(response.status, response.reason or "")
        if response.status >= 400:
            log.warning(
                "transaction %r refused: %d %s", txn_id[:80], response.status, response.reason
            )
        return response

    async def _transaction(self, txn_id: str, request: web.Request) -> web.Response:
        try:
            body = await read_body(request, limit=TRANSACTION_LIMIT, seconds=TRANSACTION_SECONDS)
            data = parse_json(body, max_depth=None, surrogates=True)
        except RequestRefused as exc:
            return _error(exc.status, _ERRCODES.get(exc.status, "M_NOT_JSON"), exc.explanation)
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return _error(400, "M_BAD_JSON", "no events list in the transaction")
        if self.note_transaction is not None:
            await self.note_transaction(txn_id, events)
        ephemeral = ephemeral_of(data) if self.handle_ephemeral is not None else []
        key = _transaction_key(txn_id, events, ephemeral)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if key in self._acknowledged:
                    log.debug("transaction %r seen before: acknowledged again", txn_id[:80])
                    return web.json_response({})
                if not await self._process(txn_id, events):
                    return _error(500, "M_UNKNOWN", "not persisted; retry the transaction")
                await self._process_ephemeral(txn_id, ephemeral)
                self._acknowledged[key] = None
                return web.json_response({})
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _process(self, txn_id: str, events: list[Any]) -> bool:
        """Handle (or set aside) every event; False when one could not be persisted."""
        for raw in events:
            if not isinstance(raw, dict):
                log.warning("transaction %r: an event that is not an object, skipped", txn_id[:80])
                continue
            try:
                await handle_or_set_aside(raw, self._handle, self.set_aside_event)
            except DatabaseError as exc:
                log.error("transaction %r: not persisted: %s", txn_id[:80], exc.explanation)
                return False
        return True

    async def _process_ephemeral(self, txn_id: str, events: list[Any]) -> None:
        """Handle (or set aside) every ephemeral event; none fails the transaction."""
        handler = self.handle_ephemeral
        if handler is None:
            return
        for raw in events:
            if not isinstance(raw, dict):
                continue
            try:
                await handle_or_set_aside(with_id(raw), handler, self.set_aside_event)
            except DatabaseError as exc:
                log.warning("transaction %r: an ephemeral event lost: %s", txn_id[:80], exc)

    async def _handle(self, raw: dict[str, Any]) -> None:
        await self._track_state(raw)
        if self.handle_raw_event is not None:
            await self.handle_raw_event(raw)

    async def _track_state(self, raw: dict[str, Any]) -> None:
        """Keep the intents' view of memberships and power levels current."""
        fields = Fields(raw)
        kind, state_key = fields.text("type"), fields.text("state_key")
        if kind not in _TRACKED_STATE or state_key is None:
            return
        content = raw.get("content")
        Fields.of(content, "content")  # an object, or the event is malformed
        minimal: dict[str, Any] = {  # what the state store reads, each field checked by type
            "type": kind,
            "state_key": state_key,
            "room_id": fields.text("room_id"),
            "event_id": fields.text("event_id"),
            "sender": fields.text("sender"),
            "origin_server_ts": fields.metadata_int("origin_server_ts") or 0,
            "content": content,
            "unsigned": {},
        }
        try:
            event = StateEvent.deserialize(cast(JSON, minimal))
        except (SerializerError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise MalformedEvent(f"a {kind} event mautrix cannot read ({exc})"[:200]) from exc
        await self.state_store.update_state(event)

    async def _http_ping(self, request: web.Request) -> web.Response:
        """The homeserver's ping (``POST /_matrix/app/v1/ping``): it reaches us."""
        problem = self._token_problem(request)
        if problem is not None:
            log.warning("ping refused: %s", problem.reason)
            return problem
        try:
            body = parse_json(await read_body(request, limit=PING_LIMIT))
        except RequestRefused as exc:
            return _error(exc.status, _ERRCODES.get(exc.status, "M_NOT_JSON"), exc.explanation)
        if not isinstance(body, dict):
            return _error(400, "M_BAD_JSON", "the ping body is not an object")
        self.health.reached()
        log.debug("the homeserver pinged the appservice")
        return web.json_response({})


_ERRCODES = {400: "M_NOT_JSON", 408: "M_UNKNOWN", 413: "M_TOO_LARGE"}


async def handle_or_set_aside(
    raw: dict[str, Any], handle: EventHandler, set_aside: SetAsideHook | None
) -> None:
    """One event through ``handle``; one it cannot handle is set aside through
    ``set_aside`` and skipped. Raises only ``DatabaseError``: the event was neither
    persisted nor recorded, so its source must retry it."""
    try:
        await handle(raw)
    except DatabaseError:
        raise
    except Exception as exc:  # the boundary of one event: the next one goes on
        event_id = event_id_of(raw)
        if not isinstance(exc, InvalidInput):
            # a bug, not the event's fault: its traceback; the quarantine logs the rest once
            log.exception("event %s: the bridge failed on it", event_id)
        if set_aside is None:
            log.warning("event %s skipped: %s", event_id, exc)
            return
        try:
            await set_aside(raw, exc)
        except DatabaseError:
            raise
        except Exception:
            log.exception("event %s could not be set aside; skipped", event_id)


def event_id_of(raw: dict[str, Any]) -> str:
    """The event's id for logs and the quarantine, whatever the event holds."""
    event_id = raw.get("event_id")
    if isinstance(event_id, str) and event_id:
        return clean_text(event_id)[:255]
    return "(no event id)"


def _transaction_key(txn_id: str, events: list[Any], ephemeral: Sequence[Any] = ()) -> str:
    """What makes a transaction the same one again: its id *and* its events (the
    ephemeral ones too, which have no ids). A homeserver may reuse ids: Synapse on
    SQLite numbers them from 1 again after a restart, so an id alone would make new
    events look like a retry."""
    digest = hashlib.sha256()
    for raw in events:
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        text = event_id if isinstance(event_id, str) else "-"
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    if ephemeral:
        canonical = json.dumps(list(ephemeral), sort_keys=True, default=str)
        digest.update(canonical.encode("utf-8", "surrogatepass"))
    return f"{txn_id}:{digest.hexdigest()}"


def _error(status: int, errcode: str, message: str) -> web.Response:
    """A Matrix error; its message is also the status line's reason (printable ASCII)."""
    reason = "".join(c if " " <= c <= "~" else "?" for c in message[:200])
    return web.json_response({"errcode": errcode, "error": message}, status=status, reason=reason)


class BridgeAppService:
    """The listener plus the bot's and ghosts' intents. ``start`` then ``stop``."""

    def __init__(
        self,
        *,
        homeserver: HomeserverConfig,
        appservice: AppserviceConfig,
        clock: Clock | None = None,
    ) -> None:
        self._config = appservice
        self._clock = clock or SystemClock()
        self.health = AppserviceHealth(clock=self._clock)
        self._listener = _Listener(
            server=homeserver.address,
            domain=homeserver.domain,
            as_token=appservice.as_token,
            hs_token=appservice.hs_token,
            bot_localpart=appservice.bot_username,
            id=appservice.id,
            log="bridge.matrix.mautrix",
            state_store=_MemoryStateStore(),
            default_http_retry_count=0,
            health=self.health,
        )
        self._pings: asyncio.Task[None] | None = None

    @property
    def bot_mxid(self) -> str:
        return str(self._listener.bot_mxid)

    @property
    def bot(self) -> IntentAPI:
        return self._listener.intent

    def intent_of(self, mxid: str) -> IntentAPI:
        """The intent of a ghost (or the bot) in our namespace."""
        if mxid == self.bot_mxid:
            return self.bot
        return self.bot.user(UserID(mxid))

    def on_event(self, handler: EventHandler, *, set_aside: SetAsideHook) -> None:
        """``handler`` gets every event of every transaction, awaited before the ack;
        an event it cannot handle goes to ``set_aside`` (:func:`handle_or_set_aside`)."""
        self._listener.handle_raw_event = handler
        self._listener.set_aside_event = set_aside

    def on_ephemeral(self, handler: EventHandler) -> None:
        """``handler`` gets each ephemeral event of a transaction (receipts, typing)
        after its other events; one it cannot handle is set aside like an event."""
        self._listener.handle_ephemeral = handler

    def on_transaction(self, hook: TransactionHook) -> None:
        """``hook`` sees every transaction's id and events as it arrives, and the
        events are handled once it returns (the catch-up watches the ids for a
        homeserver restart, and holds a push back while it recovers older events)."""
        self._listener.note_transaction = hook

    async def start(self, *, bot_name: str) -> None:
        """Listen on ``appservice.hostname:port``; register the bot and name it; ask
        the homeserver to ping the listener now and every ``PING_EVERY_SECONDS``."""
        await self._listener.start(self._config.hostname, self._config.port)
        try:
            await self.bot.ensure_registered()
            await self._name_bot(bot_name)
            await self._ping_homeserver()
        except BaseException:
            await self.stop()
            raise
        self._pings = asyncio.create_task(self._ping_every(), name="matrix-appservice-ping")
        log.info("appservice listening on %s:%d", self._config.hostname, self._config.port)

    async def _ping_every(self) -> None:
        while True:
            await self._clock.sleep(PING_EVERY_SECONDS)
            if not await self._ping_homeserver():
                return

    async def _ping_homeserver(self) -> bool:
        """Ask the homeserver to ping us (``/appservice/{id}/ping``, spec v1.7). Besides
        checking that it reaches the listener, this makes Synapse retry at once the
        transactions it queued while the bridge was down, instead of after its
        back-off (up to 8.5 minutes). False when the homeserver has no such ping."""
        try:
            rtt = await self._listener.ping_self()
        except MatrixRequestError as exc:
            if exc.errcode == "M_UNRECOGNIZED" or exc.http_status in (404, 405):
                log.warning("the homeserver has no appservice ping (spec v1.7)")
                self.health.pings_unsupported()
                return False
            reason = clean_text(f"{exc.errcode}: {exc.message}")[:300]
            log.warning("the homeserver could not ping the appservice: %s", reason)
            self.health.ping_failed(reason)
            return True
        except (MatrixConnectionError, aiohttp.ClientError, TimeoutError) as exc:
            # the other direction is down: the catch-up's watch reports that
            log.info("cannot ask the homeserver for a ping: %s", exc)
            return True
        self.health.ping_succeeded()
        log.debug("the homeserver reaches the appservice (ping %d ms)", rtt)
        return True

    async def _name_bot(self, name: str) -> None:
        try:
            current = await self.bot.get_displayname(self.bot.mxid)
        except MatrixRequestError:
            current = None
        if current != name:
            await self.bot.set_displayname(name)

    async def stop(self) -> None:
        if self._pings is not None:
            self._pings.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pings
            self._pings = None
        await self._listener.stop()
