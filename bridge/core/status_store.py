"""The session manager's ``StatusStore`` over the sessions repository: each status
change of a WhatsApp session is saved in its ``sessions`` row."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from bridge.cluster.view import OwnershipView
from bridge.db.sessions import SessionRepository
from bridge.whatsapp.status import SessionStatus, StatusStore

log = logging.getLogger("bridge.cluster.fence")


class StatusToSave(Protocol):
    """One status of the announcer's batch (bridge/whatsapp/status_announcer.py)."""

    @property
    def key(self) -> str: ...
    @property
    def status(self) -> SessionStatus: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def connected_at(self) -> float | None: ...


class DatabaseStatusStore:
    def __init__(self, repo: SessionRepository, ids: dict[str, int]) -> None:
        self._repo = repo
        self._ids = ids

    async def save_statuses(self, records: Sequence[StatusToSave]) -> None:
        """Several at once, in one transaction (bridge/whatsapp/status_announcer.py)."""
        async with self._repo.transaction():
            for r in records:
                await self.save_status(
                    r.key,
                    r.status.value,
                    phone=r.phone,
                    error=r.error,
                    connected_at=r.connected_at,
                )

    async def save_status(
        self,
        key: str,
        status: str,
        *,
        phone: str | None,
        error: str | None,
        connected_at: float | None,
    ) -> None:
        await self._repo.set_status(
            self._ids[key],
            status,
            phone=phone,
            error=error,
            connected=connected_at is not None,
            now=connected_at,
        )


class FencedStatusStore:
    """Saves a status only while this instance holds the session's lease
    (docs/cluster.md#ownership-and-fencing): an instance that lost it writes nothing
    more, and ``confirm`` releases the session here."""

    def __init__(self, store: StatusStore, ownership: OwnershipView) -> None:
        self._store = store
        self._ownership = ownership

    async def save_status(
        self,
        key: str,
        status: str,
        *,
        phone: str | None,
        error: str | None,
        connected_at: float | None,
    ) -> None:
        if not await self._ownership.confirm(key):
            log.info("status %s of %s not saved: another instance owns it", status, key)
            return
        await self._store.save_status(
            key, status, phone=phone, error=error, connected_at=connected_at
        )
