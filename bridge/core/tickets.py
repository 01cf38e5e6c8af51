"""Ticket policy: which ticket a customer's message belongs to, and how attendants
move tickets through ``pending`` → ``open`` → ``closed``. The decisions that need
no database (the reopen window, business hours, allowed moves, notices) are in
:mod:`bridge.core.ticket_policy`; this module coordinates them with the repositories.

The service sends nothing and knows no frontend: it returns what should be said
(auto replies for the customer, a notice for the thread) and the relay delivers it.

- A message goes to the contact's active ticket; else the latest ticket is reopened
  when it was closed within ``tickets.reopen_window_minutes``; else a new ``pending``
  ticket starts (the database's one-active-ticket index makes this race-safe).
- Auto replies (:mod:`bridge.core.auto_replies`): the greeting once per new ticket;
  the out-of-hours text at most once per ticket per closed period of the session's
  business hours; the farewell on close. Each is stamped on the ticket before it is
  returned, so it is never repeated.
- Messages sent from the business phone itself (``from_me``) are routed but trigger
  no auto reply and never reopen a closed ticket.

Every state-changing method runs in a transaction. Routing a customer's message and
recording an attendant's reply join the relay's transaction outright (``db.atomic()``:
their failure undoes the whole message anyway); the commands' changes are savepoints
inside the caller's transaction. Status changes are compare-and-set, so two attendants closing
the same ticket at once get one farewell, and concurrent customer messages reopen a
ticket once. Mistakes by attendants raise :class:`InvalidInput` with a sentence meant
for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bridge.clock import Clock
from bridge.config import CompanyConfig, Config, SessionConfig
from bridge.core.auto_replies import auto_replies
from bridge.core.contact_resolver import ContactResolver
from bridge.core.frontend import contact_label
from bridge.core.queue_menu import QueueMenu
from bridge.core.queues import check_works_queue
from bridge.core.satisfaction import Satisfaction
from bridge.core.ticket_policy import (
    CLOSED,
    OPEN,
    PENDING,
    accepted_notice,
    assigned_notice,
    check_acceptable,
    check_active,
    check_closable,
    check_member,
    check_movable,
    check_reassignable,
    check_reopenable,
    check_status,
    closed_notice,
    contact_name,
    moved_notice,
    opened_notice,
    reopen_status,
    reopened_notice,
    silent_closed_notice,
    taken_notice,
    transfer_target,
    transferred_notice,
    within_reopen_window,
)
from bridge.core.ticket_stats import CompanyStats, read_company_stats
from bridge.db import ContactRow, Repositories, TicketRow, UniqueViolation
from bridge.errors import DatabaseError, InvalidInput
from bridge.metrics import Metrics
from bridge.model import Message, Party

log = logging.getLogger("bridge.core.tickets")

# ---------------------------------------------------------------------------
# What the service returns


@dataclass(frozen=True)
class TicketView:
    """A ticket as a thread root, a card and ``!tickets`` show it."""

    id: int
    session_key: str  # "<company>/<session>"
    company_id: str
    contact_id: int
    contact_name: str  # push name, group name, else the phone or "LID <digits>"
    phone: str | None  # E.164; None for groups and LID-only contacts
    is_group: bool
    status: str  # pending | open | closed
    assignee: str | None
    created_at: float
    first_response_at: float | None
    closed_at: float | None
    lid: str | None = None  # the LID's digits, when known; None for groups
    queue: str | None = None  # None: no queue (yet); docs/tickets.md#queues
    contact: ContactRow | None = field(default=None, compare=False, repr=False)
    """The contact row the view was made from (deliveries read its addresses)."""

    @property
    def label(self) -> str:
        """``Maria (+5511987654321)``; ``Maria (LID 1234…)`` while the phone is hidden;
        a group's name; the phone alone when no name."""
        if self.is_group:
            return self.contact_name
        return contact_label(self.contact_name, phone=self.phone, lid=self.lid)

    @property
    def session_name(self) -> str:
        return self.session_key.partition("/")[2]

    @property
    def is_active(self) -> bool:
        return self.status != CLOSED


@dataclass(frozen=True)
class InboundRoute:
    """Where a customer's message goes, and what to answer at once."""

    ticket: TicketView
    created: bool
    reopened: bool
    auto_replies: tuple[str, ...]  # to the customer now, each already stamped on the ticket
    closed_tickets: tuple[TicketView, ...] = ()
    """Tickets closed because their contact (a LID) turned out to be this phone's."""
    contact_changed: bool = False
    """The contact learned its phone, LID or a new name (or absorbed a LID-only
    contact): a ticket that was not created now shows something new on its card."""
    rating: int | None = None
    """The message rated ``ticket`` (closed; docs/tickets.md#satisfaction)."""
    queue_notice: str | None = None
    """The message routed ``ticket`` to a queue (docs/tickets.md#queues)."""


