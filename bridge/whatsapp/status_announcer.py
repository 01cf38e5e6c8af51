"""Persisting and announcing session status changes, in the order they happened.

The session manager decides each status (:mod:`bridge.whatsapp.sessions`); one
background worker here saves it through a :class:`StatusStore` and then tells every
listener the :class:`StatusChange`, off the manager's task, so a listener may call
back into the manager (e.g. ``login``) safely.

What is queued when the worker looks is taken together (up to :data:`BATCH`): a
store that can (:class:`BatchStatusStore`) saves them in one go, then each is
announced in order; so a change is saved before it is announced, and so may be the
ones queued right after it. 10,000 sessions starting at once queue 20,000 changes,
and one transaction each was most of the start on PostgreSQL (bench/README.md,
"Scale").
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.whatsapp.session_state import session_logger
from bridge.whatsapp.status import SessionStatus, StatusChange, StatusListener, StatusStore

log = logging.getLogger("bridge.session")

BATCH = 500  # status changes saved together at most


@dataclass(frozen=True)
class StatusRecord:
    """A status to persist and, when ``change`` is set, announce."""

    key: str
    status: SessionStatus
    phone: str | None
    error: str | None
    connected_at: float | None
    change: StatusChange | None


@runtime_checkable
class BatchStatusStore(Protocol):
    """A :class:`StatusStore` that also saves several statuses at once, all or none."""

    async def save_statuses(self, records: Sequence[StatusRecord]) -> None: ...


class StatusAnnouncer:
    """Persists and announces status changes in the order they happened.

    One worker task does it, off the caller's task: a slow store or listener never
    blocks event handling, and a listener calling back into the manager cannot
    deadlock or reorder the announcements.
    """

    def __init__(self, store: StatusStore) -> None:
        self._store = store
        self._listeners: list[StatusListener] = []
        self._queue: asyncio.Queue[StatusRecord] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def add_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def record(self, record: StatusRecord) -> None:
        self._queue.put_nowait(record)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="session-status-announcer"
            )

    async def flush(self) -> None:
        await self._queue.join()

    async def close(self, *, grace_seconds: float) -> None:
        try:
            async with asyncio.timeout(grace_seconds):
                await self.flush()
        except TimeoutError:
            log.warning(
                "%d session status changes were not persisted/announced within %.0f s",
                self._queue.qsize(),
                grace_seconds,
            )
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our caller is being cancelled too

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._save(batch)
                for record in batch:
                    await self._announce(record)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _save(self, batch: Sequence[StatusRecord]) -> None:
        if len(batch) > 1 and isinstance(self._store, BatchStatusStore):
            try:
                await self._store.save_statuses(batch)
                return
            except Exception as exc:
                log.warning("could not save %d statuses at once (%r); one by one", len(batch), exc)
        for record in batch:
            await self._save_one(record)

    async def _save_one(self, record: StatusRecord) -> None:
        try:
            await self._store.save_status(
                record.key,
                record.status.value,
                phone=record.phone,
                error=record.error,
                connected_at=record.connected_at,
            )
        except Exception:
            session_logger(record.key).exception("could not save status %s", record.status)

    async def _announce(self, record: StatusRecord) -> None:
        if record.change is None:
            return
        for listener in list(self._listeners):
            try:
                result = listener(record.change)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                session_logger(record.key).exception(
                    "status listener %r failed on %s", listener, record.change.new
                )
