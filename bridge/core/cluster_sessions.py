"""Every session's status and owner across the instances (docs/cluster.md#ownership-and-fencing),
for ``/health`` and ``!sessions``: a session this instance owns shows its live status;
another's shows what its owner saved in the ``sessions`` table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.cluster.view import OwnershipView
from bridge.core.command_model import SessionControl
from bridge.db.leases import SESSION_PREFIX, LeaseRepository
from bridge.db.sessions import SessionRepository
from bridge.errors import DatabaseError

log = logging.getLogger("bridge.cluster.sessions")


@dataclass(frozen=True, slots=True)
class SessionSeen:
    key: str
    status: str
    phone: str | None
    owner: str | None
    """The instance holding its lease; None while no instance does."""


class ClusterSessions:
    def __init__(
        self,
        sessions: SessionRepository,
        leases: LeaseRepository,
        *,
        keys: Sequence[str],
        local: SessionControl,
        ownership: OwnershipView,
    ) -> None:
        self._sessions = sessions
        self._leases = leases
        self._keys = tuple(keys)
        self._local = local
        self._ownership = ownership

    async def seen(self) -> dict[str, SessionSeen]:
        """Every configured session, by key. Raises DatabaseError."""
        owners = await self._leases.held(SESSION_PREFIX)
        rows = {f"{r.company_id}/{r.name}": r for r in await self._sessions.list_all()}
        seen: dict[str, SessionSeen] = {}
        for key in self._keys:
            owner = owners.get(SESSION_PREFIX + key)
            if self._ownership.owns(key):
                status, phone = str(self._local.status(key)), self._local.phone(key)
            elif key in rows:
                status, phone = rows[key].status, rows[key].phone
            else:
                status, phone = "OPENING", None
            seen[key] = SessionSeen(key, status, phone, owner)
        return seen

    async def statuses(self) -> dict[str, str]:
        """For ``/health``; without the database, the sessions owned here."""
        try:
            return {key: s.status for key, s in (await self.seen()).items()}
        except DatabaseError as exc:
            log.warning("cannot read the other instances' sessions: %s", exc.explanation)
            return {key: str(self._local.status(key)) for key in sorted(self._ownership.owned())}

    def facts(self) -> dict[str, object]:
        """``/health``'s ``instance`` and ``owned`` (docs/cluster.md)."""
        return {"instance": self._ownership.instance_id, "owned": sorted(self._ownership.owned())}
