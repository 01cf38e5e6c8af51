"""The ticket decisions that need no database: statuses and the moves between them,
the reopen window, business hours and the out-of-hours text, who may own a ticket,
what ``!transfer`` names, and the notices posted in a ticket's thread.

:class:`~bridge.core.tickets.TicketService` applies them over the repositories.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Protocol, TypeAlias

from bridge.config import BusinessHours, CompanyConfig, Config, SessionConfig
from bridge.db import ContactRow, TicketRow
from bridge.errors import InvalidInput

PENDING, OPEN, CLOSED = "pending", "open", "closed"
STATUSES = (PENDING, OPEN, CLOSED)

_DAY = 86_400.0
_MINUTES_PER_DAY = 1440


class Labelled(Protocol):
    """A ticket as a notice names it (a TicketView fits)."""

    @property
    def id(self) -> int: ...
    @property
    def label(self) -> str: ...


def merge_notice(closed: Labelled, into: Labelled | None) -> str:
    """The notice in the thread of a ticket closed because WhatsApp linked its
    customer's LID to a phone that had a ticket of its own."""
    where = f"; the conversation goes on in ticket #{into.id}" if into is not None else ""
    return f"Ticket #{closed.id} closed: WhatsApp linked this customer to {closed.label}{where}"


def contact_name(contact: ContactRow) -> str:
    """The name a contact is shown by: push name or group name, else an address."""
    if contact.is_group:
        return contact.group_name or contact.group_jid or f"group {contact.id}"
    return contact.push_name or contact.phone or f"LID {contact.lid}"


def within_reopen_window(closed_at: float | None, *, now: float, minutes: int) -> bool:
    """Whether a ticket closed at ``closed_at`` is still reopened by a new message."""
    return closed_at is not None and now - closed_at <= minutes * 60


def reopen_status(ticket: TicketRow) -> str:
    """``open`` when an attendant had answered or accepted the ticket, else
    ``pending`` again."""
    had_attendant = ticket.first_response_at is not None or ticket.assignee is not None
    return OPEN if had_attendant else PENDING


def was_open_between(hours: BusinessHours, start: float, end: float) -> bool:
    """Whether the business was open at some moment after ``start`` and up to ``end``."""
    if end <= start:
        return False
    if end - start > 8 * _DAY:  # every weekday fits in: open unless never open
        return bool(hours.weekdays and hours.intervals)
    return any(
        opens <= end and closes > start for opens, closes in _open_periods(hours, start, end)
    )


def _open_periods(hours: BusinessHours, start: float, end: float) -> Iterator[tuple[float, float]]:
    """Open periods ``(opens, closes)`` as epoch seconds, for the local days around
    ``start``..``end`` (from the day before, for periods spanning midnight)."""
    zone = hours.tzinfo
    day = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, zone).date()
    while day <= last:
        if day.weekday() in hours.weekdays:
            midnight = datetime.combine(day, time.min, tzinfo=zone)
            for first, stop in hours.intervals:
                length = stop - first if stop > first else stop + _MINUTES_PER_DAY - first
                yield _wall_clock(midnight, first), _wall_clock(midnight, first + length)
        day += timedelta(days=1)


def _wall_clock(midnight: datetime, minutes: int) -> float:
    # Adding a timedelta to an aware datetime moves its wall clock: DST is honoured.
    return (midnight + timedelta(minutes=minutes)).timestamp()


class Attended(Protocol):
    """Whose hours decide the out-of-hours text: a session, or a queue with its own
    hours (docs/tickets.md#queues)."""

    @property
    def out_of_hours(self) -> str | None: ...
    @property
    def business_hours(self) -> BusinessHours | None: ...
    def is_open(self, at: datetime) -> bool: ...


def out_of_hours_due(session: Attended, *, last_sent: float | None, now: float) -> bool:
    """Whether the out-of-hours text should go out now.

    Only when the session (or queue) has one and business hours, is closed now, and
    (if it was sent before) the business was open at some moment since: once per
    closed period.
    """
    hours = session.business_hours
    if not session.out_of_hours or hours is None:
        return False
    if session.is_open(datetime.fromtimestamp(now, UTC)):
        return False
    return last_sent is None or was_open_between(hours, last_sent, now)


def company_members(company: CompanyConfig) -> tuple[str, ...]:
    """Who may own a ticket of the company: its admins and attendants."""
    return tuple(dict.fromkeys((*company.admins, *company.attendants)))


