"""What commands are made of, shared by the registry (:mod:`bridge.core.commands`) and
the handlers: where and by whom a command was typed, roles, the reply, what handlers
act through (the protocols the relay and the app implement), and one :class:`Command`
entry of the table.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bridge.config import CompanyConfig, Config, QuickReply
from bridge.config.schema import CloudTemplate
from bridge.core import command_texts as texts
from bridge.errors import InvalidInput

# --- where and who ---------------------------------------------------------------------


class RoomKind(enum.StrEnum):
    """Where a command was typed."""

    CONTROL = "control"  # a session's control room (Matrix) or channel (Slack)
    THREAD = "thread"  # a ticket thread in a control room/channel
    OPS = "ops"  # the company's ops room/channel


ANYWHERE = frozenset(RoomKind)


class Role(enum.StrEnum):
    ADMIN = "admin"
    ATTENDANT = "attendant"

    def can(self, required: Role) -> bool:
        """Admins can do everything attendants can."""
        return self is Role.ADMIN or required is Role.ATTENDANT


def role_of(company: CompanyConfig, user_id: str) -> Role | None:
    """The sender's role in ``company``; None for anyone in neither list."""
    if user_id in company.admins:
        return Role.ADMIN
    if user_id in company.attendants:
        return Role.ATTENDANT
    return None


@dataclass(frozen=True)
class CommandContext:
    """Where and by whom a command was typed, as resolved by the frontend."""

    frontend: str  # "matrix" | "slack"
    company_id: str  # the company owning the room/channel
    place: RoomKind
    session_key: str | None  # "acme/sales" in a control room or ticket thread
    ticket_id: int | None  # in a ticket thread
    user_id: str  # "@bob:localhost" or "U0BOB"
    display_name: str
    room: str  # where to reply (room id / channel id)
    thread_root: str | None

    def __post_init__(self) -> None:
        in_session = self.place in (RoomKind.CONTROL, RoomKind.THREAD)
        if in_session != (self.session_key is not None):
            raise ValueError(f"session_key must be set in a {self.place} context iff in a session")
        if (self.place == RoomKind.THREAD) != (self.ticket_id is not None):
            raise ValueError(f"ticket_id must be set exactly in a thread, not in {self.place}")
        if self.session_key is not None and not self.session_key.startswith(f"{self.company_id}/"):
            raise ValueError(f"session {self.session_key} is not of company {self.company_id}")


@dataclass(frozen=True)
class CommandReply:
    text: str  # WhatsApp-style markup (*bold*); frontends convert
    ephemeral: bool = False  # only for the sender (refusals, errors); Slack may honour it
    quick_reply: QuickReply | None = None
    """``!r``: the relay sends this to the customer as the attendant's own message
    (bridge/core/quick_replies.py); ``text`` is then empty."""


# --- what commands act on (implemented by the relay and the app) ----------------------


class TicketLike(Protocol):
    """The ticket as commands show it (the relay's TicketView fits)."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...  # pending | open | closed
    @property
    def contact_name(self) -> str: ...  # the push name, or the group's subject
    @property
    def phone(self) -> str | None: ...  # E.164; None for groups and LID-only contacts
    @property
    def lid(self) -> str | None: ...  # the LID's digits, when WhatsApp hides the phone
    @property
    def is_group(self) -> bool: ...
    @property
    def assignee(self) -> str | None: ...  # a user id
    @property
    def session_key(self) -> str: ...
    @property
    def queue(self) -> str | None: ...  # docs/tickets.md#queues


class TicketStats(Protocol):
    """A company's ticket figures for ``!stats`` (read-only, so a frozen dataclass fits)."""

    @property
    def by_status(self) -> Mapping[str, int]: ...  # {"pending": 2, "open": 5, "closed": 9}
    @property
    def created_today(self) -> int: ...
    @property
    def first_response_median_seconds(self) -> float | None: ...  # None: none answered yet
    @property
    def first_response_mean_seconds(self) -> float | None: ...
    @property
    def messages_in(self) -> int: ...  # from customers
    @property
    def messages_out(self) -> int: ...  # to customers
    @property
    def csat_count(self) -> int: ...  # rated tickets
    @property
    def csat_average(self) -> float | None: ...  # None: no rating yet
    @property
    def active_by_queue(self) -> Mapping[str, int]: ...  # not closed, per queue ("": none)


