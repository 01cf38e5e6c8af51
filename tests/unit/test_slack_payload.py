"""Slack payloads read by type (bridge.slack.payload): the typed readers, and the
envelope check that keeps slack-bolt from crashing on shapes it assumes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_bolt.request.async_request import AsyncBoltRequest

from bridge.errors import InvalidInput
from bridge.slack.payload import MAX_TEXT, Fields, check_envelope

EVENT = {
    "type": "event_callback",
    "event_id": "Ev01",
    "team_id": "T0FAKE",
    "authorizations": [{"team_id": "T0FAKE", "user_id": "U0BOT", "enterprise_id": None}],
    "event": {"type": "message", "user": "U0BOB", "channel": "C0SALES", "ts": "1.2"},
}


def test_readers_return_typed_values() -> None:
    f = Fields(
        {"user": "U0BOB", "ts": "1700000000.000100", "text": "oi", "size": 3, "files": [{}]},
        "event",
    )
    assert f.ident("user") == "U0BOB"
    assert f.ts("ts") == "1700000000.000100"
    assert f.text("text") == "oi"
    assert f.optional_size("size") == 3
    assert [x.path for x in f.objects("files")] == ["event.files[0]"]
    assert f.optional_text("absent") is None and f.optional_obj("absent") is None
    assert f.objects("absent") == []


@pytest.mark.parametrize(
    ("data", "read", "message"),
    [
        ({"user": 5}, lambda f: f.ident("user"), "event.user: expected a Slack id"),
        ({"user": ["U0"]}, lambda f: f.ident("user"), "event.user: expected a Slack id"),
        ({"user": "U0 BOB"}, lambda f: f.ident("user"), "event.user: expected a Slack id"),
        ({"user": "x" * 101}, lambda f: f.ident("user"), "event.user: expected a Slack id"),
        ({}, lambda f: f.ident("user"), "event.user: missing"),
        ({"ts": "abc"}, lambda f: f.ts("ts"), "event.ts: expected a Slack timestamp"),
        ({"ts": 1.5}, lambda f: f.ts("ts"), "event.ts: expected a Slack timestamp"),
        ({"text": {}}, lambda f: f.text("text"), "event.text: expected a string, got an object"),
        ({"text": True}, lambda f: f.text("text"), "event.text: expected a string, got a boolean"),
        ({"text": "a\x00b"}, lambda f: f.text("text"), "event.text: holds a NUL character"),
        (
            {"text": "x" * (MAX_TEXT + 1)},
            lambda f: f.text("text"),
            "event.text: longer than 40000 characters",
        ),
        ({"size": -1}, lambda f: f.optional_size("size"), "event.size: expected a byte count"),
        ({"size": True}, lambda f: f.optional_size("size"), "event.size: expected a byte count"),
        ({"size": "3"}, lambda f: f.optional_size("size"), "event.size: expected a byte count"),
        ({"item": []}, lambda f: f.obj("item"), "event.item: expected an object, got a list"),
        ({"files": {}}, lambda f: f.objects("files"), "event.files: expected a list"),
        ({"files": [1]}, lambda f: f.objects("files"), "event.files[0]: expected an object"),
        ({"files": [{}] * 101}, lambda f: f.objects("files"), "more than 100 entries"),
    ],
)
def test_readers_refuse_wrong_types_with_the_path(data: dict, read: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read(Fields(data, "event"))
    assert message in caught.value.explanation


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidInput, match="expected an object, got a list"):
        Fields([], "")
    with pytest.raises(InvalidInput, match="expected an object, got a string"):
        check_envelope("x")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"event": None}, "event: expected an object, got null"),
        ({"event": "x"}, "event: expected an object, got a string"),
        ({"event": {"type": 5}}, "event.type: expected a string"),
        ({"user": 5}, "user: expected a string or an object"),
        ({"team": ["T0"]}, "team: expected a string or an object"),
        ({"enterprise": True}, "enterprise: expected a string or an object"),
        ({"authorizations": "x"}, "authorizations: expected a list"),
        ({"authorizations": [1]}, "authorizations[0]: expected an object"),
        ({"authorizations": [{"team": 1}]}, "authorizations[0].team: expected a string"),
        ({"response_urls": [[]]}, "response_urls[0]: expected an object"),
        ({"response_urls": None}, "response_urls: expected a list"),
        ({"response_urls": [{}, {}]}, "response_urls: more than one"),
        ({"event": {"type": "message", "item": 3}}, "event.item: expected an object"),
        ({"event": {"type": "message", "channel": 3}}, "event.channel: expected a string"),
        ({"event": {"type": "m", "message": {"user": 1}}}, "event.message.user: expected"),
        ({"type": "block_actions", "actions": []}, "actions: expected at least one action"),
        ({"type": "block_actions", "actions": {}}, "actions: expected a list"),
        ({"type": "block_actions", "actions": [{}]}, "actions[0].action_id: missing"),
        ({"type": "block_actions", "actions": [{"action_id": 1}]}, "actions[0].action_id"),
    ],
)
def test_envelope_shapes_bolt_would_crash_on_are_refused(patch: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_envelope({**EVENT, **patch})
    assert message in caught.value.explanation


def test_envelopes_slack_sends_pass() -> None:
    assert check_envelope(EVENT) is EVENT
    assert check_envelope({"command": "/whatsapp", "text": "", "user_id": "U0"})
    assert check_envelope({"type": "url_verification", "challenge": "c", "token": "t"})


# Any JSON value, with the keys bolt reads made likely.
_KEYS = st.sampled_from(
    [
        "type",
        "event",
        "user",
        "team",
        "channel",
        "enterprise",
        "message",
        "previous_message",
        "item",
        "authorizations",
        "response_urls",
        "actions",
        "action_id",
        "id",
        "is_ext_shared_channel",
        "function_execution_id",
        "function_data",
        "view",
        "assistant_thread",
        "bot_access_token",
        "response_url",
        "thread_ts",
        "user_team",
        "team_id",
        "x",
    ]
)
_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_JSON = st.recursive(
    _SCALARS | st.sampled_from(["event_callback", "block_actions", "message", "E1", "T1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=8))
def test_what_the_check_lets_through_bolt_can_read(payload: dict[str, Any]) -> None:
    """The property the check exists for: bolt takes every payload the check accepts
    (as bridge.slack.http hands it over) without raising, and the check raises only
    InvalidInput."""
    try:
        check_envelope(payload)
    except InvalidInput:
        return
    AsyncBoltRequest(body=payload, mode="socket_mode")
