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
- **Faults** always emit their event, end a pending login and drop the connection.
  ``disconnect`` and ``ban`` make ``connect`` (and ``login``) raise ``EngineError``
  until their seconds have passed; ``outdated`` and ``stream_replaced`` do not
  block a later ``connect`` (the sim has no client version to upgrade).
- **Outbound log** entries use the inbound field names (see :func:`outbound_fields`).
  A :class:`ContactList` is one WhatsApp message, so one entry: kind ``contact``
  with the first card in ``contact`` and every card in ``contacts``.
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
  The first body with both links them, as WhatsApp's LID store does: the link is
  kept in ``lids.jsonl`` (across restarts and logouts), a ``ContactUpdateEvent``
  with both is emitted, and later bodies with either one give the sender both. A
  body that would give a LID a second phone (or a phone a second LID) is refused.
  A send to ``<digits>@lid`` is logged with ``to`` = that LID.
- Files are tiny and written synchronously, so the log order is the send order.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import logging
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import files
from bridge.clock import Clock
from bridge.errors import (
    ConfigError,
    EngineError,
    InvalidInput,
    PermanentDeliveryError,
    SessionNotConnected,
)
from bridge.model import (
    AnyContent,
    ContactCard,
    ContactList,
    Content,
    Deletion,
    Edit,
    Location,
    Media,
    Message,
    Party,
    Quote,
    Reaction,
    Text,
)
from bridge.phone import digits_of, normalize_phone
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    ContactUpdateEvent,
    DisconnectedEvent,
    Engine,
    EventHandler,
    LoggedOutEvent,
    MessageEvent,
    PairCodeEvent,
    PairSuccessEvent,
    QRCodeEvent,
    ReceiptEvent,
    SessionSpec,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.sim_bodies import (
    DEFAULT_SEND_ERROR,
    MEDIA_KINDS,
    check_fail_sends,
    check_fault,
    message_from_inbound,
    read_avatar_url,
    read_inbound_id,
    read_receipt,
)

log = logging.getLogger("bridge.whatsapp.sim")

QR_TIMEOUT_REASON = "QR code timed out"
DISCONNECT_FAULT_REASON = "sim: connection lost (disconnect fault)"
AUTO_PAIR_PREFIX = "+55119"  # + 8 digits: +5511900000001, +5511900000002 …

_PAIR_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"  # WhatsApp's: no 0, I, O, U


# --- ids and codes ----------------------------------------------------------


class SimRandom:
    """Every random thing the sim makes, from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def message_id(self) -> str:
        """A WhatsApp-like message id: ``3EB0`` and 18 uppercase hex digits."""
        return f"3EB0{self._rng.getrandbits(72):018X}"

    def key_b64(self) -> str:
        """A base64 32-byte key, as in a QR code's noise/identity/adv-secret parts."""
        return base64.b64encode(self._rng.randbytes(32)).decode()

    def qr_ref(self) -> str:
        """The server's rotating part of a QR code."""
        return "2@" + base64.b64encode(self._rng.randbytes(48)).decode()

    def pair_code(self) -> str:
        """An 8-character phone pairing code such as ``ABCD-EFGH``."""
        chars = "".join(self._rng.choice(_PAIR_CODE_ALPHABET) for _ in range(8))
        return f"{chars[:4]}-{chars[4:]}"


# --- outbound: content → log entry fields (pure) ------------------------------


def _card_fields(card: ContactCard) -> dict[str, Any]:
    return {"display_name": card.display_name, "vcard": card.vcard}


def _media_fields(media: Media) -> dict[str, Any]:
    data = media.data
    size = len(data) if data is not None else media.size
    sha256 = hashlib.sha256(data).hexdigest() if data is not None else media.sha256
    return {
        "sha256": sha256,
        "size": size,
        "mimetype": media.mimetype,
        "filename": media.filename,
        "caption": media.caption,
    }


