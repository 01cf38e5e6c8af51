"""Persisting and announcing session status changes, in the order they happened.

The session manager decides each status (:mod:`bridge.whatsapp.sessions`); one
background worker here saves it through a :class:`StatusStore` and then tells every
listener the :class:`StatusChange`, off the manager's task, so a listener may call
back into the manager (e.g. ``login``) safely.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass

from bridge.whatsapp.session_state import session_logger
from bridge.whatsapp.status import SessionStatus, StatusChange, StatusListener, StatusStore

log = logging.getLogger("bridge.session")


@dataclass(frozen=True)
class StatusRecord:
    """A status to persist and, when ``change`` is set, announce."""

    key: str
    status: SessionStatus
    phone: str | None
    error: str | None
    connected_at: float | None
    change: StatusChange | None


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
            record = await self._queue.get()
            try:
                await self._deliver(record)
            finally:
                self._queue.task_done()

    async def _deliver(self, record: StatusRecord) -> None:
        slog = session_logger(record.key)
        try:
            await self._store.save_status(
                record.key,
                record.status.value,
                phone=record.phone,
                error=record.error,
                connected_at=record.connected_at,
            )
        except Exception:
            slog.exception("could not save status %s", record.status)
        if record.change is None:
            return
        for listener in list(self._listeners):
            try:
                result = listener(record.change)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                slog.exception("status listener %r failed on %s", listener, record.change.new)
