"""The SlackFake treats message metadata and paginated reads as Slack documents them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.slack import SlackFake

SALES = "C0SALES"
META = {"event_type": "zapbridge_message", "event_payload": {"txn_id": "zb-msg-1", "part": 0}}


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        slack.add_channel(SALES, "sales")
        yield slack


async def call(fake: SlackFake, method: str, **args: Any) -> dict[str, Any]:
    """A Web API call as a form post (JSON-typed arguments as strings, like the SDK)."""
    form = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in args.items()}
    headers = {"Authorization": f"Bearer {fake.bot_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.api_url + method, data=form, headers=headers) as response,
    ):
        answer: dict[str, Any] = await response.json()
        return answer


async def test_metadata_is_stored_and_returned_only_when_asked_for(fake: SlackFake) -> None:
    root = await call(fake, "chat.postMessage", channel=SALES, text="root")
    reply = await call(
        fake, "chat.postMessage", channel=SALES, text="oi", thread_ts=root["ts"], metadata=META
    )
    assert reply["ok"] and reply["message"]["metadata"] == META

    plain = await call(fake, "conversations.replies", channel=SALES, ts=root["ts"])
    assert [("metadata" in m) for m in plain["messages"]] == [False, False]
    full = await call(
        fake, "conversations.replies", channel=SALES, ts=root["ts"], include_all_metadata="true"
    )
    assert full["messages"][1]["metadata"] == META
    history = await call(fake, "conversations.history", channel=SALES, include_all_metadata=1)
    assert [m["text"] for m in history["messages"]] == ["root"]  # replies stay in threads
    top = await call(
        fake, "chat.postMessage", channel=SALES, text="top", metadata=META
    )  # a channel-level post with metadata
    history = await call(fake, "conversations.history", channel=SALES)
    assert [m["text"] for m in history["messages"]] == ["top", "root"]  # newest first
    assert "metadata" not in history["messages"][0]
    assert top["ok"]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("not json", "invalid_metadata_format"),
        (["a list"], "invalid_metadata_format"),
        ({"event_payload": {"a": 1}}, "invalid_metadata_schema"),
        ({"event_type": "", "event_payload": {}}, "invalid_metadata_schema"),
        ({"event_type": "has spaces", "event_payload": {}}, "invalid_metadata_schema"),
        ({"event_type": "ok_type"}, "invalid_metadata_schema"),
        ({"event_type": "ok_type", "event_payload": "text"}, "invalid_metadata_schema"),
        ({"event_type": "ok_type", "event_payload": {"a": [1, 2]}}, "invalid_metadata_schema"),
        (
            {"event_type": "ok_type", "event_payload": {"a": {"b": {"c": 1}}}},
            "invalid_metadata_schema",
        ),
    ],
)
async def test_malformed_metadata_is_refused(fake: SlackFake, metadata: Any, error: str) -> None:
    answer = await call(fake, "chat.postMessage", channel=SALES, text="x", metadata=metadata)
    assert answer == {"ok": False, "error": error}
    assert fake.messages(SALES) == []


async def test_chat_update_validates_and_replaces_metadata(fake: SlackFake) -> None:
    posted = await call(fake, "chat.postMessage", channel=SALES, text="x", metadata=META)
    bad = await call(fake, "chat.update", channel=SALES, ts=posted["ts"], text="y", metadata=[1])
    assert bad["error"] == "invalid_metadata_format"
    new = {"event_type": "other", "event_payload": {"n": 2, "tags": [{"k": "v"}]}}
    assert (
        await call(fake, "chat.update", channel=SALES, ts=posted["ts"], text="y", metadata=new)
    )["ok"]
    assert fake.messages(SALES)[0]["metadata"] == new


async def test_replies_paginate_with_cursor(fake: SlackFake) -> None:
    root = await call(fake, "chat.postMessage", channel=SALES, text="root")
    for n in range(5):
        await call(fake, "chat.postMessage", channel=SALES, text=f"r{n}", thread_ts=root["ts"])
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        args: dict[str, Any] = {"channel": SALES, "ts": root["ts"], "limit": 2}
        if cursor:
            args["cursor"] = cursor
        page = await call(fake, "conversations.replies", **args)
        pages += 1
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not page["has_more"]:
            assert cursor == ""
            break
    assert pages == 3
    assert seen == ["root", "r0", "r1", "r2", "r3", "r4"]
    junk = await call(fake, "conversations.replies", channel=SALES, ts=root["ts"], cursor="@@")
    assert junk == {"ok": False, "error": "invalid_cursor"}
