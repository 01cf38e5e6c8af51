"""Who may drain an ordering key: the outbox worker's claims strategy.

One instance (SQLite, or PostgreSQL without ``cluster.enabled``): :class:`LocalClaims`,
the worker's in-flight set is enough and nothing more is read or written.

Several instances (docs/cluster.md, "Outbox across instances"): :class:`DatabaseClaims`.
A key is drained by the instance holding its claim (``bridge.db.outbox_claims``);
rows to WhatsApp only by the instance owning their session. When a key woken here
cannot be drained here (another instance holds it, or its session is owned
elsewhere), its name is announced to the other instances over LISTEN/NOTIFY
(``bridge.db.notify``), batched; what they announce wakes those keys here. Keys
woken by an announcement are never announced again, so instances do not echo each
other. Claims in flight are extended every third of the visibility timeout; a clean
stop releases them and tells the others to look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, MutableMapping
from typing import Protocol

from bridge.cache import bounded
from bridge.clock import Clock
from bridge.db.batcher import Batcher
from bridge.db.delivery_records import DeliveryRecord
from bridge.db.notify import MAX_PAYLOAD_BYTES, Notifier
from bridge.db.outbox import Finish, OutboxRepository, OutboxRow
from bridge.db.outbox_claims import OutboxClaimRepository
from bridge.errors import BridgeError

log = logging.getLogger("bridge.core.outbox")

OUTBOX_CHANNEL = "outbox"
EVERY_KEY = "*"  # announced: look at the whole outbox

Wake = Callable[[Iterable[str] | None], None]
InFlight = Callable[[], Collection[str]]


class SessionOwner(Protocol):
    """Which WhatsApp sessions run here (the cluster's ``OwnershipView``)."""

    def owns(self, session_key: str) -> bool: ...

    def owned(self) -> frozenset[str]: ...


class OutboxClaims(Protocol):
    """What the worker asks before and after delivering (see the module docstring)."""

    async def start(self, *, wake: Wake, in_flight: InFlight) -> None:
        """``wake``: keys announced by another instance (never announced again)."""

    async def stop(self) -> None: ...

    async def head(self, key: str, *, now: float, announce: bool) -> OutboxRow | None:
        """The oldest row of ``key`` if it is due and ours to deliver now."""

    async def due(self, limit: int, *, now: float, skip: Collection[str]) -> list[OutboxRow]:
        """Due heads of keys not in ``skip``, at most one per key, ours to deliver."""

    async def finish(
        self, row: OutboxRow, *, now: float, record: DeliveryRecord | None = None
    ) -> OutboxRow | None:
        """Write ``record`` and mark ``row`` done; the next row of its key when it is
        due and still ours."""

    async def release(self, key: str) -> None:
        """The drain of ``key`` ended early (a retry, a dead letter)."""

    def may_run(self, row: OutboxRow) -> bool:
        """Whether this instance may execute ``row`` (its session is owned here)."""

    def announce(self, keys: Iterable[str] | None) -> None:
        """Rows were committed here for ``keys`` (None: anywhere): tell the others."""

    def resumed(self, row: OutboxRow) -> bool:
        """Whether ``row`` is the first of its key here since another instance held the
        key (docs/cluster.md, "A key that moved"); asked once, before delivering it."""


def _nobody(_keys: Iterable[str] | None) -> None:
    """No worker to wake yet."""


def _if_due(row: OutboxRow | None, now: float) -> OutboxRow | None:
    return row if row is not None and row.next_attempt_at <= now else None


class LocalClaims:
    """One instance: every key and every session is ours. On PostgreSQL, the heads
    read and the finishes that arrive together share a statement each
    (bridge/db/batcher.py)."""

    def __init__(self, repo: OutboxRepository) -> None:
        self._repo = repo
        batches = repo.batches_statements
        self._finish_many = Batcher(repo.finish_many) if batches else None
        self._next_for_keys = Batcher(repo.next_for_keys) if batches else None

    async def start(self, *, wake: Wake, in_flight: InFlight) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def head(self, key: str, *, now: float, announce: bool) -> OutboxRow | None:
        if self._next_for_keys is not None:
            return _if_due(await self._next_for_keys(key), now)
        return _if_due(await self._repo.next_for_key(key), now)

    async def due(self, limit: int, *, now: float, skip: Collection[str]) -> list[OutboxRow]:
        return await self._repo.next_due(limit, now=now)

    async def finish(
        self, row: OutboxRow, *, now: float, record: DeliveryRecord | None = None
    ) -> OutboxRow | None:
        if self._finish_many is not None:
            finish = Finish(row.id, row.ordering_key, now, record)
            return _if_due(await self._finish_many(finish), now)
        after = await self._repo.finish(row.id, row.ordering_key, now=now, record=record)
        return _if_due(after, now)

    async def release(self, key: str) -> None:
        pass

    def may_run(self, row: OutboxRow) -> bool:
        return True

    def announce(self, keys: Iterable[str] | None) -> None:
        pass

    def resumed(self, row: OutboxRow) -> bool:
        return False


class DatabaseClaims:
    """Several instances: claims in the database, wake-ups over LISTEN/NOTIFY."""

    def __init__(
        self,
        repo: OutboxClaimRepository,
        *,
        owner: SessionOwner,
        notifier: Notifier,
        clock: Clock,
    ) -> None:
        self._repo = repo
        self._finish_many = Batcher(repo.finish_many)  # docs/architecture.md
        self._owner = owner
        self._notifier = notifier
        self._clock = clock
        self._wake: Wake = _nobody
        self._in_flight: InFlight = frozenset
        self._pending: set[str] = set()  # keys to announce
        self._announce_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # rows claimed from another instance's key, not yet delivered
        self._resumed: MutableMapping[int, bool] = bounded(10_000)

    @property
    def holder(self) -> str:
        return self._repo.holder

    async def start(self, *, wake: Wake, in_flight: InFlight) -> None:
        if self._wake is _nobody:  # listen once, however often the worker starts
            await self._notifier.listen(OUTBOX_CHANNEL, self._heard)
            self._notifier.on_resumed(lambda: self._wake(None))  # announced meanwhile
        self._wake, self._in_flight = wake, in_flight
        self._tasks = [
            asyncio.create_task(self._announcing(), name="outbox-announce"),
            asyncio.create_task(self._extending(), name="outbox-claims"),
        ]

    async def stop(self) -> None:
        """Stop extending and announcing; release every claim and tell the others to
        look, so that they take over at once (the worker's drains are cancelled)."""
        await self.halt()
        try:
            released = await self._repo.release_all()
            if released:
                await self._notifier.notify(OUTBOX_CHANNEL, f"{self.holder}\n{EVERY_KEY}")
        except BridgeError as exc:
            log.warning("claims not released at stop (they expire): %s", exc.explanation)

    async def halt(self) -> None:
        """Stop extending and announcing, releasing nothing: what a crash leaves (the
        claims expire after the visibility timeout)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def head(self, key: str, *, now: float, announce: bool) -> OutboxRow | None:
        head = await self._repo.take_head(key, now=now, owned=self._owner.owned())
        if head.claimed:
            if head.resumed and head.row is not None:
                self._resumed[head.row.id] = True
            return head.row
        if announce and _if_due(head.row, now) is not None:
            self.announce([key])  # its holder, or its session's owner, drains it
        return None

    async def due(self, limit: int, *, now: float, skip: Collection[str]) -> list[OutboxRow]:
        found = await self._repo.claim_due(limit, now=now, owned=self._owner.owned(), skip=skip)
        self._resumed.update((row.id, True) for row, resumed in found if resumed)
        return [row for row, _ in found]

    async def finish(
        self, row: OutboxRow, *, now: float, record: DeliveryRecord | None = None
    ) -> OutboxRow | None:
        after = await self._finish_many(Finish(row.id, row.ordering_key, now, record))
        if _if_due(after.row, now) is None:
            return None  # the claim went with the finish
        if not after.kept:
            log.warning("claim on %s lost while draining it: left to its holder", row.ordering_key)
            return None
        return after.row

    async def release(self, key: str) -> None:
        try:
            await self._repo.release(key)
        except BridgeError as exc:
            log.warning("claim on %s not released (it expires): %s", key, exc.explanation)

    def may_run(self, row: OutboxRow) -> bool:
        return row.session_key is None or self._owner.owns(row.session_key)

    def resumed(self, row: OutboxRow) -> bool:
        return self._resumed.pop(row.id, False)

    def announce(self, keys: Iterable[str] | None) -> None:
        self._pending.update([EVERY_KEY] if keys is None else keys)
        self._announce_now.set()

    # --- announcements ---------------------------------------------------------------

    def _heard(self, payload: str) -> None:
        sender, _, text = payload.partition("\n")
        if sender == self.holder or not text:
            return
        keys = text.split("\n")
        self._wake(None if EVERY_KEY in keys else keys)

    async def _announcing(self) -> None:
        """Send what :meth:`announce` gathered, batched: while one notification is on
        its way, the keys announced meanwhile wait for the next."""
        while True:
            await self._announce_now.wait()
            self._announce_now.clear()
            keys, self._pending = self._pending, set()
            for payload in payloads(self.holder, keys):
                try:
                    await self._notifier.notify(OUTBOX_CHANNEL, payload)
                except BridgeError as exc:  # polling finds the rows
                    log.warning("wake-up not sent to other instances: %s", exc.explanation)

    async def _extending(self) -> None:
        """Extend the claims of the keys in flight every third of the timeout."""
        while True:
            await self._clock.sleep(self._repo.seconds / 3)
            try:
                await self._repo.extend(frozenset(self._in_flight()))
            except BridgeError as exc:
                log.warning("outbox claims not extended: %s", exc.explanation)


def payloads(holder: str, keys: Collection[str]) -> list[str]:
    """``holder`` then one key per line, in as few notifications as fit; ``*`` alone
    when the whole outbox is meant."""
    if EVERY_KEY in keys:
        return [f"{holder}\n{EVERY_KEY}"]
    out: list[str] = []
    current = holder
    for key in sorted(keys):
        line = f"\n{key}"
        if len((current + line).encode()) > MAX_PAYLOAD_BYTES and current != holder:
            out.append(current)
            current = holder
        if len((holder + line).encode()) > MAX_PAYLOAD_BYTES:
            log.warning("ordering key too long to announce: %.80s…", key)
            continue
        current += line
    if current != holder:
        out.append(current)
    return out