class TicketActions(Protocol):
    """Ticket operations (the relay, over TicketService). Each returns the changed
    ticket, or raises :class:`~bridge.errors.InvalidInput` (or another BridgeError)
    whose ``explanation`` tells the attendant why not. ``by`` is the acting user id."""

    async def accept(self, ticket_id: int, *, by: str) -> TicketLike: ...

    async def assign(self, ticket_id: int, user: str, *, by: str) -> TicketLike: ...

    async def transfer(self, ticket_id: int, target: str, *, by: str) -> TicketLike:
        """``target`` is a user id (``@x:y``, ``U0BOB``) or a session key (``acme/support``,
        always a session of the ticket's company)."""
        ...

    async def transfer_to_queue(self, ticket_id: int, queue: str, *, by: str) -> TicketLike:
        """``queue`` names a queue of the ticket's session (docs/tickets.md#queues)."""
        ...

    async def close(self, ticket_id: int, *, by: str) -> TicketLike: ...

    async def reopen(self, ticket_id: int, *, by: str) -> TicketLike: ...

    async def send_template(
        self,
        ticket_id: int,
        *,
        template: CloudTemplate,
        params: tuple[str, ...],
        by: str,
        by_name: str,
    ) -> TicketLike:
        """Send an approved template to the ticket's customer (a Cloud API session)."""
        ...

    async def post_transcript(self, ticket_id: int) -> TicketLike:
        """Post the ticket's transcript into its threads (bridge/core/transcript.py)."""
        ...

    async def list(
        self, session_key: str, *, status: str | None, queue: str | None = None
    ) -> Sequence[TicketLike]:
        """The session's tickets of ``status`` (None: every status), in the order to
        show; of one queue when ``queue`` is set."""
        ...

    async def stats(self, company_id: str, *, queue: str | None = None) -> TicketStats:
        """The company's figures; over the tickets of one queue when ``queue`` is set."""
        ...


class SessionControl(Protocol):
    """The WhatsApp sessions (the SessionManager fits)."""

    async def login(self, key: str, *, phone: str | None = None) -> None: ...

    async def logout(self, key: str) -> None: ...

    def status(self, key: str) -> str: ...

    def phone(self, key: str) -> str | None: ...

    async def account_facts(self, key: str) -> Mapping[str, str]:
        """What the engine reports about the number (the Cloud API: quality rating,
        messaging limit); empty for other engines."""
        ...


class SessionSeen(Protocol):
    """A session as every instance sees it (docs/cluster.md)."""

    @property
    def status(self) -> str: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def owner(self) -> str | None: ...  # the instance holding its lease


class SessionsAcrossInstances(Protocol):
    """Every session's status and owner when several instances share the work."""

    async def seen(self) -> Mapping[str, SessionSeen]: ...


class LoginOrigins(Protocol):
    """Remembers where ``!login`` was typed, so the QR code (or pairing code) goes there."""

    def remember(
        self, session_key: str, *, frontend: str, room: str, thread_root: str | None
    ) -> None: ...


# --- the command table --------------------------------------------------------------------


class UsageError(InvalidInput):
    """The arguments do not fit the command (bad syntax, an unknown session or user);
    the explanation is the whole reply."""


@dataclass(frozen=True)
class Services:
    """What handlers act through."""

    config: Config
    tickets: TicketActions
    sessions: SessionControl
    login_origins: LoginOrigins
    commands: Mapping[str, Command]
    cluster: SessionsAcrossInstances | None = None
    """Set when several instances share the work: ``!sessions`` names the owners."""


@dataclass(frozen=True)
class Invocation:
    """One command being run: already authorised and in an allowed place."""

    ctx: CommandContext
    company: CompanyConfig
    role: Role
    command: Command
    args: tuple[str, ...]

    @property
    def usage(self) -> str:
        return self.command.help.usage_in(ops=self.ctx.place == RoomKind.OPS)

    @property
    def session_key(self) -> str:
        if self.ctx.session_key is None:  # CommandContext guarantees it in a session
            raise ValueError(f"!{self.command.name} needs a session's room")
        return self.ctx.session_key

    @property
    def ticket_id(self) -> int:
        if self.ctx.ticket_id is None:  # CommandContext guarantees it in a thread
            raise ValueError(f"!{self.command.name} needs a ticket thread")
        return self.ctx.ticket_id

    def usage_error(self) -> UsageError:
        return UsageError(texts.usage(self.usage))


Handler = Callable[[Services, Invocation], Awaitable[CommandReply]]


@dataclass(frozen=True)
class Command:
    """One command: adding a command is adding one of these to :data:`COMMANDS`."""

    name: str
    role: Role  # the least role that may run it
    places: frozenset[RoomKind]
    help: texts.CommandHelp
    run: Handler = field(repr=False)
