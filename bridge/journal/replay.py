"""What the database refuses is kept on disk and replayed in order once it is back.

A :class:`Journal` stands in front of one handler that persists work (the relay's
handling of a WhatsApp event; the outbox insert of an ops alert):

- :meth:`Journal.deliver` hands an item to the handler. When the handler raises
  ``DatabaseError`` (a connection refused or terminated, a locked SQLite file…),
  the item is appended to the journal (:mod:`bridge.journal.store`: fsynced before
  ``deliver`` returns) instead of being lost; the source that already acknowledged
  it (whatsmeow acknowledges a message before our handler runs) loses nothing. A
  handler that has not answered within ``answer_seconds`` (a database that hangs,
  SQLite waiting out another process's lock) gets the same treatment, without being
  interrupted: the replay waits for that first attempt's outcome and hands the kept
  copy over only if it failed, so the caller never waits longer than that.
- While anything is kept, every new item goes to the journal too, behind the older
  ones, so the order is kept.
- One replay task hands the kept items to the handler, oldest first, and removes
  them once handled. Order is kept per lane (the codec names an item's lane: for
  WhatsApp events, the session and the chat, whose order is the one that matters);
  lanes are replayed side by side, so a backlog drains about as fast as the
  database takes work. A refusal makes a lane wait (exponential backoff with
  jitter) and try the same item again: the item is the probe that detects the
  database's return. When the database answers the ``probe`` (a write
  transaction) but keeps refusing one item, that item is set aside after a few
  tries (``on_failed``) so it cannot block the ones behind it.
- :meth:`Journal.start` replays what an earlier run kept (after a crash, or a stop
  while the database was away) before any new item: new items queue behind.
- Replay is at-least-once: a crash between handling an item and recording it as
  consumed hands it over again at the next start, so handlers must be idempotent
  (the relay recognises a WhatsApp id it stored already).

Counted in ``zapbridge_inbound_journaled_total{journal}`` (items kept),
``zapbridge_inbound_dropped_total{journal}`` (items lost: the journal could not be
written, disk full; or a kept record could not be read back nor set aside) and
``zapbridge_journal_pending{journal}``. Past ``alert_records`` or ``alert_bytes`` the
listener is told (an ops alert) and :meth:`Journal.problems` makes ``/health``
degraded; nothing is refused for size: only the disk limits a journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bridge.clock import Clock
from bridge.errors import BridgeError, DatabaseError
from bridge.journal.store import JournalStore, Record, dump_body
from bridge.metrics import Metrics

log = logging.getLogger("bridge.journal")

T = TypeVar("T")
R = TypeVar("R")


class Codec(Protocol[T]):
    """How an item becomes a journal record's body and back, and its replay lane."""

    def encode(self, item: T) -> dict[str, Any]:
        """A JSON-ready dict."""

    def decode(self, body: dict[str, Any]) -> T:
        """The item again; ``ValueError`` when ``body`` is not one."""

    def lane(self, item: T) -> str:
        """Items of one lane are replayed in their order; lanes side by side."""


class JournalListener(Protocol):
    """Who is told about a journal's size and losses (the ops notifier)."""

    async def on_journal_backlog(self, name: str, *, pending: int, over: bool) -> None:
        """``over``: the journal went past its alert threshold (False: back under it)."""

    async def on_journal_loss(self, name: str, *, reason: str) -> None:
        """An item was lost: refused by the database and not kept."""


@dataclass(frozen=True)
class Limits:
    alert_records: int = 10_000  # past this many kept items: an alert, /health degraded
    alert_bytes: int = 256 * 1024 * 1024  # … or this many bytes
    retry_initial: float = 0.25  # seconds before the first retry of a refused replay
    retry_max: float = 4.0
    refusals: int = 3  # tries of one item while the database answers the probe
    # a handler still busy after this long: the item is kept too (None: wait for it)
    answer_seconds: float | None = 2.0
    batch_records: int = 256  # records read (and consumed) at a time
    lanes: int = 32  # lanes replayed at once
    batch_bytes: int = 4 * 1024 * 1024


Handler = Callable[[T], Awaitable[None]]
Failed = Callable[[T, Exception], Awaitable[None]]


