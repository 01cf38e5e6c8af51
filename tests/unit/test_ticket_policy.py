"""The pure parts of the ticket policy: business hours, windows, names, targets, stats."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridge.config import BusinessHours, Config, SessionConfig, parse_config
from bridge.core.ticket_policy import (
    accepted_notice,
    assigned_notice,
    check_acceptable,
    check_active,
    check_closable,
    check_member,
    check_movable,
    check_reassignable,
    check_reopenable,
    check_status,
    closed_notice,
    contact_name,
    merge_notice,
    moved_notice,
    opened_notice,
    out_of_hours_due,
    reopen_status,
    reopened_notice,
    taken_notice,
    transfer_target,
    transferred_notice,
    was_open_between,
    within_reopen_window,
)
from bridge.core.ticket_stats import company_timezone, summarize_stats
from bridge.core.tickets import TicketView
from bridge.db import ContactRow, TicketRow
from bridge.errors import InvalidInput

SP = ZoneInfo("America/Sao_Paulo")
NY = ZoneInfo("America/New_York")


def hours(days: frozenset[int], *intervals: tuple[int, int], zone: str = "America/Sao_Paulo"):
    return BusinessHours(zone, "-", "-", days, tuple(intervals))


MON_FRI_8_18 = hours(frozenset(range(5)), (8 * 60, 18 * 60))
NIGHTS = hours(frozenset({4}), (22 * 60, 2 * 60))  # Friday 22:00 → Saturday 02:00


def at(zone: ZoneInfo, *args: int) -> float:
    return datetime(*args, tzinfo=zone).timestamp()


# 2024-01-08 is a Monday.
WAS_OPEN_CASES = [
    # (hours, start, end, expected)
    (MON_FRI_8_18, at(SP, 2024, 1, 12, 19), at(SP, 2024, 1, 13, 10), False),  # Fri → Sat
    (MON_FRI_8_18, at(SP, 2024, 1, 12, 19), at(SP, 2024, 1, 15, 7, 59), False),  # → Mon early
    (MON_FRI_8_18, at(SP, 2024, 1, 12, 19), at(SP, 2024, 1, 15, 8), True),  # opening minute
    (MON_FRI_8_18, at(SP, 2024, 1, 8, 17, 59), at(SP, 2024, 1, 8, 18, 30), True),  # last minute
    (MON_FRI_8_18, at(SP, 2024, 1, 8, 18), at(SP, 2024, 1, 8, 23), False),  # closed at 18:00
    (MON_FRI_8_18, at(SP, 2024, 1, 8, 20), at(SP, 2024, 1, 9, 19), True),  # a whole day
    (MON_FRI_8_18, at(SP, 2024, 1, 8, 20), at(SP, 2024, 1, 8, 19), False),  # backwards
    (MON_FRI_8_18, at(SP, 2024, 1, 1, 20), at(SP, 2024, 3, 1, 20), True),  # months apart
    (hours(frozenset()), at(SP, 2024, 1, 1), at(SP, 2024, 3, 1), False),  # never open
    (NIGHTS, at(SP, 2024, 1, 12, 21), at(SP, 2024, 1, 12, 21, 59), False),
    (NIGHTS, at(SP, 2024, 1, 13, 1), at(SP, 2024, 1, 13, 3), True),  # after midnight
    (NIGHTS, at(SP, 2024, 1, 13, 2), at(SP, 2024, 1, 19, 21), False),  # the week between
]


@pytest.mark.parametrize(("business", "start", "end", "expected"), WAS_OPEN_CASES)
def test_was_open_between(business: BusinessHours, start: float, end: float, expected: bool):
    assert was_open_between(business, start, end) is expected


def test_was_open_between_agrees_with_is_open_across_dst() -> None:
    """Minute by minute over New York's spring-forward weekend and the day after."""
    business = hours(frozenset(range(7)), (1 * 60 + 30, 3 * 60), zone="America/New_York")

    def is_open(moment: float) -> bool:
        return business.is_open(datetime.fromtimestamp(moment, UTC))

    minute = at(NY, 2024, 3, 9, 0)
    while minute < at(NY, 2024, 3, 11, 4):
        # The state holds for a whole minute, so (minute, minute + 60] is open
        # exactly when the middle of this minute or the start of the next one is.
        expected = is_open(minute + 30) or is_open(minute + 60)
        assert was_open_between(business, minute, minute + 60) is expected, minute
        minute += 60


