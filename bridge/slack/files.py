"""Files attendants share in a ticket thread, fetched from Slack to go to WhatsApp.

A file's ``url_private`` needs the bot token as a bearer. The URL comes from the
event payload, so the token goes only to Slack's file hosts (``slack.file_hosts``,
``https://files.slack.com`` by default): any other address, and any redirect away
from those hosts, is refused without a request. The size is capped by
``media.max_size_mb`` three times: the size Slack announces in the file object, the
``Content-Length`` of the answer, and the bytes as they stream in. The whole
download has a deadline.

Refusals that retrying cannot change (another host, too large, Slack's 4xx) are
:class:`PermanentDeliveryError`: the attendant is told in the thread that the file
was not sent and why. A host that does not answer, or answers 5xx, is a
:class:`DeliveryError`: the event is not acknowledged, and Slack delivers it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiohttp
from yarl import URL

from bridge.errors import DeliveryError, PermanentDeliveryError
from bridge.media_limits import FileTooLarge, SizeLimit

__all__ = ["DOWNLOAD_SECONDS", "FileTooLarge", "SlackFiles", "origin_of"]

DOWNLOAD_SECONDS = 120.0  # 100 MB at under 1 MB/s still fits
MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
_TRANSIENT = (408, 429)  # 4xx that a later try may pass

Origin = tuple[str, str, int]  # scheme, host, port


def origin_of(url: str | URL) -> Origin | None:
    """``(scheme, host, port)`` of an absolute http(s) URL, else None."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.port is None:
            return None
        return parsed.scheme, parsed.host, parsed.port
    except (ValueError, TypeError):
        return None


class SlackFiles:
    """Downloads of ``url_private`` files with the bot token, within the limits."""

    def __init__(
        self, *, token: str, hosts: Iterable[str], seconds: float = DOWNLOAD_SECONDS
    ) -> None:
        self._token = token
        self._hosts = {found for host in hosts if (found := origin_of(host)) is not None}
        self._seconds = seconds

    async def download(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        limit: SizeLimit,
        announced: int | None = None,
    ) -> bytes:
        """The file's bytes, at most ``limit.max_bytes``; ``announced`` is the size the
        file object gave (over the limit: refused without a request)."""
        limit.check(announced)
        target = self._allowed(URL(url) if origin_of(url) else None)
        try:
            async with asyncio.timeout(self._seconds):
                return await self._fetch(session, target, limit)
        except TimeoutError:
            raise DeliveryError(f"Slack's file host took over {self._seconds:g} s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"Slack file download failed: {type(exc).__name__}") from exc

    async def _fetch(self, session: aiohttp.ClientSession, url: URL, limit: SizeLimit) -> bytes:
        headers = {"Authorization": f"Bearer {self._token}"}
        for _ in range(MAX_REDIRECTS + 1):
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location", "")
                    url = self._allowed(_joined(url, location), redirected=True)
                    continue
                if response.status != 200:
                    raise _status_error(response.status)
                return await limit.read(response)
        raise PermanentDeliveryError("Slack redirected the download too many times")

    def _allowed(self, url: URL | None, *, redirected: bool = False) -> URL:
        origin = origin_of(url) if url is not None else None
        if url is None or origin is None:
            raise PermanentDeliveryError("its address is not an http(s) URL")
        if origin not in self._hosts:
            where = "redirected to" if redirected else "on"
            raise PermanentDeliveryError(
                f"it is {where} {_shown(url)}, not one of Slack's file hosts (slack.file_hosts)"
            )
        return url


def _shown(url: URL) -> str:
    """``host`` (and ``:port`` when it is not the scheme's), bounded for a message."""
    host = (url.host or "")[:100]
    return f"{host}:{url.explicit_port}" if url.explicit_port is not None else host


def _joined(base: URL, location: str) -> URL | None:
    try:
        return base.join(URL(location))
    except (ValueError, TypeError):
        return None


def _status_error(status: int) -> DeliveryError:
    text = f"Slack's file host answered HTTP {status}"
    if 400 <= status < 500 and status not in _TRANSIENT:
        return PermanentDeliveryError(text)
    return DeliveryError(text)
