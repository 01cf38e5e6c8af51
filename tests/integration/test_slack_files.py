"""Downloads of files attendants share (bridge.slack.files): the bot token goes only
to the configured file hosts, sizes are capped before and while reading, and the
download has a deadline. Two local servers stand for Slack's file host and for
"evil.example", and record every request they get."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bridge.errors import DeliveryError, PermanentDeliveryError
from bridge.slack.files import SlackFiles
from tests.harness.slack import RecordingHost as Host

TOKEN = "xoxb-secret-bot-token"


@pytest.fixture
async def hosts() -> AsyncIterator[tuple[Host, Host]]:
    async with Host() as slack, Host() as evil:
        yield slack, evil


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def files_for(slack: Host, *, max_bytes: int = 1000, seconds: float = 5) -> SlackFiles:
    return SlackFiles(token=TOKEN, hosts=[slack.origin], max_bytes=max_bytes, seconds=seconds)


async def test_a_file_on_the_file_host_is_fetched_with_the_token(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession
) -> None:
    slack, _ = hosts
    data = await files_for(slack).download(session, f"{slack.origin}/files-pri/T-F/a.png")
    assert data == b"file bytes"
    assert slack.requests == [("/files-pri/T-F/a.png", f"Bearer {TOKEN}")]


@pytest.mark.parametrize(
    "url",
    [
        "{evil}/files-pri/T-F/a.png",
        "{evil_https}/files-pri/x",  # same host, another scheme and port
        "{slack_host}@{evil_host}/x",  # userinfo that looks like the file host
        "/files-pri/T-F/a.png",  # relative
        "file:///etc/passwd",
        "not a url at all",
    ],
)
async def test_any_other_address_is_refused_without_a_request(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession, url: str
) -> None:
    slack, evil = hosts
    target = url.format(
        evil=evil.origin,
        evil_https=evil.origin.replace("http://", "https://"),
        slack_host=slack.origin,
        evil_host=evil.origin.removeprefix("http://"),
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        await files_for(slack).download(session, target)
    assert "not one of Slack's file hosts" in caught.value.explanation or (
        "not an http(s) URL" in caught.value.explanation
    )
    assert TOKEN not in caught.value.explanation
    assert evil.requests == [] and slack.requests == []


async def test_a_redirect_away_from_the_file_host_is_not_followed(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession
) -> None:
    slack, evil = hosts

    async def redirect(request: web.Request) -> web.StreamResponse:
        if request.path == "/inside":
            return web.Response(body=b"moved inside")
        target = "/inside" if request.path == "/a" else f"{evil.origin}/steal"
        raise web.HTTPFound(target)

    slack.handler = redirect
    files = files_for(slack)
    assert await files.download(session, f"{slack.origin}/a") == b"moved inside"
    with pytest.raises(PermanentDeliveryError) as caught:
        await files.download(session, f"{slack.origin}/b")
    assert f"redirected to {evil.origin.removeprefix('http://')}," in caught.value.explanation
    assert evil.requests == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_sizes_are_capped_before_and_while_reading(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession, chunked: bool
) -> None:
    slack, _ = hosts

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = 5000
        await response.prepare(request)
        for _ in range(5):
            await response.write(b"x" * 1000)
        return response

    slack.handler = big
    files = files_for(slack, max_bytes=1500)
    with pytest.raises(PermanentDeliveryError, match="larger than 1500 bytes"):
        await files.download(session, f"{slack.origin}/big", announced=2000)
    assert slack.requests == []  # the announced size was enough
    with pytest.raises(PermanentDeliveryError, match="larger than 1500 bytes"):
        await files.download(session, f"{slack.origin}/big", announced=10)  # it lied


async def test_a_download_that_stalls_is_cut_off(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession
) -> None:
    slack, _ = hosts
    never = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        await never.wait()
        return web.Response()

    slack.handler = stall
    try:
        with pytest.raises(DeliveryError, match=r"took over 0\.3 s") as caught:
            await files_for(slack, seconds=0.3).download(session, f"{slack.origin}/slow")
    finally:
        never.set()  # let the server stop
    assert not isinstance(caught.value, PermanentDeliveryError)  # the event is retried


@pytest.mark.parametrize(
    ("status", "permanent"), [(404, True), (403, True), (429, False), (500, False), (503, False)]
)
async def test_status_answers(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession, status: int, permanent: bool
) -> None:
    slack, _ = hosts

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status)

    slack.handler = answer
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as caught:
        await files_for(slack).download(session, f"{slack.origin}/x")
    assert isinstance(caught.value, PermanentDeliveryError) is permanent
