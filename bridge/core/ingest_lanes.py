"""Which group-commit lane an inbound event joins (docs/architecture.md#group-commit):
its WhatsApp session's. A session's events update only that session's tickets, so
groups of different lanes never wait for each other's rows; a customer's message
names its session, an attendant's is typed in a room that serves one."""

from __future__ import annotations

from collections.abc import MutableMapping

from bridge.cache import bounded
from bridge.core.frontend import ThreadEvent
from bridge.db import Repositories


class IngestLanes:
    """Room → session, read from the rooms once per room (a room keeps its session)."""

    def __init__(self, repos: Repositories, session_ids: dict[str, int]) -> None:
        self._repos = repos
        self._session_ids = session_ids
        self._of_room: MutableMapping[tuple[str, str], str | None] = bounded()

    async def of_attendant(self, event: ThreadEvent) -> str | None:
        """The session whose room ``event`` was typed in; None when the room serves
        none or several (such events share the first lane)."""
        where = (event.frontend, event.place.room)
        if where in self._of_room:
            return self._of_room[where]
        rows = await self._repos.rooms.find_by_room_id(event.frontend, event.place.room)
        ids = {row.session_id for row in rows if row.session_id is not None}
        keys = [key for key, number in self._session_ids.items() if number in ids]
        self._of_room[where] = session = keys[0] if len(keys) == 1 else None
        return session