def session(**changes: object) -> SessionConfig:
    base = SessionConfig("sales", "acme", out_of_hours="closed", business_hours=MON_FRI_8_18)
    return replace(base, **changes)


def test_out_of_hours_due() -> None:
    friday_night = at(SP, 2024, 1, 12, 19)
    monday_noon = at(SP, 2024, 1, 15, 12)
    monday_night = at(SP, 2024, 1, 15, 19)
    assert out_of_hours_due(session(), last_sent=None, now=friday_night)
    assert not out_of_hours_due(session(), last_sent=friday_night, now=friday_night + 7200)
    assert not out_of_hours_due(session(), last_sent=None, now=monday_noon)  # open now
    assert out_of_hours_due(session(), last_sent=friday_night, now=monday_night)
    assert not out_of_hours_due(session(out_of_hours=None), last_sent=None, now=friday_night)
    assert not out_of_hours_due(session(business_hours=None), last_sent=None, now=friday_night)


def test_reopen_window() -> None:
    assert within_reopen_window(1000.0, now=1000.0 + 120 * 60, minutes=120)
    assert not within_reopen_window(1000.0, now=1000.0 + 120 * 60 + 1, minutes=120)
    assert not within_reopen_window(None, now=1000.0, minutes=120)
    assert not within_reopen_window(1000.0, now=1001.0, minutes=0)


def ticket_row(**changes: object) -> TicketRow:
    base = TicketRow(
        id=1,
        session_id=1,
        contact_id=1,
        status="closed",
        assignee=None,
        queue=None,
        created_at=0.0,
        first_response_at=None,
        closed_at=None,
        updated_at=0.0,
        greeted_at=None,
        out_of_hours_sent_at=None,
    )
    return replace(base, **changes)


def test_reopen_status() -> None:
    assert reopen_status(ticket_row(first_response_at=5.0)) == "open"
    assert reopen_status(ticket_row(assignee="@bob:x")) == "open"  # accepted, not answered
    assert reopen_status(ticket_row()) == "pending"


def contact_row(**changes: object) -> ContactRow:
    base = ContactRow(1, 1, None, None, None, False, None, None, None, 0.0, 0.0)
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("contact", "name"),
    [
        (contact_row(phone="+5511987654321", push_name="Maria"), "Maria"),
        (contact_row(phone="+5511987654321"), "+5511987654321"),
        (contact_row(lid="123"), "LID 123"),
        (contact_row(is_group=True, group_jid="1@g.us", group_name="Família"), "Família"),
        (contact_row(is_group=True, group_jid="1@g.us"), "1@g.us"),
    ],
)
def test_contact_name(contact: ContactRow, name: str) -> None:
    assert contact_name(contact) == name


def view(**changes: object) -> TicketView:
    base = TicketView(
        id=12,
        session_key="acme/sales",
        company_id="acme",
        contact_id=1,
        contact_name="Maria",
        phone="+5511987654321",
        is_group=False,
        status="pending",
        assignee=None,
        created_at=0.0,
        first_response_at=None,
        closed_at=None,
    )
    return replace(base, **changes)


def test_label() -> None:
    assert view().label == "Maria (+5511987654321)"
    assert view(contact_name="+5511987654321").label == "+5511987654321"
    assert view(phone=None).label == "Maria"
    assert view(phone=None, lid="123456789012345").label == "Maria (LID 123456789012345)"
    assert view(lid="123456789012345").label == "Maria (+5511987654321)"  # phone once known
    assert view(contact_name="LID 123", phone=None, lid="123").label == "LID 123"
    assert view(contact_name="Família", phone=None, is_group=True).label == "Família"
    assert (view().session_name, view().is_active, view(status="closed").is_active) == (
        "sales",
        True,
        False,
    )


