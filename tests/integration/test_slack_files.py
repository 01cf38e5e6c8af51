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
from bridge.media_limits import SizeLimit
from bridge.model import MediaKind
from bridge.slack.files import FileTooLarge, SlackFiles
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


LIMIT = SizeLimit(MediaKind.DOCUMENT, 1000, "the test takes documents up to 1000 bytes")


def files_for(slack: Host, *, seconds: float = 5) -> SlackFiles:
    return SlackFiles(token=TOKEN, hosts=[slack.origin], seconds=seconds)


async def test_a_file_on_the_file_host_is_fetched_with_the_token(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession
) -> None:
    slack, _ = hosts
    data = await files_for(slack).download(
        session, f"{slack.origin}/files-pri/T-F/a.png", limit=LIMIT
    )
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
        await files_for(slack).download(session, target, limit=LIMIT)
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
    assert await files.download(session, f"{slack.origin}/a", limit=LIMIT) == b"moved inside"
    with pytest.raises(PermanentDeliveryError) as caught:
        await files.download(session, f"{slack.origin}/b", limit=LIMIT)
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
    files = files_for(slack)
    limit = SizeLimit(MediaKind.VIDEO, 1500, "the test takes videos up to 1500 bytes")
    with pytest.raises(FileTooLarge, match="up to 1500 bytes"):
        await files.download(session, f"{slack.origin}/big", limit=limit, announced=2000)
    assert slack.requests == []  # the announced size was enough
    # it lied: refused by the Content-Length, or (chunked) by the bytes counted so far
    counted = r"over 0\.0 MB" if chunked else r"0\.0 MB"
    with pytest.raises(FileTooLarge, match=f"the video is {counted}; the test takes videos"):
        await files.download(session, f"{slack.origin}/big", limit=limit, announced=10)


async def test_the_limit_is_the_one_given_for_the_kind(
    hosts: tuple[Host, Host], session: aiohttp.ClientSession
) -> None:
    """The same 1200 bytes pass as a document and are refused as a video."""
    slack, _ = hosts

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"y" * 1200)

    slack.handler = answer
    files = files_for(slack)
    document = SizeLimit(MediaKind.DOCUMENT, 2000, "documents up to 2000 bytes")
    video = SizeLimit(MediaKind.VIDEO, 1000, "videos up to 1000 bytes")
    assert len(await files.download(session, f"{slack.origin}/f", limit=document)) == 1200
    with pytest.raises(FileTooLarge, match=r"the video is 0\.0 MB; videos up to 1000 bytes"):
        await files.download(session, f"{slack.origin}/f", limit=video)  # Content-Length


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
            await files_for(slack, seconds=0.3).download(
                session, f"{slack.origin}/slow", limit=LIMIT
            )
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
        await files_for(slack).download(session, f"{slack.origin}/x", limit=LIMIT)
    assert isinstance(caught.value, PermanentDeliveryError) is permanent