def outbound_fields(content: AnyContent) -> dict[str, Any]:
    """The outbound-log fields of ``content``, named as in a ``/sim`` inbound body.

    Media gives ``{sha256 (hex), size, mimetype, filename, caption}`` instead of
    bytes; a :class:`ContactList` gives kind ``contact`` with its first card in
    ``contact`` and all of them in ``contacts``. Raises
    :class:`PermanentDeliveryError` for content WhatsApp cannot be sent.
    """
    match content:
        case Text(body=body, mentions=mentions):
            out: dict[str, Any] = {"kind": "text", "text": body}
            if mentions:
                out["mentions"] = list(mentions)
            return out
        case Media():
            return {"kind": content.media_kind.value, "media": _media_fields(content)}
        case Location():
            loc = {"lat": content.lat, "lon": content.lon}
            return {
                "kind": "location",
                "location": loc | {"name": content.name, "address": content.address},
            }
        case ContactCard():
            return {"kind": "contact", "contact": _card_fields(content)}
        case ContactList(cards=cards) if cards:
            cards_out = [_card_fields(c) for c in cards]
            return {"kind": "contact", "contact": cards_out[0], "contacts": cards_out}
        case Reaction(target=target, emoji=emoji):
            return {"kind": "reaction", "target": target, "emoji": emoji}
        case Edit(target=target, new=new):
            return {"kind": "edit", "target": target, "text": new.body}
        case Deletion(target=target):
            return {"kind": "revoke", "target": target}
    raise PermanentDeliveryError(f"the sim cannot send {content.kind} content to WhatsApp")


def _preview_text(content: AnyContent) -> str:
    """What a reply to this content quotes."""
    if isinstance(content, Text):
        return content.body
    if isinstance(content, Media):
        return content.caption or ""
    if isinstance(content, Location):
        return content.name or ""
    if isinstance(content, ContactCard | ContactList):
        return content.display_name
    return ""


def _entry_preview(entry: Mapping[str, Any]) -> str:
    """What a reply to an outbound-log entry quotes (as :func:`_preview_text`)."""
    if entry["kind"] == "text":
        return str(entry["text"])
    if entry["kind"] in MEDIA_KINDS:
        return entry["media"].get("caption") or ""
    if entry["kind"] == "location":
        return entry["location"].get("name") or ""
    if entry["kind"] == "contact":
        return str(entry["contact"]["display_name"])
    return ""


# --- storage ----------------------------------------------------------------


@dataclass(frozen=True)
class SimDevice:
    """A paired (linked) device of one simulated session."""

    phone: str
    paired_at: float
    auto: bool = False


