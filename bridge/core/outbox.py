"""The outbox worker: executes every delivery row, in order per ordering key,
retrying with exponential backoff and jitter, and turning rows that exhaust their
retry budget into dead letters that somebody hears about.

Rows come from the database, so deliveries left pending by a crash are resumed by
the next start. Rows of different keys run concurrently (bounded); rows of one key
never do, and a row waiting for its retry holds back the rows behind it.

Which keys this instance may drain, and which rows it may run, is its claims
strategy's say (``bridge.core.outbox_claims``): everything with one instance; with
several, the keys it holds a claim on and the WhatsApp rows of the sessions it owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable

from bridge.backoff import Backoff
from bridge.clock import Clock
from bridge.core.outbox_claims import LocalClaims, OutboxClaims
from bridge.db.delivery_records import DeliveryRecord
from bridge.db.outbox import OutboxRepository, OutboxRow
from bridge.errors import BridgeError, DeliveryError, PermanentDeliveryError
from bridge.metrics import Metrics

log = logging.getLogger("bridge.core.outbox")

# An executor returns what its delivery achieved, written with the done-mark
# (bridge/db/delivery_records.py), or None when there is nothing to record.
Executor = Callable[[OutboxRow], Awaitable[DeliveryRecord | None]]
ResumedHook = Callable[[OutboxRow], Awaitable[None]]


class _Failed(enum.Enum):
    """An attempt that did not deliver: its row waits for a retry or died."""

    FAILED = "failed"


_FAILED = _Failed.FAILED
DeadLetterHook = Callable[[OutboxRow, str], Awaitable[None]]
BacklogHook = Callable[[int], Awaitable[None]]
PruneHook = Callable[[float], Awaitable[int]]  # now → rows forgotten


class OutboxWorker:
    BACKLOG_REPORT_SECONDS = 5.0
    PRUNE_EVERY_SECONDS = 600.0
    KEEP_DONE_SECONDS = 3600.0

    def __init__(
        self,
        repo: OutboxRepository,
        *,
        clock: Clock,
        rng: random.Random,
        max_attempts: int,
        base_delay: float,
        max_delay: float,
        metrics: Metrics | None = None,
        concurrency: int = 32,
        poll_seconds: float = 1.0,
        claims: OutboxClaims | None = None,
        leader: Callable[[], bool] = lambda: True,
    ) -> None:
        """``leader``: whether this instance runs the cluster-wide jobs, the backlog
        figures (gauges, hooks) and the clean-up of delivered rows (docs/cluster.md);
        alone, always. Prune hooks registered with :meth:`on_prune` run everywhere."""
        self._repo = repo
        self._leader = leader
        self._claims: OutboxClaims = claims or LocalClaims(repo)
        self._clock = clock
        self._rng = rng
        self._max_attempts = max_attempts
        self._backoff = Backoff(initial=base_delay, maximum=max_delay, jitter=0.5)
        self._metrics = metrics
        self._poll = poll_seconds
        self._executors: dict[str, Executor] = {}
        self._resumed: dict[str, ResumedHook] = {}
        self._dead_hooks: list[DeadLetterHook] = []
        self._backlog_hooks: list[BacklogHook] = []
        self._prune_hooks: list[tuple[str, PruneHook]] = [
            ("delivered outbox rows", self._prune_done)
        ]
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[str] = set()
        self._recheck: dict[str, bool] = {}  # keys woken while in flight → announce?
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopped = False
        self._drained_during_pass: set[str] | None = None  # see _dispatch_due

    def register(
        self, destination: str, executor: Executor, *, resumed: ResumedHook | None = None
    ) -> None:
        """``resumed``: called before ``executor`` on a row whose key this instance has
        just taken over from another (docs/cluster.md, "A key that moved")."""
        self._executors[destination] = executor
        if resumed is not None:
            self._resumed[destination] = resumed

    def on_dead_letter(self, hook: DeadLetterHook) -> None:
        self._dead_hooks.append(hook)

    def on_backlog(self, hook: BacklogHook) -> None:
        self._backlog_hooks.append(hook)

    def on_prune(self, what: str, hook: PruneHook) -> None:
        """Run ``hook`` with the current time at each periodic clean-up."""
        self._prune_hooks.append((what, hook))

    def wake(self, keys: Iterable[str] | None = None) -> None:
        """New rows were committed: look for work now instead of at the next poll.

        With ``keys`` (the ordering keys the rows went to), only those keys are
        looked at: a key not in flight starts draining, a key in flight is drained
        again once its current drain ends (its rows may have been committed after
        the drain last looked). Without, a pass over the whole outbox. After
        :meth:`stop`, nothing: the rows wait for the next start.

        With several instances, a key that another instance drains or whose session
        another one owns is announced to them, and ``keys=None`` asks all of them
        for a pass."""
        if keys is None and not self._stopped:
            self._claims.announce(None)
        self._look(keys, announce=True)

    def wake_here(self, keys: Iterable[str] | None = None) -> None:
        """Another instance committed rows for ``keys`` (None: anywhere): look here,
        as :meth:`wake` does, without announcing anything back."""
        self._look(keys, announce=False)

    def _look(self, keys: Iterable[str] | None, *, announce: bool) -> None:
        if self._stopped:
            return
        self._idle.clear()
        if keys is None:
            self._wake.set()
            return
        for key in keys:
            if key in self._in_flight:
                self._recheck[key] = self._recheck.get(key, False) or announce
            else:
                self._start(key, None, announce=announce)

    async def start(self) -> None:
        self._stopped = False
        await self._claims.start(wake=self.wake_here, in_flight=lambda: self._in_flight)
        self._loop_task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        """Stop delivering: in-flight deliveries are cancelled and stay pending (they
        are idempotent, and resume at the next start). Safe to call twice."""
        self._stopped = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._claims.stop()

    async def wait_idle(self) -> None:
        """Until nothing is due or in flight (tests and benchmarks wrap it in a timeout)."""
        await self._idle.wait()

    async def _run(self) -> None:
        next_report = next_prune = self._clock.monotonic()
        while True:
            self._wake.clear()
            started = await self._dispatch_due()
            if not started and not self._tasks:
                self._idle.set()
            if self._clock.monotonic() >= next_report:
                next_report = self._clock.monotonic() + self.BACKLOG_REPORT_SECONDS
                if self._leader():
                    await self._report_backlog()
            if self._clock.monotonic() >= next_prune:
                next_prune = self._clock.monotonic() + self.PRUNE_EVERY_SECONDS
                await self._prune()  # hooks of cluster-wide tables check the leader
            await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        waker = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(self._poll))
        try:
            await asyncio.wait((waker, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            sleeper.cancel()

    async def _dispatch_due(self) -> int:
        """Start a drain for each due key not in flight. A key whose drain ended while
        the rows were being read is left to the next pass: its row in this snapshot
        may have been delivered and marked done meanwhile (woken by key), and
        starting it again would deliver it twice."""
        drained: set[str] = set()
        self._drained_during_pass = drained
        try:
            rows = await self._claims.due(
                200, now=self._clock.now(), skip=frozenset(self._in_flight)
            )
        except BridgeError as exc:
            log.error("cannot read the outbox: %s", exc.explanation)
            return 0
        finally:
            self._drained_during_pass = None
        started = 0
        for row in rows:
            key = row.ordering_key
            if key in drained:
                self._wake.set()  # read again: what is still pending goes then
                if key not in self._in_flight:
                    await self._claims.release(key)
            elif key not in self._in_flight:
                self._start(key, row)
                started += 1
        return started

    def _start(self, key: str, row: OutboxRow | None, *, announce: bool = False) -> None:
        """Drain ``key`` from ``row`` (claimed already) or from its oldest due row, in
        a task of its own. ``announce``: tell other instances when it is theirs."""
        if self._stopped:
            return
        self._in_flight.add(key)
        drain = self._drain_key(key, row, announce=announce)
        task = asyncio.create_task(drain, name=f"outbox-{key}")
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, key=key))

    def _finished(self, task: asyncio.Task[None], *, key: str) -> None:
        self._tasks.discard(task)
        self._in_flight.discard(key)
        if self._drained_during_pass is not None:
            self._drained_during_pass.add(key)
        if key in self._recheck:
            self._start(key, None, announce=self._recheck.pop(key))
        elif not self._tasks:
            self._wake.set()  # all drained: a pass finds what else is due, or that nothing is

    async def _drain_key(self, key: str, row: OutboxRow | None, *, announce: bool) -> None:
        """Deliver ``row`` (else the key's oldest row, if due), then the rows behind it
        on its key while they are due, without a pass over the whole outbox."""
        if row is None:
            row = await self._oldest_due(key, announce=announce)
        while row is not None:
            if not self._claims.may_run(row):  # its session moved away meanwhile
                await self._claims.release(key)
                self._claims.announce([key])
                return
            async with self._slots:
                outcome = await self._attempt(row)
            if outcome is _FAILED:
                await self._claims.release(key)
                return  # it waits for a retry (holding its key) or died (freeing it)
            row = await self._finish(row, outcome)

    async def _oldest_due(self, key: str, *, announce: bool) -> OutboxRow | None:
        try:
            return await self._claims.head(key, now=self._clock.now(), announce=announce)
        except BridgeError as exc:
            log.error("cannot read the outbox: %s", exc.explanation)
            return None

    async def _finish(self, row: OutboxRow, record: DeliveryRecord | None) -> OutboxRow | None:
        """Write ``record`` and mark ``row`` done; the next row of its key when that
        one is due already."""
        try:
            return await self._claims.finish(row, now=self._clock.now(), record=record)
        except BridgeError as exc:
            # Delivered but neither recorded nor marked: the next pass delivers it
            # again, as after a crash at this point (docs/architecture.md).
            log.error("cannot mark outbox row %d done: %s", row.id, exc.explanation)
            return None

    async def _attempt(self, row: OutboxRow) -> DeliveryRecord | _Failed | None:
        """One delivery attempt: what it achieved (a record or None; the caller marks
        the row done), or ``_FAILED``."""
        executor = self._executors.get(row.destination)
        if executor is None:
            await self._dead(row, f"no destination named {row.destination!r} is running")
            return _FAILED
        resumed = self._resumed.get(row.destination)
        try:
            if resumed is not None and self._claims.resumed(row):
                await resumed(row)
            return await executor(row)
        except PermanentDeliveryError as exc:
            await self._dead(row, exc.explanation)
        except DeliveryError as exc:
            await self._retry(row, exc.explanation, exc.retry_after)
        except BridgeError as exc:
            await self._retry(row, exc.explanation, None)
        except Exception as exc:  # the delivery boundary: log, then retry
            log.exception("outbox row %d to %s failed unexpectedly", row.id, row.destination)
            await self._retry(row, f"{type(exc).__name__}: {exc}", None)
        return _FAILED

    async def _retry(self, row: OutboxRow, error: str, retry_after: float | None) -> None:
        attempt = row.attempts + 1
        if attempt >= self._max_attempts:
            await self._dead(row, error)
            return
        delay = max(self._backoff.delay(attempt, self._rng), retry_after or 0.0)
        log.warning(
            "delivery %d to %s failed (attempt %d of %d), retrying in %.1f s: %s",
            row.id,
            row.destination,
            attempt,
            self._max_attempts,
            delay,
            error,
        )
        now = self._clock.now()
        await self._repo.mark_retry(row.id, next_at=now + delay, error=error, now=now)

    async def _dead(self, row: OutboxRow, error: str) -> None:
        log.error("delivery %d to %s is a dead letter: %s", row.id, row.destination, error)
        await self._repo.mark_dead(row.id, error=error, now=self._clock.now())
        for hook in self._dead_hooks:
            try:
                await hook(row, error)
            except Exception:  # a failing hook must not stop the worker
                log.exception("dead-letter hook failed for outbox row %d", row.id)

    async def _prune(self) -> None:
        """The periodic clean-up: every registered hook, each failing on its own."""
        for what, hook in self._prune_hooks:
            try:
                pruned = await hook(self._clock.now())
            except BridgeError as exc:
                log.error("cannot prune %s: %s", what, exc.explanation)
                continue
            if pruned:
                log.info("pruned %d %s", pruned, what)

    async def _prune_done(self, now: float) -> int:
        """Deliveries done long ago (idempotency lives in message refs, not here); by
        the leader alone when instances share the table."""
        if not self._leader():
            return 0
        return await self._repo.prune_done(before=now - self.KEEP_DONE_SECONDS)

    async def _report_backlog(self) -> None:
        try:
            pending = await self._repo.count_pending()
            dead = await self._repo.count_dead()
        except BridgeError as exc:
            log.error("cannot count the outbox: %s", exc.explanation)
            return
        if self._metrics is not None:
            self._metrics.outbox_pending.set(pending)
            self._metrics.outbox_dead.set(dead)
        for hook in self._backlog_hooks:
            try:
                await hook(pending)
            except Exception:  # a failing hook must not stop the worker
                log.exception("backlog hook failed")
