"""The chat commands (``!help``, ``!login``, ``!close``, …), one registry for every frontend.

A frontend resolves where a message was typed into a :class:`CommandContext` and
hands the text to :meth:`CommandRegistry.handle` (or the Slack slash command's text
to :meth:`CommandRegistry.handle_slash`); it posts the :class:`CommandReply` where
the command was typed. Every command runs through the same ordered stages:

1. parse: ``!name args…`` (case-insensitive name, any spacing); not a command → None;
2. membership: the sender must be an admin or attendant of ``ctx.company_id``;
   anyone else gets a short refusal and nothing else happens;
3. lookup: an unknown name gets close matches suggested;
4. role: admin commands refuse attendants;
5. place: a command typed in the wrong place says where it works;
6. run: the command's handler parses its arguments and acts through the
   :class:`TicketActions`, :class:`SessionControl` and :class:`LoginOrigins`
   protocols. A :class:`~bridge.errors.BridgeError` becomes a reply with its
   ``explanation``; anything else is logged with its traceback and answered with a
   generic reply. This is the only place those errors are caught.

Each command is one :class:`Command` entry in :data:`COMMANDS` (name, role, places,
help text, handler); its words live in :mod:`bridge.core.command_texts`.

Tenancy: a session named in the ops room must belong to ``ctx.company_id``; any other
name is answered as if it did not exist, so no reply ever reveals another company.
"""

from __future__ import annotations

import difflib
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bridge.config import CompanyConfig, Config, SessionConfig
from bridge.core import command_texts as texts
from bridge.errors import BridgeError, InvalidInput
from bridge.phone import is_valid_e164

__all__ = [
    "COMMANDS",
    "Command",
    "CommandContext",
    "CommandRegistry",
    "CommandReply",
    "Invocation",
    "LoginOrigins",
    "Role",
    "RoomKind",
    "Services",
    "SessionControl",
    "TicketActions",
    "TicketLike",
    "TicketStats",
    "UsageError",
    "find_session",
    "is_command",
    "parse_command",
    "role_of",
    "suggest",
]

log = logging.getLogger("bridge.core.commands")

TICKET_STATUSES = ("pending", "open", "closed")
DEFAULT_TICKET_STATUSES = ("pending", "open")
MAX_TICKET_LINES = 50
"""``!tickets`` lists at most this many tickets, then says how many more there are."""


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

    async def close(self, ticket_id: int, *, by: str) -> TicketLike: ...

    async def reopen(self, ticket_id: int, *, by: str) -> TicketLike: ...

    async def list(self, session_key: str, *, status: str | None) -> Sequence[TicketLike]:
        """The session's tickets of ``status`` (None: every status), in the order to show."""
        ...

    async def stats(self, company_id: str) -> TicketStats: ...


class SessionControl(Protocol):
    """The WhatsApp sessions (the SessionManager fits)."""

    async def login(self, key: str, *, phone: str | None = None) -> None: ...

    async def logout(self, key: str) -> None: ...

    def status(self, key: str) -> str: ...

    def phone(self, key: str) -> str | None: ...


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


# --- parsing ------------------------------------------------------------------------------

_COMMAND = re.compile(r"\s*!([A-Za-z]\S*)(.*)", re.DOTALL)


def is_command(text: str) -> bool:
    """Whether ``text`` is a command (``!`` then a letter, after optional spaces)."""
    return _COMMAND.fullmatch(text) is not None


def parse_command(text: str) -> tuple[str, tuple[str, ...]] | None:
    """``"  !Tickets   open "`` → ``("tickets", ("open",))``; None when not a command."""
    match = _COMMAND.fullmatch(text)
    if match is None:
        return None
    return match.group(1).lower(), tuple(match.group(2).split())


# --- the registry ---------------------------------------------------------------------------