class Journal(Generic[T]):
    """See the module docstring. ``start`` before use; before it and after ``stop``,
    ``deliver`` calls the handler only and lets its errors through."""

    def __init__(
        self,
        name: str,
        store: JournalStore,
        codec: Codec[T],
        *,
        handler: Handler[T],
        probe: Callable[[], Awaitable[None]],
        clock: Clock,
        rng: random.Random,
        metrics: Metrics,
        on_failed: Failed[T] | None = None,
        listener: JournalListener | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self._store = store
        self._codec = codec
        self._handler = handler
        self._probe = probe
        self._clock = clock
        self._rng = rng
        self._on_failed = on_failed
        self._listener = listener
        self._limits = limits or Limits()
        self._journaled = metrics.journaled.labels(name)
        self._dropped = metrics.dropped.labels(name)
        self._gauge = metrics.journal_pending.labels(name)
        self._executor: ThreadPoolExecutor | None = None
        self._stored = 0  # records in the store, not yet consumed
        self._stored_bytes = 0
        self._writing = 0  # items handed to the writer, not yet written (or failed)
        self._batch: list[tuple[bytes, asyncio.Future[None], asyncio.Future[None] | None]] = []
        self._attempts: dict[int, asyncio.Future[None]] = {}  # seq → first attempt, running
        self._writer: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        self._over = False
        self._replayed = 0  # since the journal last started holding

    # --- state ----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Items kept and not yet replayed (including those being written)."""
        return self._stored + self._writing

    @property
    def holding(self) -> bool:
        return self.pending > 0

    def problems(self) -> list[str]:
        """One line for ``/health`` while the journal is past its alert threshold."""
        if not self._over:
            return []
        return [
            f"journal {self.name}: {self.pending} items the database refused are waiting "
            f"to be replayed ({self._stored_bytes // 1024} KiB; alert at "
            f"{self._limits.alert_records} items)"
        ]

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and replay what an earlier run kept, before any new item."""
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"journal-{self.name}"
        )
        try:
            opened = await self._run(self._store.open)
        except OSError as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise BridgeError(
                f"cannot open the journal {self._store.directory}: {exc.strerror or exc}"
            ) from exc
        self._stored, self._stored_bytes = opened.pending, opened.pending_bytes
        self._update_gauge()
        if opened.pending:
            log.warning(
                "journal %s: %d items kept by an earlier run; replaying them before new ones",
                self.name,
                opened.pending,
            )
            self._ensure_replay()

    async def stop(self) -> None:
        """Stop replaying; wait for the writes under way. Kept items stay for the next start."""
        replay, self._replay = self._replay, None
        if replay is not None:
            replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replay
        await self._flushed()
        attempts, self._attempts = list(self._attempts.values()), {}
        for attempt in attempts:  # kept: the next start replays them
            attempt.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._store.close)
        executor.shutdown(wait=False)
        if self._stored:
            log.warning(
                "journal %s: %d items kept for the next start (%s)",
                self.name,
                self._stored,
                self._store.directory,
            )

    # --- delivering -----------------------------------------------------------------

    async def deliver(self, item: T) -> None:
        """Hand ``item`` to the handler, or keep it (see the module docstring). Raises
        ``DatabaseError`` only when it was neither handled nor kept (counted as
        dropped, reported); other errors of the handler go through as they are."""
        if self._executor is None:
            await self._handler(item)
            return
        if self.holding:
            await self._keep(item)
            return
        if self._limits.answer_seconds is None:
            try:
                await self._handler(item)
            except DatabaseError as exc:
                self._start_holding(f"the database refused an item ({exc.explanation})")
                await self._keep(item)
            return
        attempt = asyncio.ensure_future(self._handler(item))
        try:
            await asyncio.wait({attempt}, timeout=self._limits.answer_seconds)
        except asyncio.CancelledError:
            attempt.cancel()  # the caller gave up: so does its attempt, as before
            raise
        if not attempt.done():  # no answer yet: keep a copy now, so the order holds
            self._start_holding(
                f"the database has not answered for {self._limits.answer_seconds:g} s"
            )
            await self._keep(item, attempt)
            return
        try:
            attempt.result()
        except DatabaseError as exc:
            self._start_holding(f"the database refused an item ({exc.explanation})")
            await self._keep(item)

    def _start_holding(self, why: str) -> None:
        if self.holding:
            return
        log.warning(
            "journal %s: %s; keeping items in %s until it takes them again",
            self.name,
            why,
            self._store.directory,
        )
        self._replayed = 0

    async def _keep(self, item: T, attempt: asyncio.Future[None] | None = None) -> None:
        """Append ``item``. ``attempt``: the handler still working on it; the replay
        waits for its outcome before handing the kept copy over (at most once more)."""
        failure: str | None = None
        try:
            payload = dump_body(self._codec.encode(item))
        except (ValueError, TypeError) as exc:  # a codec that cannot write it: a bug
            failure = f"it cannot be written to the journal: {exc}"
        if failure is None:
            self._writing += 1
            self._update_gauge()
            self._ensure_replay()
            try:
                await self._write(payload, attempt)
            except OSError as exc:
                failure = f"the journal cannot be written: {exc.strerror or exc}"
            finally:
                self._writing -= 1
        if failure is None:
            self._journaled.inc()
            await self._check_size()
            return
        if attempt is not None:
            try:
                await attempt  # not kept, but the database may take it after all
                return
            except DatabaseError:
                pass
        await self._lose(failure)
        raise DatabaseError(f"refused by the database and not journaled ({failure})")

    async def _write(self, payload: bytes, attempt: asyncio.Future[None] | None) -> None:
        """Append through the writer task: items arriving together share one fsync."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append((payload, done, attempt))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_batches(), name=f"journal-{self.name}-writer"
            )
        await asyncio.shield(done)  # a cancelled caller does not undo a write under way

    async def _write_batches(self) -> None:
        while self._batch:
            batch, self._batch = self._batch, []
            try:
                first, pending = await self._run(self._append, [p for p, _, _ in batch])
            except Exception as exc:  # the writer's boundary: no caller is left waiting
                for _, done, _ in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            # before anything else runs: the replay may read these records next
            for seq, (_, _, attempt) in enumerate(batch, start=first):
                if attempt is not None:
                    self._attempts[seq] = attempt
            self._stored = pending
            self._stored_bytes = self._store.pending_bytes
            for _, done, _ in batch:
                if not done.done():
                    done.set_result(None)

    def _append(self, payloads: list[bytes]) -> tuple[int, int]:
        """(the first record's sequence number, the pending count); on the journal's thread."""
        first = self._store.next_seq
        return first, self._store.append(payloads)

    async def _flushed(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})

    # --- replaying ------------------------------------------------------------------

    def _ensure_replay(self) -> None:
        if self._replay is None or self._replay.done():
            self._replay = asyncio.get_running_loop().create_task(
                self._replay_all(), name=f"journal-{self.name}-replay"
            )

    async def _replay_all(self) -> None:
        while True:
            try:
                await self._replay_batches()
                return
            except OSError as exc:  # the disk failed under the journal: try again later
                log.error(
                    "journal %s: cannot read or update it: %s; trying again in %.0f s",
                    self.name,
                    exc.strerror or exc,
                    self._limits.retry_max,
                )
                await self._clock.sleep(self._limits.retry_max)

    async def _replay_batches(self) -> None:
        limits = self._limits
        while True:
            records = await self._run(
                self._store.read, limit=limits.batch_records, max_bytes=limits.batch_bytes
            )
            if not records:
                if self._writing:  # kept items still being written: they come next
                    await self._flushed()
                    await asyncio.sleep(0)  # let the writers' callers resume
                    continue
                break
            await self._replay_lanes(records)
            self._stored = await self._run(self._store.consume, records[-1].seq)
            self._stored_bytes = self._store.pending_bytes
            self._replayed += len(records)
            self._update_gauge()
            await self._check_size()
        self._stored, self._stored_bytes = self._store.pending, self._store.pending_bytes
        self._update_gauge()
        await self._check_size()
        if self._replayed:
            log.warning(
                "journal %s: %d kept items replayed in order; the database takes items again",
                self.name,
                self._replayed,
            )
            self._replayed = 0

    async def _replay_lanes(self, records: list[Record]) -> None:
        """``records`` in their lanes (``Codec.lane``): in order within a lane, lanes
        side by side (at most ``Limits.lanes`` at once)."""
        lanes: dict[str, list[tuple[Record, T]]] = {}
        for record in records:
            try:
                item = self._codec.decode(record.body)
            except ValueError as exc:
                await self._lose(f"record {record.seq} cannot be read back: {exc}")
                continue
            lanes.setdefault(self._codec.lane(item), []).append((record, item))
        slots = asyncio.Semaphore(self._limits.lanes)

        async def run(lane: list[tuple[Record, T]]) -> None:
            async with slots:
                for record, item in lane:
                    await self._replay_one(record, item)

        await asyncio.gather(*(run(lane) for lane in lanes.values()))

    async def _replay_one(self, record: Record, item: T) -> None:
        if await self._attempt_took(record, item):
            return
        attempt = refusals = 0
        while True:
            try:
                await self._handler(item)
                return
            except DatabaseError as exc:
                attempt += 1
                if await self._database_answers():
                    refusals += 1
                    if refusals >= self._limits.refusals:
                        await self._set_aside(item, record, exc)
                        return
                await self._clock.sleep(self._delay(attempt))
            except Exception as exc:  # the replay's boundary: one item must not block the rest
                log.exception("journal %s: the handler failed on record %d", self.name, record.seq)
                await self._set_aside(item, record, exc)
                return

    async def _attempt_took(self, record: Record, item: T) -> bool:
        """Whether the handler's first attempt at ``record`` (still running when it was
        kept) handled it in the end, or failed otherwise than by a refusal (then it is
        set aside). A refusal leaves it to the replay."""
        attempt = self._attempts.pop(record.seq, None)
        if attempt is None:
            return False
        try:
            await attempt
        except DatabaseError:
            return False
        except Exception as exc:  # the replay's boundary, as below
            log.error("journal %s: the first attempt at record %d failed", self.name, record.seq)
            await self._set_aside(item, record, exc)
        return True

    async def _database_answers(self) -> bool:
        try:
            await self._probe()
        except DatabaseError:
            return False
        return True

    def _delay(self, attempt: int) -> float:
        ceiling = min(
            self._limits.retry_max, self._limits.retry_initial * 2 ** min(attempt - 1, 30)
        )
        return ceiling * (0.5 + self._rng.random() / 2)

    async def _set_aside(self, item: T, record: Record, exc: Exception) -> None:
        """An item the handler cannot take while the database is up: ``on_failed``
        reports it; without one, or when that fails too, it is lost."""
        detail = exc.explanation if isinstance(exc, BridgeError) else repr(exc)
        if self._on_failed is not None:
            try:
                await self._on_failed(item, exc)
                log.error("journal %s: record %d set aside: %s", self.name, record.seq, detail)
                return
            except Exception:
                log.exception("journal %s: setting record %d aside failed", self.name, record.seq)
        await self._lose(f"record {record.seq} could not be handled: {detail}")

    # --- reporting ------------------------------------------------------------------

    async def _lose(self, reason: str) -> None:
        self._dropped.inc()
        log.error("journal %s: an item was lost: %s", self.name, reason)
        if self._listener is not None:
            try:
                await self._listener.on_journal_loss(self.name, reason=reason)
            except Exception:
                log.exception("journal %s: reporting a loss failed", self.name)

    async def _check_size(self) -> None:
        over = (
            self.pending > self._limits.alert_records
            or self._stored_bytes > self._limits.alert_bytes
        )
        if over == self._over:
            return
        self._over = over
        if over:
            log.warning(
                "journal %s: %d items (%d KiB) waiting for the database",
                self.name,
                self.pending,
                self._stored_bytes // 1024,
            )
        if self._listener is not None:
            try:
                await self._listener.on_journal_backlog(self.name, pending=self.pending, over=over)
            except Exception:
                log.exception("journal %s: reporting its size failed", self.name)

    def _update_gauge(self) -> None:
        self._gauge.set(self.pending)

    async def _run(self, call: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``call`` on the journal's own thread (the store is used by one thread)."""
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))
