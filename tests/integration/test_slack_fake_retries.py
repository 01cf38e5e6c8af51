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


async def test_envelopes_spread_over_the_open_sockets_and_a_retry_goes_to_another(
    fake: SlackFake,
) -> None:
    """One socket per bridge instance: each envelope reaches one of them, in turn, and
    an envelope that one socket left unacknowledged is retried on another."""
    web = AsyncWebClient(base_url=fake.api_url, token=fake.bot_token)
    urls = [(await web.apps_connections_open(app_token=fake.app_token))["url"] for _ in range(2)]
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(urls[0]) as one,
        http.ws_connect(urls[1]) as two,
    ):
        for ws in (one, two):
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await fake.wait_connected(count=2)
        sent = [
            await fake.send_event(fake.user_message("C0SALES", "U0BOB", f"m{n}")) for n in range(4)
        ]
        got_one = [(await one.receive_json(timeout=5))["envelope_id"] for _ in range(2)]
        got_two = [(await two.receive_json(timeout=5))["envelope_id"] for _ in range(2)]
        assert sorted(got_one + got_two) == sorted(sent)  # each once, two per socket
        for envelope_id in got_two:
            await two.send_str(json.dumps({"envelope_id": envelope_id}))
            await fake.wait_ack(envelope_id)
        assert await fake.retry_unacked(after=0) == 2  # the two `one` never acknowledged
        retried = [await two.receive_json(timeout=5) for _ in range(2)]
        assert sorted(r["envelope_id"] for r in retried) == sorted(got_one)
        assert all(r["retry_attempt"] == 1 for r in retried)
