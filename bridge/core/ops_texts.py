"""Every text the ops channel and the control rooms' topics get (see
docs/operations.md, "The ops channel"); :mod:`bridge.core.ops` decides when."""

from __future__ import annotations

from bridge.whatsapp.status import SessionStatus, StatusChange


def topic_text(change: StatusChange) -> str:
    """``acme/sales: CONNECTED +5511900000001``; other statuses add their reason."""
    line = f"{change.key}: {change.new}"
    if change.phone:
        line += f" {change.phone}"
    if change.new is not SessionStatus.CONNECTED and change.reason:
        line += f" · {change.reason}"
    return line


def seconds_text(seconds: float) -> str:
    return f"{round(seconds)} s"


def disconnected_text(key: str, *, seconds: float, reason: str) -> str:
    return f"⚠️ {key} DISCONNECTED for {seconds_text(seconds)}: {reason}; reconnecting"


def reconnected_text(key: str, *, seconds: float) -> str:
    return f"✅ {key} CONNECTED again (resolved after {seconds_text(seconds)})"


def flapping_text(key: str, *, disconnects: int, window_seconds: float, reason: str) -> str:
    minutes = round(window_seconds / 60)
    return (
        f"⚠️ {key} is flapping: {disconnects} disconnects in the last {minutes} min "
        f"(last reason: {reason}); DISCONNECTED now, reconnecting"
    )


def permanent_text(change: StatusChange) -> str:
    """A permanent status: what happened and what a human must do."""
    reason = f": {change.reason}" if change.reason else ""
    action = f" {change.action}" if change.action else ""
    return f"🛑 {change.key} {change.new}{reason}.{action}"


def login_ended_text(change: StatusChange) -> str:
    """A login (QR or pairing code) that ended without a connection."""
    reason = change.reason or "login not completed"
    action = f" {change.action}" if change.action else ""
    return f"⚠️ {change.key} LOGGED_OUT: {reason}.{action}"


def never_linked_text(key: str) -> str:
    return (
        f"{key} is not linked to a phone yet (LOGGED_OUT): "
        "an admin types !login in its control room."
    )


def login_code_text(change: StatusChange) -> str:
    reason = f": {change.reason}" if change.reason else ""
    return f"{change.key} QRCODE{reason}"


def connected_text(key: str, *, phone: str | None, was: SessionStatus | None) -> str:
    line = f"{key} CONNECTED as {phone}" if phone else f"{key} CONNECTED"
    return f"✅ {line} (was {was})" if was is not None else line


def dead_letter_text(*, destination: str, ticket_id: int | None, error: str) -> str:
    ticket = f" for ticket #{ticket_id}" if ticket_id is not None else ""
    return f"❌ Not delivered to {destination}{ticket} after retries: {error}"


def quarantined_text(*, source: str, event_id: str, reason: str) -> str:
    return (
        f"⚠️ An event from {source} could not be handled and was set aside, not relayed: "
        f"{event_id} ({reason})"
    )


def backlog_text(*, pending: int, threshold: int) -> str:
    return f"⚠️ Outbox backlog: {pending} deliveries pending (alert threshold {threshold})"


def backlog_resolved_text(*, pending: int) -> str:
    return f"✅ Outbox backlog resolved: {pending} deliveries pending"


def session_moved_text(key: str, *, previous: str, owner: str, lost: bool) -> str:
    """A session taken over by another instance (docs/cluster.md#ownership-and-fencing)."""
    name = key.partition("/")[2] or key
    why = "lost its lease" if lost else "stopped"
    return f"🔀 {name} moved from {previous} to {owner} after {previous} {why}"


_JOURNAL_ITEMS = {"whatsapp": "WhatsApp events", "ops": "ops alerts"}


def journal_backlog_text(name: str, *, pending: int) -> str:
    items = _JOURNAL_ITEMS.get(name, f"{name} items")
    return (
        f"⚠️ The database is refusing {items}: {pending} are kept in the local journal "
        "and will be replayed in order once it takes them again"
    )


def journal_resolved_text(name: str, *, pending: int) -> str:
    items = _JOURNAL_ITEMS.get(name, f"{name} items")
    return f"✅ The database takes {items} again: {pending} left to replay from the journal"


def journal_loss_text(name: str, *, reason: str) -> str:
    items = _JOURNAL_ITEMS.get(name, f"{name} items")
    return f"❌ One of the {items} was lost: the database refused it and {reason}"


def unanswered_text(*, ticket_id: int, ticket_label: str, session_key: str, minutes: int) -> str:
    return (
        f"⏰ Ticket #{ticket_id} ({ticket_label}) on {session_key} has had no answer "
        f"for {minutes} min"
    )


def unanswered_resolved_text(*, ticket_id: int, session_key: str, answered: bool) -> str:
    how = "answered" if answered else "closed without an answer"
    return f"✅ Ticket #{ticket_id} on {session_key} {how}"


def suppressed_text(count: int) -> str:
    return f" ({count} similar alert{'' if count == 1 else 's'} suppressed)"
