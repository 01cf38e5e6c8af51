"""The appservice side: the HTTP listener the homeserver pushes transactions to, and
the intents (the bot and the ghosts) the bridge acts through.

Built on ``mautrix.appservice.AppService``, with its transaction endpoint replaced:

- the ``hs_token`` is checked first: no token → 401 ``M_UNAUTHORIZED``, a wrong one
  → 403 ``M_FORBIDDEN``, and nothing in the body is looked at;
- a transaction is acknowledged only after every event's handler returned, so the
  work is persisted before the homeserver forgets it; a handler that could not
  persist (``DatabaseError``, or anything unexpected) answers 500 and the
  homeserver retries the whole transaction (events already handled are recognised
  by the core's event log);
- a transaction already acknowledged (the same id with the same events) is answered
  ``{}`` without processing; the same one arriving twice at once is processed once
  (a lock per transaction). An id reused for other events is a new transaction:
  Synapse on SQLite numbers transactions from 1 again after it restarts.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp
from aiohttp import web
from mautrix.appservice import AppService, AppServiceAPI, IntentAPI
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixRequestError
from mautrix.types import JSON, Event, SerializerError, UserID

from bridge.config import AppserviceConfig, HomeserverConfig
from bridge.errors import DatabaseError

__all__ = ["BridgeAppService", "EventHandler", "TransactionHook", "retry_after_of_last_429"]

log = logging.getLogger("bridge.matrix.appservice")

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
TransactionHook = Callable[[str, list[Any]], Awaitable[None]]  # (txn id, its events)

_REMEMBERED_TRANSACTIONS = 10_000


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
    """mautrix's AppService with a transaction endpoint that acknowledges late."""

    handle_raw_event: EventHandler | None = None
    note_transaction: TransactionHook | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acknowledged: OrderedDict[str, None] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        """mautrix's start, with a client session that notes 429 back-off times."""
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
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port).start()

    def _token_problem(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        token = token or request.rel_url.query.get("access_token")
        if not token:
            return _error(401, "M_UNAUTHORIZED", "no hs_token given")
        if token != self.hs_token:
            return _error(403, "M_FORBIDDEN", "wrong hs_token")
        return None

    async def _http_handle_transaction(self, request: web.Request) -> web.Response:
        problem = self._token_problem(request)
        if problem is not None:
            log.warning("transaction refused: %s", problem.reason)
            return problem
        txn_id = request.match_info["transaction_id"]
        try:
            data = await request.json()
        except ValueError:
            return _error(400, "M_NOT_JSON", "the body is not JSON")
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return _error(400, "M_BAD_JSON", "no events list in the transaction")
        if self.note_transaction is not None:
            await self.note_transaction(txn_id, events)
        key = _transaction_key(txn_id, events)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if key in self._acknowledged:
                    log.debug("transaction %s seen before: acknowledged again", txn_id)
                    return web.json_response({})
                if not await self._process(txn_id, events):
                    return _error(500, "M_UNKNOWN", "not persisted; retry the transaction")
                self._remember(key)
                return web.json_response({})
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _process(self, txn_id: str, events: list[Any]) -> bool:
        for raw in events:
            if not isinstance(raw, dict):
                continue
            await self._track_state(raw)
            if self.handle_raw_event is None:
                continue
            try:
                await self.handle_raw_event(raw)
            except DatabaseError as exc:
                log.error("transaction %s: not persisted: %s", txn_id, exc.explanation)
                return False
            except Exception:
                log.exception("transaction %s: event %s failed", txn_id, raw.get("event_id"))
                return False
        return True

    async def _track_state(self, raw: dict[str, Any]) -> None:
        """Keep the intents' view of memberships and power levels current."""
        if raw.get("state_key") is None:
            return
        try:
            self._fix_prev_content(cast(JSON, raw))
            event = Event.deserialize(raw)
        except SerializerError:
            log.debug("state event %s not understood", raw.get("event_id"))
            return
        await self.state_store.update_state(event)  # type: ignore[arg-type]

    def _remember(self, txn_id: str) -> None:
        self._acknowledged[txn_id] = None
        while len(self._acknowledged) > _REMEMBERED_TRANSACTIONS:
            self._acknowledged.popitem(last=False)


def _transaction_key(txn_id: str, events: list[Any]) -> str:
    """What makes a transaction the same one again: its id *and* its events. A
    homeserver may reuse ids: Synapse on SQLite numbers them from 1 again after a
    restart, so an id alone would make new events look like a retry."""
    digest = hashlib.sha256()
    for raw in events:
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        digest.update(str(event_id).encode() + b"\0")
    return f"{txn_id}:{digest.hexdigest()}"


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status, reason=message)


class BridgeAppService:
    """The listener plus the bot's and ghosts' intents. ``start`` then ``stop``."""

    def __init__(self, *, homeserver: HomeserverConfig, appservice: AppserviceConfig) -> None:
        self._config = appservice
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
        )

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

    def on_event(self, handler: EventHandler) -> None:
        """``handler`` gets every event of every transaction, awaited before the ack."""
        self._listener.handle_raw_event = handler

    def on_transaction(self, hook: TransactionHook) -> None:
        """``hook`` sees every transaction's id and events as it arrives, and the
        events are handled once it returns (the catch-up watches the ids for a
        homeserver restart, and holds a push back while it recovers older events)."""
        self._listener.note_transaction = hook

    async def start(self, *, bot_name: str) -> None:
        """Listen on ``appservice.hostname:port``; register the bot and name it."""
        await self._listener.start(self._config.hostname, self._config.port)
        try:
            await self.bot.ensure_registered()
            await self._name_bot(bot_name)
            await self._ping_homeserver()
        except BaseException:
            await self.stop()
            raise
        log.info("appservice listening on %s:%d", self._config.hostname, self._config.port)

    async def _ping_homeserver(self) -> None:
        """Ask the homeserver to ping us (``/appservice/{id}/ping``, spec v1.7). Besides
        checking that it reaches the listener, this makes Synapse retry at once the
        transactions it queued while the bridge was down, instead of after its
        back-off (up to 8.5 minutes)."""
        try:
            rtt = await self._listener.ping_self()
        except MatrixRequestError as exc:  # an older homeserver: delivery still resumes
            log.warning("the homeserver could not ping the appservice: %s", exc)
            return
        log.info("the homeserver reaches the appservice (ping %d ms)", rtt)

    async def _name_bot(self, name: str) -> None:
        try:
            current = await self.bot.get_displayname(self.bot.mxid)
        except MatrixRequestError:
            current = None
        if current != name:
            await self.bot.set_displayname(name)

    async def stop(self) -> None:
        await self._listener.stop()
