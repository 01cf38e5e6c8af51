"""Recording a session's new status: its metric, its log line and the
:class:`~bridge.whatsapp.status.StatusChange` handed to the announcer, which
persists and announces it (:mod:`bridge.whatsapp.status_announcer`).

The session manager (:mod:`bridge.whatsapp.sessions`) decides each status; this
module only writes it down, the same way for every decision.
"""

from __future__ import annotations

from bridge.clock import Clock
from bridge.metrics import Metrics
from bridge.whatsapp.session_state import SessionState
from bridge.whatsapp.status import ERROR_STATUSES, SessionStatus, StatusChange
from bridge.whatsapp.status_announcer import StatusAnnouncer, StatusRecord


class StatusKeeper:
    """Sets a session's status and records the change (one per session manager)."""

    def __init__(
        self, announcer: StatusAnnouncer, *, clock: Clock, metrics: Metrics | None
    ) -> None:
        self._announcer = announcer
        self._clock = clock
        self._metrics = metrics

    def set(
        self,
        session: SessionState,
        new: SessionStatus,
        *,
        reason: str,
        action: str | None = None,
        until: float | None = None,
    ) -> None:
        """``new`` with why (and what a human must do); nothing when it is the status
        already."""
        old = session.status
        if old is new:
            return
        session.status = new
        if new is not SessionStatus.CONNECTED:
            session.connected_at = None
        if self._metrics is not None:
            self._metrics.set_session_status(session.key, new.value)
        session.log.info("%s → %s: %s", old or "start", new, reason)
        change = StatusChange(
            key=session.key,
            old=old,
            new=new,
            reason=reason,
            action=action,
            phone=session.phone,
            at=self._clock.now(),
            attempt=session.attempt,
            until=until,
        )
        self.persist(session, change=change)

    def persist(self, session: SessionState, *, change: StatusChange | None) -> None:
        """Save the session's status as it is now (a new phone number: ``change`` is
        None and nothing is announced)."""
        status = session.shown_status
        error = change.reason if change and status in ERROR_STATUSES else None
        self._announcer.record(
            StatusRecord(
                key=session.key,
                status=status,
                phone=session.phone,
                error=error,
                connected_at=session.connected_at,
                change=change,
            )
        )
