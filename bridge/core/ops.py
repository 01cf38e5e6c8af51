"""What the ops channel hears: session status, login codes, dead letters, backlog.

:class:`OpsNotifier` is pure policy plus timers. It listens to the session manager
(:meth:`OpsNotifier.on_status`, a :class:`~bridge.whatsapp.status.StatusChange`
listener), to engine events (:meth:`OpsNotifier.on_engine_event`, for QR and
pairing codes), to the outbox (:meth:`OpsNotifier.on_dead_letter`,
:meth:`OpsNotifier.on_backlog`), to the quarantine (:meth:`OpsNotifier.on_quarantined`),
to the journals of refused items (:meth:`OpsNotifier.on_journal_backlog`,
:meth:`OpsNotifier.on_journal_loss`), and hands what should be said to an
:class:`OpsSink`, which the frontends side implements (it knows the rooms and
channels; this module does not).

The rules (docs/operations.md, "The ops channel"); the words are in
:mod:`bridge.core.ops_texts`:

- every status change sets the control room's topic; whether the ops channel also
  gets a *message* depends on the change;
- a transient loss (``DISCONNECTED``, then ``OPENING`` during reconnects) is an
  *outage*; it is reported only if it lasts ``ops.alert_grace_seconds``, and its
  end (``CONNECTED``) is reported as resolved only if its start was reported;
- more than :data:`FLAP_LIMIT` disconnects within :data:`FLAP_WINDOW_SECONDS` is
  flapping: one summary, then quiet about that session for ``ops.throttle_seconds``
  (an outage still going on when the quiet ends is reported then);
- permanent statuses are reported at once, critical, with what a human must do;
- identical alerts (warnings and criticals) are throttled per company: one per
  ``ops.throttle_seconds``, the next one that passes says how many were suppressed.

Every timing goes through the :class:`~bridge.clock.Clock`; the only timers are
the outage grace tasks, cancelled by :meth:`OpsNotifier.stop`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from bridge.clock import Clock
from bridge.config import Config
from bridge.core.ops_texts import (
    backlog_resolved_text,
    backlog_text,
    connected_text,
    dead_letter_text,
    disconnected_text,
    flapping_text,
    journal_backlog_text,
    journal_loss_text,
    journal_resolved_text,
    login_code_text,
    login_ended_text,
    never_linked_text,
    permanent_text,
    quarantined_text,
    reconnected_text,
    session_moved_text,
    suppressed_text,
    topic_text,
    unanswered_resolved_text,
    unanswered_text,
)
from bridge.core.qrcode import qr_png
from bridge.errors import DatabaseError, InvalidInput
from bridge.whatsapp.engine import EngineEvent, PairCodeEvent, QRCodeEvent
from bridge.whatsapp.status import PERMANENT, SessionStatus, StatusChange

log = logging.getLogger("bridge.core.ops")

# Flapping: more than FLAP_LIMIT disconnects of one session within the window.
FLAP_LIMIT = 3
FLAP_WINDOW_SECONDS = 600.0


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    RESOLVED = "resolved"


# --- the output side ------------------------------------------------------------


@dataclass(frozen=True)
class OpsPost:
    """Something for a company's ops channel and/or a session's control room topic.

    ``text`` is the ops message (WhatsApp-style markup allowed, ``*bold*``); an
    empty ``text`` means there is no message, only the ``topic`` to set. When
    ``topic`` is set, the control room of ``session_key`` gets it as its topic
    (status line). A company without an ops channel gets the topics only.
    """

    company_id: str
    text: str
    session_key: str | None = None
    severity: str = Severity.INFO
    topic: str | None = None

    @property
    def has_message(self) -> bool:
        return bool(self.text)


@dataclass(frozen=True)
class LoginCode:
    """A login code to show where ``!login`` was typed: a QR code (``png`` its image,
    ``expires_in`` seconds until the next one) or a pairing code typed on the phone
    (``png`` None)."""

    session_key: str
    code: str
    kind: str  # "qr" | "pair"
    png: bytes | None = None
    expires_in: float | None = None


class OpsSink(Protocol):
    """Where ops posts and login codes go (implemented by the relay/outbox side)."""

    async def post_ops(self, post: OpsPost) -> None:
        """Post ``post.text`` (when not empty) to the company's ops channel(s), and
        set ``post.topic`` (when set) on the control room of ``post.session_key``."""

    async def post_login_code(self, login: LoginCode) -> None:
        """Show ``login`` where ``!login`` was typed, replacing the previous QR."""


# --- throttling of identical alerts -------------------------------------------------

ThrottleKey = tuple[str, ...]


@dataclass
class _ThrottleEntry:
    posted_at: float
    suppressed: int = 0


class AlertThrottle:
    """At most one alert per (company, key) every ``seconds``; the next one that
    passes carries the count of those suppressed in between."""

    def __init__(self, *, seconds: float, clock: Clock) -> None:
        self._seconds = seconds
        self._clock = clock
        self._entries: dict[tuple[str, ThrottleKey], _ThrottleEntry] = {}

    def admit(self, company_id: str, key: ThrottleKey, text: str) -> str | None:
        """The text to post now (with the suppressed count), or None to stay quiet."""
        now = self._clock.monotonic()
        entry = self._entries.get((company_id, key))
        if entry is not None and now - entry.posted_at < self._seconds:
            entry.suppressed += 1
            log.debug("alert suppressed (%d so far) for %s: %s", entry.suppressed, company_id, text)
            return None
        self._entries[(company_id, key)] = _ThrottleEntry(posted_at=now)
        if entry is not None and entry.suppressed:
            return text + suppressed_text(entry.suppressed)
        return text


# --- per-session bookkeeping --------------------------------------------------------


@dataclass
class _Outage:
    """A transient loss, from its first DISCONNECTED to CONNECTED (or a permanent status)."""

    started_at: float
    reason: str
    timer: asyncio.Task[None] | None = None
    reported: bool = False  # its warning was posted, so its end is reported too


@dataclass
class _SessionState:
    seen: bool = False  # a status change was observed
    connected_before: bool = False  # CONNECTED since the last login or permanent status
    critical: SessionStatus | None = None  # the permanent status last reported, until CONNECTED
    outage: _Outage | None = None
    disconnects: deque[float] = field(default_factory=deque)  # outage starts (epoch)
    quiet_until: float | None = None  # after a flapping summary (epoch)
    never_linked_noted: bool = False


def _company_of(session_key: str) -> str:
    return session_key.split("/", 1)[0]


# --- the notifier -------------------------------------------------------------------


class OpsNotifier:
    """Decides what the ops channel hears and when; see the module docstring."""

    def __init__(self, config: Config, sink: OpsSink, *, clock: Clock) -> None:
        self._ops = config.ops
        self._company_ids = tuple(c.id for c in config.companies)
        self._sink = sink
        self._clock = clock
        self._throttle = AlertThrottle(seconds=config.ops.throttle_seconds, clock=clock)
        self._sessions: dict[str, _SessionState] = {}
        self._backlog_reported: set[str] = set()  # companies told about the backlog
        self._backlog_over = False
        self._journal_reported: set[tuple[str, str]] = set()  # (company, journal) warned
        self._timers: set[asyncio.Task[None]] = set()  # grace timers still running
        self._stopped = False

    # --- session status ---------------------------------------------------------

    async def on_status(self, change: StatusChange) -> None:
        """A :class:`StatusChange` listener: the topic always, a message by the rules."""
        state = self._sessions.setdefault(change.key, _SessionState())
        first_seen, state.seen = not state.seen, True
        message = await self._message_for(state, change, first_seen=first_seen)
        text, severity = message if message is not None else ("", Severity.INFO)
        await self._post(
            OpsPost(
                company_id=_company_of(change.key),
                text=text,
                session_key=change.key,
                severity=severity,
                topic=topic_text(change),
            )
        )

    async def _message_for(
        self, state: _SessionState, change: StatusChange, *, first_seen: bool
    ) -> tuple[str, Severity] | None:
        """Update ``state`` for ``change``; the message to post with it, if any."""
        new = change.new
        if new is SessionStatus.CONNECTED:
            return await self._on_connected(state, change)
        if new is SessionStatus.DISCONNECTED or (
            new is SessionStatus.OPENING and change.old is SessionStatus.DISCONNECTED
        ):
            return self._on_transient_loss(state, change)
        if new in PERMANENT:
            return self._on_permanent(state, change, first_seen=first_seen)
        if new is SessionStatus.QRCODE:
            self._end_outage(state)
            state.connected_before = False
            return login_code_text(change), Severity.INFO
        return None  # OPENING at start or after !login: the topic says it

    async def _on_connected(
        self, state: _SessionState, change: StatusChange
    ) -> tuple[str, Severity] | None:
        """Resolved after a reported outage or a permanent status; info after a
        login; otherwise (start, a short outage) the topic says enough."""
        outage, state.outage = state.outage, None
        was, state.critical = state.critical, None
        state.connected_before = True
        if outage is not None:
            await self._settle_timer(outage)
            if outage.reported:
                seconds = change.at - outage.started_at
                return reconnected_text(change.key, seconds=seconds), Severity.RESOLVED
        if was is not None:
            return connected_text(change.key, phone=change.phone, was=was), Severity.RESOLVED
        if change.old is SessionStatus.QRCODE:
            return connected_text(change.key, phone=change.phone, was=None), Severity.INFO
        return None

    def _on_transient_loss(
        self, state: _SessionState, change: StatusChange
    ) -> tuple[str, Severity] | None:
        reason = change.reason or "connection lost"
        if state.outage is not None:
            if change.new is SessionStatus.DISCONNECTED:
                state.outage.reason = reason
            return None
        outage = _Outage(started_at=change.at, reason=reason)
        state.outage = outage
        summary = self._flapping_summary(state, change, reason=reason)
        if not self._stopped:
            outage.timer = asyncio.get_running_loop().create_task(
                self._report_outage_later(change.key, state, outage),
                name=f"ops-grace {change.key}",
            )
            self._timers.add(outage.timer)
            outage.timer.add_done_callback(self._timers.discard)
        return summary

    def _flapping_summary(
        self, state: _SessionState, change: StatusChange, *, reason: str
    ) -> tuple[str, Severity] | None:
        """Count this disconnect; the flapping summary when one is due."""
        now = change.at
        state.disconnects.append(now)
        while state.disconnects and state.disconnects[0] <= now - FLAP_WINDOW_SECONDS:
            state.disconnects.popleft()
        count = len(state.disconnects)
        if count <= FLAP_LIMIT:
            return None
        if state.quiet_until is not None and now < state.quiet_until:
            log.debug("%s still flapping (%d disconnects); quiet", change.key, count)
            return None
        state.quiet_until = now + self._ops.throttle_seconds
        text = flapping_text(
            change.key, disconnects=count, window_seconds=FLAP_WINDOW_SECONDS, reason=reason
        )
        return text, Severity.WARNING

    async def _report_outage_later(self, key: str, state: _SessionState, outage: _Outage) -> None:
        """The grace timer: warn if the outage outlives the grace period (and any
        flapping quiet period)."""
        try:
            await self._clock.sleep(outage.started_at + self._ops.alert_grace_seconds - self._now())
            while state.quiet_until is not None and self._now() < state.quiet_until:
                await self._clock.sleep(state.quiet_until - self._now())
            seconds = self._now() - outage.started_at
            text = disconnected_text(key, seconds=seconds, reason=outage.reason)
            admitted = self._throttle.admit(
                _company_of(key), ("disconnected", key, outage.reason), text
            )
            if admitted is None:
                return
            outage.reported = True
            await self._post(
                OpsPost(
                    company_id=_company_of(key),
                    text=admitted,
                    session_key=key,
                    severity=Severity.WARNING,
                )
            )
        except Exception:
            log.exception("the grace timer of %s failed", key)

    def _on_permanent(
        self, state: _SessionState, change: StatusChange, *, first_seen: bool
    ) -> tuple[str, Severity] | None:
        self._end_outage(state)
        connected_before, state.connected_before = state.connected_before, False
        if change.new is SessionStatus.LOGGED_OUT and not connected_before:
            if change.old is None or (first_seen and change.old is SessionStatus.OPENING):
                return self._never_linked(state, change.key)
            if change.old is SessionStatus.QRCODE:
                return self._alert(change, login_ended_text(change), Severity.WARNING)
        state.critical = change.new
        return self._alert(change, permanent_text(change), Severity.CRITICAL)

    def _never_linked(self, state: _SessionState, key: str) -> tuple[str, Severity] | None:
        if state.never_linked_noted:
            return None
        state.never_linked_noted = True
        return never_linked_text(key), Severity.INFO

    def _alert(
        self, change: StatusChange, text: str, severity: Severity
    ) -> tuple[str, Severity] | None:
        key = ("status", change.key, str(change.new), change.reason or "")
        admitted = self._throttle.admit(_company_of(change.key), key, text)
        return (admitted, severity) if admitted is not None else None

    def _end_outage(self, state: _SessionState) -> None:
        """A permanent status or a login ends an outage: no warning, no resolved."""
        outage, state.outage = state.outage, None
        if outage is not None and outage.timer is not None and not outage.reported:
            outage.timer.cancel()

    @staticmethod
    async def _settle_timer(outage: _Outage) -> None:
        """Stop the grace timer, or let a warning already being posted finish first
        (so the resolved message follows it)."""
        timer = outage.timer
        if timer is None or timer.done():
            return
        if outage.reported:
            await asyncio.wait({timer})
        else:
            timer.cancel()

    # --- engine events ------------------------------------------------------------

    async def on_engine_event(self, event: EngineEvent) -> None:
        """QR and pairing codes go to the sink; other events are not ours."""
        match event:
            case QRCodeEvent(session=key, code=code, expires_in=expires_in):
                png = self._render_qr(key, code)
                await self._post_login_code(LoginCode(key, code, "qr", png, expires_in))
            case PairCodeEvent(session=key, code=code):
                await self._post_login_code(LoginCode(key, code, "pair"))

    @staticmethod
    def _render_qr(key: str, code: str) -> bytes | None:
        try:
            return qr_png(code)
        except InvalidInput as exc:
            log.error("cannot render the QR code of %s: %s", key, exc.explanation)
            return None

    # --- outbox alerts --------------------------------------------------------------

    async def on_dead_letter(
        self,
        *,
        company_id: str,
        session_key: str | None,
        ticket_id: int | None,
        destination: str,
        error: str,
    ) -> None:
        """A delivery gave up after its retries: critical, throttled per (destination, error)."""
        text = dead_letter_text(destination=destination, ticket_id=ticket_id, error=error)
        admitted = self._throttle.admit(company_id, ("dead-letter", destination, error), text)
        if admitted is None:
            return
        await self._post(
            OpsPost(
                company_id=company_id,
                text=admitted,
                session_key=session_key,
                severity=Severity.CRITICAL,
            )
        )

    async def on_quarantined(
        self, *, company_id: str, source: str, event_id: str, reason: str
    ) -> None:
        """An inbound event was set aside (bridge.core.quarantine): a warning naming
        it, throttled per (source, reason) like dead letters."""
        text = quarantined_text(source=source, event_id=event_id, reason=reason)
        admitted = self._throttle.admit(company_id, ("quarantined", source, reason), text)
        if admitted is None:
            return
        await self._post(OpsPost(company_id=company_id, text=admitted, severity=Severity.WARNING))

    async def on_backlog(self, pending: int) -> None:
        """The outbox's pending count: warn every company once when it goes over
        ``ops.backlog_threshold``, and say resolved when it is back at or under it."""
        threshold = self._ops.backlog_threshold
        if pending > threshold and not self._backlog_over:
            self._backlog_over = True
            text = backlog_text(pending=pending, threshold=threshold)
            for company_id in self._company_ids:
                admitted = self._throttle.admit(company_id, ("backlog",), text)
                if admitted is not None:
                    self._backlog_reported.add(company_id)
                    await self._post(
                        OpsPost(company_id=company_id, text=admitted, severity=Severity.WARNING)
                    )
        elif pending <= threshold and self._backlog_over:
            self._backlog_over = False
            reported, self._backlog_reported = self._backlog_reported, set()
            text = backlog_resolved_text(pending=pending)
            for company_id in self._company_ids:
                if company_id in reported:
                    await self._post(
                        OpsPost(company_id=company_id, text=text, severity=Severity.RESOLVED)
                    )

    async def on_session_moved(self, key: str, *, previous: str, owner: str, lost: bool) -> None:
        """Another instance's session is ``owner``'s now (docs/cluster.md): told once,
        by the new owner; a warning when ``previous`` lost its lease."""
        text = session_moved_text(key, previous=previous, owner=owner, lost=lost)
        severity = Severity.WARNING if lost else Severity.INFO
        company_id = key.partition("/")[0]
        await self._post(OpsPost(company_id=company_id, text=text, severity=severity))

    async def on_journal_backlog(self, name: str, *, pending: int, over: bool) -> None:
        """A journal of refused items (bridge.journal) went past its alert threshold
        (a warning to every company), or back under it (resolved, to those warned)."""
        if over:
            text = journal_backlog_text(name, pending=pending)
            for company_id in self._company_ids:
                admitted = self._throttle.admit(company_id, ("journal", name), text)
                if admitted is not None:
                    self._journal_reported.add((company_id, name))
                    await self._post(
                        OpsPost(company_id=company_id, text=admitted, severity=Severity.WARNING)
                    )
            return
        text = journal_resolved_text(name, pending=pending)
        for company_id in self._company_ids:
            if (company_id, name) in self._journal_reported:
                self._journal_reported.discard((company_id, name))
                await self._post(
                    OpsPost(company_id=company_id, text=text, severity=Severity.RESOLVED)
                )

    async def on_journal_loss(self, name: str, *, reason: str) -> None:
        """An item the database refused could not be kept either: critical, throttled."""
        text = journal_loss_text(name, reason=reason)
        for company_id in self._company_ids:
            admitted = self._throttle.admit(company_id, ("journal-loss", name, reason), text)
            if admitted is not None:
                await self._post(
                    OpsPost(company_id=company_id, text=admitted, severity=Severity.CRITICAL)
                )

    # --- tickets nobody answers (docs/tickets.md#idle-tickets) ------------------------

    async def on_unanswered(
        self, *, session_key: str, ticket_id: int, ticket_label: str, minutes: int
    ) -> None:
        """A pending ticket waited ``minutes`` with no answer: a warning, once per
        ticket (the idle sweep stamps it), so not throttled."""
        text = unanswered_text(
            ticket_id=ticket_id, ticket_label=ticket_label, session_key=session_key, minutes=minutes
        )
        await self._post(
            OpsPost(_company_of(session_key), text, session_key, severity=Severity.WARNING)
        )

    async def on_unanswered_resolved(
        self, *, session_key: str, ticket_id: int, answered: bool
    ) -> None:
        """A ticket reported unanswered was answered (or closed)."""
        text = unanswered_resolved_text(
            ticket_id=ticket_id, session_key=session_key, answered=answered
        )
        await self._post(
            OpsPost(_company_of(session_key), text, session_key, severity=Severity.RESOLVED)
        )

    # --- lifecycle ------------------------------------------------------------------

    async def stop(self) -> None:
        """Cancel the grace timers; no new ones start afterwards."""
        self._stopped = True
        timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        for outcome in await asyncio.gather(*timers, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("a grace timer had failed", exc_info=outcome)

    # --- the sink -------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now()

    async def _post(self, post: OpsPost) -> None:
        if post.has_message:
            log.debug("ops %s for %s: %s", post.severity, post.company_id, post.text)
        try:
            await self._sink.post_ops(post)
        except DatabaseError as exc:  # neither stored nor kept in the ops journal
            log.error("ops post for %s lost (%s): %r", post.company_id, exc.explanation, post.text)
        except Exception:
            log.exception("the ops sink failed to post for %s: %r", post.company_id, post.text)

    async def _post_login_code(self, login: LoginCode) -> None:
        try:
            await self._sink.post_login_code(login)
        except Exception:
            log.exception(
                "the ops sink failed to show the %s login code of %s", login.kind, login.session_key
            )
