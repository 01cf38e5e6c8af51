"""Reading a command's arguments: sessions by name, phones, users, transfer targets.

Each helper raises :class:`~bridge.core.command_model.UsageError` whose explanation
is the whole reply. Tenancy: a session is looked up among the company's own only.
"""

from __future__ import annotations

import re

from bridge.config import CompanyConfig, SessionConfig
from bridge.core import command_texts as texts
from bridge.core.command_model import Invocation, RoomKind, UsageError, role_of
from bridge.phone import is_valid_e164

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


def take_session(call: Invocation) -> tuple[str, tuple[str, ...]]:
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


def parse_phone(call: Invocation, args: tuple[str, ...]) -> str | None:
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


def parse_user(call: Invocation, word: str) -> str | None:
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


def require_staff(call: Invocation, user: str) -> str:
    if role_of(call.company, user) is None:
        raise UsageError(texts.not_staff(user, company_name=call.company.name))
    return user


def no_args(call: Invocation) -> None:
    if call.args:
        raise call.usage_error()


def parse_transfer_target(call: Invocation, word: str) -> str:
    """A user (explicit forms first), else a session of the company, else a raw Slack id."""
    if word.startswith(("@", "<@", "https://matrix.to/")) or word.lower() == "me":
        user = parse_user(call, word)
        if user is None:
            raise UsageError(texts.not_a_user(word, command_usage=call.usage))
        return require_staff(call, user)
    session = find_session(call.company, word)
    if session is not None:
        return session.key
    if _SLACK_ID.fullmatch(word) and role_of(call.company, word) is not None:
        return word
    raise UsageError(texts.no_user_or_session(word, company_name=call.company.name))
