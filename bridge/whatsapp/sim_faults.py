"""The faults the simulated network plays on a session (docs/sim.md, "Faults"), and
the refusals some leave behind: ``disconnect`` and ``ban`` make ``connect`` (and
``login``) raise :class:`EngineError` until their seconds have passed.

:meth:`bridge.whatsapp.sim.SimEngine.fault` checks the request, ends a pending login
and drops the connection; :func:`play` then sets the session's halt and emits the
fault's event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.errors import EngineError
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    DisconnectedEvent,
    EventHandler,
    LoggedOutEvent,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.sim_session import SimSession

DISCONNECT_FAULT_REASON = "sim: connection lost (disconnect fault)"


async def play(
    session: SimSession,
    kind: str,
    seconds: float,
    *,
    now: float,
    emit: EventHandler,
    unpair: Callable[[SimSession], Awaitable[None]],
) -> None:
    """Fault ``kind`` (checked already) on ``session``, its connection dropped."""
    key = session.key
    if kind == "disconnect":
        refuse(session, seconds, "disconnect fault", now=now)
        await emit(DisconnectedEvent(key, reason=DISCONNECT_FAULT_REASON, transient=True))
    elif kind == "logout":
        session.halt = None
        await unpair(session)
        await emit(LoggedOutEvent(key))
    elif kind == "ban":
        session.halt = "BANNED"
        refuse(session, seconds, "temporarily banned", now=now)
        await emit(TemporaryBanEvent(key, code="ban", expires_in=float(seconds)))
    elif kind == "outdated":
        session.halt = "OUTDATED"
        await emit(ClientOutdatedEvent(key))
    else:
        session.halt = "STOPPED"
        await emit(StreamReplacedEvent(key))


def refuse(session: SimSession, seconds: float, reason: str, *, now: float) -> None:
    session.refuse_until = now + seconds
    session.refuse_reason = reason


def check_network(session: SimSession, *, now: float) -> None:
    """Raise :class:`EngineError` while a fault makes the network refuse the session."""
    remaining = session.refuse_until - now
    if remaining > 0:
        raise EngineError(
            f"sim network refuses session {session.key} for another {remaining:g} s "
            f"({session.refuse_reason})"
        )