class CommandRegistry:
    """Parses, authorises and runs commands for every frontend."""

    def __init__(
        self,
        config: Config,
        *,
        tickets: TicketActions,
        sessions: SessionControl,
        login_origins: LoginOrigins,
        commands: Sequence[Command] | None = None,
    ) -> None:
        table = COMMANDS if commands is None else commands
        by_name = {command.name: command for command in table}
        if len(by_name) != len(table):
            raise ValueError("two commands share a name")
        self._config = config
        self._services = Services(config, tickets, sessions, login_origins, by_name)

    @property
    def commands(self) -> Mapping[str, Command]:
        return self._services.commands

    @staticmethod
    def is_command(text: str) -> bool:
        """Whether ``text`` is a command (see :func:`is_command`)."""
        return is_command(text)

    async def handle(self, ctx: CommandContext, text: str) -> CommandReply | None:
        """Run the command in ``text``; None when ``text`` is not a command."""
        parsed = parse_command(text)
        if parsed is None:
            return None
        name, args = parsed
        return await self._dispatch(ctx, name, args)

    async def handle_slash(self, ctx: CommandContext, text: str) -> CommandReply:
        """``/whatsapp close`` arrives as ``"close"``; an empty text asks for help."""
        words = text.split()
        if words and words[0].startswith("!"):
            words[0] = words[0][1:]
        if not words or not words[0]:
            words = ["help"]
        return await self._dispatch(ctx, words[0].lower(), tuple(words[1:]))

    async def _dispatch(
        self, ctx: CommandContext, name: str, args: tuple[str, ...]
    ) -> CommandReply:
        company = self._config.find_company(ctx.company_id)
        role = role_of(company, ctx.user_id) if company else None
        if company is None or role is None:
            if company is None:
                log.warning("!%s in a room of unknown company %r", name, ctx.company_id)
            log.info("refused !%s from %s: not staff of %s", name, ctx.user_id, ctx.company_id)
            return _refusal(texts.not_a_member(company.name if company else None))
        command = self.commands.get(name)
        if command is None:
            return _refusal(texts.unknown_command(name, suggestions=suggest(name, self.commands)))
        refusal = self._check_allowed(ctx, command, role=role, company=company)
        if refusal is not None:
            return refusal
        call = Invocation(ctx=ctx, company=company, role=role, command=command, args=args)
        return await self._run(call)

    def _check_allowed(
        self, ctx: CommandContext, command: Command, *, role: Role, company: CompanyConfig
    ) -> CommandReply | None:
        if not role.can(command.role):
            log.info("refused !%s from %s: admins only", command.name, ctx.user_id)
            return _refusal(texts.admins_only(command.name, company_name=company.name))
        if ctx.place not in command.places:
            return _refusal(
                texts.wrong_place(
                    command.name,
                    places=_ordered(command.places),
                    frontend=ctx.frontend,
                    ops_usage=command.help.ops_usage,
                )
            )
        return None

    async def _run(self, call: Invocation) -> CommandReply:
        name, ctx = call.command.name, call.ctx
        try:
            reply = await call.command.run(self._services, call)
        except UsageError as exc:
            return _refusal(exc.explanation)
        except BridgeError as exc:
            log.info("!%s by %s failed: %s", name, ctx.user_id, exc.explanation)
            return _refusal(texts.command_failed(name, exc.explanation))
        except Exception:
            log.exception("!%s by %s in %s %s crashed", name, ctx.user_id, ctx.place, ctx.room)
            return _refusal(texts.command_crashed(name))
        log.info("%s ran !%s in %s %s", ctx.user_id, name, ctx.place, ctx.room)
        return reply


def suggest(name: str, commands: Iterable[str]) -> list[str]:
    """Up to two command names close to a mistyped ``name``, closest first."""
    return difflib.get_close_matches(name, list(commands), n=2, cutoff=0.6)


def _refusal(text: str) -> CommandReply:
    return CommandReply(text, ephemeral=True)


def _reply(text: str) -> CommandReply:
    return CommandReply(text)


def _ordered(places: Iterable[RoomKind]) -> list[RoomKind]:
    return [place for place in RoomKind if place in places]


# --- argument helpers -----------------------------------------------------------------------

_MATRIX_ID = re.compile(r"@[^:\s]+:\S+")
_MATRIX_TO = re.compile(r"https://matrix\.to/#/(@[^:\s/?]+:[^\s/?]+)\S*")
_SLACK_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


def find_session(company: CompanyConfig, name: str) -> SessionConfig | None:
    """``sales``, ``Sales`` or ``acme/sales``; never a session of another company."""
    company_id, slash, bare = name.rpartition("/")
    if slash and company_id != company.id:
        return None
    wanted = bare.lower()
    return next((s for s in company.sessions if s.name.lower() == wanted), None)


def _session_names(company: CompanyConfig) -> list[str]:
    return [s.name for s in company.sessions]


def _require_session(call: Invocation, name: str) -> SessionConfig:
    session = find_session(call.company, name)
    if session is None:
        raise UsageError(
            texts.no_session(
                name, company_name=call.company.name, sessions=_session_names(call.company)
            )
        )
    return session


def _take_session(call: Invocation) -> tuple[str, tuple[str, ...]]:
    """The session key a session command applies to, and the arguments left.

    In a control room or thread it is the room's session (naming it again is fine,
    naming another is not); in the ops room the first argument must name it.
    ``phone`` is never a session name.
    """
    args = call.args
    first = args[0] if args and args[0].lower() != "phone" else None
    if call.ctx.place == RoomKind.OPS:
        if first is None:
            names = _session_names(call.company)
            raise UsageError(texts.which_session(call.usage, sessions=names))
        return _require_session(call, first).key, args[1:]
    own = call.session_key
    if first is None:
        return own, args
    named = find_session(call.company, first)
    if named is None:
        raise call.usage_error()
    if named.key != own:
        raise UsageError(
            texts.other_session(call.command.name, session_key=own, frontend=call.ctx.frontend)
        )
    return own, args[1:]


