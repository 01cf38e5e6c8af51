"""The satisfaction decisions that need no database (docs/tickets.md#satisfaction)."""

from __future__ import annotations

import pytest

from bridge.core import command_texts
from bridge.core.satisfaction import rating_due, rating_notice, score_of
from bridge.db import TicketRow
from bridge.model import Message, Party, Reaction, Text

MARIA = Party(phone="+5511987654321")


def message(body: str, *, from_me: bool = False) -> Message:
    return Message(chat=MARIA, sender=MARIA, content=Text(body), from_me=from_me)


@pytest.mark.parametrize(
    ("body", "score"),
    [
        ("1", 1),
        ("5", 5),
        (" 4\n", 4),
        ("0", None),
        ("6", None),
        ("10", None),
        ("4/5", None),
        ("nota 4", None),
        ("", None),
        ("٣", None),  # a digit of another script is not a score
    ],
)
def test_score_of_a_text(body: str, score: int | None) -> None:
    assert score_of(message(body)) == score


def test_our_own_messages_and_actions_are_never_scores() -> None:
    assert score_of(message("5", from_me=True)) is None
    reaction = Message(chat=MARIA, sender=MARIA, content=Reaction(target="W1", emoji="5"))
    assert score_of(reaction) is None


def ticket(**fields: object) -> TicketRow:
    base: dict[str, object] = {
        "id": 1,
        "session_id": 1,
        "contact_id": 1,
        "status": "closed",
        "assignee": None,
        "queue": None,
        "created_at": 0.0,
        "first_response_at": None,
        "closed_at": 1000.0,
        "updated_at": 1000.0,
        "greeted_at": None,
        "out_of_hours_sent_at": None,
        "csat_asked_at": 1000.0,
    }
    return TicketRow(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row", "now", "due"),
    [
        (ticket(), 1000.0 + 60 * 60, True),  # the window's last second
        (ticket(), 1000.0 + 60 * 60 + 1, False),
        (ticket(csat_asked_at=None), 1001.0, False),  # never asked
        (ticket(csat_score=3), 1001.0, False),  # rated already
        (ticket(status="open"), 1001.0, False),  # reopened meanwhile
    ],
)
def test_rating_due(row: TicketRow, now: float, due: bool) -> None:
    assert rating_due(row, now=now, window_minutes=60) is due


def test_the_notice_and_the_stats_line() -> None:
    assert rating_notice(4) == "⭐ Rating: 4/5"
    figures = {
        "by_status": {"pending": 0, "open": 1, "closed": 3},
        "created_today": 1,
        "median_first_response": None,
        "mean_first_response": None,
        "messages_in": 4,
        "messages_out": 5,
    }
    without = command_texts.stats("ACME", **figures)  # type: ignore[arg-type]
    assert "Satisfaction" not in without
    rated = command_texts.stats("ACME", **figures, ratings=3, average_rating=4.333)  # type: ignore[arg-type]
    assert rated == without + "\nSatisfaction: 4.3/5 average over 3 ratings"
    one = command_texts.stats("ACME", **figures, ratings=1, average_rating=5.0)  # type: ignore[arg-type]
    assert one.endswith("\nSatisfaction: 5.0/5 average over 1 rating")
