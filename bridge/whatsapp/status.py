"""Session status: the contract's status words, what a human must do, and the
change announced to listeners (docs/operations.md, "Session status").

Shared by the engine side (:mod:`bridge.whatsapp.sessions` sets statuses) and the
core (:mod:`bridge.core.ops` reports them); it imports neither.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class SessionStatus(enum.StrEnum):
    """The session status words (contract)."""

    OPENING = "OPENING"
    QRCODE = "QRCODE"
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    LOGGED_OUT = "LOGGED_OUT"
    BANNED = "BANNED"
    OUTDATED = "OUTDATED"
    STOPPED = "STOPPED"


# Statuses that wait for a human: no automatic retry leaves them.
PERMANENT = frozenset(
    {
        SessionStatus.LOGGED_OUT,
        SessionStatus.BANNED,
        SessionStatus.OUTDATED,
        SessionStatus.STOPPED,
    }
)
# Statuses whose reason is a problem worth keeping as the session's last error.
ERROR_STATUSES = PERMANENT | {SessionStatus.DISCONNECTED}


# --- what a human must do (every action text of this module) ------------------

_LOGIN_HINT = "An admin must type !login in the control room"
ACTION_NEVER_PAIRED = f"This number is not linked yet. {_LOGIN_HINT} to link it."
ACTION_PHONE_UNLINKED = f"The phone unlinked this device. {_LOGIN_HINT} to link it again."
ACTION_ADMIN_LOGOUT = (
    "An admin logged this session out. Type !login in the control room to link it again."
)
ACTION_OUTDATED = (
    "WhatsApp says this client is outdated: upgrade zapbridge (neonize), then restart."
)
ACTION_STREAM_REPLACED = (
    "Another client took over this session (stream replaced). "
    "Close the other WhatsApp Web/Desktop session, then !login."
)


def action_ended(reason: str) -> str:
    """A connection WhatsApp closed for good, e.g. a QR login that timed out."""
    return f"The session cannot resume on its own ({reason}). {_LOGIN_HINT} to link it again."


def action_banned(until: float | None, *, now: float) -> str:
    when = f" (until {format_utc(until, now=now)})" if until is not None else ""
    return (
        f"WhatsApp banned this number temporarily{when}. "
        "Wait for the ban to end, then !login; check the number is not sending spam."
    )


def format_utc(at: float, *, now: float) -> str:
    """``14:05 UTC`` today, ``2024-05-02 14:05 UTC`` on another day; ``an unknown
    time`` for a moment no calendar holds (an absurd expiry from WhatsApp)."""
    try:
        moment = datetime.fromtimestamp(at, UTC)
    except (OverflowError, ValueError, OSError):
        return "an unknown time"
    same_day = moment.date() == datetime.fromtimestamp(now, UTC).date()
    return moment.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC")


# --- status changes, their store and their listeners --------------------------


@dataclass(frozen=True)
class StatusChange:
    """One session status change, as announced to listeners."""

    key: str
    old: SessionStatus | None  # None: the first status since the bridge started
    new: SessionStatus
    reason: str | None
    action: str | None  # what a human must do; set for the permanent statuses
    phone: str | None
    at: float  # epoch seconds
    attempt: int = 0  # the reconnect attempt (OPENING: being made; DISCONNECTED: next)
    until: float | None = None  # BANNED: the ban's end; DISCONNECTED: the next attempt


class StatusStore(Protocol):
    """Where session statuses are persisted (the app adapts the sessions repository).

    ``error`` is the reason of a problem status (DISCONNECTED and the permanent
    ones), else None; ``connected_at`` is set with CONNECTED, else None; ``phone``
    is the last known number of the session, kept across statuses.
    """

    async def save_status(
        self,
        key: str,
        status: str,
        *,
        phone: str | None,
        error: str | None,
        connected_at: float | None,
    ) -> None: ...


StatusListener = Callable[[StatusChange], Awaitable[None] | None]