def _parse_phone(call: Invocation, args: tuple[str, ...]) -> str | None:
    """``()`` → None; ``("phone", "+55", "11 98765-4321")`` → ``+5511987654321``."""
    if not args:
        return None
    if args[0].lower() != "phone" or len(args) < 2:
        raise call.usage_error()
    typed = " ".join(args[1:])
    phone = _PHONE_PUNCTUATION.sub("", typed)
    if not is_valid_e164(phone):
        raise UsageError(texts.bad_phone(typed, command_usage=call.usage))
    return phone


def _parse_user(call: Invocation, word: str) -> str | None:
    """A user id from ``@x:y``, a matrix.to link, ``<@U0BOB>``, ``U0BOB`` or ``me``."""
    if word.lower() == "me":
        return call.ctx.user_id
    for pattern in (_MATRIX_TO, _SLACK_MENTION):
        match = pattern.fullmatch(word)
        if match:
            return match.group(1)
    if _MATRIX_ID.fullmatch(word) or _SLACK_ID.fullmatch(word):
        return word
    return None


def _require_staff(call: Invocation, user: str) -> str:
    if role_of(call.company, user) is None:
        raise UsageError(texts.not_staff(user, company_name=call.company.name))
    return user


def _no_args(call: Invocation) -> None:
    if call.args:
        raise call.usage_error()


def _session_line(services: Services, key: str) -> str:
    sessions = services.sessions
    return texts.session_line(key, status=str(sessions.status(key)), phone=sessions.phone(key))


# --- handlers ----------------------------------------------------------------------------------


async def run_help(services: Services, call: Invocation) -> CommandReply:
    ctx = call.ctx
    if len(call.args) > 1:
        raise call.usage_error()
    if call.args:
        name = call.args[0].removeprefix("!").lower()
        command = services.commands.get(name)
        if command is None:
            suggestions = suggest(name, services.commands)
            raise UsageError(texts.unknown_command(name, suggestions=suggestions))
        text = texts.help_command(
            name,
            entry=command.help,
            admins_only=command.role == Role.ADMIN,
            places=_ordered(command.places),
            frontend=ctx.frontend,
        )
        return _reply(text)
    usable = [c for c in services.commands.values() if call.role.can(c.role)]
    in_ops = ctx.place == RoomKind.OPS
    here = [(c.help.usage_in(ops=in_ops), c.help.summary) for c in usable if ctx.place in c.places]
    elsewhere: dict[frozenset[RoomKind], list[str]] = {}
    for command in usable:
        if ctx.place not in command.places:
            elsewhere.setdefault(command.places, []).append(command.name)
    text = texts.help_here(
        place=ctx.place,
        frontend=ctx.frontend,
        role=call.role,
        company_name=call.company.name,
        here=here,
        elsewhere=[(names, _ordered(places)) for places, names in elsewhere.items()],
    )
    return _reply(text)


async def run_login(services: Services, call: Invocation) -> CommandReply:
    key, rest = _take_session(call)
    phone = _parse_phone(call, rest)
    before = str(services.sessions.status(key))
    ctx = call.ctx
    services.login_origins.remember(
        key, frontend=ctx.frontend, room=ctx.room, thread_root=ctx.thread_root
    )
    await services.sessions.login(key, phone=phone)
    if phone is not None:
        return _reply(texts.login_by_phone_started(key, phone))
    if before in ("LOGGED_OUT", "QRCODE"):
        return _reply(texts.login_started(key))
    return _reply(texts.reconnecting(key, status=before))


async def run_logout(services: Services, call: Invocation) -> CommandReply:
    key, rest = _take_session(call)
    if rest:
        raise call.usage_error()
    await services.sessions.logout(key)
    return _reply(texts.logged_out(key))


async def run_status(services: Services, call: Invocation) -> CommandReply:
    if call.ctx.place == RoomKind.OPS and not call.args:
        return _every_session(services, call.company)
    key, rest = _take_session(call)
    if rest:
        raise call.usage_error()
    return _reply(_session_line(services, key))


async def run_sessions(services: Services, call: Invocation) -> CommandReply:
    _no_args(call)
    return _every_session(services, call.company)


def _every_session(services: Services, company: CompanyConfig) -> CommandReply:
    if not company.sessions:
        return _reply(texts.no_sessions(company.name))
    return _reply("\n".join(_session_line(services, s.key) for s in company.sessions))


