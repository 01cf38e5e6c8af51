"""The whatsmeow engine's session lifecycle: starting and stopping neonize clients
(connect, QR and pairing-code logins, logout) and turning neonize's callbacks into
engine events.

Logins end with ``DisconnectedEvent(transient=False)`` when the QR codes run out
(60 s, then 20 s per code, as whatsmeow rotates them) or the connection drops before
pairing, like the sim engine does.

Threads: neonize calls back from Go threads and already marshals every callback
onto the event loop that first connected (``asyncio.run_coroutine_threadsafe`` in
``neonize.aioze.events``), so the handlers here run on the loop; a per-session lock
keeps their order. Each running client also holds one default-executor thread for
its whole life (neonize runs its blocking Go main loop through
``asyncio.to_thread``), so a larger default executor (``executor_threads``) is
installed before starting clients; without it a handful of sessions would starve
every other ``to_thread`` call.

Reconnection belongs to the session manager. neonize offers no switch for
whatsmeow's own auto-reconnect, so on an unexpected ``Disconnected`` the client is
stopped (which cancels whatsmeow's reconnect loop) before
``DisconnectedEvent(transient=True)`` is reported; the manager then calls
``connect`` when its backoff says so. Permanent failures (logout, ban, outdated,
stream replaced) stop the client the same way.

``PairPhone`` is only called after the first QR code proved the client is up (see
:mod:`bridge.whatsapp.whatsmeow` on calls before the Go side exists). Each client
gets its own neonize uuid, and its garbage-collection finalizer (a Go ``Stop`` by
uuid) is dropped once it was stopped here, so it cannot hit a successor.

whatsmeow acknowledges messages to WhatsApp without waiting for these handlers
(neonize does not wait for the coroutines it schedules): a crash between the ack
and the handler's persistence loses that message. neonize offers no hook to change it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from neonize.exc import NeonizeError
from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps

from bridge.clock import Clock
from bridge.errors import BridgeError, DatabaseError, EngineError
from bridge.phone import normalize_phone, whatsapp_variants
from bridge.whatsapp import jid as jids
from bridge.whatsapp import wa_inbound as inbound
from bridge.whatsapp.contact_news import ContactNews
from bridge.whatsapp.device_files import DeviceFiles, Pairing, PairingRecords
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    DisconnectedEvent,
    EngineErrorEvent,
    EngineEvent,
    EventHandler,
    LoggedOutEvent,
    PairCodeEvent,
    QRCodeEvent,
    SessionSpec,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.phone_spellings import PhoneSpellings
from bridge.whatsapp.whatsmeow_client import (
    ClientFactory,
    ClientSession,
    ClientSessions,
    NeonizeClient,
)

log = logging.getLogger("bridge.whatsapp.whatsmeow")

QR_FIRST_SECONDS = 60.0  # whatsmeow shows the first QR code for 60 s …
QR_NEXT_SECONDS = 20.0  # … and each following one for 20 s

# Every neonize event the engine listens to.
SUBSCRIBED_EVENTS: tuple[type[ProtoMessage], ...] = (
    neonize.PairStatus,
    neonize.Connected,
    neonize.Disconnected,
    neonize.LoggedOut,
    neonize.TemporaryBan,
    neonize.ClientOutdated,
    neonize.StreamReplaced,
    neonize.ConnectFailure,
    neonize.StreamError,
    neonize.KeepAliveTimeout,
    neonize.KeepAliveRestored,
    neonize.OfflineSyncCompleted,
    neonize.Message,
    neonize.Receipt,
    neonize.HistorySync,
)


class ClientLifecycle:
    """Starts, watches and retires each session's neonize client; what the client
    reports goes to ``emit`` as engine events (see the module doc)."""

    def __init__(
        self,
        emit: EventHandler,
        *,
        sessions: ClientSessions,
        client_factory: ClientFactory,
        device_lister: Callable[[str], list[str]],
        pairings: PairingRecords,
        clock: Clock,
        spellings: PhoneSpellings,
        props: DeviceProps,
        pair_timeout: float,
        qr_grace: float,
        drain_timeout: float,
        executor_threads: int | None,
        avatar_timeout: float,
    ) -> None:
        self._emit = emit
        self._sessions = sessions
        self._factory = client_factory
        self._list_devices = device_lister
        self._pairings = pairings
        self._clock = clock
        self._spellings = spellings
        self._props = props
        self._pair_timeout = pair_timeout
        self._qr_grace = qr_grace
        self._drain_timeout = drain_timeout
        self._executor_threads = executor_threads
        self._executor: ThreadPoolExecutor | None = None
        self._specs: dict[str, SessionSpec] = {}
        self._contact_news = ContactNews()
        self._avatar_timeout = avatar_timeout
        self._background: set[asyncio.Task[None]] = set()
        self._generations = itertools.count(1)

    async def is_paired(self, spec: SessionSpec) -> bool:
        """True when the pairing record exists (and, for SQLite, the store file)."""
        self._specs[spec.key] = spec
        return await self._pairings.is_paired(DeviceFiles(spec))

    async def connect(self, spec: SessionSpec) -> None:
        self._specs[spec.key] = spec
        current = self._sessions.get(spec.key)
        if current is not None and not current.closing:
            log.info("session %s already has a running WhatsApp client", spec.key)
            return
        files = DeviceFiles(spec)
        pairing = await self._pairings.read(files)
        if pairing is None or not await self._pairings.is_paired(files):
            raise EngineError(f"session {spec.key} is not paired with a phone; log in first")
        device: neonize.JID | None = None
        if files.postgres:
            device = jids.parse_jid(pairing.jid)
            stored = await asyncio.to_thread(self._list_devices, files.database)
            if pairing.jid not in stored:
                await self._device_gone(spec, files)
                return
        await self._start(spec, files, jid=device, login=None, me=pairing.identity)

    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        self._specs[spec.key] = spec
        files = DeviceFiles(spec)
        if await self._pairings.is_paired(files):
            raise EngineError(f"session {spec.key} is already paired; log out before a new login")
        e164 = normalize_phone(phone) if phone else None
        current = self._sessions.get(spec.key)
        if current is not None:
            await self._retire(current)
        await self._pairings.forget(files)  # a fresh device, not a stale half-login
        session = await self._start(
            spec, files, jid=None, login="phone" if e164 else "qr", me=inbound.NOBODY
        )
        if e164 is not None:
            await self._request_pair_code(session, e164)

    async def _start(
        self,
        spec: SessionSpec,
        files: DeviceFiles,
        *,
        jid: neonize.JID | None,
        login: str | None,
        me: inbound.Identity,
    ) -> ClientSession:
        await asyncio.to_thread(files.prepare)
        self._ensure_executor()
        client = self._factory(
            files.database,
            jid=jid,
            props=self._props,
            uuid=f"{spec.key}#{next(self._generations)}",  # neonize keys its Go clients by it
            new_device=login is not None,
        )
        session = ClientSession(spec=spec, files=files, client=client, login=login, me=me)
        self._subscribe(session)
        self._sessions.add(session)
        try:
            session.task = await client.connect()
        except NeonizeError as exc:
            self._sessions.pop(spec.key)
            raise EngineError(f"could not start the WhatsApp client: {exc}") from exc
        session.task.add_done_callback(lambda task: self._client_exited(session, task))
        log.info("session %s: WhatsApp client started (%s)", spec.key, login or "paired device")
        return session

    def _ensure_executor(self) -> None:
        if not self._executor_threads:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._executor_threads, thread_name_prefix="neonize"
            )
            asyncio.get_running_loop().set_default_executor(self._executor)
        if len(self._sessions) + 1 > self._executor_threads // 2:
            log.warning(
                "%d WhatsApp clients hold most of the %d executor threads; raise executor_threads",
                len(self._sessions) + 1,
                self._executor_threads,
            )

    async def _request_pair_code(self, session: ClientSession, e164: str) -> None:
        if not await self._wait(session.first_qr, self._pair_timeout):
            await self._retire(session)
            raise EngineError(
                f"WhatsApp did not open the login within {self._pair_timeout:.0f} s; try again"
            )
        if self._sessions.get(session.key) is not session:
            raise EngineError("the login ended before the pairing code could be requested")
        digits = whatsapp_variants(e164)[0]
        try:
            code = await session.client.PairPhone(digits, True)
        except NeonizeError as exc:
            await self._retire(session)
            raise EngineError(f"WhatsApp refused a pairing code for {e164}: {exc}") from exc
        async with session.events:
            await self._emit(PairCodeEvent(session=session.key, code=code, phone=e164))

    async def _wait(self, future: asyncio.Future[Any], seconds: float) -> bool:
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({future, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return future.done()

    async def disconnect(self, key: str) -> None:
        session = self._sessions.get(key)
        if session is not None:
            await self._retire(session)

    async def logout(self, key: str) -> None:
        session = self._sessions.get(key)
        spec = session.spec if session is not None else self._specs.get(key)
        if session is not None and session.connected:
            async with self._sessions.op(key) as live:
                try:
                    await live.client.logout()
                except NeonizeError as exc:
                    raise EngineError(f"WhatsApp did not accept the logout: {exc}") from exc
        elif spec is not None:
            log.warning(
                "session %s: logging out offline; the phone still lists this device "
                "under Linked devices until it is removed there",
                key,
            )
        if session is not None:
            await self._retire(session)
        if spec is None:
            raise EngineError(f"unknown session {key}")
        await self._pairings.forget(DeviceFiles(spec))

    async def close(self) -> None:
        for session in self._sessions.all():
            await self._retire(session)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _retire(self, session: ClientSession) -> None:
        """Stop a session's client for good; later events from it are dropped."""
        if self._sessions.get(session.key) is session:
            self._sessions.pop(session.key)
        if session.closing:
            return
        session.closing = True
        session.connected = False
        self._cancel_qr_timer(session)
        if not session.idle.is_set():
            drained = asyncio.ensure_future(session.idle.wait())
            if not await self._wait(drained, self._drain_timeout):
                log.warning("session %s: stopping with %d calls running", session.key, session.ops)
            drained.cancel()
        try:
            await session.client.stop()
        except NeonizeError as exc:
            log.warning("session %s: stopping the WhatsApp client failed: %s", session.key, exc)
        _drop_stop_finalizer(session.client)
        log.info("session %s: WhatsApp client stopped", session.key)

    async def _device_gone(self, spec: SessionSpec, files: DeviceFiles) -> None:
        log.warning("session %s: the device store no longer holds the paired device", spec.key)
        await self._pairings.forget(files)
        await self._emit(
            LoggedOutEvent(
                session=spec.key,
                reason="the paired device is missing from the device store; log in again",
            )
        )

    # --- callbacks from neonize -------------------------------------------------------

    def _subscribe(self, session: ClientSession) -> None:
        async def on_event(_client: Any, ev: ProtoMessage) -> None:
            await self._handle_event(session, ev)

        async def on_qr(_client: Any, code: bytes) -> None:
            await self._handle_qr(session, code)

        for event_type in SUBSCRIBED_EVENTS:
            session.client.event(event_type)(on_event)
        session.client.event.qr(on_qr)

    async def _handle_event(self, session: ClientSession, ev: ProtoMessage) -> None:
        """Boundary for every neonize event: nothing raised here reaches neonize."""
        if not self._sessions.live(session):
            log.debug("session %s: dropped %s of a stopped client", session.key, type(ev).__name__)
            return
        async with session.events:
            if not self._sessions.live(session):
                return
            try:
                await self._dispatch(session, ev)
            except Exception as exc:
                log.exception("session %s: handling %s failed", session.key, type(ev).__name__)
                await self._report_unhandled(session, ev, exc)

    async def _report_unhandled(
        self, session: ClientSession, ev: ProtoMessage, exc: Exception
    ) -> None:
        """Tell the bridge (an :class:`EngineErrorEvent`) that an event was set aside.

        Not a ``DatabaseError``: that event was neither stored nor kept in the
        journal (bridge.journal), which counted and reported the loss already; an
        engine error would only need the same database."""
        if isinstance(exc, DatabaseError):
            return
        detail = exc.explanation if isinstance(exc, BridgeError) else repr(exc)
        explanation = f"a WhatsApp {type(ev).__name__} event was set aside: {detail[:200]}"
        ident = str(ev.Info.ID)[:128] if isinstance(ev, neonize.Message) else ""
        try:
            await self._emit(
                EngineErrorEvent(session=session.key, explanation=explanation, event_id=ident)
            )
        except Exception:
            log.exception("session %s: reporting an unhandled event failed", session.key)

    async def _dispatch(self, session: ClientSession, ev: ProtoMessage) -> None:
        key = session.key
        if isinstance(ev, neonize.Message):
            self._spellings.learn(ev.Info.MessageSource)
            events = inbound.translate_message(key, ev, me=session.me)
            events = await self._contact_news.with_avatar(
                key, ev, events, lambda jid: self._profile_picture(session, jid)
            )
            await self._emit_all(events)
        elif isinstance(ev, neonize.Receipt):
            receipt = inbound.translate_receipt(key, ev)
            if receipt is not None:
                await self._emit(receipt)
        elif isinstance(ev, neonize.HistorySync):
            await self._emit_all(inbound.translate_history(key, ev, me=session.me))
        elif isinstance(ev, neonize.StreamError):
            log.warning("session %s: WhatsApp stream error %.200r", key, ev.Code)
        elif isinstance(ev, neonize.KeepAliveTimeout):
            log.warning("session %s: keepalive timeout (%d errors)", key, ev.ErrorCount)
        elif isinstance(ev, neonize.KeepAliveRestored):
            log.info("session %s: keepalive restored", key)
        else:
            if isinstance(ev, neonize.PairStatus) and ev.Status == neonize.PairStatus.SUCCESS:
                await self._paired(session, ev.ID)
            event = inbound.translate_connection(key, ev, me=session.me)
            if event is not None:
                await self._on_connection(session, event)

    async def _paired(self, session: ClientSession, device: neonize.JID) -> None:
        pairing = Pairing(jid=jids.jid_to_str(device))
        await self._pairings.write(session.files, pairing)
        session.me = pairing.identity
        session.login = None
        self._cancel_qr_timer(session)
        log.info("session %s: paired as %s", session.key, pairing.jid)

    @staticmethod
    def _cancel_qr_timer(session: ClientSession) -> None:
        timer, session.qr_timer = session.qr_timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _on_connection(self, session: ClientSession, event: EngineEvent) -> None:
        if isinstance(event, ConnectedEvent):
            session.connected = True
            if session.login is not None:  # paired without a PairStatus event reaching us
                session.login = None
                self._cancel_qr_timer(session)
            await self._emit(event)
            self._spawn(self._learn_identity(session))
        elif isinstance(event, DisconnectedEvent):
            await self._retire(session)
            if session.login is not None:  # a login ends for good, like a timed-out QR
                reason = f"login interrupted: {event.reason}"
                event = DisconnectedEvent(session=session.key, reason=reason, transient=False)
            await self._emit(event)
        elif isinstance(event, LoggedOutEvent):
            await self._retire(session)
            await self._pairings.forget(session.files)
            await self._emit(event)
        elif isinstance(event, _PERMANENT):
            await self._retire(session)
            await self._emit(event)
        else:
            await self._emit(event)

    async def _handle_qr(self, session: ClientSession, data: bytes) -> None:
        if not self._sessions.live(session):
            return
        async with session.events:
            if not self._sessions.live(session):
                return
            try:
                await self._on_qr(session, data.decode("utf-8", errors="replace"))
            except Exception:
                log.exception("session %s: handling a QR code failed", session.key)

    async def _on_qr(self, session: ClientSession, code: str) -> None:
        if session.login is None:
            # A paired device would log straight in; a QR code means the store is empty.
            await self._retire(session)
            await self._device_gone(session.spec, session.files)
            return
        session.qr_count += 1
        expires = QR_FIRST_SECONDS if session.qr_count == 1 else QR_NEXT_SECONDS
        self._cancel_qr_timer(session)
        session.qr_timer = self._spawn(self._login_expired(session, expires + self._qr_grace))
        if session.login == "phone":
            if not session.first_qr.done():
                session.first_qr.set_result(None)
            return
        await self._emit(QRCodeEvent(session=session.key, code=code, expires_in=expires))

    async def _login_expired(self, session: ClientSession, seconds: float) -> None:
        await self._clock.sleep(seconds)
        async with session.events:
            if not self._sessions.live(session) or session.login is None:
                return
            reason = "QR code timed out" if session.login == "qr" else "pairing code timed out"
            log.info("session %s: login ended: %s", session.key, reason)
            await self._retire(session)
            await self._emit(DisconnectedEvent(session=session.key, reason=reason, transient=False))

    def _client_exited(self, session: ClientSession, task: asyncio.Task[Any]) -> None:
        if task.cancelled():  # the loop is shutting down
            log.debug("session %s: client task cancelled", session.key)
            return
        error = task.exception()
        if not self._sessions.live(session):
            if error is not None:
                log.debug("session %s: client ended with %s after its stop", session.key, error)
            return
        reason = f"the WhatsApp client stopped: {error}" if error else "the WhatsApp client stopped"
        log.warning("session %s: %s", session.key, reason)
        self._spawn(self._handle_exit(session, reason))

    async def _handle_exit(self, session: ClientSession, reason: str) -> None:
        async with session.events:
            if self._sessions.live(session):
                lost = DisconnectedEvent(session=session.key, reason=reason)
                await self._on_connection(session, lost)

    async def _learn_identity(self, session: ClientSession) -> None:
        """Ask who we are once connected: our LID (so it is recognised as us), and our
        device JID when the pairing record is missing it."""
        async with self._sessions.op(session.key) as live:
            device = await live.client.get_me()
        current = await self._pairings.read(session.files)
        jid = current.jid if current is not None else jids.jid_to_str(device.JID)
        lid = device.LID.User or (current.lid if current is not None else None)
        if not device.JID.User and current is None:
            log.warning("session %s: connected, but WhatsApp did not say who we are", session.key)
            return
        pairing = Pairing(jid=jid, lid=lid)
        if pairing != current:
            await self._pairings.write(session.files, pairing)
        session.me = pairing.identity

    async def _profile_picture(self, session: ClientSession, jid: neonize.JID) -> str | None:
        """The URL of ``jid``'s profile picture; None when it has none or asking fails."""
        if not jid.User:
            return None
        try:
            async with self._sessions.op(session.key) as live:
                info = await asyncio.wait_for(
                    live.client.get_profile_picture(jid), self._avatar_timeout
                )
        except Exception as exc:  # no picture, privacy settings, timeouts: not fatal
            log.debug("session %s: no profile picture for %s: %s", session.key, jid.User, exc)
            return None
        return (info.URL or None) if info is not None else None

    async def _emit_all(self, events: list[EngineEvent]) -> None:
        for event in events:
            news = self._contact_news.news(event)
            if news is not None:
                await self._emit(news)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._guarded(coro))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    @staticmethod
    async def _guarded(coro: Awaitable[None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("WhatsApp engine background task failed")


_PERMANENT = (TemporaryBanEvent, ClientOutdatedEvent, StreamReplacedEvent)


def _drop_stop_finalizer(client: NeonizeClient) -> None:
    """neonize stops a client's Go side by uuid when the Python object is collected.
    With a device JID the uuid is the phone's digits, the same for the next client of
    the session: once stopped here, that finalizer could only kill its successor."""
    finalizer = getattr(client, "_stop_finalizer", None)
    if isinstance(finalizer, weakref.finalize):
        finalizer.detach()