TransferTarget: TypeAlias = str | SessionConfig
"""A member's user id, or a session of the same company."""


def transfer_target(config: Config, company: CompanyConfig, target: str) -> TransferTarget:
    """What ``!transfer <target>`` names: a member of ``company``, or one of its sessions
    (``sales`` or ``acme/sales``). Anything else, another company's session included,
    is refused without saying whether it exists elsewhere."""
    word = target.strip()
    if word in company_members(company):
        return word
    company_id, _, name = word.rpartition("/")
    session = config.find_session(company_id or company.id, name)
    if session is not None and session.company_id == company.id:
        return session
    sessions = ", ".join(s.name for s in company.sessions) or "none"
    raise InvalidInput(
        f"{word!r} is neither an admin or attendant of {company.name} "
        f"nor one of its sessions ({sessions})"
    )


# --- which moves are allowed (each refusal is a sentence for the attendant) ------------


def check_status(status: str | None) -> None:
    """A status filter names a status, or is None (every status)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown ticket status {status!r}: use pending, open or closed")


def check_active(ticket: TicketRow) -> None:
    """Accept, assign and transfer need a ticket that is not closed."""
    if ticket.status == CLOSED:
        raise InvalidInput(f"ticket #{ticket.id} is closed; reopen it first (!reopen)")


def check_acceptable(ticket: TicketRow, attendant: str) -> None:
    check_active(ticket)
    if ticket.status == OPEN and ticket.assignee == attendant:
        raise InvalidInput(f"ticket #{ticket.id} is already accepted by {attendant}")


def check_reassignable(ticket: TicketRow, user: str) -> None:
    if ticket.assignee == user:
        raise InvalidInput(f"ticket #{ticket.id} is already assigned to {user}")


def check_member(company: CompanyConfig, user: str) -> None:
    """Only an admin or attendant of the company may own its ticket."""
    if user not in company_members(company):
        raise InvalidInput(f"{user} is not an admin or attendant of {company.name}")


def check_movable(
    ticket: TicketRow, *, contact: ContactRow, session_key: str, dest: SessionConfig
) -> None:
    """A ticket moves to another session of its company, never a group's."""
    if session_key == dest.key:
        raise InvalidInput(f"ticket #{ticket.id} is already on session {dest.name}")
    if contact.is_group:
        raise InvalidInput(
            "a group ticket cannot move to another session: the group chat "
            "belongs to this session's number"
        )


def check_closable(ticket: TicketRow) -> None:
    if ticket.status == CLOSED:
        raise InvalidInput(f"ticket #{ticket.id} is already closed")


def check_reopenable(ticket: TicketRow) -> None:
    if ticket.status != CLOSED:
        raise InvalidInput(f"ticket #{ticket.id} is not closed: it is {ticket.status}")


# --- what a ticket's thread is told ------------------------------------------------


def opened_notice(ticket_id: int, *, by: str) -> str:
    return f"Ticket #{ticket_id} opened by {by}"


def taken_notice(ticket_id: int, *, by: str) -> str:
    return f"Ticket #{ticket_id} taken by {by}"


def accepted_notice(ticket_id: int, *, by: str, previous: str | None) -> str:
    """Names the previous assignee when someone else owned the ticket."""
    was = f" (was {previous})" if previous not in (None, by) else ""
    return f"Ticket #{ticket_id} accepted by {by}{was}"


def assigned_notice(ticket_id: int, *, to: str, by: str) -> str:
    return f"Ticket #{ticket_id} assigned to {to} by {by}"


def transferred_notice(ticket_id: int, *, to: str, by: str) -> str:
    return f"Ticket #{ticket_id} transferred to {to} by {by}"


def moved_notice(ticket_id: int, *, session_name: str, new_id: int, by: str) -> str:
    """A transfer to another session: this ticket closed, ``new_id`` opened there."""
    return f"Ticket #{ticket_id} transferred to {session_name} by {by} (ticket #{new_id} there)"


def closed_notice(ticket_id: int, *, by: str) -> str:
    return f"Ticket #{ticket_id} closed by {by}"


def silent_closed_notice(ticket_id: int, *, hours: int) -> str:
    """The idle sweep closed the ticket (sessions[].auto_close_hours)."""
    return f"Ticket #{ticket_id} closed after {hours} h without a message from the customer"


def reopened_notice(ticket_id: int, *, by: str) -> str:
    return f"Ticket #{ticket_id} reopened by {by}"
