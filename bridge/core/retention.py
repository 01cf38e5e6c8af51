"""How long the bridge keeps what it records besides messages (the outbox worker's
periodic clean-up runs these)."""

from __future__ import annotations

from bridge.db import Repositories

PROCESSED_EVENTS_KEEP_SECONDS = 7 * 24 * 3600
QUARANTINE_KEEP_SECONDS = 30 * 24 * 3600


class Retention:
    def __init__(self, repos: Repositories) -> None:
        self._repos = repos

    async def prune_processed_events(self, now: float) -> int:
        """Platform event ids kept for dedupe: redeliveries come within hours, not weeks."""
        return await self._repos.events.prune(before=now - PROCESSED_EVENTS_KEEP_SECONDS)

    async def prune_quarantined_events(self, now: float) -> int:
        """Events set aside stay long enough for someone to look at them."""
        return await self._repos.quarantine.prune(before=now - QUARANTINE_KEEP_SECONDS)
