"""The simulated WhatsApp network: an in-process, deterministic :class:`Engine`.

The sim stands in for the phone network in tests and in ``python -m bridge demo``.
It has the real engine's events, failure modes and timing hooks, so the session
manager, relay and outbox run their real code paths against it. It is driven by
the ``/sim`` HTTP API (:mod:`bridge.whatsapp.sim_http`) or, in tests, directly:

- :meth:`SimEngine.scan` plays the phone scanning the QR code (or typing the
  pairing code);
- :meth:`SimEngine.inbound` plays a customer writing (the ``/sim`` inbound body);
- :meth:`SimEngine.receipt` plays the customer's phone acknowledging our message;
- :meth:`SimEngine.fault` plays WhatsApp dropping, logging out, banning …;
- :meth:`SimEngine.fail_next_sends` makes the next sends fail (outbox retries).

Bodies and arguments are checked by type and range in
:mod:`bridge.whatsapp.sim_bodies` (the limits are listed there), whether they come
over HTTP or from a test.

Behaviour worth knowing (docs/sim.md, plus these choices):

- **Link state.** The sim tracks each session's connection itself: inbound
  messages, receipts, sends and read marks need a connected session. Its view,
  :meth:`SimEngine.link_status`, uses the status words of docs/operations.md (``CONNECTED``,
  ``QRCODE``, ``DISCONNECTED``, ``LOGGED_OUT``, ``BANNED``, ``OUTDATED``,
  ``STOPPED``); the session manager's status is the authoritative one.
- **Pairing.** A device is ``data_dir/sim/<company>/<session>/device.json``. With
  ``auto_pair`` a session without one pairs itself, when first asked, with the
  lowest free fake phone ``+5511900000001``, ``+5511900000002`` …
- **Login.** QR codes come at once (``expires_in = qr_first_seconds``), then every
  ``qr_next_seconds`` up to ``max_qr_codes`` codes; when the last one expires the
  login gives up with ``DisconnectedEvent(reason="QR code timed out",
  transient=False)``. A pairing-code login emits one ``PairCodeEvent`` and gives up
  after the same total time. ``login`` on a paired session raises ``EngineError``
  (as whatsmeow does); ``disconnect``/``logout`` emit nothing (as whatsmeow's
  ``Disconnect``/``Logout`` do): the caller knows what it asked for.
- **Faults** (:mod:`bridge.whatsapp.sim_faults`) always emit their event, end a
  pending login and drop the connection.
  ``disconnect`` and ``ban`` make ``connect`` (and ``login``) raise ``EngineError``
  until their seconds have passed; ``outdated`` and ``stream_replaced`` do not
  block a later ``connect`` (the sim has no client version to upgrade).
- **Outbound log** (:mod:`bridge.whatsapp.sim_outbound`) entries use the inbound
  field names; their shape, and the session view, are :mod:`bridge.whatsapp.sim_wire`.
- **Ids** are ``3EB0`` + 18 uppercase hex digits from a seeded generator: pass
  ``seed`` for a reproducible run; without it each engine draws a random seed, so
  a restarted bridge never reuses an id. An inbound body may carry its own
  ``"id"`` (an extension, to replay a duplicate delivery).
- **Caller-chosen ids.** ``send``/``react``/``edit``/``revoke`` honour
  ``message_id`` as whatsmeow's ``SendRequestExtra.ID`` does: it becomes the
  outbound entry's ``id``. A second operation with an id the session already sent
  is dropped the way a recipient's phone drops it: nothing is appended to the
  outbound log and the same id is answered. The sent ids are read back from the
  outbound log, so this holds across a bridge restart.
- **Avatars.** An inbound body may carry ``"avatar_url"`` (an extension; an
  http(s) URL): the sender's profile picture. A ``ContactUpdateEvent`` carrying it
  is emitted when the push name or the avatar changed.
- **LIDs.** An inbound body may carry ``"lid": "<digits>@lid"`` and leave out
  ``from`` (WhatsApp hid the phone): the sender is ``Party(phone=None, lid=…)``.
  How the sim links a LID and a phone is :mod:`bridge.whatsapp.sim_session`.
  A send to ``<digits>@lid`` is logged with ``to`` = that LID.
- The session files are :mod:`bridge.whatsapp.sim_store`; with ``network`` (a
  :class:`~bridge.whatsapp.sim_shared.SimNetworkStore`, ``whatsapp.sim.network:
  database``) the session lives in the database instead, shared by every instance,
  and ``inbound`` holds the message for the instance that runs the session
  (:mod:`bridge.whatsapp.sim_shared`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from bridge.clock import Clock
from bridge.errors import (
    ConfigError,
    EngineError,
    InvalidInput,
    SessionNotConnected,
)
from bridge.model import (
    AnyContent,
    Content,
    Deletion,
    Edit,
    Media,
    Quote,
    Reaction,
    Text,
)
from bridge.phone import normalize_phone
from bridge.whatsapp import sim_faults, sim_inbound, sim_outbound
from bridge.whatsapp.engine import (
    ConnectedEvent,
    DisconnectedEvent,
    Engine,
    EngineErrorEvent,
    EventHandler,
    PairCodeEvent,
    PairSuccessEvent,
    QRCodeEvent,
    ReceiptEvent,
    SessionSpec,
)
from bridge.whatsapp.sim_bodies import (
    DEFAULT_SEND_ERROR,
    check_fail_sends,
    check_fault,
    read_inbound_id,
    read_receipt,
)
from bridge.whatsapp.sim_random import SimRandom
from bridge.whatsapp.sim_session import (
    PRESENCE_KEPT,
    PendingLogin,
    SimSession,
)
from bridge.whatsapp.sim_shared import HeldInbound, SessionKeeping, SimNetworkStore
from bridge.whatsapp.sim_store import SimDevice

log = logging.getLogger("bridge.whatsapp.sim")

QR_TIMEOUT_REASON = "QR code timed out"
AUTO_PAIR_PREFIX = "+55119"  # + 8 digits: +5511900000001, +5511900000002 …


def _split_key(key: str) -> tuple[str, str]:
    parts = key.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise InvalidInput(f"not a session key: {key!r} (expected <company>/<session>)")
    return parts[0], parts[1]


# --- the engine ---------------------------------------------------------------


class SimEngine(Engine):
    """The simulated WhatsApp network (see the module docstring for its rules)."""

    name = "sim"

    def __init__(
        self,
        handler: EventHandler,
        *,
        data_dir: Path,
        clock: Clock,
        qr_first_seconds: float = 60,
        qr_next_seconds: float = 20,
        auto_pair: bool = False,
        max_qr_codes: int = 6,
        seed: int | None = None,
        network: SimNetworkStore | None = None,
        poll_seconds: float = 1.0,
        sender: str | None = None,
    ) -> None:
        super().__init__(handler)
        self._sender = sender  # the cluster instance, named in outbound entries
        if qr_first_seconds <= 0 or qr_next_seconds <= 0:
            raise ConfigError("whatsapp.sim: QR code lifetimes must be positive seconds")
        if max_qr_codes < 1:
            raise ConfigError("whatsapp.sim: max_qr_codes must be at least 1")
        self._keeping = SessionKeeping(data_dir / "sim", network)
        self.announce_held: Callable[[], Awaitable[None]] | None = None
        """Tells the other instances a message was held (a NOTIFY; their polling covers
        a failure), set by the composition root with several instances."""
        self._held = (
            HeldInbound(
                network,
                receive=self._receive_held,
                runs=lambda key: key in self._sessions and self._sessions[key].connected,
                report=self._report_held,
                poll_seconds=poll_seconds,
            )
            if network is not None
            else None
        )
        self._clock = clock
        self._qr_first = float(qr_first_seconds)
        self._qr_next = float(qr_next_seconds)
        self._auto_pair = auto_pair
        self._max_qr = max_qr_codes
        if seed is None:
            seed = secrets.randbits(64)
        log.debug("sim engine seed %d", seed)
        self._random = SimRandom(seed)
        self._sessions: dict[str, SimSession] = {}
        self._taken: set[str] | None = None  # phones paired here or found on disk
        self._next_auto = 1

    # --- session state ----------------------------------------------------

    def _session(self, key: str) -> SimSession:
        session = self._sessions.get(key)
        if session is None:
            session = self._keeping.open(key, *_split_key(key))
            self._sessions[key] = session
        return session

    async def _loaded(self, key: str, *, device_only: bool = False) -> SimSession:
        """The session, read back from a shared network (its device only, when the
        rest was read before)."""
        session = self._session(key)
        await self._keeping.refresh(session, device_only=device_only)
        return session

    @property
    def shared(self) -> bool:
        """Whether the network is shared by every instance (``whatsapp.sim.network``)."""
        return self._held is not None

    async def load(self, key: str) -> None:
        """Read the session's device back from a shared network (before a view of it)."""
        await self._loaded(key, device_only=True)

    async def outbound_log(self, key: str) -> list[dict[str, Any]]:
        """What the bridge sent through this session, oldest first: with a shared
        network what every instance sent."""
        return await self._keeping.outbound(self._session(key))

    def wake(self) -> None:
        """Look for held messages now (a shared network only; e.g. on a NOTIFY)."""
        if self._held is not None:
            self._held.wake()

    def link_status(self, key: str) -> str:
        """The sim's own view of the session, in the status words of docs/operations.md."""
        return self._session(key).link_status

    def phone_of(self, key: str) -> str | None:
        """The phone of the paired device, if any."""
        device = self._session(key).device
        return device.phone if device else None

    def current_qr(self, key: str) -> str | None:
        """The QR code of a pending QR login (the latest one emitted)."""
        login = self._session(key).login
        return login.qr if login else None

    def current_pair_code(self, key: str) -> str | None:
        """The code of a pending pairing-code login."""
        login = self._session(key).login
        return login.pair_code if login else None

    def outbound(self, key: str) -> list[dict[str, Any]]:
        """What the bridge sent through this session, oldest first (copies)."""
        return [dict(entry) for entry in self._session(key).outbound]

    def read_ids(self, key: str) -> tuple[str, ...]:
        """Message ids the bridge marked as read, in order."""
        return tuple(self._session(key).read_ids)

    def presence(self, key: str) -> dict[str, Any]:
        """What the bridge showed the customers besides messages: ``read`` (message ids
        marked read, oldest first) and ``typing`` (``{"to", "state", "at"}`` entries)."""
        session = self._session(key)
        return {
            "read": list(session.read_ids),
            "typing": [dict(entry) for entry in session.chat_presence],
        }

    # --- pairing and connection ---------------------------------------------

    async def is_paired(self, spec: SessionSpec) -> bool:
        session = await self._loaded(spec.key, device_only=True)
        if session.device is None and self._auto_pair:
            await self._pair(session, await self._free_auto_phone(), auto=True)
        return session.device is not None

    async def connect(self, spec: SessionSpec) -> None:
        session = await self._loaded(spec.key)  # all of it: it may have run elsewhere
        await self.is_paired(spec)  # pairs itself first with auto_pair
        device = session.device
        if device is None:
            raise EngineError(f"session {spec.key} has no paired device; log in first")
        sim_faults.check_network(session, now=self._clock.now())
        session.connected, session.halt = True, None
        log.info("sim session %s connected as %s", spec.key, device.phone)
        await self.emit(ConnectedEvent(spec.key, phone=device.phone))
        self.wake()  # what the network held while the device was offline

    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        session = await self._loaded(spec.key)
        if session.device is not None:
            raise EngineError(f"session {spec.key} is already paired; log out first")
        sim_faults.check_network(session, now=self._clock.now())
        self._end_login(session)
        pending = PendingLogin(
            noise_key=self._random.key_b64(),
            identity_key=self._random.key_b64(),
            adv_secret=self._random.key_b64(),
            pair_phone=normalize_phone(phone) if phone else None,
        )
        session.login, session.halt = pending, None
        if pending.pair_phone is not None:
            pending.pair_code = self._random.pair_code()
            log.info("sim session %s: pairing code for %s", spec.key, pending.pair_phone)
            await self.emit(
                PairCodeEvent(spec.key, code=pending.pair_code, phone=pending.pair_phone)
            )
        else:
            pending.qr = self._qr(pending)
            log.info("sim session %s: QR code 1 of %d", spec.key, self._max_qr)
            await self.emit(QRCodeEvent(spec.key, code=pending.qr, expires_in=self._qr_first))
        if session.login is pending:  # a handler may already have scanned it
            pending.task = asyncio.create_task(
                self._run_login_clock(session, pending), name=f"sim-login-{spec.key}"
            )
            pending.task.add_done_callback(self._log_task_failure)

    async def scan(self, key: str, phone: str) -> None:
        """The phone scans the QR code (or types the pairing code): pair and connect."""
        session = self._session(key)
        pending = session.login
        if pending is None:
            raise InvalidInput(
                f"session {key} has no pending login (status {session.link_status}); "
                "start one with !login"
            )
        phone = normalize_phone(phone)
        if pending.pair_phone is not None and phone != pending.pair_phone:
            raise InvalidInput(f"the pairing code of {key} was issued for {pending.pair_phone}")
        self._end_login(session)
        await self._pair(session, phone, auto=False)
        session.connected = True
        log.info("sim session %s paired and connected as %s", key, phone)
        await self.emit(PairSuccessEvent(key, phone=phone))
        await self.emit(ConnectedEvent(key, phone=phone))
        self.wake()

    async def disconnect(self, key: str) -> None:
        session = self._session(key)
        self._end_login(session)
        session.connected, session.halt = False, "STOPPED"
        log.info("sim session %s stopped", key)

    async def logout(self, key: str) -> None:
        session = self._session(key)
        self._end_login(session)
        session.connected, session.halt = False, None
        await self._unpair(session)
        log.info("sim session %s logged out", key)

    async def _pair(self, session: SimSession, phone: str, *, auto: bool) -> None:
        device = SimDevice(phone=phone, paired_at=self._clock.now(), auto=auto)
        session.device = await self._keeping.pair(session, device, replace=not auto)
        (await self._taken_phones()).add(session.device.phone)
        log.info("sim session %s paired with %s%s", session.key, phone, " (auto)" if auto else "")

    async def _unpair(self, session: SimSession) -> None:
        session.device = None
        await self._keeping.unpair(session)

    async def _free_auto_phone(self) -> str:
        """The lowest auto-pair number nobody has: found in memory, not by re-reading
        every session's device file for each new session (1,000 sessions took 46 s)."""
        taken = await self._taken_phones()
        while (phone := f"{AUTO_PAIR_PREFIX}{self._next_auto:08d}") in taken:
            self._next_auto += 1
        return phone

    async def _taken_phones(self) -> set[str]:
        """Phones paired by this engine or left paired by earlier runs (read once)."""
        if self._taken is None:
            known = {s.device.phone for s in self._sessions.values() if s.device}
            self._taken = await self._keeping.paired_phones(known)
        return self._taken

    def _qr(self, pending: PendingLogin) -> str:
        ref = self._random.qr_ref()
        return f"{ref},{pending.noise_key},{pending.identity_key},{pending.adv_secret}"

    async def _run_login_clock(self, session: SimSession, pending: PendingLogin) -> None:
        """Rotate QR codes on the clock, then give up (as whatsmeow's QR channel does)."""
        if pending.pair_phone is None:
            await self._clock.sleep(self._qr_first)
            for number in range(2, self._max_qr + 1):
                if session.login is not pending:
                    return
                pending.qr = self._qr(pending)
                log.info("sim session %s: QR code %d of %d", session.key, number, self._max_qr)
                await self.emit(QRCodeEvent(session.key, code=pending.qr, expires_in=self._qr_next))
                await self._clock.sleep(self._qr_next)
        else:
            await self._clock.sleep(self._qr_first + self._qr_next * (self._max_qr - 1))
        if session.login is pending:
            session.login = None
            log.info("sim session %s: login timed out", session.key)
            await self.emit(
                DisconnectedEvent(session.key, reason=QR_TIMEOUT_REASON, transient=False)
            )

    def _end_login(self, session: SimSession) -> None:
        pending, session.login = session.login, None
        if pending and pending.task and pending.task is not asyncio.current_task():
            pending.task.cancel()

    @staticmethod
    def _log_task_failure(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("sim login clock %s failed", task.get_name(), exc_info=exc)

    # --- faults -------------------------------------------------------------

    async def fault(self, key: str, kind: str, seconds: float = 0) -> None:
        """Make the network misbehave now (see the module docstring); ``seconds`` is
        a finite number from 0 to 30 days (:func:`~bridge.whatsapp.sim_bodies.check_fault`)."""
        seconds = check_fault(kind, seconds)
        session = await self._loaded(key, device_only=True)
        self._end_login(session)
        session.connected = False
        log.info("sim session %s: %s fault (%g s)", key, kind, seconds)
        now = self._clock.now()
        await sim_faults.play(session, kind, seconds, now=now, emit=self.emit, unpair=self._unpair)

    def fail_next_sends(self, key: str, n: int, error: str = DEFAULT_SEND_ERROR) -> None:
        """Make the next ``n`` outbound operations (send, react, edit, revoke) raise
        :class:`EngineError` with ``error``; ``n = 0`` cancels, at most 1,000."""
        request = check_fail_sends(n, error)
        session = self._session(key)
        session.fail_sends, session.fail_error = request.count, request.error

    # --- inbound ----------------------------------------------------------

    def _require_connected(self, session: SimSession) -> None:
        if not session.connected:
            raise InvalidInput(
                f"session {session.key} is not connected (status {session.link_status})"
            )

    async def inbound(self, key: str, body: Mapping[str, Any]) -> str:
        """A customer message (the ``/sim`` inbound body); returns its WhatsApp id.
        With a shared network it is held for the instance that runs the session."""
        if self._held is not None:
            return await self._hold(key, body)
        session = self._session(key)
        self._require_connected(session)
        wa_id = read_inbound_id(body) or self._new_id(session)
        await self._receive(session, body, wa_id, self._clock.now())
        return wa_id

    async def _hold(self, key: str, body: Mapping[str, Any]) -> str:
        assert self._held is not None
        session = await self._loaded(key, device_only=True)  # linked now?
        return await sim_inbound.hold(
            session,
            body,
            new_id=lambda: self._new_id(session),
            now=self._clock.now(),
            held=self._held,
            announce=self.announce_held,
        )

    async def _receive_held(
        self, key: str, body: Mapping[str, Any], wa_id: str, posted_at: float
    ) -> None:
        await self._receive(self._session(key), body, wa_id, posted_at)

    async def _report_held(self, key: str, wa_id: str, explanation: str) -> None:
        await self.emit(EngineErrorEvent(key, explanation=explanation, event_id=wa_id))

    async def _receive(
        self, session: SimSession, body: Mapping[str, Any], wa_id: str, timestamp: float
    ) -> None:
        await sim_inbound.receive(
            session, body, wa_id=wa_id, timestamp=timestamp, keeping=self._keeping, emit=self.emit
        )

    def _new_id(self, session: SimSession) -> str:
        while (wa_id := self._random.message_id()) in session.known:
            pass  # 72 random bits: a repeat is practically impossible, but be sure
        return wa_id

    async def receipt(self, key: str, wa_id: str, status: str) -> None:
        """The recipient's phone acknowledges our message ``wa_id``."""
        session = await self._loaded(key, device_only=True)
        self._require_connected(session)
        request = read_receipt({"id": wa_id, "status": status})
        known = session.known.get(request.wa_id)
        if known is None or known.author is not None:
            raise InvalidInput(f"no message {wa_id!r} was sent through session {key}")
        await self.emit(
            ReceiptEvent(
                key,
                chat=known.chat,
                ids=(wa_id,),
                status=request.status,
                timestamp=self._clock.now(),
            )
        )

    # --- outbound ---------------------------------------------------------

    def _sending_session(self, key: str) -> SimSession:
        session = self._session(key)
        if not session.connected:
            raise SessionNotConnected(
                f"session {key} is not connected to WhatsApp (status {session.link_status})"
            )
        return session

    async def _record(
        self,
        key: str,
        to: str,
        content: AnyContent,
        quote: Quote | None,
        message_id: str | None,
    ) -> str:
        session = self._sending_session(key)
        return await sim_outbound.record(
            session,
            to=to,
            content=content,
            quote=quote,
            message_id=message_id,
            new_id=lambda: self._new_id(session),
            now=self._clock.now(),
            keep=self._keeping.log_outbound,
            sender=self._sender,
        )

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        return await self._record(key, to, content, quote, message_id)

    async def react(
        self,
        key: str,
        to: str,
        *,
        target: str,
        target_sender: str | None,
        emoji: str,
        message_id: str | None = None,
    ) -> str:
        action = Reaction(target, emoji)
        return await self._record(key, to, action, None, message_id)

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        action = Edit(target, Text(text))
        return await self._record(key, to, action, None, message_id)

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        return await self._record(key, to, Deletion(target), None, message_id)

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        session = self._sending_session(key)
        session.read_ids.extend(ids)
        del session.read_ids[:-PRESENCE_KEPT]

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        """Recorded for ``GET /sim/sessions/{s}/presence`` (docs/sim.md)."""
        session = self._sending_session(key)
        session.chat_presence.append({"to": to, "state": state, "at": self._clock.now()})
        del session.chat_presence[:-PRESENCE_KEPT]
        return True

    async def download(self, key: str, media: Media) -> bytes:
        if media.data is None:
            raise EngineError("the sim keeps media bytes inline; this media has none")
        return media.data

    async def close(self) -> None:
        """Stop every login clock (their failures were logged as they happened)."""
        sessions = self._sessions.values()
        tasks = [s.login.task for s in sessions if s.login is not None and s.login.task]
        for session in sessions:
            self._end_login(session)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._held is not None:
            await self._held.close()
