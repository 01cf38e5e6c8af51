"""Session status, reconnects and outbound pacing for every WhatsApp number.

:class:`SessionManager` is the engine's event handler. It turns connection events
into the session status (docs/operations.md, "Session status"):

- never paired → ``LOGGED_OUT``; ``login`` → ``QRCODE`` → ``CONNECTED``;
- paired → ``OPENING`` → ``CONNECTED`` (connects staggered by ``stagger_seconds``);
- a transient loss → ``DISCONNECTED`` while waiting, ``OPENING`` during each attempt,
  with exponential backoff and jitter (:mod:`bridge.backoff`); the attempt
  counter resets only after a connection stayed up ``stable_seconds``, so a flapping
  session keeps backing off;
- logged out, banned, outdated, stream replaced → ``LOGGED_OUT``, ``BANNED``,
  ``OUTDATED``, ``STOPPED``: permanent until a human acts; no retries, and the
  change carries an ``action`` saying what to do.

Every change is persisted through a :class:`StatusStore`, fed to the metrics and
announced to listeners as a :class:`StatusChange`, in order
(:mod:`bridge.whatsapp.status_keeper`, :mod:`bridge.whatsapp.status_announcer`).
Other events (messages, receipts, contacts, QR and pairing codes, …) are cleaned
and go to the downstream handler set with :meth:`SessionManager.set_downstream`,
through the journal given to :meth:`SessionManager.keep_refused_in` for the events
the core persists (:mod:`bridge.whatsapp.downstream`).

Outbound operations (paced per session, in order) are
:class:`~bridge.whatsapp.session_outbound.SessionOutbound`; the manager hands them on
(its methods for them are :class:`~bridge.whatsapp.session_outbound.OutboundCalls`).

Wiring: an engine takes its event handler in its constructor and the manager needs
the engine, so build the manager first and attach the engine::

    manager = SessionManager(None, specs=specs, store=store, clock=clock, ...)
    engine = SimEngine(manager.handle_event, ...)
    manager.attach_engine(engine)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Sequence

from bridge.backoff import Backoff
from bridge.clock import Clock
from bridge.errors import EngineError, InvalidInput
from bridge.journal import Journal
from bridge.metrics import Metrics
from bridge.whatsapp.downstream import Downstream, clean_event
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    DisconnectedEvent,
    Engine,
    EngineErrorEvent,
    EngineEvent,
    EventHandler,
    LoggedOutEvent,
    PairCodeEvent,
    PairSuccessEvent,
    QRCodeEvent,
    SessionSpec,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.pacing import Pacer
from bridge.whatsapp.session_outbound import OutboundCalls, SessionOutbound
from bridge.whatsapp.session_state import SessionState
from bridge.whatsapp.status import (
    ACTION_ADMIN_LOGOUT,
    ACTION_NEVER_PAIRED,
    ACTION_OUTDATED,
    ACTION_PHONE_UNLINKED,
    ACTION_STREAM_REPLACED,
    PERMANENT,
    SessionStatus,
    StatusListener,
    StatusStore,
    action_banned,
    action_ended,
    format_utc,
)
from bridge.whatsapp.status_announcer import StatusAnnouncer
from bridge.whatsapp.status_keeper import StatusKeeper

log = logging.getLogger("bridge.session")


# --- the manager ----------------------------------------------------------------


class SessionManager(OutboundCalls):
    """Owns the status, reconnects and outbound pacing of every session."""

    def __init__(
        self,
        engine: Engine | None,
        *,
        specs: Sequence[SessionSpec],
        store: StatusStore,
        clock: Clock,
        rng: random.Random,
        metrics: Metrics | None,
        reconnect_initial: float,
        reconnect_max: float,
        stable_seconds: float,
        stagger_seconds: float,
        send_per_minute: int,
        send_burst: int,
        presence_per_minute: int = 30,
        presence_burst: int = 5,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._rng = rng
        self._metrics = metrics
        self._backoff = Backoff(initial=reconnect_initial, maximum=reconnect_max)
        self._stable_seconds = stable_seconds
        self._stagger_seconds = stagger_seconds
        self._announcer = StatusAnnouncer(store)
        self._status = StatusKeeper(self._announcer, clock=clock, metrics=metrics)
        self._downstream = Downstream()
        self._stopping = False
        self._sessions: dict[str, SessionState] = {}
        for spec in specs:
            if spec.key in self._sessions:
                raise ValueError(f"session {spec.key} is configured twice")
            pacer = Pacer(per_minute=send_per_minute, burst=send_burst, clock=clock)
            self._sessions[spec.key] = SessionState(spec, pacer)
        self._outbound = SessionOutbound(
            session=self._session,
            engine=lambda: self.engine,
            clock=clock,
            presence_per_minute=presence_per_minute,
            presence_burst=presence_burst,
        )

    def fence_with(self, confirm: Callable[[str], Awaitable[bool]]) -> None:
        """Check ``confirm(key)`` (the lease, docs/cluster.md) before every send."""
        self._outbound.fence = confirm

    # --- wiring -------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("no engine attached to the session manager")
        return self._engine

    def attach_engine(self, engine: Engine) -> None:
        """Use ``engine`` (built with :meth:`handle_event` as its handler)."""
        self._engine = engine

    def add_listener(self, listener: StatusListener) -> None:
        """Call ``listener`` (sync or async) with every :class:`StatusChange`."""
        self._announcer.add_listener(listener)

    def set_downstream(self, handler: EventHandler | None) -> None:
        """Forward non-status events (messages, receipts, QR codes, …) to ``handler``."""
        self._downstream.handler = handler

    def keep_refused_in(self, journal: Journal[EngineEvent] | None) -> None:
        """Send the events the core persists through ``journal`` (whose handler is the
        downstream): what the database refuses is kept and replayed in order."""
        self._downstream.journal = journal

    async def set_aside_kept(self, event: EngineEvent, exc: Exception) -> None:
        """The journal's ``on_failed``: a kept event the downstream cannot take even
        with the database up is reported like any event the bridge cannot handle."""
        await self._downstream.set_aside(event, exc)

    # --- queries --------------------------------------------------------------

    @property
    def specs(self) -> tuple[SessionSpec, ...]:
        return tuple(s.spec for s in self._sessions.values())

    def get_spec(self, key: str) -> SessionSpec:
        return self._session(key).spec

    def status(self, key: str) -> SessionStatus:
        """The current status; ``OPENING`` until :meth:`start` has decided."""
        return self._session(key).shown_status

    def statuses(self) -> dict[str, SessionStatus]:
        return {key: s.shown_status for key, s in self._sessions.items()}

    def phone(self, key: str) -> str | None:
        return self._session(key).phone

    def pending_sends(self, key: str) -> int:
        """Outbound operations of ``key`` queued or running (for backlog alerts)."""
        return self._session(key).pacer.pending

    async def flush(self) -> None:
        """Wait until every status change so far is persisted and announced.

        Not from a listener: it would wait for itself."""
        await self._announcer.flush()

    # --- lifecycle ------------------------------------------------------------

    async def start(self, *, only: Collection[str] | None = None) -> None:
        """Mark never-paired sessions LOGGED_OUT and connect the paired ones,
        ``stagger_seconds`` apart. Returns once every connect is scheduled. With
        ``only``, just those sessions (the ones this instance owns, docs/cluster.md);
        the others wait for :meth:`adopt` (which may come while this runs)."""
        self._stopping = False
        wanted = None if only is None else set(only)  # O(1) lookups for 10,000 sessions
        targets = [s for s in self._sessions.values() if wanted is None or s.key in wanted]
        for session in self._sessions.values():
            session.released = wanted is not None and session.key not in wanted
        slot = 0
        for session in targets:  # one released meanwhile is skipped
            if not session.released and await self._open(session, slot * self._stagger_seconds):
                slot += 1

    async def _open(self, session: SessionState, delay: float) -> bool:
        """Connect a paired session after ``delay``; True when a connect is scheduled."""
        try:
            paired = await self.engine.is_paired(session.spec)
        except EngineError as exc:
            session.log.warning("cannot tell whether it is paired: %s", exc.explanation)
            session.paired = True  # let the retries find out
            self._retry_later(session, f"device store unreadable: {exc.explanation}")
            return False
        if session.released:  # released while the pairing was read: another instance runs it
            return False
        if not paired:
            self._status.set(
                session, SessionStatus.LOGGED_OUT, reason="never linked", action=ACTION_NEVER_PAIRED
            )
            return False
        session.paired = True
        self._status.set(session, SessionStatus.OPENING, reason="starting")
        session.connector = self._spawn_connector(session, delay)
        return True

    async def adopt(self, key: str) -> None:
        """Run session ``key`` here from its stored pairing (its lease is ours now);
        nothing when it runs here already (or :meth:`start` is still to run it)."""
        session = self._session(key)
        if session.released:
            session.released = False
            await self._open(session, 0.0)

    async def release(self, key: str) -> None:
        """Stop running session ``key`` here, without logging it out (another
        instance owns it now): no reconnects, and its events are dropped."""
        session = self._session(key)
        session.released = True
        task = session.connector
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        session.connector = None
        await self._disconnect(session)
        if self._metrics is not None and session.status is not None:
            self._metrics.clear_session_status(key)

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Cancel pending reconnects, disconnect every session, flush the statuses.

        Statuses stay as they are (a bridge shutdown is not ``STOPPED``); takes at
        most about ``2 × grace_seconds``.
        """
        self._stopping = True
        connectors = [s.connector for s in self._sessions.values() if s.connector is not None]
        for task in connectors:
            task.cancel()
        for outcome in await asyncio.gather(*connectors, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("a reconnect task had failed", exc_info=outcome)
        if self._engine is not None:
            try:
                async with asyncio.timeout(grace_seconds):
                    await asyncio.gather(*(self._disconnect(s) for s in self._sessions.values()))
            except TimeoutError:
                log.warning(
                    "the engine did not disconnect every session within %.0f s", grace_seconds
                )
        await self._announcer.close(grace_seconds=grace_seconds)

    async def _disconnect(self, session: SessionState) -> None:
        try:
            await self.engine.disconnect(session.key)
        except EngineError as exc:
            session.log.warning("disconnect failed: %s", exc.explanation)

    # --- engine events --------------------------------------------------------

    async def handle_event(self, event: EngineEvent) -> None:
        """The engine's event handler. Errors are logged; only a message the downstream
        could not handle is raised back to the engine (a ``DatabaseError``: neither
        persisted nor kept in the journal), which then must not treat it as delivered."""
        session = self._sessions.get(event.session)
        if session is None:
            log.warning(
                "event %s for unknown session %s dropped", type(event).__name__, event.session
            )
            return
        if session.released:
            session.log.debug("%s dropped: another instance owns it", type(event).__name__)
            return
        event = clean_event(event, session.log)
        try:
            forward = self._apply(session, event)
        except Exception:
            session.log.exception("could not apply %s", type(event).__name__)
            forward = False
        if forward:
            await self._downstream.forward(event, session.log)

    def _apply(self, session: SessionState, event: EngineEvent) -> bool:
        """Update the status for ``event``; True when it goes downstream too."""
        match event:
            case QRCodeEvent():
                self._on_login_code(session, "waiting for the QR code to be scanned")
            case PairCodeEvent(phone=phone):
                self._on_login_code(session, f"waiting for the pairing code on {phone}")
            case PairSuccessEvent(phone=phone) | ConnectedEvent(phone=phone):
                self._on_connected(session, phone)
                return False
            case DisconnectedEvent(reason=reason, transient=True):
                self._on_transient_loss(session, reason)
                return False
            case DisconnectedEvent(reason=reason):
                self._fail(session, SessionStatus.LOGGED_OUT, reason, action_ended(reason))
                return False
            case LoggedOutEvent(reason=reason, action=action):
                self._on_logged_out(session, reason, action)
                return False
            case TemporaryBanEvent(code=code, expires_in=expires_in):
                self._on_banned(session, code, expires_in)
                return False
            case ClientOutdatedEvent():
                self._fail(session, SessionStatus.OUTDATED, "client outdated", ACTION_OUTDATED)
                return False
            case StreamReplacedEvent():
                self._fail(
                    session, SessionStatus.STOPPED, "stream replaced", ACTION_STREAM_REPLACED
                )
                return False
            case EngineErrorEvent(explanation=explanation):
                session.log.warning("engine error: %s", explanation)
        return True

    def _on_login_code(self, session: SessionState, reason: str) -> None:
        self._cancel_retry(session)
        self._status.set(session, SessionStatus.QRCODE, reason=reason)

    def _on_connected(self, session: SessionState, phone: str | None) -> None:
        self._cancel_retry(session)
        session.paired = True
        session.ban_until = None
        new_phone = phone is not None and phone != session.phone
        if phone is not None:
            session.phone = phone
        if session.status is SessionStatus.CONNECTED:
            if new_phone:
                self._status.persist(session, change=None)
            return
        session.connected_since = self._clock.monotonic()
        session.connected_at = self._clock.now()
        reason = f"connected as {session.phone}" if session.phone else "connected"
        self._status.set(session, SessionStatus.CONNECTED, reason=reason)

    def _on_transient_loss(self, session: SessionState, reason: str) -> None:
        if self._stopping or session.released:
            session.log.debug("disconnected while the bridge stops: %s", reason)
            return
        if session.status in PERMANENT:
            session.log.info("ignoring a disconnect while %s: %s", session.status, reason)
            return
        if not session.paired:
            self._fail(
                session,
                SessionStatus.LOGGED_OUT,
                f"login interrupted: {reason}",
                action_ended(f"login interrupted: {reason}"),
            )
            return
        if session.connector_running and not session.connecting:
            session.log.debug("disconnected (%s); an attempt is already scheduled", reason)
            return
        if session.connected_since is not None:
            uptime = self._clock.monotonic() - session.connected_since
            if uptime >= self._stable_seconds:
                session.attempt = 0
            session.connected_since = None
        self._retry_later(session, reason)

    def _on_logged_out(self, session: SessionState, reason: str, action: str | None) -> None:
        """LOGGED_OUT with the engine's advice when it gives one (the Cloud API's token),
        else a phone's: link the device again."""
        session.paired = False
        if session.admin_logout:
            self._fail(
                session, SessionStatus.LOGGED_OUT, "logged out by an admin", ACTION_ADMIN_LOGOUT
            )
        else:
            advice = action or ACTION_PHONE_UNLINKED
            self._fail(session, SessionStatus.LOGGED_OUT, reason, advice)

    def _on_banned(self, session: SessionState, code: str, expires_in: float | None) -> None:
        now = self._clock.now()
        session.ban_until = now + expires_in if expires_in is not None else None
        reason = f"temporarily banned (code {code})"
        action = action_banned(session.ban_until, now=now)
        self._fail(session, SessionStatus.BANNED, reason, action, until=session.ban_until)

    def _fail(
        self,
        session: SessionState,
        status: SessionStatus,
        reason: str,
        action: str,
        *,
        until: float | None = None,
    ) -> None:
        """A permanent status: stop retrying, wait for a human."""
        self._cancel_retry(session)
        session.attempt = 0
        session.connected_since = None
        self._status.set(session, status, reason=reason, action=action, until=until)

    # --- reconnects -------------------------------------------------------------

    def _retry_later(self, session: SessionState, reason: str) -> None:
        """DISCONNECTED now; the next attempt after the backoff delay."""
        session.attempt += 1
        session.retry_delay = self._backoff.delay(session.attempt, self._rng)
        session.log.info(
            "disconnected (%s); attempt %d in %.1f s", reason, session.attempt, session.retry_delay
        )
        self._status.set(
            session,
            SessionStatus.DISCONNECTED,
            reason=reason,
            until=self._clock.now() + session.retry_delay,
        )
        if not session.connector_running:
            session.connector = self._spawn_connector(session, session.retry_delay)

    def _spawn_connector(self, session: SessionState, delay: float) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(
            self._connect_loop(session, delay), name=f"connect {session.key}"
        )

    async def _connect_loop(self, session: SessionState, delay: float) -> None:
        """Wait, attempt, and again after each failure, until an attempt holds or
        someone else (an event, a command) decides the status."""
        while True:
            await self._clock.sleep(delay)
            if session.attempt and self._metrics is not None:
                self._metrics.reconnects.labels(session=session.key).inc()
            failure = await self._attempt(session)
            if failure is not None and session.status is SessionStatus.OPENING:
                self._retry_later(session, failure)
            if session.status is not SessionStatus.DISCONNECTED:
                return
            delay = session.retry_delay

    async def _attempt(self, session: SessionState, *, reason: str | None = None) -> str | None:
        """OPENING, then one engine.connect; the failure's reason, or None."""
        if reason is None:
            reason = f"reconnect attempt {session.attempt}" if session.attempt else "connecting"
        self._status.set(session, SessionStatus.OPENING, reason=reason)
        session.connecting = True
        try:
            await self.engine.connect(session.spec)
        except EngineError as exc:
            session.log.warning("connect failed: %s", exc.explanation)
            return exc.explanation
        except Exception as exc:
            session.log.exception("connect failed unexpectedly")
            return f"unexpected engine error: {exc!r}"
        finally:
            session.connecting = False
        return None

    def _cancel_retry(self, session: SessionState) -> None:
        """Cancel a scheduled attempt; one in flight ends on its own (its loop sees
        the status someone else set)."""
        task = session.connector
        if task is None or task.done() or session.connecting:
            return
        if task is not asyncio.current_task():
            task.cancel()
            session.connector = None

    # --- commands -----------------------------------------------------------------

    async def login(self, key: str, phone: str | None = None) -> None:
        """Bring the session online (``!login``).

        A paired session connects now (after a ban, a replaced stream, or to skip
        the backoff wait); an unpaired one starts a login: QR codes, or a pairing
        code for ``phone``. Raises :class:`InvalidInput` when the session is
        connected or connecting, or banned and the ban has not ended;
        :class:`EngineError` when the engine refuses (retries continue).
        """
        session = self._session(key)
        self._check_login_allowed(session)
        engine = self.engine
        paired = await engine.is_paired(session.spec)
        if paired and phone is not None:
            raise InvalidInput(
                f"session {key} is still linked to {session.phone or 'a phone'}; "
                "type !logout first to link it by phone"
            )
        self._cancel_retry(session)
        session.attempt = 0
        if not paired:
            session.paired = False
            await engine.login(session.spec, phone=phone)
            return
        session.paired = True
        failure = await self._attempt(session, reason="login by an admin")
        if failure is not None:
            if session.status is SessionStatus.OPENING:
                self._retry_later(session, failure)
            raise EngineError(f"session {key} could not connect: {failure}; retrying")

    def _check_login_allowed(self, session: SessionState) -> None:
        _require_here(session)
        status = session.shown_status
        if status is SessionStatus.CONNECTED:
            as_phone = f" as {session.phone}" if session.phone else ""
            raise InvalidInput(f"session {session.key} is already connected{as_phone}")
        if status is SessionStatus.OPENING:
            raise InvalidInput(
                f"session {session.key} is connecting right now (OPENING); "
                "check !status in a moment"
            )
        now = self._clock.now()
        if status is SessionStatus.BANNED and session.ban_until and now < session.ban_until:
            raise InvalidInput(
                f"session {session.key} is banned until "
                f"{format_utc(session.ban_until, now=now)}; try !login after that"
            )

    async def logout(self, key: str) -> None:
        """Unlink the device (``!logout``): LOGGED_OUT, no retries."""
        session = _require_here(self._session(key))
        session.admin_logout = True
        try:
            await self.engine.logout(key)
        finally:
            session.admin_logout = False
        session.paired = False
        self._fail(session, SessionStatus.LOGGED_OUT, "logged out by an admin", ACTION_ADMIN_LOGOUT)

    # --- lookup -----------------------------------------------------------------------

    def _session(self, key: str) -> SessionState:
        try:
            return self._sessions[key]
        except KeyError:
            raise InvalidInput(f"there is no session {key}") from None


def _require_here(session: SessionState) -> SessionState:
    if session.released:
        raise InvalidInput(f"session {session.key} runs on another instance (see !sessions)")
    return session
