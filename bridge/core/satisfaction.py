"""Satisfaction ratings (docs/tickets.md#satisfaction).

When a session has ``csat.enabled``, closing a ticket with ``!close`` also sends the
customer ``csat.question`` (after the farewell) and stamps ``csat_asked_at``. The
customer's next message, when it is a digit ``1``–``5`` and arrives within
``csat.window_minutes`` of the question, is that ticket's rating: it is recorded on
the closed ticket (once), shown in its thread, thanked with ``csat.thanks``, and opens
no ticket. Anything else, a second digit included, is routed as any message is.

:class:`~bridge.core.tickets.TicketService` asks this module before it reopens or
creates a ticket; the decisions that need no database are plain functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge.config import SessionConfig
from bridge.core.ticket_policy import CLOSED
from bridge.db import Repositories, TicketRow
from bridge.metrics import Metrics
from bridge.model import Message, Text

log = logging.getLogger("bridge.core.satisfaction")

SCORES = ("1", "2", "3", "4", "5")
"""The ratings, as the customer types them (ASCII digits only)."""


def score_of(message: Message) -> int | None:
    """The rating a customer's message gives: a text that is one digit 1–5, else None."""
    if message.from_me or not isinstance(message.content, Text):
        return None
    word = message.content.body.strip()
    return int(word) if word in SCORES else None


def rating_due(ticket: TicketRow, *, now: float, window_minutes: int) -> bool:
    """Whether ``ticket`` is closed, was asked for a rating at most ``window_minutes``
    ago, and has none yet."""
    asked = ticket.csat_asked_at
    return (
        ticket.status == CLOSED
        and ticket.csat_score is None
        and asked is not None
        and now - asked <= window_minutes * 60
    )


def rating_notice(score: int) -> str:
    """What a ticket's thread shows when its customer rated it."""
    return f"⭐ Rating: {score}/5"


@dataclass(frozen=True)
class Rating:
    """A customer's rating, recorded on their closed ticket."""

    ticket: TicketRow
    score: int


class Satisfaction:
    """Asks for ratings at close and takes them from the customer's next message."""

    def __init__(self, repos: Repositories, *, metrics: Metrics | None = None) -> None:
        self._tickets = repos.tickets
        self._metrics = metrics

    async def ask(
        self, session: SessionConfig | None, ticket: TicketRow, *, is_group: bool, now: float
    ) -> str | None:
        """The question to send after closing ``ticket``, stamped; None when the
        session asks none (or the chat is a group, or the session has since been
        removed from the config)."""
        if session is None or not session.csat.enabled or is_group:
            return None
        if not await self._tickets.mark_csat_asked(ticket.id, now=now):
            return None
        return session.csat.question

    async def take_rating(
        self,
        session: SessionConfig,
        *,
        session_id: int,
        contact_id: int,
        message: Message,
        now: float,
    ) -> Rating | None:
        """The rating ``message`` gives the contact's latest ticket, recorded and
        counted (``zapbridge_csat_ratings_total``); None when it is a normal message
        (no rating due, not a digit, already rated)."""
        score = score_of(message)
        if score is None or not session.csat.enabled:
            return None
        latest = await self._tickets.find_latest(session_id, contact_id)
        window = session.csat.window_minutes
        if latest is None or not rating_due(latest, now=now, window_minutes=window):
            return None
        if not await self._tickets.record_csat(latest.id, score, now=now):
            return None  # a concurrent digit rated it first: this one is a message
        log.info("ticket #%d rated %d/5", latest.id, score)
        if self._metrics is not None:
            self._metrics.csat_ratings.labels(session=session.key, score=str(score)).inc()
        return Rating(latest, score)