async def run_tickets(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) > 1:
        raise call.usage_error()
    if call.args:
        wanted = call.args[0].lower()
        if wanted not in TICKET_STATUSES:
            raise call.usage_error()
        statuses: tuple[str, ...] = (wanted,)
    else:
        statuses = DEFAULT_TICKET_STATUSES
    key = call.session_key
    found: list[TicketLike] = []
    for status in statuses:
        found += await services.tickets.list(key, status=status)
    if not found:
        return _reply(texts.no_tickets(statuses))
    lines = [
        texts.ticket_line(
            t.id,
            status=t.status,
            name=t.contact_name,
            phone=t.phone,
            lid=t.lid,
            is_group=t.is_group,
        )
        for t in found[:MAX_TICKET_LINES]
    ]
    if len(found) > MAX_TICKET_LINES:
        lines.append(texts.more_tickets(len(found) - MAX_TICKET_LINES))
    return _reply("\n".join(lines))


async def run_accept(services: Services, call: Invocation) -> CommandReply:
    _no_args(call)
    ticket = await services.tickets.accept(call.ticket_id, by=call.ctx.user_id)
    return _reply(texts.accepted(ticket.id, by=call.ctx.display_name, status=ticket.status))


async def run_close(services: Services, call: Invocation) -> CommandReply:
    _no_args(call)
    ticket = await services.tickets.close(call.ticket_id, by=call.ctx.user_id)
    return _reply(texts.closed(ticket.id, by=call.ctx.display_name, status=ticket.status))


async def run_reopen(services: Services, call: Invocation) -> CommandReply:
    _no_args(call)
    ticket = await services.tickets.reopen(call.ticket_id, by=call.ctx.user_id)
    return _reply(texts.reopened(ticket.id, by=call.ctx.display_name, status=ticket.status))


async def run_assign(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) != 1:
        raise call.usage_error()
    user = _parse_user(call, call.args[0])
    if user is None:
        raise UsageError(texts.not_a_user(call.args[0], command_usage=call.usage))
    _require_staff(call, user)
    ticket = await services.tickets.assign(call.ticket_id, user, by=call.ctx.user_id)
    return _reply(texts.assigned(ticket.id, to=user, by=call.ctx.display_name))


async def run_transfer(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) != 1:
        raise call.usage_error()
    target = _transfer_target(call, call.args[0])
    ticket = await services.tickets.transfer(call.ticket_id, target, by=call.ctx.user_id)
    return _reply(texts.transferred(ticket.id, to=target, by=call.ctx.display_name))


def _transfer_target(call: Invocation, word: str) -> str:
    """A user (explicit forms first), else a session of the company, else a raw Slack id."""
    if word.startswith(("@", "<@", "https://matrix.to/")) or word.lower() == "me":
        user = _parse_user(call, word)
        if user is None:
            raise UsageError(texts.not_a_user(word, command_usage=call.usage))
        return _require_staff(call, user)
    session = find_session(call.company, word)
    if session is not None:
        return session.key
    if _SLACK_ID.fullmatch(word) and role_of(call.company, word) is not None:
        return word
    raise UsageError(texts.no_user_or_session(word, company_name=call.company.name))


async def run_stats(services: Services, call: Invocation) -> CommandReply:
    _no_args(call)
    figures = await services.tickets.stats(call.company.id)
    text = texts.stats(
        call.company.name,
        by_status=figures.by_status,
        created_today=figures.created_today,
        median_first_response=figures.first_response_median_seconds,
        mean_first_response=figures.first_response_mean_seconds,
        messages_in=figures.messages_in,
        messages_out=figures.messages_out,
    )
    return _reply(text)


_SESSION_ROOMS = frozenset({RoomKind.CONTROL, RoomKind.OPS})
_THREAD = frozenset({RoomKind.THREAD})
_A, _T = Role.ADMIN, Role.ATTENDANT

COMMANDS: tuple[Command, ...] = (
    Command("help", _T, ANYWHERE, texts.HELP, run_help),
    Command("accept", _T, _THREAD, texts.ACCEPT, run_accept),
    Command("close", _T, _THREAD, texts.CLOSE, run_close),
    Command("reopen", _T, _THREAD, texts.REOPEN, run_reopen),
    Command("assign", _T, _THREAD, texts.ASSIGN, run_assign),
    Command("transfer", _T, _THREAD, texts.TRANSFER, run_transfer),
    Command("tickets", _T, frozenset({RoomKind.CONTROL}), texts.TICKETS, run_tickets),
    Command("login", _A, _SESSION_ROOMS, texts.LOGIN, run_login),
    Command("logout", _A, _SESSION_ROOMS, texts.LOGOUT, run_logout),
    Command("status", _T, ANYWHERE, texts.STATUS, run_status),
    Command("sessions", _T, ANYWHERE, texts.SESSIONS, run_sessions),
    Command("stats", _T, ANYWHERE, texts.STATS, run_stats),
)
"""Every command, in the order ``!help`` lists them."""
