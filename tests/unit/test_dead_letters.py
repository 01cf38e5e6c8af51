"""Dead letters outside any ticket: an ops or login row is reported to the company
its key names; a row naming no company (a frontend's rooms) to nobody. Ticket rows
are covered end to end in tests/integration/test_core_relay.py."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.core.dead_letters import DeadLetters
from bridge.core.operations import EnsureRooms, LoginCode, OpsMessage, encode
from bridge.db.outbox import OutboxRow


class RecordingNotifier:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def on_dead_letter(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def row(key: str, payload: dict[str, Any]) -> OutboxRow:
    return OutboxRow(
        id=9,
        destination="matrix",
        ordering_key=key,
        payload=payload,
        status="dead",
        attempts=4,
        next_attempt_at=0.0,
        last_error="gone",
        created_at=0.0,
        updated_at=0.0,
    )


OPS = OpsMessage(company="acme", session=None, text="⚠️", topic=None, severity="warning")
LOGIN = LoginCode(session="globex/main", room="!ctl", thread=None, text="QR", png=None)


@pytest.mark.parametrize(
    ("key", "payload", "company"),
    [
        ("ops:acme:matrix", encode(OPS), "acme"),
        ("login:globex/main:matrix", encode(LOGIN), "globex"),
        ("login:globex/main:matrix", {"op": "login"}, "globex"),  # malformed: still reported
    ],
)
async def test_a_row_outside_tickets_is_reported_to_its_company(
    key: str, payload: dict[str, Any], company: str
) -> None:
    notifier = RecordingNotifier()
    dead = DeadLetters(None, tickets=None, outgoing=None, notifier=notifier)  # type: ignore[arg-type]
    await dead(row(key, payload), "M_FORBIDDEN")
    assert notifier.calls == [
        {
            "company_id": company,
            "session_key": None,
            "ticket_id": None,
            "destination": "matrix",
            "error": "M_FORBIDDEN",
        }
    ]


async def test_a_row_naming_no_company_is_reported_to_nobody() -> None:
    notifier = RecordingNotifier()
    dead = DeadLetters(None, tickets=None, outgoing=None, notifier=notifier)  # type: ignore[arg-type]
    await dead(row("rooms:matrix", encode(EnsureRooms())), "M_FORBIDDEN")
    assert notifier.calls == []
