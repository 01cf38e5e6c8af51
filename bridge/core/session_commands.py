"""The session commands: ``!login``, ``!logout``, ``!status`` and ``!sessions``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bridge.config import CompanyConfig
from bridge.core import command_texts as texts
from bridge.core.command_args import no_args, parse_phone, take_session
from bridge.core.command_model import (
    CommandReply,
    Invocation,
    RoomKind,
    Services,
    SessionsAcrossInstances,
    SessionSeen,
)
from bridge.errors import BridgeError, InvalidInput

log = logging.getLogger("bridge.core.session_commands")


def _session_line(services: Services, key: str) -> str:
    sessions = services.sessions
    return texts.session_line(key, status=str(sessions.status(key)), phone=sessions.phone(key))


def _on_cloud_api(services: Services, key: str) -> bool:
    session = services.config.session_for_key(key)
    return session is not None and services.config.engine_of(session) == "cloud"


async def run_login(services: Services, call: Invocation) -> CommandReply:
    key, rest = take_session(call)
    phone = parse_phone(call, rest)
    if _on_cloud_api(services, key):
        return await _check_cloud_token(services, key, phone=phone)
    before = str(services.sessions.status(key))
    ctx = call.ctx
    services.login_origins.remember(
        key, frontend=ctx.frontend, room=ctx.room, thread_root=ctx.thread_root
    )
    await services.sessions.login(key, phone=phone)
    if phone is not None:
        return CommandReply(texts.login_by_phone_started(key, phone))
    if before in ("LOGGED_OUT", "QRCODE"):
        return CommandReply(texts.login_started(key))
    return CommandReply(texts.reconnecting(key, status=before))


async def _check_cloud_token(services: Services, key: str, *, phone: str | None) -> CommandReply:
    """A Cloud API session has nothing to link: ``!login`` checks the token again
    (docs/cloud.md, "Connection and tokens"). A session not connected connects; a
    connected one asks Meta for its number, which logs it out if the token is refused."""
    if phone is not None:
        raise InvalidInput(texts.cloud_phone_login_refused(key))
    sessions = services.sessions
    if str(sessions.status(key)) == "CONNECTED":
        await sessions.account_facts(key)
    else:
        await sessions.login(key)
    status = str(sessions.status(key))
    return CommandReply(texts.cloud_login(key, status=status, phone=sessions.phone(key)))


async def run_logout(services: Services, call: Invocation) -> CommandReply:
    """Unlink the device; a Cloud API session stops using its number (LOGGED_OUT)."""
    key, rest = take_session(call)
    if rest:
        raise call.usage_error()
    await services.sessions.logout(key)
    if _on_cloud_api(services, key):
        return CommandReply(texts.cloud_logged_out(key))
    return CommandReply(texts.logged_out(key))


async def run_status(services: Services, call: Invocation) -> CommandReply:
    if call.ctx.place == RoomKind.OPS and not call.args:
        return await run_sessions(services, call)
    key, rest = take_session(call)
    if rest:
        raise call.usage_error()
    if services.cluster is not None:  # where it runs, as its owner saw it
        lines = [_owned_line(await services.cluster.seen(), key)]
    else:
        lines = [_session_line(services, key)]
    facts = await _account_facts(services, key)
    return CommandReply("\n".join(lines + ([facts] if facts else [])))


async def _account_facts(services: Services, key: str) -> str | None:
    """The engine's facts about the number (the Cloud API's quality rating and
    messaging limit) as one line; None when it reports none. The status line is
    answered even when the provider cannot be asked."""
    try:
        facts = await services.sessions.account_facts(key)
    except BridgeError as exc:
        log.warning("account facts of %s unavailable: %s", key, exc.explanation)
        return texts.account_facts_unavailable(exc.explanation)
    return texts.account_facts(facts) if facts else None


async def run_sessions(services: Services, call: Invocation) -> CommandReply:
    no_args(call)
    if services.cluster is not None and call.company.sessions:
        return await _every_session_and_owner(services.cluster, call.company)
    return _every_session(services, call.company)


async def _every_session_and_owner(
    cluster: SessionsAcrossInstances, company: CompanyConfig
) -> CommandReply:
    """Several instances: each session's status as its owner saw it, and the owner."""
    seen = await cluster.seen()
    lines = [_owned_line(seen, session.key) for session in company.sessions]
    return CommandReply("\n".join(lines))


def _every_session(services: Services, company: CompanyConfig) -> CommandReply:
    if not company.sessions:
        return CommandReply(texts.no_sessions(company.name))
    return CommandReply("\n".join(_session_line(services, s.key) for s in company.sessions))


def _owned_line(seen: Mapping[str, SessionSeen], key: str) -> str:
    """A session's line and the instance running it (several instances)."""
    s = seen.get(key)
    if s is None:  # not in the table yet: the instance that starts it writes it
        return texts.with_owner(texts.session_line(key, status="OPENING", phone=None), None)
    return texts.with_owner(texts.session_line(key, status=s.status, phone=s.phone), s.owner)
