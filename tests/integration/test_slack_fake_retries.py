"""The Slack fake retries an envelope nobody acknowledged, as Slack does (``retry_unacked``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import SlackFake


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as fake:
        fake.add_channel("C0SALES", "sales")
        fake.add_user("U0BOB", name="bob")
        yield fake


async def test_an_unacknowledged_envelope_is_delivered_again_until_acked(fake: SlackFake) -> None:
    web = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token)
    url = (await web.apps_connections_open(app_token=fake.app_token))["url"]
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        envelope_id = await fake.send_event(fake.user_message("C0SALES", "U0BOB", "oi"))
        first = await ws.receive_json(timeout=5)
        assert (first["envelope_id"], first["retry_attempt"]) == (envelope_id, 0)
        assert await fake.retry_unacked(after=60) == 0  # not due yet
        assert await fake.retry_unacked(after=0) == 1
        again = await ws.receive_json(timeout=5)
        assert (again["envelope_id"], again["retry_attempt"]) == (envelope_id, 1)
        assert again["retry_reason"] == "timeout"
        assert again["payload"]["event_id"] == first["payload"]["event_id"]  # the same event
        await ws.send_str(json.dumps({"envelope_id": envelope_id}))
        await fake.wait_ack(envelope_id)
        assert await fake.retry_unacked(after=0) == 0
