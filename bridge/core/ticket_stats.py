"""A company's ticket figures for ``!stats``: read from the repositories, summed up
from ticket rows."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo

from bridge.config import CompanyConfig
from bridge.core.ticket_policy import CLOSED, OPEN, PENDING, STATUSES
from bridge.db import Repositories, TicketRow

FIRST_RESPONSE_WINDOW_DAYS = 30
"""``stats`` reports first response times of tickets created this many days back."""

STATS_SCAN_LIMIT = 10_000
"""Newest tickets ``stats`` looks at for today's count and response times."""

_DAY = 86_400.0


@dataclass(frozen=True)
class CompanyStats:
    """A company's ticket figures for ``!stats``."""

    company_id: str
    by_status: Mapping[str, int]  # every status, exact
    created_today: int  # since midnight in ``timezone``
    timezone: str  # the company's (its first session with business hours), else UTC
    first_response_median_seconds: float | None  # None when nothing was answered
    first_response_mean_seconds: float | None
    answered: int  # tickets the response times cover (created in the last 30 days)
    open_by_assignee: Mapping[str, int]  # non-closed tickets per assignee, most first
    unassigned: int  # non-closed tickets nobody owns
    messages_in: int = 0  # from customers, every ticket of the company
    messages_out: int = 0  # to customers (attendants, auto replies, the phone)
    csat_count: int = 0  # rated tickets (docs/tickets.md#satisfaction)
    csat_average: float | None = None  # None: no rating yet
    active_by_queue: Mapping[str, int] = field(default_factory=dict)
    """Tickets not closed per queue ("" for none); docs/tickets.md#queues."""


def company_timezone(company: CompanyConfig) -> tzinfo:
    """The zone of the company's first session with business hours, else UTC."""
    for session in company.sessions:
        if session.business_hours is not None:
            return session.business_hours.tzinfo
    return UTC


def summarize_stats(
    company_id: str,
    *,
    by_status: Mapping[str, int],
    recent: Iterable[TicketRow],
    active: Iterable[TicketRow],
    now: float,
    zone: tzinfo,
) -> CompanyStats:
    """The figures of ``!stats`` from the newest tickets and the non-closed ones."""
    recent = list(recent)
    midnight = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    since = now - FIRST_RESPONSE_WINDOW_DAYS * _DAY
    waits = [
        t.first_response_at - t.created_at
        for t in recent
        if t.first_response_at is not None and t.created_at >= since
    ]
    owners: dict[str, int] = {}
    unassigned = 0
    for ticket in active:
        if ticket.assignee is None:
            unassigned += 1
        else:
            owners[ticket.assignee] = owners.get(ticket.assignee, 0) + 1
    return CompanyStats(
        company_id=company_id,
        by_status={status: by_status.get(status, 0) for status in STATUSES},
        created_today=sum(1 for t in recent if t.created_at >= midnight.timestamp()),
        timezone=str(zone),
        first_response_median_seconds=statistics.median(waits) if waits else None,
        first_response_mean_seconds=statistics.fmean(waits) if waits else None,
        answered=len(waits),
        open_by_assignee=dict(sorted(owners.items(), key=lambda item: (-item[1], item[0]))),
        unassigned=unassigned,
    )


async def read_company_stats(
    repos: Repositories, company: CompanyConfig, *, now: float
) -> CompanyStats:
    """The figures of ``!stats``: exact counts per status and message direction, the
    satisfaction ratings, and the rest from the newest tickets."""
    by_status = dict.fromkeys((PENDING, OPEN, CLOSED), 0)
    volume = {"in": 0, "out": 0}
    for session in await repos.sessions.list_by_company(company.id):
        for status, count in (await repos.tickets.count_by_status(session.id)).items():
            by_status[status] += count
        for direction, count in (await repos.messages.count_by_direction(session.id)).items():
            volume[direction] += count
    list_by_company = repos.tickets.list_by_company
    recent = await list_by_company(company.id, limit=STATS_SCAN_LIMIT)
    active = [
        row
        for status in (PENDING, OPEN)
        for row in await list_by_company(company.id, status=status, limit=STATS_SCAN_LIMIT)
    ]
    summary = summarize_stats(
        company.id,
        by_status=by_status,
        recent=recent,
        active=active,
        now=now,
        zone=company_timezone(company),
    )
    rated, average = await repos.tickets.csat_summary(company.id)
    return replace(
        summary,
        messages_in=volume["in"],
        messages_out=volume["out"],
        csat_count=rated,
        csat_average=average,
    )
