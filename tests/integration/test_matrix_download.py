"""``download_within`` against a scripted media endpoint on a free port: the
Content-Length refused before the body is read, a body without a length cut off
as soon as it passes the limit, errors by status, the request mautrix would make."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from mautrix.api import HTTPAPI
from mautrix.client import ClientAPI
from mautrix.types import UserID

from bridge.config import MediaConfig
from bridge.errors import DeliveryError, PermanentDeliveryError
from bridge.matrix.download import download_within
from bridge.matrix.local_synapse import free_port
from bridge.media_limits import MB, toward_whatsapp
from bridge.model import MediaKind

LIMIT = toward_whatsapp(MediaKind.DOCUMENT, MediaConfig(max_size_mb=1))
CHUNK = 64 * 1024


@dataclass
class MediaServer:
    """``/_matrix/client/v1/media/download/localhost/<id>``: ``size`` bytes, with a
    Content-Length or chunked; records what it managed to write and what it was asked."""

    sizes: dict[str, int] = field(default_factory=dict)
    chunked: set[str] = field(default_factory=set)
    statuses: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    requests: list[web.Request] = field(default_factory=list)

    async def versions(self, request: web.Request) -> web.Response:
        return web.json_response({"versions": ["v1.11"]})

    async def download(self, request: web.Request) -> web.StreamResponse:
        media = request.match_info["media"]
        self.requests.append(request)
        if media in self.statuses:
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=self.statuses[media])
        size = self.sizes[media]
        response = web.StreamResponse()
        if media in self.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = size
        await response.prepare(request)
        self.written[media] = 0
        try:
            while self.written[media] < size:
                part = min(CHUNK, size - self.written[media])
                await response.write(b"x" * part)
                self.written[media] += part
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        return response


@pytest.fixture
async def served() -> AsyncIterator[tuple[MediaServer, ClientAPI]]:
    server = MediaServer()
    app = web.Application()
    app.router.add_get("/_matrix/client/versions", server.versions)
    app.router.add_get("/_matrix/client/v1/media/download/localhost/{media}", server.download)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        api = HTTPAPI(
            base_url=f"http://127.0.0.1:{port}",
            token="as-token",
            client_session=session,
            as_user_id=UserID("@bot:localhost"),
        )
        yield server, ClientAPI(UserID("@bot:localhost"), api=api)
    await runner.cleanup()


async def test_a_file_within_the_limit_comes_whole_as_the_bot(
    served: tuple[MediaServer, ClientAPI],
) -> None:
    server, client = served
    server.sizes["ok"] = MB
    assert await download_within(client, "mxc://localhost/ok", limit=LIMIT) == b"x" * MB
    [request] = server.requests
    assert request.headers["Authorization"] == "Bearer as-token"
    assert request.query["user_id"] == "@bot:localhost"


async def test_a_content_length_over_the_limit_is_refused_before_the_body(
    served: tuple[MediaServer, ClientAPI],
) -> None:
    server, client = served
    server.sizes["big"] = 64 * MB
    with pytest.raises(PermanentDeliveryError) as caught:
        await download_within(client, "mxc://localhost/big", limit=LIMIT)
    assert caught.value.explanation == "the document is 64 MB; media.max_size_mb is 1 MB"


async def test_a_body_without_a_length_is_cut_off_once_over_the_limit(
    served: tuple[MediaServer, ClientAPI],
) -> None:
    server, client = served
    server.sizes["endless"] = 256 * MB
    server.chunked.add("endless")
    with pytest.raises(PermanentDeliveryError) as caught:
        await download_within(client, "mxc://localhost/endless", limit=LIMIT)
    assert caught.value.explanation == "the document is over 1 MB; media.max_size_mb is 1 MB"
    # The server stops once the client has gone (socket buffers hold a few MB at most).
    assert server.written["endless"] < 32 * MB


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (404, PermanentDeliveryError, "does not give the file (404)"),
        (502, DeliveryError, "failed to give the file (502)"),
        (400, PermanentDeliveryError, "refused the file (400)"),
    ],
)
async def test_errors_by_status(
    served: tuple[MediaServer, ClientAPI], status: int, error: type, words: str
) -> None:
    server, client = served
    server.statuses["x"] = status
    with pytest.raises(error) as caught:
        await download_within(client, "mxc://localhost/x", limit=LIMIT)
    assert words in caught.value.explanation
    assert (type(caught.value) is DeliveryError) == (error is DeliveryError)


async def test_an_address_that_is_no_mxc_is_refused(served: tuple[MediaServer, ClientAPI]) -> None:
    _, client = served
    with pytest.raises(PermanentDeliveryError, match="not an mxc"):
        await download_within(client, "https://evil.example/file", limit=LIMIT)
