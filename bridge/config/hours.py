"""A ``business_hours`` section (a session's or a queue's): every key required;
``days`` and ``hours`` kept as written and parsed."""

from __future__ import annotations

from bridge.config.kinds import DAYS, HOURS, TIMEZONE
from bridge.config.mapping import MappingReader
from bridge.config.schema import BusinessHours


def read_business_hours(owner: MappingReader) -> BusinessHours | None:
    """``owner``'s ``business_hours``, or None when absent (or reported)."""
    if not owner.has("business_hours"):
        owner.raw("business_hours")
        return None
    m = owner.child("business_hours")
    timezone = m.get("timezone", TIMEZONE)
    days_text = m.raw("days")
    weekdays = m.get("days", DAYS)
    hours_text = m.raw("hours")
    intervals = m.get("hours", HOURS)
    m.finish()
    if timezone is None or weekdays is None or intervals is None:
        return None
    return BusinessHours(timezone, str(days_text), str(hours_text), weekdays, intervals)
