"""The media store's clean-up, run with the outbox's periodic prune (``on_prune``).

A file goes once it was last written more than ``media.retention_hours`` ago and no
pending delivery needs it (the message of a pending outbox row names it). A file
that a delivery retries for days stays; a dead letter's file goes (nothing will
read it again). Each pass looks at a bounded number of files (the store walks its
shards round-robin) and asks the database once.

A file written again meanwhile (the same content sent anew) is never removed under
its writer: the store renews its time and checks it again before removing it. The
relay writes a file before the transaction that stores its message, so a crash
leaves at worst a file no row names, which a later pass removes.
"""

from __future__ import annotations

from bridge.db.messages import MessageRepository
from bridge.media_store import MediaStore


class MediaCleanup:
    FILES_PER_PASS = 2000

    def __init__(
        self,
        store: MediaStore,
        messages: MessageRepository,
        *,
        retention_seconds: float,
        files_per_pass: int = FILES_PER_PASS,
    ) -> None:
        self._store = store
        self._messages = messages
        self._retention = retention_seconds
        self._per_pass = files_per_pass

    async def prune(self, now: float) -> int:
        """One pass; returns how many files were removed."""
        before = now - self._retention
        stale = await self._store.stale(before=before, limit=self._per_pass)
        if not stale:
            return 0
        needed = await self._messages.media_awaiting_delivery()
        unused = [name for name in stale if name not in needed]
        return await self._store.remove(unused, before=before)
