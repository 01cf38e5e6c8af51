"""The thin Web API call (``bridge.slack.webapi``) answers what the slack_sdk call did:
the same request at the fake, the same data, the same errors from ``PacedApi``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.clock import SystemClock
from bridge.errors import DeliveryError
from bridge.slack.ratelimit import ChannelPacer, PacedApi, PermanentSlackCallError, SlackCallError
from tests.fakes.slack import SlackFake

CHANNEL = "C0SALES"


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as fake:
        fake.add_channel(CHANNEL, "sales")
        fake.add_channel("C0OUT", "outside", bot_member=False)
        yield fake


@pytest.fixture(params=["thin", "sdk"])
async def api(request: pytest.FixtureRequest, fake: SlackFake) -> AsyncIterator[PacedApi]:
    """A PacedApi whose client has its session (the thin call) or none (slack_sdk)."""
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[])
    pacer = ChannelPacer(clock=SystemClock(), rate=1000.0, burst=1000, retries=0)
    async with aiohttp.ClientSession() as http:
        if request.param == "thin":
            client.session = http
        yield PacedApi(client, pacer, bot_name="zapbridge")


async def test_a_post_sends_the_same_request_and_answers_the_same_data(
    fake: SlackFake, api: PacedApi
) -> None:
    metadata = {"event_type": "zapbridge_message", "event_payload": {"txn_id": "t1", "part": 0}}
    found = await api.call(
        "chat_postMessage",
        pace=CHANNEL,
        channel=CHANNEL,
        text="olá *mundo*",
        username="Maria",
        thread_ts=None,  # left out, as slack_sdk leaves out None
        unfurl_links=False,
        metadata=metadata,
    )
    assert found["ok"] is True and found["channel"] == CHANNEL
    (call,) = fake.calls_of("chat.postMessage")
    assert call.token == fake.bot_token
    assert call.args == {
        "channel": CHANNEL,
        "text": "olá *mundo*",
        "username": "Maria",
        "unfurl_links": False,
        "metadata": metadata,
    }
    assert fake.messages(CHANNEL)[-1]["ts"] == found["ts"]


async def test_an_update_goes_through_as_well(fake: SlackFake, api: PacedApi) -> None:
    posted = await api.call("chat_postMessage", pace=CHANNEL, channel=CHANNEL, text="a")
    await api.call("chat_update", pace=CHANNEL, channel=CHANNEL, ts=posted["ts"], text="b")
    assert fake.messages(CHANNEL)[-1]["text"] == "b"


async def test_a_refusal_no_retry_fixes_is_permanent_and_says_what_to_do(api: PacedApi) -> None:
    with pytest.raises(PermanentSlackCallError) as caught:
        await api.call("chat_postMessage", pace="C0OUT", channel="C0OUT", text="x")
    assert caught.value.error == "not_in_channel"
    assert "invite @zapbridge" in caught.value.explanation


async def test_a_rate_limit_carries_slacks_retry_after(fake: SlackFake, api: PacedApi) -> None:
    fake.script("chat.postMessage", retry_after=7)
    with pytest.raises(DeliveryError) as caught:
        await api.call("chat_postMessage", pace=CHANNEL, channel=CHANNEL, text="x")
    assert caught.value.retry_after == 7
    assert not caught.value.ambiguous  # a 429 posted nothing


async def test_a_server_error_is_ambiguous(fake: SlackFake, api: PacedApi) -> None:
    fake.script("chat.postMessage", error="internal_error", status=503, applied=True)
    with pytest.raises(SlackCallError) as caught:
        await api.call("chat_postMessage", pace=CHANNEL, channel=CHANNEL, text="x")
    assert caught.value.error == "internal_error"
    assert caught.value.ambiguous  # it may have posted: the ledger reads before a retry


async def test_a_refused_connection_is_an_ambiguous_delivery_error(api: PacedApi) -> None:
    api.client.base_url = "http://127.0.0.1:9/api/"  # discard port: nothing listens
    with pytest.raises(DeliveryError) as caught:
        await api.call("chat_postMessage", pace=CHANNEL, channel=CHANNEL, text="x")
    assert "chat_postMessage failed" in caught.value.explanation
    assert caught.value.ambiguous