CONFIG = textwrap.dedent(
    """\
    homeserver: {address: "http://127.0.0.1:8008", domain: localhost}
    appservice: {as_token: A, hs_token: H}
    companies:
      - id: acme
        name: ACME Support
        admins: ["@alice:localhost"]
        attendants: ["@bob:localhost", "U0BOB"]
        sessions:
          - {name: sales, matrix: true}
          - name: support
            matrix: true
            business_hours: {timezone: America/Sao_Paulo, days: mon-fri, hours: "08:00-18:00"}
      - id: globex
        name: Globex
        admins: ["@hank:localhost"]
        sessions:
          - {name: main, matrix: true}
    """
)


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG, path=Path("/srv/config.yaml"))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("@bob:localhost", "@bob:localhost"),
        ("U0BOB", "U0BOB"),
        ("@alice:localhost", "@alice:localhost"),
        (" support ", "acme/support"),
        ("acme/sales", "acme/sales"),
    ],
)
def test_transfer_target(config: Config, target: str, expected: str) -> None:
    found = transfer_target(config, config.companies[0], target)
    assert (found.key if isinstance(found, SessionConfig) else found) == expected


@pytest.mark.parametrize("target", ["globex/main", "main", "@hank:localhost", "nope", "", "/"])
def test_transfer_target_refused(config: Config, target: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        transfer_target(config, config.companies[0], target)
    assert "neither an admin or attendant of ACME Support nor one of its sessions" in (
        caught.value.explanation
    )
    assert "(sales, support)" in caught.value.explanation


def test_company_timezone(config: Config) -> None:
    assert company_timezone(config.companies[0]) == SP
    assert company_timezone(config.companies[1]) == UTC


def test_summarize_stats() -> None:
    now = at(SP, 2024, 1, 9, 12)
    tuesday = at(SP, 2024, 1, 9, 0, 30)
    recent = [
        ticket_row(id=4, status="open", created_at=tuesday, first_response_at=tuesday + 30),
        ticket_row(id=3, status="pending", created_at=tuesday - 3600),  # Monday 23:30
        ticket_row(id=2, created_at=now - 86400 * 10, first_response_at=now - 86400 * 10 + 90),
        ticket_row(id=1, created_at=now - 86400 * 40, first_response_at=now - 86400 * 40 + 9e3),
    ]
    active = [
        ticket_row(id=4, status="open", assignee="@bob:x"),
        ticket_row(id=3, status="pending"),
        ticket_row(id=5, status="open", assignee="@carol:x"),
        ticket_row(id=6, status="open", assignee="@carol:x"),
    ]
    stats = summarize_stats(
        "acme", by_status={"open": 3}, recent=recent, active=active, now=now, zone=SP
    )
    assert stats.by_status == {"pending": 0, "open": 3, "closed": 0}
    assert stats.created_today == 1
    assert (stats.answered, stats.first_response_median_seconds) == (2, 60)  # 30 and 90 s
    assert stats.first_response_mean_seconds == pytest.approx(60)
    assert list(stats.open_by_assignee.items()) == [("@carol:x", 2), ("@bob:x", 1)]
    assert stats.unassigned == 1
    in_utc = summarize_stats("acme", by_status={}, recent=recent, active=[], now=now, zone=UTC)
    assert in_utc.created_today == 2  # Monday 23:30 in São Paulo is Tuesday in UTC
    assert in_utc.first_response_median_seconds == 60


# --- allowed moves: None when allowed, else the refusal the attendant reads ----------

BOB = "@bob:localhost"
MOVE_CASES = [
    (lambda: check_active(ticket_row(status="open")), None),
    (lambda: check_active(ticket_row(status="closed")), "ticket #1 is closed; reopen it first"),
    (lambda: check_acceptable(ticket_row(status="pending", assignee=BOB), BOB), None),
    (lambda: check_acceptable(ticket_row(status="open", assignee="@eve:x"), BOB), None),
    (
        lambda: check_acceptable(ticket_row(status="open", assignee=BOB), BOB),
        f"ticket #1 is already accepted by {BOB}",
    ),
    (lambda: check_acceptable(ticket_row(status="closed"), BOB), "ticket #1 is closed"),
    (lambda: check_reassignable(ticket_row(assignee="@eve:x"), BOB), None),
    (
        lambda: check_reassignable(ticket_row(assignee=BOB), BOB),
        f"ticket #1 is already assigned to {BOB}",
    ),
    (lambda: check_closable(ticket_row(status="pending")), None),
    (lambda: check_closable(ticket_row(status="closed")), "ticket #1 is already closed"),
    (lambda: check_reopenable(ticket_row(status="closed")), None),
    (
        lambda: check_reopenable(ticket_row(status="open")),
        "ticket #1 is not closed: it is open",
    ),
    (lambda: check_status(None), None),
    (lambda: check_status("open"), None),
    (lambda: check_status("gone"), "unknown ticket status 'gone': use pending, open or closed"),
]


@pytest.mark.parametrize(("check", "refusal"), MOVE_CASES)
def test_allowed_moves(check, refusal: str | None) -> None:
    if refusal is None:
        check()
        return
    with pytest.raises(InvalidInput) as caught:
        check()
    assert caught.value.explanation.startswith(refusal)


def test_check_member(config: Config) -> None:
    acme = config.companies[0]
    check_member(acme, BOB)
    check_member(acme, "@alice:localhost")
    with pytest.raises(InvalidInput) as caught:
        check_member(acme, "@hank:localhost")
    assert (
        caught.value.explanation == "@hank:localhost is not an admin or attendant of ACME Support"
    )


@pytest.mark.parametrize(
    ("session_key", "is_group", "refusal"),
    [
        ("acme/sales", False, None),
        ("acme/support", False, "ticket #1 is already on session support"),
        ("acme/sales", True, "a group ticket cannot move to another session"),
    ],
)
def test_check_movable(
    config: Config, session_key: str, is_group: bool, refusal: str | None
) -> None:
    dest = config.companies[0].sessions[1]  # acme/support
    contact = contact_row(is_group=is_group)
    if refusal is None:
        check_movable(ticket_row(), contact=contact, session_key=session_key, dest=dest)
        return
    with pytest.raises(InvalidInput) as caught:
        check_movable(ticket_row(), contact=contact, session_key=session_key, dest=dest)
    assert caught.value.explanation.startswith(refusal)


@pytest.mark.parametrize(
    ("notice", "expected"),
    [
        (opened_notice(7, by=BOB), f"Ticket #7 opened by {BOB}"),
        (taken_notice(7, by=BOB), f"Ticket #7 taken by {BOB}"),
        (accepted_notice(7, by=BOB, previous=None), f"Ticket #7 accepted by {BOB}"),
        (accepted_notice(7, by=BOB, previous=BOB), f"Ticket #7 accepted by {BOB}"),
        (
            accepted_notice(7, by=BOB, previous="@eve:x"),
            f"Ticket #7 accepted by {BOB} (was @eve:x)",
        ),
        (assigned_notice(7, to="@eve:x", by=BOB), f"Ticket #7 assigned to @eve:x by {BOB}"),
        (transferred_notice(7, to="@eve:x", by=BOB), f"Ticket #7 transferred to @eve:x by {BOB}"),
        (
            moved_notice(7, session_name="support", new_id=9, by=BOB),
            f"Ticket #7 transferred to support by {BOB} (ticket #9 there)",
        ),
        (closed_notice(7, by=BOB), f"Ticket #7 closed by {BOB}"),
        (reopened_notice(7, by=BOB), f"Ticket #7 reopened by {BOB}"),
        (
            merge_notice(view(id=3, contact_name="Maria", phone="+5511987654321"), None),
            "Ticket #3 closed: WhatsApp linked this customer to Maria (+5511987654321)",
        ),
        (
            merge_notice(view(id=3, contact_name="Maria", phone="+5511987654321"), view(id=4)),
            "Ticket #3 closed: WhatsApp linked this customer to Maria (+5511987654321); "
            "the conversation goes on in ticket #4",
        ),
    ],
)
def test_notices(notice: str, expected: str) -> None:
    assert notice == expected
