"""The session manager's ``StatusStore`` over the sessions repository: each status
change of a WhatsApp session is saved in its ``sessions`` row."""

from __future__ import annotations

from bridge.db.sessions import SessionRepository


class DatabaseStatusStore:
    def __init__(self, repo: SessionRepository, ids: dict[str, int]) -> None:
        self._repo = repo
        self._ids = ids

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
