"""The chat commands (``!help``, ``!login``, ``!close``, …), one registry for every frontend.

A frontend resolves where a message was typed into a :class:`CommandContext` and
hands the text to :meth:`CommandRegistry.handle` (or the Slack slash command's text
to :meth:`CommandRegistry.handle_slash`); it posts the :class:`CommandReply` where
the command was typed. Every command runs through the same ordered stages:

1. parse: ``!name args…`` (case-insensitive name, any spacing); not a command → None;
2. membership: the sender must be an admin or attendant of ``ctx.company_id``;
   anyone else gets a short refusal and nothing else happens;
3. lookup: an unknown name gets close matches suggested;
4. role: admin commands refuse attendants (stages 2 and 4 raise
   :class:`~bridge.errors.NotAuthorized`, answered with its explanation);
5. place: a command typed in the wrong place says where it works;
6. run: the command's handler (:mod:`bridge.core.session_commands`,
   :mod:`bridge.core.ticket_commands`, :mod:`bridge.core.template_commands`,
   ``!help`` here) parses its arguments
   (:mod:`bridge.core.command_args`) and acts through the protocols of
   :mod:`bridge.core.command_model`. A :class:`~bridge.errors.BridgeError` becomes a reply with its
   ``explanation``; anything else is logged with its traceback and answered with a
   generic reply. This is the only place those errors are caught.

Each command is one :class:`~bridge.core.command_model.Command` entry in
:data:`COMMANDS` (name, role, places, help text, handler); its words live in
:mod:`bridge.core.command_texts`.

Tenancy: a session named in the ops room must belong to ``ctx.company_id``; any other
name is answered as if it did not exist, so no reply ever reveals another company.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence

from bridge.config import CompanyConfig, Config
from bridge.core import command_texts as texts
from bridge.core.command_model import (
    ANYWHERE,
    Command,
    CommandContext,
    CommandReply,
    Invocation,
    LoginOrigins,
    Role,
    RoomKind,
    Services,
    SessionControl,
    SessionsAcrossInstances,
    TicketActions,
    UsageError,
    role_of,
)
from bridge.core.quick_replies import run_quick_reply, run_replies
from bridge.core.session_commands import run_login, run_logout, run_sessions, run_status
from bridge.core.template_commands import run_template
from bridge.core.ticket_commands import (
    run_accept,
    run_assign,
    run_close,
    run_note,
    run_reopen,
    run_stats,
    run_tickets,
    run_transfer,
)
from bridge.core.transcript import run_transcript
from bridge.errors import BridgeError, NotAuthorized

__all__ = [
    "COMMANDS",
    "CommandRegistry",
    "is_command",
    "note_command_text",
    "parse_command",
    "run_help",
    "suggest",
]

log = logging.getLogger("bridge.core.commands")

# --- parsing ------------------------------------------------------------------------------

_COMMAND = re.compile(r"\s*!([A-Za-z]\S*)(.*)", re.DOTALL)


def is_command(text: str) -> bool:
    """Whether ``text`` is a command (``!`` then a letter, after optional spaces)."""
    return _COMMAND.fullmatch(text) is not None


_NOTE_COMMAND = re.compile(r"\s*!note(?:\s+(.*))?", re.IGNORECASE | re.DOTALL)


def note_command_text(text: str) -> str | None:
    """``"!note call back"`` → ``"call back"`` (``""`` for ``!note`` alone); None for
    anything else. A thread message ``!note …`` is posted as an internal note, files
    and all (bridge/core/notes.py), never run as a command."""
    match = _NOTE_COMMAND.fullmatch(text)
    return None if match is None else (match.group(1) or "").strip()


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
        cluster: SessionsAcrossInstances | None = None,
    ) -> None:
        table = COMMANDS if commands is None else commands
        by_name = {command.name: command for command in table}
        if len(by_name) != len(table):
            raise ValueError("two commands share a name")
        self._config = config
        self._services = Services(config, tickets, sessions, login_origins, by_name, cluster)

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
        try:
            company, role = self._authorize(ctx, name)
            command = self.commands.get(name)
            if command is None:
                suggestions = suggest(name, self.commands)
                return _refusal(texts.unknown_command(name, suggestions=suggestions))
            _check_role(ctx, command, role=role, company=company)
        except NotAuthorized as exc:  # the sender's role: refused, nothing else happens
            return _refusal(exc.explanation)
        if ctx.place not in command.places:
            return _refusal(
                texts.wrong_place(
                    command.name,
                    places=_ordered(command.places),
                    frontend=ctx.frontend,
                    ops_usage=command.help.ops_usage,
                )
            )
        call = Invocation(ctx=ctx, company=company, role=role, command=command, args=args)
        return await self._run(call)

    def _authorize(self, ctx: CommandContext, name: str) -> tuple[CompanyConfig, Role]:
        """The company of the room and the sender's role in it; :class:`NotAuthorized`
        for anyone who is neither an admin nor an attendant of it."""
        company = self._config.find_company(ctx.company_id)
        role = role_of(company, ctx.user_id) if company else None
        if company is None or role is None:
            if company is None:
                log.warning("!%s in a room of unknown company %r", name, ctx.company_id)
            log.info("refused !%s from %s: not staff of %s", name, ctx.user_id, ctx.company_id)
            raise NotAuthorized(texts.not_a_member(company.name if company else None))
        return company, role

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


def _check_role(
    ctx: CommandContext, command: Command, *, role: Role, company: CompanyConfig
) -> None:
    """:class:`NotAuthorized` when ``command`` needs more than ``role`` (admins only)."""
    if not role.can(command.role):
        log.info("refused !%s from %s: admins only", command.name, ctx.user_id)
        raise NotAuthorized(texts.admins_only(command.name, company_name=company.name))


def _refusal(text: str) -> CommandReply:
    return CommandReply(text, ephemeral=True)


def _reply(text: str) -> CommandReply:
    return CommandReply(text)


def _ordered(places: Iterable[RoomKind]) -> list[RoomKind]:
    return [place for place in RoomKind if place in places]


# --- !help, which reads the table ----------------------------------------------------


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
    Command("template", _T, _THREAD, texts.TEMPLATE, run_template),
    Command("r", _T, _THREAD, texts.QUICK_REPLY, run_quick_reply),
    Command("replies", _T, ANYWHERE, texts.REPLIES, run_replies),
    Command("transcript", _T, _THREAD, texts.TRANSCRIPT, run_transcript),
    Command("note", _T, _THREAD, texts.NOTE, run_note),
    Command("tickets", _T, frozenset({RoomKind.CONTROL}), texts.TICKETS, run_tickets),
    Command("login", _A, _SESSION_ROOMS, texts.LOGIN, run_login),
    Command("logout", _A, _SESSION_ROOMS, texts.LOGOUT, run_logout),
    Command("status", _T, ANYWHERE, texts.STATUS, run_status),
    Command("sessions", _T, ANYWHERE, texts.SESSIONS, run_sessions),
    Command("stats", _T, ANYWHERE, texts.STATS, run_stats),
)
"""Every command, in the order ``!help`` lists them."""