class SimSessionStore:
    """The files of one simulated session: ``device.json``, ``outbound.jsonl`` and
    ``lids.jsonl`` (the LID ↔ phone links it learned)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.device_path = directory / "device.json"
        self.outbound_path = directory / "outbound.jsonl"
        self.lids_path = directory / "lids.jsonl"

    def load_device(self) -> SimDevice | None:
        if not self.device_path.exists():
            return None
        try:
            data = json.loads(self.device_path.read_text(encoding="utf-8"))
            return SimDevice(phone=data["phone"], paired_at=data["paired_at"], auto=data["auto"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"sim device store {self.device_path} is corrupt: {exc}") from exc

    def save_device(self, device: SimDevice) -> None:
        files.private_dir(self.directory)  # 0700 dirs, 0600 files (bridge/files.py)
        files.write_private(self.device_path, json.dumps(dataclasses.asdict(device)))

    def forget_device(self) -> None:
        self.device_path.unlink(missing_ok=True)

    def load_outbound(self) -> list[dict[str, Any]]:
        return _load_jsonl(self.outbound_path, "outbound log")

    def append_outbound(self, entry: Mapping[str, Any]) -> None:
        files.private_dir(self.directory)
        files.append_private(self.outbound_path, json.dumps(entry, ensure_ascii=False) + "\n")

    def load_lids(self) -> dict[str, str]:
        """LID digits → E.164 phone, as linked so far."""
        try:
            return {e["lid"]: e["phone"] for e in _load_jsonl(self.lids_path, "LID store")}
        except (KeyError, TypeError) as exc:
            raise EngineError(f"sim LID store {self.lids_path} is corrupt: {exc!r}") from exc

    def append_lid(self, lid: str, phone: str) -> None:
        files.private_dir(self.directory)
        files.append_private(self.lids_path, json.dumps({"lid": lid, "phone": phone}) + "\n")


def _load_jsonl(path: Path, what: str) -> list[Any]:
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError as exc:
            raise EngineError(f"sim {what} {path} line {number} is corrupt: {exc}") from exc
    return entries


# --- per-session state -------------------------------------------------------


@dataclass
class _PendingLogin:
    noise_key: str
    identity_key: str
    adv_secret: str
    pair_phone: str | None = None
    qr: str | None = None
    pair_code: str | None = None
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _KnownMessage:
    author: str | None  # address of the author; None = us (the bridge)
    text: str
    chat: Party


@dataclass
class _SimSession:
    key: str
    store: SimSessionStore
    device: SimDevice | None
    outbound: list[dict[str, Any]]
    connected: bool = False
    halt: str | None = None  # BANNED / OUTDATED / STOPPED after a fault or a stop
    refuse_until: float = 0.0
    refuse_reason: str = ""
    login: _PendingLogin | None = None
    fail_sends: int = 0
    fail_error: str = ""
    known: dict[str, _KnownMessage] = field(default_factory=dict)
    sent_ids: set[str] = field(default_factory=set)  # ids of our outbound entries
    push_names: dict[str, str] = field(default_factory=dict)
    avatars: dict[str, str] = field(default_factory=dict)
    read_ids: list[str] = field(default_factory=list)
    lid_phones: dict[str, str] = field(default_factory=dict)  # LID digits → E.164
    phone_lids: dict[str, str] = field(default_factory=dict)  # E.164 → LID digits

    @property
    def link_status(self) -> str:
        if self.connected:
            return "CONNECTED"
        if self.login is not None:
            return "QRCODE"
        if self.halt is not None:
            return self.halt
        return "DISCONNECTED" if self.device is not None else "LOGGED_OUT"

    def quote_of(self, wa_id: str) -> Quote:
        known = self.known.get(wa_id)
        if known is None:
            return Quote(wa_id=wa_id)
        return Quote(wa_id=wa_id, sender=known.author, text=known.text)


def _apply_edit(session: _SimSession, target: str, text: str) -> None:
    """Keep quoting an edited message faithful: a reply quotes its new text."""
    known = session.known.get(target)
    if known is not None:
        session.known[target] = dataclasses.replace(known, text=text)


def _identified(session: _SimSession, message: Message) -> tuple[Message, bool]:
    """``message`` with its sender's other half (phone or LID) where the session's LID
    store knows it, and whether this message linked the two (stored at once).
    Raises :class:`InvalidInput` for a LID or phone already linked to another."""
    sender = message.sender
    phone, lid = sender.phone, sender.lid
    linked = phone is not None and lid is not None and lid not in session.lid_phones
    if phone is not None and lid is not None:
        _check_link(session, phone, lid)
        if linked:
            session.store.append_lid(lid, phone)
            session.lid_phones[lid], session.phone_lids[phone] = phone, lid
        return message, linked
    known_phone = session.lid_phones.get(lid) if lid else None
    known_lid = session.phone_lids.get(phone) if phone else None
    if known_phone is None and known_lid is None:
        return message, False
    sender = dataclasses.replace(sender, phone=phone or known_phone, lid=lid or known_lid)
    chat = message.chat if message.chat.is_group else sender
    return dataclasses.replace(message, sender=sender, chat=chat), False


def _check_link(session: _SimSession, phone: str, lid: str) -> None:
    known_phone = session.lid_phones.get(lid)
    if known_phone not in (None, phone):
        raise InvalidInput(f"lid {lid}@lid is linked to another phone, not to {phone}")
    known_lid = session.phone_lids.get(phone)
    if known_lid not in (None, lid):
        raise InvalidInput(f"{phone} is linked to another LID, not to {lid}@lid")


def _split_key(key: str) -> tuple[str, str]:
    parts = key.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise InvalidInput(f"not a session key: {key!r} (expected <company>/<session>)")
    return parts[0], parts[1]


def _address(to: str) -> str:
    """The canonical address for ``to``: a group or LID JID as is, else E.164."""
    if to.endswith(("@g.us", "@lid")):
        return to
    try:
        return normalize_phone(to)
    except InvalidInput as exc:
        raise PermanentDeliveryError(f"cannot send to {to!r}: {exc.explanation}") from exc


def _party_of(address: str) -> Party:
    if address.endswith("@g.us"):
        return Party(group=address)
    if address.endswith("@lid"):
        return Party(lid=digits_of(address))
    return Party(phone=address)


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
    ) -> None:
        super().__init__(handler)
        if qr_first_seconds <= 0 or qr_next_seconds <= 0:
            raise ConfigError("whatsapp.sim: QR code lifetimes must be positive seconds")
        if max_qr_codes < 1:
            raise ConfigError("whatsapp.sim: max_qr_codes must be at least 1")
        self._root = data_dir / "sim"
        self._clock = clock
        self._qr_first = float(qr_first_seconds)
        self._qr_next = float(qr_next_seconds)
        self._auto_pair = auto_pair
        self._max_qr = max_qr_codes
        if seed is None:
            seed = secrets.randbits(64)
        log.debug("sim engine seed %d", seed)
        self._random = SimRandom(seed)
        self._sessions: dict[str, _SimSession] = {}
        self._taken: set[str] | None = None  # phones paired here or found on disk
        self._next_auto = 1

    # --- session state ----------------------------------------------------

    def _session(self, key: str) -> _SimSession:
        session = self._sessions.get(key)
        if session is None:
            company, name = _split_key(key)
            store = SimSessionStore(self._root / company / name)
            session = _SimSession(
                key=key, store=store, device=store.load_device(), outbound=store.load_outbound()
            )
            for entry in session.outbound:
                self._remember_outbound(session, entry)
            session.lid_phones = store.load_lids()
            session.phone_lids = {phone: lid for lid, phone in session.lid_phones.items()}
            self._sessions[key] = session
        return session

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

    # --- pairing and connection ---------------------------------------------

    async def is_paired(self, spec: SessionSpec) -> bool:
        session = self._session(spec.key)
        if session.device is None and self._auto_pair:
            self._pair(session, self._free_auto_phone(), auto=True)
        return session.device is not None

    async def connect(self, spec: SessionSpec) -> None:
        session = self._session(spec.key)
        await self.is_paired(spec)  # pairs itself first with auto_pair
        device = session.device
        if device is None:
            raise EngineError(f"session {spec.key} has no paired device; log in first")
        self._check_network(session)
        session.connected, session.halt = True, None
        log.info("sim session %s connected as %s", spec.key, device.phone)
        await self.emit(ConnectedEvent(spec.key, phone=device.phone))

    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        session = self._session(spec.key)
        if session.device is not None:
            raise EngineError(f"session {spec.key} is already paired; log out first")
        self._check_network(session)
        self._end_login(session)
        pending = _PendingLogin(
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
        self._pair(session, phone, auto=False)
        session.connected = True
        log.info("sim session %s paired and connected as %s", key, phone)
        await self.emit(PairSuccessEvent(key, phone=phone))
        await self.emit(ConnectedEvent(key, phone=phone))

    async def disconnect(self, key: str) -> None:
        session = self._session(key)
        self._end_login(session)
        session.connected, session.halt = False, "STOPPED"
        log.info("sim session %s stopped", key)

    async def logout(self, key: str) -> None:
        session = self._session(key)
        self._end_login(session)
        session.connected, session.halt = False, None
        self._unpair(session)
        log.info("sim session %s logged out", key)

    def _pair(self, session: _SimSession, phone: str, *, auto: bool) -> None:
        session.device = SimDevice(phone=phone, paired_at=self._clock.now(), auto=auto)
        session.store.save_device(session.device)
        self._taken_phones().add(phone)
        log.info("sim session %s paired with %s%s", session.key, phone, " (auto)" if auto else "")

    def _unpair(self, session: _SimSession) -> None:
        session.device = None
        session.store.forget_device()

    def _free_auto_phone(self) -> str:
        """The lowest auto-pair number nobody has: found in memory, not by re-reading
        every session's device file for each new session (1,000 sessions took 46 s)."""
        taken = self._taken_phones()
        while (phone := f"{AUTO_PAIR_PREFIX}{self._next_auto:08d}") in taken:
            self._next_auto += 1
        return phone

    def _taken_phones(self) -> set[str]:
        """Phones paired by this engine or left paired on disk by earlier runs (read once)."""
        if self._taken is None:
            self._taken = {s.device.phone for s in self._sessions.values() if s.device}
            for path in self._root.glob("*/*/device.json"):
                device = SimSessionStore(path.parent).load_device()
                if device is not None:
                    self._taken.add(device.phone)
        return self._taken

    def _check_network(self, session: _SimSession) -> None:
        remaining = session.refuse_until - self._clock.now()
        if remaining > 0:
            raise EngineError(
                f"sim network refuses session {session.key} for another {remaining:g} s "
                f"({session.refuse_reason})"
            )

    def _qr(self, pending: _PendingLogin) -> str:
        ref = self._random.qr_ref()
        return f"{ref},{pending.noise_key},{pending.identity_key},{pending.adv_secret}"

    async def _run_login_clock(self, session: _SimSession, pending: _PendingLogin) -> None:
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

    def _end_login(self, session: _SimSession) -> None:
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
        session = self._session(key)
        self._end_login(session)
        session.connected = False
        log.info("sim session %s: %s fault (%g s)", key, kind, seconds)
        if kind == "disconnect":
            self._refuse(session, seconds, "disconnect fault")
            await self.emit(DisconnectedEvent(key, reason=DISCONNECT_FAULT_REASON, transient=True))
        elif kind == "logout":
            session.halt = None
            self._unpair(session)
            await self.emit(LoggedOutEvent(key))
        elif kind == "ban":
            session.halt = "BANNED"
            self._refuse(session, seconds, "temporarily banned")
            await self.emit(TemporaryBanEvent(key, code="ban", expires_in=float(seconds)))
        elif kind == "outdated":
            session.halt = "OUTDATED"
            await self.emit(ClientOutdatedEvent(key))
        else:
            session.halt = "STOPPED"
            await self.emit(StreamReplacedEvent(key))

    def _refuse(self, session: _SimSession, seconds: float, reason: str) -> None:
        session.refuse_until = self._clock.now() + seconds
        session.refuse_reason = reason

    def fail_next_sends(self, key: str, n: int, error: str = DEFAULT_SEND_ERROR) -> None:
        """Make the next ``n`` outbound operations (send, react, edit, revoke) raise
        :class:`EngineError` with ``error``; ``n = 0`` cancels, at most 1,000."""
        request = check_fail_sends(n, error)
        session = self._session(key)
        session.fail_sends, session.fail_error = request.count, request.error

    # --- inbound ----------------------------------------------------------

    def _require_connected(self, session: _SimSession) -> None:
        if not session.connected:
            raise InvalidInput(
                f"session {session.key} is not connected (status {session.link_status})"
            )

    async def inbound(self, key: str, body: Mapping[str, Any]) -> str:
        """A customer message (the ``/sim`` inbound body); returns its WhatsApp id."""
        session = self._session(key)
        self._require_connected(session)
        wa_id = read_inbound_id(body) or self._new_id(session)
        message = message_from_inbound(
            body, wa_id=wa_id, timestamp=self._clock.now(), quote_of=session.quote_of
        )
        avatar_url = read_avatar_url(body)
        message, linked = _identified(session, message)
        session.known[wa_id] = _KnownMessage(
            author=message.sender.address, text=_preview_text(message.content), chat=message.chat
        )
        if isinstance(message.content, Edit):
            _apply_edit(session, message.content.target, message.content.new.body)
        await self._learn_contact(session, message.sender, avatar_url, linked=linked)
        log.debug("sim session %s: inbound %s %s", key, message.kind_label, wa_id)
        await self.emit(MessageEvent(key, message=message))
        return wa_id

    async def _learn_contact(
        self, session: _SimSession, sender: Party, avatar_url: str | None, *, linked: bool
    ) -> None:
        """Emit a ContactUpdateEvent when the sender's push name or avatar is new, or
        when this message linked its LID and phone."""
        if sender.is_group:
            return
        who = sender.lid or sender.address  # the LID stays when the phone is learned
        new_name = bool(sender.name) and session.push_names.get(who) != sender.name
        new_avatar = avatar_url is not None and session.avatars.get(who) != avatar_url
        if not (new_name or new_avatar or linked):
            return
        if new_name and sender.name:
            session.push_names[who] = sender.name
        if avatar_url is not None:
            session.avatars[who] = avatar_url
        await self.emit(
            ContactUpdateEvent(session.key, party=sender, avatar_url=session.avatars.get(who))
        )

    def _new_id(self, session: _SimSession) -> str:
        while (wa_id := self._random.message_id()) in session.known:
            pass  # 72 random bits: a repeat is practically impossible, but be sure
        return wa_id

    async def receipt(self, key: str, wa_id: str, status: str) -> None:
        """The recipient's phone acknowledges our message ``wa_id``."""
        session = self._session(key)
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

    def _sending_session(self, key: str) -> _SimSession:
        session = self._session(key)
        if not session.connected:
            raise SessionNotConnected(
                f"session {key} is not connected to WhatsApp (status {session.link_status})"
            )
        return session

    def _record(
        self,
        session: _SimSession,
        to: str,
        content: AnyContent,
        quote: Quote | None,
        message_id: str | None,
    ) -> str:
        address = _address(to)
        fields = outbound_fields(content)
        if message_id is not None and not message_id:
            raise PermanentDeliveryError("a chosen WhatsApp message id must not be empty")
        if session.fail_sends > 0:
            session.fail_sends -= 1
            raise EngineError(session.fail_error)
        if message_id in session.sent_ids:
            log.info(
                "sim session %s: %s %s already sent; the recipient drops the repeat",
                session.key,
                fields["kind"],
                message_id,
            )
            return message_id
        wa_id = message_id or self._new_id(session)
        entry: dict[str, Any] = {"id": wa_id, "to": address, "timestamp": self._clock.now()}
        entry |= fields
        if quote is not None:
            entry["quote"] = quote.wa_id
        session.store.append_outbound(entry)
        session.outbound.append(entry)
        self._remember_outbound(session, entry)
        log.debug(
            "sim session %s: outbound %s %s to %s", session.key, entry["kind"], wa_id, address
        )
        return wa_id

    @staticmethod
    def _remember_outbound(session: _SimSession, entry: Mapping[str, Any]) -> None:
        chat = _party_of(entry["to"])
        session.sent_ids.add(entry["id"])
        session.known[entry["id"]] = _KnownMessage(
            author=None, text=_entry_preview(entry), chat=chat
        )
        if entry["kind"] == "edit":
            _apply_edit(session, entry["target"], entry["text"])

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        return self._record(self._sending_session(key), to, content, quote, message_id)

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
        return self._record(self._sending_session(key), to, action, None, message_id)

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        action = Edit(target, Text(text))
        return self._record(self._sending_session(key), to, action, None, message_id)

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        return self._record(self._sending_session(key), to, Deletion(target), None, message_id)

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        self._sending_session(key).read_ids.extend(ids)

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