@dataclass(frozen=True)
class ContactNews:
    """What learning about a person changed: the contact; its active ticket when the
    contact changed (its card shows something new); tickets a merge closed."""

    contact: ContactRow
    active: TicketView | None = None
    closed_tickets: tuple[TicketView, ...] = ()


@dataclass(frozen=True)
class TicketChange:
    """A visible change of a ticket: its new state and the notice for its thread."""

    ticket: TicketView
    previous_status: str
    notice: str  # "Ticket #12 closed by @bob:localhost"
    auto_reply: str | None = None  # to the customer (the farewell on close)
    question: str | None = None  # to the customer after it (the satisfaction question)
    new_ticket: TicketView | None = None  # a transfer to another session opens one there


# ---------------------------------------------------------------------------
# The service


class TicketService:
    """Ticket policy over the repositories; see the module docstring."""

    def __init__(
        self,
        repos: Repositories,
        config: Config,
        *,
        session_ids: dict[str, int],
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self._repos = repos
        self._db = repos.db
        self._config = config
        self._session_ids = dict(session_ids)  # "company/session" → sessions.id
        self._session_keys = {sid: key for key, sid in session_ids.items()}
        self._clock = clock
        self._metrics = metrics
        self._contacts = ContactResolver(repos)
        self._satisfaction = Satisfaction(repos, metrics=metrics)
        self._menu = QueueMenu(repos, metrics=metrics)

    # -- customers --------------------------------------------------------------

    async def route_inbound(self, session_key: str, message: Message) -> InboundRoute | None:
        """The ticket of a WhatsApp message and the auto replies it earns.

        None for a group chat when the session does not bridge groups. Runs inside
        the caller's transaction when there is one.
        """
        session = self._session(session_key)
        if message.chat.is_group and not session.groups:
            log.debug("session %s does not bridge groups; message ignored", session.key)
            return None
        now = self._clock.now()
        session_id = self._session_id(session)
        async with self._db.atomic():
            person = await self._contacts.of_message(session_id, message, now=now)
            contact = person.contact
            rating = await self._satisfaction.take_rating(
                session, session_id=session_id, contact_id=contact.id, message=message, now=now
            )
            if rating is not None:
                view = self._view_with(rating.ticket, contact, session.key)
                thanks = (session.csat.thanks,)
                return InboundRoute(
                    view, False, False, thanks, contact_changed=person.changed, rating=rating.score
                )
            ticket, created, reopened = await self._ticket_for(
                session_id, contact.id, from_me=message.from_me, now=now
            )
            step = await self._menu.on_message(  # with queues the menu answers instead
                session, ticket, message, created=created, is_group=contact.is_group, now=now
            )
            if step is None:
                replies = await auto_replies(
                    self._repos.tickets,
                    session,
                    ticket,
                    created=created,
                    from_me=message.from_me,
                    now=now,
                )
            else:
                replies = step.replies
                ticket = await self._require(ticket.id) if step.routed else ticket
            view = self._view_with(ticket, contact, session.key)
            closed = tuple([await self.get(i) for i in person.closed_ids])
        if created or reopened:
            log.info(
                "ticket #%d %s for contact %d on %s",
                ticket.id,
                "opened" if created else "reopened",
                contact.id,
                session.key,
            )
        notice = step.notice if step is not None else None
        changed = person.changed
        return InboundRoute(view, created, reopened, replies, closed, changed, queue_notice=notice)

    async def learn_contact(self, session_key: str, party: Party) -> ContactNews:
        """What WhatsApp told about a person (push name, LID ↔ phone): the contact
        takes it (a LID-only contact found to be a phone's is merged into it, as a
        message would), and the tickets whose cards now show something new."""
        session_id = self._session_id(self._session(session_key))
        async with self._db.atomic():
            person = await self._contacts.person(
                session_id, party, push_name=party.name, now=self._clock.now()
            )
            contact = person.contact
            closed = tuple([await self.get(i) for i in person.closed_ids])
            active = await self._repos.tickets.find_active(session_id, contact.id)
        if not person.changed or active is None:
            return ContactNews(contact, None, closed)
        return ContactNews(contact, self._view_with(active, contact, session_key), closed)

    async def _ticket_for(
        self, session_id: int, contact_id: int, *, from_me: bool, now: float
    ) -> tuple[TicketRow, bool, bool]:
        """The ticket a message goes to, whether it was created, whether reopened; a
        customer's message also restarts the count of their silence (idle tickets)."""
        tickets = self._repos.tickets
        wrote = None if from_me else now
        active = await tickets.find_active(session_id, contact_id, customer_wrote_at=wrote)
        if active is not None:
            return active, False, False
        reopened = None if from_me else await self._reopen_recent(session_id, contact_id, now)
        if reopened is not None:
            ticket, created = reopened, False
        else:
            ticket, created = await tickets.open_or_get(session_id, contact_id, now=now)
        if not from_me:
            await tickets.mark_customer_wrote(ticket.id, now=now)
        return ticket, created, reopened is not None

    async def _reopen_recent(
        self, session_id: int, contact_id: int, now: float
    ) -> TicketRow | None:
        """The latest ticket reopened if it was closed within the window; None when
        it was not, or when a concurrent message got there first."""
        latest = await self._repos.tickets.find_latest(session_id, contact_id)
        minutes = self._config.tickets.reopen_window_minutes
        if latest is None or latest.status != CLOSED:
            return None
        if not within_reopen_window(latest.closed_at, now=now, minutes=minutes):
            return None
        try:
            async with self._db.transaction():
                won = await self._repos.tickets.transition(
                    latest.id, frm=CLOSED, to=reopen_status(latest), now=now
                )
        except UniqueViolation:
            won = False  # another message opened an active ticket meanwhile
        return await self._require(latest.id) if won else None

    # -- attendants ---------------------------------------------------------------

    async def record_attendant_reply(
        self, before: TicketView, attendant: str
    ) -> TicketChange | None:
        """An attendant answered the customer: the first reply opens a pending ticket,
        takes it when nobody owns it, and feeds the first-response metric. A change
        only when the status or the assignee changed; nothing for a closed ticket.

        ``before`` is the ticket as read in the caller's transaction."""
        ticket_id = before.id
        now = self._clock.now()
        async with self._db.atomic():
            if before.status == CLOSED:
                return None
            first = before.first_response_at is None and (
                await self._repos.tickets.mark_first_response(ticket_id, now=now)
            )
            notice = await self._take(before, attendant, now)
            if not (first or notice):
                return None  # the usual case: an open ticket that is already someone's
            after = await self.get(ticket_id)
        if first:
            self._observe_first_response(after, now - before.created_at)
        return TicketChange(after, before.status, notice) if notice else None

    async def _take(self, before: TicketRow | TicketView, attendant: str, now: float) -> str | None:
        if before.status == PENDING:
            won = await self._repos.tickets.transition(
                before.id, frm=PENDING, to=OPEN, now=now, owner=attendant
            )
            return opened_notice(before.id, by=attendant) if won else None
        if before.assignee is None:
            await self._repos.tickets.set_assignee(before.id, attendant, now=now)
            return taken_notice(before.id, by=attendant)
        return None

    def _observe_first_response(self, ticket: TicketView, seconds: float) -> None:
        log.info("ticket #%d first answered after %.0f s", ticket.id, seconds)
        if self._metrics is not None:
            self._metrics.first_response.labels(session=ticket.session_key).observe(seconds)

    async def accept(self, ticket_id: int, attendant: str) -> TicketChange:
        """``attendant`` takes the ticket: it becomes open and theirs."""
        now = self._clock.now()
        async with self._db.transaction():
            before = await self._require(ticket_id)
            check_acceptable(before, attendant)
            change = await self._hand_over(before, attendant, now=now)
        return change(accepted_notice(ticket_id, by=attendant, previous=before.assignee))

    async def assign(self, ticket_id: int, user: str, *, by: str) -> TicketChange:
        """Give the ticket to ``user``, an admin or attendant of its company."""
        now = self._clock.now()
        async with self._db.transaction():
            before = await self._require_active(ticket_id)
            check_member(await self._company_of_row(before), user)
            check_reassignable(before, user)
            change = await self._hand_over(before, user, now=now)
        return change(assigned_notice(ticket_id, to=user, by=by))

    async def transfer(self, ticket_id: int, target: str, *, by: str) -> TicketChange:
        """To a member of the company (reassign), or to another of its sessions: this
        ticket closes and one opens there for the same person."""
        now = self._clock.now()
        async with self._db.transaction():
            before = await self._require_active(ticket_id)
            company = await self._company_of_row(before)
            dest = transfer_target(self._config, company, target)
            if isinstance(dest, SessionConfig):
                return await self._move_to_session(before, dest, by=by, now=now)
            check_reassignable(before, dest)
            change = await self._hand_over(before, dest, now=now)
        return change(transferred_notice(ticket_id, to=dest, by=by))

    async def close(self, ticket_id: int, *, by: str) -> TicketChange:
        """Close the ticket; the session's farewell goes to the customer."""
        now = self._clock.now()
        async with self._db.transaction():
            before = await self._require(ticket_id)
            check_closable(before)
            after = await self._move(before, CLOSED, now=now)
            session = self._config.session_for_key(after.session_key)
            question = await self._satisfaction.ask(
                session, before, is_group=after.is_group, now=now
            )
        farewell = session.farewell if session is not None else None
        log.info("ticket #%d closed by %s", ticket_id, by)
        notice = closed_notice(ticket_id, by=by)
        return TicketChange(after, before.status, notice, farewell, question=question)

    async def close_silent(self, ticket_id: int, *, since: float) -> TicketChange | None:
        """Close a ticket whose customer has not written since ``since`` (the idle
        sweep, docs/tickets.md#idle-tickets) as ``!close`` would, with the session's
        ``auto_close_message`` instead of its farewell when it has one. None when the
        ticket closed or its customer wrote meanwhile."""
        now = self._clock.now()
        async with self._db.transaction():
            before = await self._require(ticket_id)
            if not await self._repos.tickets.close_if_silent(ticket_id, since=since, now=now):
                return None
            after = await self.get(ticket_id)
            session = self._session(after.session_key)
            question = await self._satisfaction.ask(
                session, before, is_group=after.is_group, now=now
            )
        hours = session.auto_close_hours
        log.info("ticket #%d closed after %d h of customer silence", ticket_id, hours)
        notice = silent_closed_notice(ticket_id, hours=hours)
        farewell = session.auto_close_message or session.farewell
        return TicketChange(after, before.status, notice, farewell, question=question)

    async def reopen(self, ticket_id: int, *, by: str) -> TicketChange:
        """Reopen a closed ticket (as open, ``by``'s when nobody owned it)."""
        now = self._clock.now()
        async with self._db.transaction():
            before = await self._require(ticket_id)
            check_reopenable(before)
            await self._refuse_second_active(before)
            try:
                async with self._db.transaction():
                    after = await self._move(before, OPEN, now=now, owner=by)
            except UniqueViolation:
                await self._refuse_second_active(before)
                raise
        log.info("ticket #%d reopened by %s", ticket_id, by)
        return TicketChange(after, before.status, reopened_notice(ticket_id, by=by))

    # -- reading ------------------------------------------------------------------

    async def get(self, ticket_id: int) -> TicketView:
        found = await self._repos.tickets.get_with_contact(ticket_id)
        if found is None:
            raise InvalidInput(f"no ticket #{ticket_id}")
        return await self.view_of(*found)

    async def view_of(self, ticket: TicketRow, contact: ContactRow) -> TicketView:
        """The view of a ticket read with its contact by someone else's query (the
        deliveries' one read: bridge/db/delivery_reads.py)."""
        return self._view_with(ticket, contact, await self._key_of(ticket.session_id))

    async def list(
        self, session_key: str, *, status: str | None = None, limit: int = 50
    ) -> list[TicketView]:
        """The session's tickets, newest first, optionally of one status."""
        check_status(status)
        session = self._session(session_key)
        rows = await self._repos.tickets.list_by_session(
            self._session_id(session), status=status, limit=limit
        )
        return [await self._view(row) for row in rows]

    async def stats(self, company_id: str) -> CompanyStats:
        company = self._company(company_id)
        return await read_company_stats(self._repos, company, now=self._clock.now())

    def company_of(self, ticket: TicketView) -> CompanyConfig:
        return self._company(ticket.company_id)

    # -- internals ----------------------------------------------------------------

    async def _hand_over(self, before: TicketRow, user: str, *, now: float) -> _ChangeMaker:
        """Open the ticket if pending and make ``user`` its assignee (who must work its
        queue: docs/tickets.md#queues)."""
        check_works_queue(self._config, await self._key_of(before.session_id), before.queue, user)
        if before.status == PENDING:
            await self._move(before, OPEN, now=now)
        await self._repos.tickets.set_assignee(before.id, user, now=now)
        after = await self.get(before.id)
        log.info("ticket #%d now belongs to %s", before.id, user)
        return _ChangeMaker(after, before.status)

    async def _move_to_session(
        self, before: TicketRow, dest: SessionConfig, *, by: str, now: float
    ) -> TicketChange:
        """Close ``before`` and open (or find) the same person's ticket on ``dest``."""
        contact = await self._require_contact(before.contact_id)
        key = await self._key_of(before.session_id)
        check_movable(before, contact=contact, session_key=key, dest=dest)
        dest_id = self._session_id(dest)
        after = await self._move(before, CLOSED, now=now)
        party = Party(phone=contact.phone, lid=contact.lid)
        found = await self._contacts.person(dest_id, party, push_name=contact.push_name, now=now)
        moved = found.contact
        ticket, _ = await self._repos.tickets.open_or_get(dest_id, moved.id, now=now)
        new = self._view_with(ticket, moved, dest.key)
        log.info("ticket #%d transferred to %s as #%d by %s", before.id, dest.key, new.id, by)
        notice = moved_notice(before.id, session_name=dest.name, new_id=new.id, by=by)
        return TicketChange(after, before.status, notice, new_ticket=new)

    async def _move(
        self, before: TicketRow, to: str, *, now: float, owner: str | None = None
    ) -> TicketView:
        """Change the status, refusing when someone else changed it first."""
        if not await self._repos.tickets.transition(
            before.id, frm=before.status, to=to, now=now, owner=owner
        ):
            current = await self._require(before.id)
            raise InvalidInput(
                f"ticket #{before.id} changed while you acted: it is now {current.status}; "
                "look at it again"
            )
        return await self.get(before.id)

    async def _refuse_second_active(self, ticket: TicketRow) -> None:
        active = await self._repos.tickets.find_active(ticket.session_id, ticket.contact_id)
        if active is not None:
            raise InvalidInput(
                f"ticket #{ticket.id} cannot be reopened: this contact already has "
                f"ticket #{active.id} ({active.status}); continue there"
            )

    async def _require(self, ticket_id: int) -> TicketRow:
        ticket = await self._repos.tickets.get(ticket_id)
        if ticket is None:
            raise InvalidInput(f"no ticket #{ticket_id}")
        return ticket

    async def _require_active(self, ticket_id: int) -> TicketRow:
        ticket = await self._require(ticket_id)
        check_active(ticket)
        return ticket

    async def _require_contact(self, contact_id: int) -> ContactRow:
        contact = await self._repos.contacts.get(contact_id)
        if contact is None:
            raise DatabaseError(f"contact {contact_id} of a ticket is missing")
        return contact

    async def _view(self, ticket: TicketRow) -> TicketView:
        contact = await self._require_contact(ticket.contact_id)
        return self._view_with(ticket, contact, await self._key_of(ticket.session_id))

    @staticmethod
    def _view_with(ticket: TicketRow, contact: ContactRow, session_key: str) -> TicketView:
        return TicketView(
            id=ticket.id,
            session_key=session_key,
            company_id=session_key.partition("/")[0],
            contact_id=contact.id,
            contact_name=contact_name(contact),
            phone=None if contact.is_group else contact.phone,
            lid=None if contact.is_group else contact.lid,
            is_group=contact.is_group,
            status=ticket.status,
            assignee=ticket.assignee,
            created_at=ticket.created_at,
            first_response_at=ticket.first_response_at,
            closed_at=ticket.closed_at,
            contact=contact,
            queue=ticket.queue,
        )

    async def _key_of(self, session_id: int) -> str:
        key = self._session_keys.get(session_id)
        if key is not None:
            return key
        row = await self._repos.sessions.get_by_id(session_id)
        if row is None:
            raise DatabaseError(f"session {session_id} of a ticket is missing")
        return f"{row.company_id}/{row.name}"

    def _session(self, session_key: str) -> SessionConfig:
        session = self._config.session_for_key(session_key)
        if session is None:
            raise InvalidInput(f"unknown session {session_key!r}")
        return session

    def _session_id(self, session: SessionConfig) -> int:
        session_id = self._session_ids.get(session.key)
        if session_id is None:
            raise InvalidInput(f"session {session.key} is not running in this bridge")
        return session_id

    def _company(self, company_id: str) -> CompanyConfig:
        company = self._config.find_company(company_id)
        if company is None:
            raise InvalidInput(f"unknown company {company_id!r}")
        return company

    async def _company_of_row(self, ticket: TicketRow) -> CompanyConfig:
        key = await self._key_of(ticket.session_id)
        return self._company(key.partition("/")[0])


@dataclass(frozen=True)
class _ChangeMaker:
    """A ticket's new state waiting for its notice (worded by the caller)."""

    ticket: TicketView
    previous_status: str

    def __call__(self, notice: str) -> TicketChange:
        return TicketChange(self.ticket, self.previous_status, notice)
