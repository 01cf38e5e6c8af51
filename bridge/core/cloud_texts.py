"""The words of the Cloud API's rules, in one module: the customer-service window
(an attendant's reply refused, a send WhatsApp refused) and messages WhatsApp
reported as not delivered. See docs/commands.md (``!template``)."""

from __future__ import annotations

from datetime import UTC, datetime

WINDOW_CLOSED_CODE = 131047
"""Meta's error code for a free-form message outside the customer-service window."""

TEMPLATE_ADVICE = (
    "WhatsApp only lets you send an approved template now: "
    "!template <name> [params…] (listed by !template)."
)

_EXCERPT_CHARS = 80


def utc_time(timestamp: float) -> str:
    """``2026-12-05 14:03 UTC``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def window_closed(closed_at: float | None) -> str:
    """The attendant's reply was not sent: the window closed at ``closed_at``, or never
    opened (None: the customer has not written on this ticket)."""
    if closed_at is None:
        return (
            "The customer has not written on this ticket, so WhatsApp's 24-hour window "
            f"is not open; your message was not sent. {TEMPLATE_ADVICE}"
        )
    return f"The customer's 24-hour window closed at {utc_time(closed_at)}; {TEMPLATE_ADVICE}"


def refused_outside_window(explanation: str) -> str:
    """WhatsApp refused a send because the window is closed (its clock and ours may
    disagree); the dead letter's notice in the thread carries it."""
    return f"{explanation.rstrip('. ')}. The customer's 24-hour window is closed: {TEMPLATE_ADVICE}"


def send_failed(reason: str, *, code: int | None, excerpt: str) -> str:
    """WhatsApp reported one of our messages as not delivered."""
    because = f"{reason} (code {code})" if code is not None else reason
    text = f"⚠️ WhatsApp did not deliver this message: {because}"
    if code == WINDOW_CLOSED_CODE:
        text += f". {TEMPLATE_ADVICE}"
    shown = " ".join(excerpt.split())
    if shown:
        cut = shown if len(shown) <= _EXCERPT_CHARS else shown[: _EXCERPT_CHARS - 1] + "…"
        text += f"\n> {cut}"
    return text
