"""Which ticket a frontend thread belongs to: the relay (messages, commands) and the
presence updates (read receipts, typing) ask the same question of every event typed
in a thread."""

from __future__ import annotations

from collections.abc import MutableMapping

from bridge.cache import bounded
from bridge.core.frontend import ThreadEvent
from bridge.core.tickets import TicketService, TicketView
from bridge.db import Repositories


class ThreadTickets:
    """Thread → ticket, read from the thread refs once per thread (a thread keeps its
    ticket, so the answer is cached in a bounded map)."""

    def __init__(self, repos: Repositories, tickets: TicketService) -> None:
        self._repos = repos
        self._tickets = tickets
        self._ids: MutableMapping[tuple[str, str, str], int] = bounded()

    async def of(self, event: ThreadEvent) -> TicketView | None:
        """The ticket of the thread ``event`` was typed in; None outside a ticket's thread."""
        root = event.place.thread_root
        if root is None:
            return None
        where = (event.frontend, event.place.room, root)
        ticket_id = self._ids.get(where)
        if ticket_id is None:
            ref = await self._repos.threads.find_by_root(
                event.frontend, room_id=event.place.room, thread_root=root
            )
            if ref is None:
                return None
            ticket_id = ref.ticket_id
            self._ids[where] = ticket_id
        return await self._tickets.get(ticket_id)
