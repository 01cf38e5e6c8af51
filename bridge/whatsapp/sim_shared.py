"""Where the sim keeps its sessions, and the network shared by every instance.

With ``whatsapp.sim.network: files`` (the default) a session's device, outbound log
and LID links are files under ``data_dir/sim`` (:mod:`bridge.whatsapp.sim_store`), and
a customer message reaches the session at once. With ``database`` they live in the
bridge's database (a :class:`SimNetworkStore`, bridge/db/sim_network.py), shared by
every instance of one config (docs/sim.md, "Shared network"):

- a customer message posted to any instance is **held** by the network and answered
  with its id; the instance that runs the session (it called ``connect``) takes the
  held messages in order, as a phone's device takes what WhatsApp held while it was
  offline. :class:`HeldInbound` does that: it looks when woken (a connect, a post
  here, :meth:`HeldInbound.wake`) and every ``poll_seconds`` otherwise;
- a held message is deleted once the bridge persisted it (the engine handler
  returned: the same ack point as whatsmeow's). A crash in between delivers it again
  and the relay drops the repeat by its WhatsApp id. One the database refused stays
  held for the next look; one the bridge cannot take for another reason is reported
  (``EngineErrorEvent``) and dropped, so it never blocks the messages behind it;
- ``connect`` reads the device, the outbound log and the LID links back, so a
  session moved to another instance keeps its pairing, the ids it sent (a repeated
  chosen id is still dropped) and its links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from bridge.errors import DatabaseError, EngineError, InvalidInput
from bridge.whatsapp import sim_outbound
from bridge.whatsapp.sim_session import SimSession
from bridge.whatsapp.sim_store import SimDevice, SimSessionStore

log = logging.getLogger("bridge.whatsapp.sim.network")

HELD_BATCH = 50


class StoredDevice(Protocol):
    @property
    def phone(self) -> str: ...
    @property
    def paired_at(self) -> float: ...
    @property
    def auto(self) -> bool: ...


class HeldMessage(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def wa_id(self) -> str: ...
    @property
    def body(self) -> Mapping[str, Any]: ...
    @property
    def posted_at(self) -> float: ...


class SimNetworkStore(Protocol):
    """The shared network's tables (bridge/db/sim_network.py implements it)."""

    async def device(self, session_key: str) -> StoredDevice | None: ...
    async def pair(
        self, session_key: str, *, phone: str, paired_at: float, auto: bool, replace: bool
    ) -> StoredDevice: ...
    async def unpair(self, session_key: str) -> None: ...
    async def paired_phones(self) -> set[str]: ...
    async def log_outbound(self, session_key: str, entry: dict[str, Any]) -> None: ...
    async def outbound(self, session_key: str) -> list[dict[str, Any]]: ...
    async def link_lid(self, session_key: str, *, lid: str, phone: str) -> None: ...
    async def lids(self, session_key: str) -> dict[str, str]: ...
    async def hold(
        self, session_key: str, *, wa_id: str, body: dict[str, Any], posted_at: float
    ) -> None: ...
    async def held(self, session_key: str, *, limit: int = ...) -> Sequence[HeldMessage]: ...
    async def sessions_with_held(self) -> set[str]: ...
    async def take(self, seq: int) -> bool: ...


@contextlib.contextmanager
def _network_errors(what: str) -> Iterator[None]:
    """A database failure of the shared network as the engine's :class:`EngineError`
    (the session manager retries; /sim answers 503)."""
    try:
        yield
    except DatabaseError as exc:
        raise EngineError(f"the sim network could not {what}: {exc.explanation}") from exc


def _device(stored: StoredDevice | None) -> SimDevice | None:
    if stored is None:
        return None
    return SimDevice(phone=stored.phone, paired_at=stored.paired_at, auto=stored.auto)


