"""Where a command was typed (docs/commands.md): the :class:`CommandContext` of an
attendant's event in a ticket thread, a session's control room or the company's ops
room; none anywhere else (the relay then ignores the command)."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.core.command_model import CommandContext, RoomKind
from bridge.core.frontend import ThreadEvent
from bridge.core.tickets import TicketView
from bridge.db.rooms import RoomRepository


async def command_context(
    event: ThreadEvent,
    ticket: TicketView | None,
    *,
    rooms: RoomRepository,
    session_ids: Mapping[str, int],
) -> CommandContext | None:
    """The context of ``event``: ``ticket`` is the ticket of its thread, if any."""
    if ticket is not None:
        return _context(event, ticket.company_id, RoomKind.THREAD, ticket.session_key, ticket.id)
    for room in await rooms.find_by_room_id(event.frontend, event.place.room):
        if room.kind == "ops":
            return _context(event, room.company_id, RoomKind.OPS, None, None)
        key = _key_of_session_id(session_ids, room.session_id)
        if key is not None:
            return _context(event, room.company_id, RoomKind.CONTROL, key, None)
    return None


def _context(
    event: ThreadEvent,
    company_id: str,
    place: RoomKind,
    session_key: str | None,
    ticket_id: int | None,
) -> CommandContext:
    return CommandContext(
        frontend=event.frontend,
        company_id=company_id,
        place=place,
        session_key=session_key,
        ticket_id=ticket_id,
        user_id=event.attendant.user_id,
        display_name=event.attendant.display_name,
        room=event.place.room,
        thread_root=event.place.thread_root,
    )


def _key_of_session_id(session_ids: Mapping[str, int], session_id: int | None) -> str | None:
    for key, sid in session_ids.items():
        if sid == session_id:
            return key
    return None
