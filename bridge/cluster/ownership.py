"""Which instance owns each WhatsApp session, and which one leads
(docs/cluster.md#ownership-and-fencing).

Every ``lease_seconds / 3`` (or at once after :meth:`Ownership.wake`) one pass:
beat in ``instances``; renew every lease held (a renew that fails means the lease
is lost: the session is released here at once); take free or expired session leases
up to the fair share, ``ceil(sessions / live instances)``; hand the extras over
cleanly when above it (an instance joined); keep or take the leader lease.

Locally, a lease counts only until ``renewed + lease_seconds - margin``, measured
from when the renew was *sent*: the database cannot give the lease to another
before ``renewed + lease_seconds``, so an instance whose database is unreachable, or
whose process was paused, stops believing it owns a session before anyone else may
take it. The fencing check (:meth:`Ownership.confirm`) closes what is left: a send
or status write of an instance that woke after its lease passed on is refused by
the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bridge.clock import Clock
from bridge.db.leases import LEADER, SESSION_PREFIX, LeaseRepository, LeaseRow, session_lease
from bridge.errors import BridgeError
from bridge.metrics import Metrics

log = logging.getLogger("bridge.cluster")

_PASSED = "its lease passed to another instance"

How = Literal["first", "lost", "stopped", "rebalanced", "regained"]
"""How a session came: never held before; its holder lost its lease; its holder
stopped cleanly; its holder handed it over to spread the sessions; it was ours."""


class OwnershipListener(Protocol):
    async def on_gain(
        self, key: str, token: int, previous_holder: str | None, how: How
    ) -> None: ...

    async def on_lose(self, key: str, why: str) -> None: ...

    async def on_leader(self, leading: bool) -> None: ...


@dataclass(slots=True)
class _Held:
    token: int
    until: float  # monotonic: believed ours until then


class Ownership:
    """The leases of one instance. ``start`` runs the passes; ``stop`` hands every
    session and the leadership over at once."""

    def __init__(
        self,
        leases: LeaseRepository,
        *,
        session_keys: Sequence[str],
        instance_id: str,
        lease_seconds: float,
        clock: Clock,
        listener: OwnershipListener | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.instance_id = instance_id
        self._leases = leases
        self._keys = tuple(sorted(session_keys, key=lambda k: _spread(instance_id, k)))
        self._seconds = float(lease_seconds)
        self._margin = self._seconds / 5
        self._clock = clock
        self._listener = listener
        self._metrics = metrics
        self._held: dict[str, _Held] = {}
        self._leader: _Held | None = None
        self._foreign_expiry: float | None = None  # monotonic: another's lease runs out
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one pass at a time
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self.announce: Callable[[], Awaitable[None]] | None = None
        """Tells the other instances to look now (a NOTIFY), after a pass handed
        sessions over; they would otherwise take them at their next pass."""

    EXPIRY_SLACK = 0.05
    """Seconds after another's lease runs out before the pass that takes it."""

    @property
    def interval(self) -> float:
        return self._seconds / 3

    def listen(self, listener: OwnershipListener) -> None:
        self._listener = listener

    # --- the view (bridge/cluster/view.py) ----------------------------------------

    def owns(self, session_key: str) -> bool:
        held = self._held.get(session_key)
        return held is not None and self._clock.monotonic() < held.until

    def owned(self) -> frozenset[str]:
        return frozenset(k for k in self._held if self.owns(k))

    def token(self, session_key: str) -> int | None:
        held = self._held.get(session_key)
        return held.token if held is not None and self.owns(session_key) else None

    def is_leader(self) -> bool:
        return self._leader is not None and self._clock.monotonic() < self._leader.until

    def wake(self) -> None:
        self._wake.set()

    async def confirm(self, session_key: str) -> bool:
        """The fencing check, in the database; a failure releases the session here."""
        token = self.token(session_key)
        if token is not None:
            try:
                if await self._leases.check(session_lease(session_key), self.instance_id, token):
                    return True
            except BridgeError as exc:
                log.warning("cannot check the lease of %s: %s", session_key, exc.explanation)
                return False  # not released: the next pass decides
        if session_key in self._held:
            lapsed = token is None
            why = "its lease could not be renewed in time" if lapsed else _PASSED
            await self._lose(session_key, why)
        return False

    # --- running ------------------------------------------------------------------

    async def start(self) -> None:
        """One pass now (so a lone instance owns its sessions when start returns), then
        a pass every ``lease_seconds / 3``."""
        await self.tick()
        self._task = asyncio.create_task(self._run(), name="cluster ownership")

    async def stop(self) -> None:
        """A clean stop: the sessions stop here, then their leases are released so
        another instance takes them at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        async with self._lock:
            held = {key: h.token for key, h in self._held.items()}
            for key in held:
                await self._lose(key, "this instance stops")
            leader, self._leader = self._leader, None
            if leader is not None:
                await self._notify_leader(False)
            await self._quietly(self._leases.leave(self.instance_id))  # before: "stopped"
            for key, token in held.items():
                name = session_lease(key)
                await self._quietly(self._leases.release(name, self.instance_id, token))
            if leader is not None:
                await self._quietly(self._leases.release(LEADER, self.instance_id, leader.token))

    async def _run(self) -> None:
        while True:
            await self._wait(self._next_wait())
            try:
                await self.tick()
            except Exception:  # the loop's boundary: log, and try again next time
                log.exception("ownership pass failed")

    def _next_wait(self) -> float:
        """Until the next pass; sooner when a lease of ours would lapse locally before
        it, or when another's runs out (a dead instance's sessions move then)."""
        now = self._clock.monotonic()
        untils = [h.until for h in self._held.values()]
        if self._foreign_expiry is not None:
            untils.append(self._foreign_expiry + self.EXPIRY_SLACK)
        if self._leader is not None:
            untils.append(self._leader.until)
        return max(0.0, min([self.interval, *(u - now for u in untils)]))

    async def _wait(self, seconds: float) -> None:
        waker = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait((waker, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            sleeper.cancel()
        self._wake.clear()

    async def tick(self) -> None:
        """One pass (tests call it directly)."""
        async with self._lock:
            await self._drop_lapsed()
            try:
                await self._pass()
            except BridgeError as exc:
                log.warning("ownership pass failed: %s", exc.explanation)
            if self._metrics is not None:
                self._metrics.cluster_owned.labels(instance=self.instance_id).set(len(self._held))
                leading = 1 if self._leader is not None else 0
                self._metrics.cluster_leader.labels(instance=self.instance_id).set(leading)

    async def _pass(self) -> None:
        self._foreign_expiry = None  # known again at the end of a pass that worked
        await self._leases.heartbeat(self.instance_id, host=self._host, pid=self._pid)
        for key in list(self._held):
            await self._renew(key)
        await self._lead()
        # live: beat within two passes (a paused or dead one stops counting before
        # its leases run out, so the others' share covers its sessions by then)
        live = await self._leases.live_instances(within=2 * self.interval)
        share = math.ceil(len(self._keys) / max(1, len(live)))
        held = await self._leases.held(SESSION_PREFIX)
        for key in self._keys:
            if len(self._held) >= share:
                break
            if session_lease(key) not in held and key not in self._held:
                await self._take(key, {i.id for i in live})
        extra = sorted(self._held, reverse=True)[: max(0, len(self._held) - share)]
        for key in extra:
            await self._hand_over(key)
        if extra and self.announce is not None:
            await self.announce()
        sent = self._clock.monotonic()
        expiry_in = await self._leases.next_expiry_in(self.instance_id)
        self._foreign_expiry = None if expiry_in is None else sent + expiry_in

    async def _drop_lapsed(self) -> None:
        now = self._clock.monotonic()
        for key, held in list(self._held.items()):
            if now >= held.until:
                await self._lose(key, "its lease could not be renewed in time")
        if self._leader is not None and now >= self._leader.until:
            self._leader = None
            await self._notify_leader(False)

    async def _renew(self, key: str) -> None:
        held = self._held.get(key)
        if held is None:  # a fencing check let it go meanwhile
            return
        sent = self._clock.monotonic()
        expires = await self._leases.renew(
            session_lease(key), self.instance_id, held.token, seconds=self._seconds
        )
        if expires is None:
            await self._lose(key, _PASSED)
        else:
            held.until = sent + self._seconds - self._margin

    async def _take(self, key: str, live: set[str]) -> None:
        sent = self._clock.monotonic()
        row = await self._leases.acquire(
            session_lease(key), self.instance_id, seconds=self._seconds
        )
        if row is None:
            return
        self._held[key] = _Held(row.token, sent + self._seconds - self._margin)
        how = _how(row, self, live)
        log.info("session %s is ours now (token %d, %s)", key, row.token, how)
        if self._metrics is not None:
            self._metrics.cluster_gained.labels(instance=self.instance_id, how=how).inc()
        if self._listener is not None:
            try:
                await self._listener.on_gain(key, row.token, row.previous_holder, how)
            except Exception:  # the lease is ours: the session's own retries take over
                log.exception("starting session %s failed", key)

    async def _hand_over(self, key: str) -> None:
        held = self._held.get(key)
        if held is None:
            return
        await self._lose(key, "handed over to spread the sessions")
        await self._leases.release(session_lease(key), self.instance_id, held.token)

    async def _lead(self) -> None:
        sent = self._clock.monotonic()
        if self._leader is not None:
            expires = await self._leases.renew(
                LEADER, self.instance_id, self._leader.token, seconds=self._seconds
            )
            if expires is not None:
                self._leader.until = sent + self._seconds - self._margin
                return
            self._leader = None
            await self._notify_leader(False)
        row = await self._leases.acquire(LEADER, self.instance_id, seconds=self._seconds)
        if row is not None:
            self._leader = _Held(row.token, sent + self._seconds - self._margin)
            log.info("this instance leads now (token %d)", row.token)
            await self._notify_leader(True)

    async def _lose(self, key: str, why: str) -> None:
        if self._held.pop(key, None) is None:
            return
        log.warning("session %s is no longer ours: %s", key, why)
        if self._metrics is not None:
            self._metrics.cluster_lost.labels(instance=self.instance_id).inc()
        if self._listener is not None:
            try:
                await self._listener.on_lose(key, why)
            except Exception:  # the session must stop here whatever the listener did
                log.exception("releasing session %s failed", key)

    async def _notify_leader(self, leading: bool) -> None:
        if not leading:
            log.warning("this instance no longer leads")
        if self._listener is not None:
            try:
                await self._listener.on_leader(leading)
            except Exception:
                log.exception("the leader callback failed")

    @staticmethod
    async def _quietly(call: Awaitable[object]) -> None:
        try:
            await call
        except BridgeError as exc:
            log.warning("cannot release a lease: %s", exc.explanation)


def _how(row: LeaseRow, ownership: Ownership, live: set[str]) -> How:
    if row.previous_holder is None:
        return "first"
    if row.previous_holder == ownership.instance_id:
        return "regained"
    if row.previous_end == "expired":
        return "lost"
    return "rebalanced" if row.previous_holder in live else "stopped"


def _spread(instance_id: str, key: str) -> int:
    """Each instance tries the free sessions in its own order, so that instances
    starting together do not all race for the same one."""
    return zlib.crc32(f"{instance_id}\0{key}".encode())