class SessionKeeping:
    """Reads and writes a session's device, outbound log and LID links: in its files,
    or in the shared network when there is one."""

    def __init__(self, root: Path, network: SimNetworkStore | None) -> None:
        self.root = root
        self.network = network

    def open(self, key: str, company: str, name: str) -> SimSession:
        """The session's state; from its files at once, or empty until :meth:`refresh`."""
        store = SimSessionStore(self.root / company / name)
        if self.network is not None:
            return SimSession(key=key, store=store, device=None, outbound=[], loaded=False)
        session = SimSession(
            key=key, store=store, device=store.load_device(), outbound=store.load_outbound()
        )
        for entry in session.outbound:
            sim_outbound.remember(session, entry)
        self._set_lids(session, store.load_lids())
        return session

    async def refresh(self, session: SimSession, *, device_only: bool = False) -> None:
        """Read the session back from the shared network (nothing to do for files)."""
        if self.network is None:
            return
        with _network_errors("read the session back"):
            session.device = _device(await self.network.device(session.key))
            if device_only and session.loaded:
                return
            outbound = await self.network.outbound(session.key)
            lids = await self.network.lids(session.key)
        session.outbound = outbound
        session.sent_ids.clear()
        for entry in outbound:
            sim_outbound.remember(session, entry)
        self._set_lids(session, lids)
        session.loaded = True

    @staticmethod
    def _set_lids(session: SimSession, lids: dict[str, str]) -> None:
        session.lid_phones = lids
        session.phone_lids = {phone: lid for lid, phone in lids.items()}

    async def pair(self, session: SimSession, device: SimDevice, *, replace: bool) -> SimDevice:
        """Store the device; answers the session's device (another instance's wins an
        auto-pairing race)."""
        if self.network is None:
            session.store.save_device(device)
            return device
        with _network_errors("link the device"):
            stored = await self.network.pair(
                session.key,
                phone=device.phone,
                paired_at=device.paired_at,
                auto=device.auto,
                replace=replace,
            )
        return _device(stored) or device

    async def unpair(self, session: SimSession) -> None:
        if self.network is None:
            session.store.forget_device()
        else:
            with _network_errors("unlink the device"):
                await self.network.unpair(session.key)

    async def paired_phones(self, known: set[str]) -> set[str]:
        """Every phone linked so far: ``known`` and those in the files or network."""
        taken = set(known)
        if self.network is not None:
            with _network_errors("list the linked phones"):
                return taken | await self.network.paired_phones()
        for path in self.root.glob("*/*/device.json"):
            device = SimSessionStore(path.parent).load_device()
            if device is not None:
                taken.add(device.phone)
        return taken

    async def log_outbound(self, session: SimSession, entry: dict[str, Any]) -> None:
        if self.network is None:
            session.store.append_outbound(entry)
            return
        with _network_errors("log the message"):  # not sent: the outbox tries again
            await self.network.log_outbound(session.key, entry)

    async def link_lid(self, session: SimSession, lid: str, phone: str) -> None:
        if self.network is None:
            session.store.append_lid(lid, phone)
        else:
            with _network_errors("link the LID"):
                await self.network.link_lid(session.key, lid=lid, phone=phone)
        session.lid_phones[lid], session.phone_lids[phone] = phone, lid

    async def outbound(self, session: SimSession) -> list[dict[str, Any]]:
        """The session's outbound log: every instance's sends with a shared network."""
        if self.network is None:
            return [dict(entry) for entry in session.outbound]
        with _network_errors("read the outbound log"):
            return await self.network.outbound(session.key)


Receive = Callable[[str, Mapping[str, Any], str, float], Awaitable[None]]
Report = Callable[[str, str, str], Awaitable[None]]


class HeldInbound:
    """Hands the messages the shared network holds to the sessions running here (see
    the module doc): ``receive(key, body, wa_id, posted_at)`` emits one, ``runs(key)``
    says whether this engine runs the session (it is connected here), and
    ``report(key, wa_id, explanation)`` tells of one set aside."""

    def __init__(
        self,
        network: SimNetworkStore,
        *,
        receive: Receive,
        runs: Callable[[str], bool],
        report: Report,
        poll_seconds: float,
    ) -> None:
        self._network = network
        self._receive = receive
        self._runs = runs
        self._report = report
        self._poll = poll_seconds
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def hold(self, key: str, *, wa_id: str, body: dict[str, Any], posted_at: float) -> None:
        """Hold a customer message for the session and look at once."""
        with _network_errors("hold the message"):
            await self._network.hold(key, wa_id=wa_id, body=body, posted_at=posted_at)
        self.wake()

    def wake(self) -> None:
        """Look for held messages now (a connect, a post, a NOTIFY from elsewhere)."""
        self._woken.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sim-held-inbound")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._woken.clear()
            try:
                await self.deliver_all()
            except DatabaseError as exc:
                log.warning("held messages unreachable, trying again: %s", exc.explanation)
            except Exception:
                log.exception("delivering held messages failed; trying again")
            waiter = asyncio.ensure_future(self._woken.wait())
            try:  # (not wait_for: on 3.11 it can swallow the cancel of close())
                await asyncio.wait({waiter}, timeout=self._poll)
            finally:
                waiter.cancel()

    async def deliver_all(self) -> None:
        """Deliver what is held for every session this engine runs."""
        for key in sorted(await self._network.sessions_with_held()):
            if self._runs(key):
                await self.deliver(key)

    async def deliver(self, key: str) -> None:
        """Deliver the session's held messages in order while it runs here; a message
        the database could not take stays held (tried again on the next look)."""
        while self._runs(key):
            batch = await self._network.held(key, limit=HELD_BATCH)
            for held in batch:
                if not self._runs(key):
                    return
                try:
                    await self._receive(key, held.body, held.wa_id, held.posted_at)
                except (DatabaseError, EngineError) as exc:  # a database down: try again later
                    log.warning("session %s: %s stays held: %s", key, held.wa_id, exc.explanation)
                    return
                except Exception as exc:
                    detail = exc.explanation if isinstance(exc, InvalidInput) else repr(exc)
                    log.warning("session %s: held %s set aside: %s", key, held.wa_id, detail)
                    await self._set_aside(key, held.wa_id, detail)
                await self._network.take(held.seq)
            if len(batch) < HELD_BATCH:
                return

    async def _set_aside(self, key: str, wa_id: str, detail: str) -> None:
        try:
            await self._report(key, wa_id, f"a held /sim message was set aside: {detail[:200]}")
        except Exception:
            log.exception("session %s: reporting held message %s failed", key, wa_id)
