"""The outbox protocol: every operation's stored JSON, exactly as earlier versions
wrote it (rows still pending after an upgrade must decode), and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.core.operations import (
    ChatPresence,
    CreateThread,
    EnsureRooms,
    LoginCode,
    MarkRead,
    MarkReceipt,
    MirrorAction,
    Operation,
    OpsMessage,
    PostMessage,
    PostTranscript,
    SendAttendantMessage,
    SendBotMessage,
    SendTemplate,
    ThreadNotice,
    UnknownOperation,
    UpdateCard,
    decode,
    encode,
)

# Each payload as the code before typed operations wrote it (core/relay.py,
# core/ops_sink.py, app.py), with the operation it stands for.
STORED: list[tuple[dict[str, Any], Operation]] = [
    ({"op": "thread", "ticket": 7}, CreateThread(7)),
    ({"op": "card", "ticket": 7}, UpdateCard(7)),
    ({"op": "notice", "ticket": 7, "text": "⚠️ not delivered"}, ThreadNotice(7, "⚠️ not delivered")),
    (
        {"op": "post", "message": 12, "received_at": 1700000000.25},
        PostMessage(12, received_at=1700000000.25),
    ),
    ({"op": "post", "message": 12}, PostMessage(12)),
    ({"op": "send", "message": 13, "quote": 12}, SendAttendantMessage(13, quote=12)),
    ({"op": "send", "message": 13, "quote": None}, SendAttendantMessage(13, quote=None)),
    ({"op": "send", "message": 14}, SendBotMessage(14)),
    ({"op": "action", "message": 15, "target": 12}, MirrorAction(15, target=12)),
    (
        {
            "op": "template",
            "message": 16,
            "name": "order_update",
            "language": "pt_BR",
            "params": ["1234", "Maria"],
        },
        SendTemplate(16, name="order_update", language="pt_BR", params=("1234", "Maria")),
    ),
    (
        {"op": "template", "message": 17, "name": "hello", "language": "en_US", "params": []},
        SendTemplate(17, name="hello", language="en_US", params=()),
    ),
    ({"op": "receipt", "message": 13, "status": "read"}, MarkReceipt(13, "read")),
    ({"op": "rooms"}, EnsureRooms()),
    ({"op": "read", "ticket": 7, "up_to": 42}, MarkRead(7, 42)),
    (
        {"op": "typing", "ticket": 7, "state": "composing", "at": 1700000000.5},
        ChatPresence(7, "composing", 1700000000.5),
    ),
    ({"op": "transcript", "ticket": 7}, PostTranscript(7)),
    (
        {
            "op": "ops",
            "company": "acme",
            "session": "acme/sales",
            "text": "🔴 acme/sales disconnected",
            "topic": "🔴 disconnected",
            "severity": "critical",
        },
        OpsMessage(
            company="acme",
            session="acme/sales",
            text="🔴 acme/sales disconnected",
            topic="🔴 disconnected",
            severity="critical",
        ),
    ),
    (
        {
            "op": "ops",
            "company": "acme",
            "session": None,
            "text": "⚠️ backlog",
            "topic": None,
            "severity": "warning",
        },
        OpsMessage(company="acme", session=None, text="⚠️ backlog", topic=None, severity="warning"),
    ),
    (
        {
            "op": "login",
            "session": "acme/sales",
            "room": "!ctl",
            "thread": None,
            "text": "Scan this QR code",
            "png": "iVBORw0KGgo=",
        },
        LoginCode(
            session="acme/sales",
            room="!ctl",
            thread=None,
            text="Scan this QR code",
            png="iVBORw0KGgo=",
        ),
    ),
    (
        {
            "op": "login",
            "session": "acme/sales",
            "room": "C0SALES",
            "thread": "1700000000.000100",
            "text": "Pairing code for acme/sales: *ABCD-EFGH*",
            "png": None,
        },
        LoginCode(
            session="acme/sales",
            room="C0SALES",
            thread="1700000000.000100",
            text="Pairing code for acme/sales: *ABCD-EFGH*",
            png=None,
        ),
    ),
]


@pytest.mark.parametrize(("stored", "operation"), STORED)
def test_a_stored_payload_decodes_and_encodes_back_unchanged(
    stored: dict[str, Any], operation: Operation
) -> None:
    assert decode(stored) == operation
    assert encode(operation) == stored
    assert encode(decode(stored)) == stored


def test_every_operation_has_a_stored_example() -> None:
    assert {type(op) for _, op in STORED} == set(Operation.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("payload", [{"op": "teleport", "ticket": 1}, {"ticket": 1}, {}])
def test_an_unknown_operation_is_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(UnknownOperation):
        decode(payload)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"op": "card"}, "ticket"),
        ({"op": "card", "ticket": "7"}, "ticket"),
        ({"op": "card", "ticket": True}, "ticket"),
        ({"op": "notice", "ticket": 7}, "text"),
        ({"op": "post", "message": 1, "received_at": "soon"}, "received_at"),
        ({"op": "send", "message": 1, "quote": "12"}, "quote"),
        ({"op": "action", "message": 1}, "target"),
        ({"op": "template", "message": 1, "name": "x", "language": "en_US"}, "params"),
        (
            {"op": "template", "message": 1, "name": "x", "language": "en_US", "params": [1]},
            "params",
        ),
        ({"op": "template", "message": 1, "language": "en_US", "params": []}, "name"),
        ({"op": "receipt", "message": 1, "status": 3}, "status"),
        ({"op": "transcript", "ticket": "7"}, "ticket"),
        ({"op": "transcript"}, "ticket"),
        ({"op": "read", "ticket": 7}, "up_to"),
        ({"op": "read", "ticket": 7, "up_to": 4.5}, "up_to"),
        ({"op": "typing", "ticket": 7, "state": "composing"}, "at"),
        ({"op": "typing", "ticket": 7, "state": "composing", "at": "soon"}, "at"),
        ({"op": "typing", "ticket": 7, "at": 1.0}, "state"),
        (
            {"op": "ops", "company": "acme", "session": 5, "text": "x", "severity": "info"},
            "session",
        ),
        ({"op": "ops", "company": "acme", "text": "x", "topic": None}, "severity"),
        ({"op": "login", "session": "acme/sales", "room": "!r", "text": "x", "png": 1}, "png"),
    ],
)
def test_a_malformed_operation_is_refused_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=repr(field)) as raised:
        decode(payload)
    assert not isinstance(raised.value, UnknownOperation)
