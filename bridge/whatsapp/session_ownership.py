"""The session manager following the leases (docs/cluster.md#ownership-and-fencing):
a session whose lease this instance gains is connected from its stored pairing (no
QR code); one it loses is disconnected at once, without logging out. The session
manager's sends are fenced by the lease (:meth:`SessionManager.fence_with`).

``on_moved`` hears of a session taken over from another instance (the ops notice).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bridge.whatsapp.sessions import SessionManager

log = logging.getLogger("bridge.cluster.sessions")

Moved = Callable[[str, str, str], Awaitable[None]]
"""``(session key, previous holder, how)``: how is ``lost`` or ``stopped``."""


class SessionHandover:
    """An ownership listener (bridge/cluster/ownership.py) driving the sessions."""

    def __init__(
        self,
        manager: SessionManager,
        *,
        on_moved: Moved | None = None,
        on_leader: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._manager = manager
        self._on_moved = on_moved
        self._on_leader = on_leader

    async def on_gain(self, key: str, token: int, previous_holder: str | None, how: str) -> None:
        await self._manager.adopt(key)
        if previous_holder and how in ("lost", "stopped") and self._on_moved is not None:
            await self._on_moved(key, previous_holder, how)

    async def on_lose(self, key: str, why: str) -> None:
        log.warning("releasing session %s: %s", key, why)
        await self._manager.release(key)

    async def on_leader(self, leading: bool) -> None:
        if self._on_leader is not None:
            await self._on_leader(leading)
