"""Per-channel pacing for Slack's Web API.

Slack allows about one message per second per channel, with short bursts, and
answers HTTP 429 with ``Retry-After`` beyond that. :class:`ChannelPacer` keeps a token
bucket per channel (calls wait their turn, in arrival order) and, when Slack says
429 anyway, holds the whole channel back for ``Retry-After`` seconds, retries the
call a few times, then gives up with a ``DeliveryError`` that carries ``retry_after``
so the outbox reschedules the delivery no sooner than Slack asked.

:class:`PacedApi` makes the calls. The hot JSON methods (``chat.postMessage``,
``chat.update``) skip slack_sdk's ``AsyncWebClient``, which spent about as much CPU
around each call as aiohttp spent making it (a keyword copy per argument, its
checks, its request arguments rebuilt, a proxy lookup in the environment, debug log
lines formatted on every call because its guard reads the logger's own, unset,
level; docs/architecture.md, "What a message costs"): :func:`post_json` sends the
same request over the client's own ``aiohttp`` session, the JSON body slack_sdk
sends for them (arguments that are ``None`` left out) with the bearer token in the
header, and a reply that is not ``ok`` is mapped onto the bridge's errors exactly as
a ``SlackApiError`` is. Every other method, and any call before the session exists,
goes through slack_sdk.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urljoin

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.clock import Clock
from bridge.errors import DeliveryError, PermanentDeliveryError, RateLimited
from bridge.token_bucket import TokenBucket

log = logging.getLogger("bridge.slack.ratelimit")

T = TypeVar("T")


class ChannelPacer:
    """A token bucket per channel: ``rate`` calls per second, bursts of ``burst``."""

    def __init__(
        self,
        *,
        clock: Clock,
        rate: float = 1.0,
        burst: int = 4,
        retries: int = 2,
        max_wait: float = 60.0,
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._retries = retries
        self._max_wait = max_wait
        self._buckets: dict[str, TokenBucket] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def call(self, channel: str, send: Callable[[], Awaitable[T]]) -> T:
        """Run ``send`` when ``channel`` has room; retry on 429 after ``Retry-After``."""
        for attempt in range(self._retries + 1):
            await self._take(channel)
            try:
                return await send()
            except RateLimited as limited:
                self.pause(channel, limited.retry_after)
                if attempt == self._retries or limited.retry_after > self._max_wait:
                    raise DeliveryError(
                        f"Slack rate-limited channel {channel}; retrying in "
                        f"{limited.retry_after:g} s",
                        retry_after=limited.retry_after,
                    ) from None
                log.info(
                    "channel %s rate-limited, waiting %.1f s (retry %d of %d)",
                    channel,
                    limited.retry_after,
                    attempt + 1,
                    self._retries,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def pause(self, channel: str, seconds: float) -> None:
        """Hold every call to ``channel`` back for ``seconds`` (Slack's ``Retry-After``);
        one call goes at resume, then the channel's rate."""
        self._bucket(channel).hold_until(self._clock.monotonic() + seconds)

    async def _take(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:  # FIFO: waiters are served in arrival order
            bucket = self._bucket(channel)
            await bucket.wait_for_token()
            bucket.take()

    def _bucket(self, channel: str) -> TokenBucket:
        bucket = self._buckets.get(channel)
        if bucket is None:
            bucket = TokenBucket(per_second=self._rate, burst=self._burst, clock=self._clock)
            self._buckets[channel] = bucket
        return bucket


# --- the Web API, paced and with Slack's errors mapped onto the bridge's ------------

# SDK method name → Web API method, for the methods slack_sdk itself sends as JSON.
JSON_METHODS = {"chat_postMessage": "chat.postMessage", "chat_update": "chat.update"}


@dataclass(frozen=True)
class SlackReply:
    """Slack's answer to a call that did not succeed (``ok`` false, or not HTTP 200)."""

    status: int
    headers: Mapping[str, Any]
    data: dict[str, Any]


async def post_json(
    session: aiohttp.ClientSession, client: AsyncWebClient, method: str, args: Mapping[str, Any]
) -> dict[str, Any] | SlackReply:
    """POST ``args`` as JSON to the Web API ``method`` (``chat.postMessage``) over
    ``session`` with the client's token and base URL. Raises what aiohttp raises (a
    dropped connection, a timeout), as the SDK call would."""
    body = json.dumps({key: value for key, value in args.items() if value is not None})
    headers = {
        "Authorization": f"Bearer {client.token}",
        "Content-Type": "application/json;charset=utf-8",
    }
    async with session.post(_url(client.base_url, method), data=body, headers=headers) as res:
        raw = await res.read()
        status, response_headers = res.status, res.headers
    data = _json_object(raw)
    if status == 200 and data.get("ok", False):
        return data
    return SlackReply(status, response_headers, data)


@functools.lru_cache(maxsize=64)
def _url(base_url: str, method: str) -> str:
    """The method's address, joined as slack_sdk joins it."""
    return urljoin(base_url, method)


def _json_object(raw: bytes) -> dict[str, Any]:
    """The reply as a JSON object; anything else (an HTML error page) as ``{}``, as
    slack_sdk reads a body that is not JSON."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# Errors no retry can fix, with what a human must do about them.
_PERMANENT = {
    "channel_not_found": "channel {channel} does not exist or the bot cannot see it: "
    "check the channel id, and invite @{bot} if the channel is private",
    "not_in_channel": "the bot is not in channel {channel}: invite @{bot} there",
    "is_archived": "channel {channel} is archived: unarchive it or configure another",
    "posting_to_channel_denied": "the bot may not post in channel {channel}: "
    "invite @{bot} there or relax the channel's posting permissions",
    "restricted_action": "the workspace does not let the bot post in channel {channel}",
    "invalid_auth": "Slack rejected the bot token (invalid_auth): check slack.bot_token",
    "not_authed": "no Slack token was sent (not_authed): check slack.bot_token",
    "account_inactive": "the Slack app's token is inactive: reinstall the app",
    "token_revoked": "the Slack bot token was revoked: reinstall the app and update "
    "slack.bot_token",
    "missing_scope": "the Slack app lacks the scope {needed} (needed by {method}): add it "
    "under OAuth & Permissions and reinstall the app",
    "msg_too_long": "the message is too long for Slack",
    "invalid_blocks": "Slack refused the message layout (invalid_blocks)",
    "no_text": "Slack refused an empty message",
    "cant_update_message": "the message in {channel} was not posted by the bot, so it "
    "cannot be changed",
    "cant_delete_message": "the message in {channel} was not posted by the bot, so it "
    "cannot be deleted",
    "message_not_found": "the message no longer exists in {channel}",
    "file_not_found": "the file no longer exists",
    "invalid_arguments": "Slack refused the request's arguments ({method})",
}


class SlackCallError(DeliveryError):
    """A Slack Web API call answered ``ok: false``; ``error`` is Slack's code."""

    def __init__(self, explanation: str, *, error: str, retry_after: float | None = None):
        super().__init__(explanation, retry_after=retry_after)
        self.error = error


class PermanentSlackCallError(SlackCallError, PermanentDeliveryError):
    """A Slack error retrying cannot fix (bad channel, missing scope, bad token…)."""


class PacedApi:
    """Slack Web API calls through the SDK client: writes to a channel are paced by
    :class:`ChannelPacer`; Slack's errors become :class:`SlackCallError`s (permanent
    ones :class:`PermanentSlackCallError`) whose explanation says what to do."""

    def __init__(self, client: AsyncWebClient, pacer: ChannelPacer, *, bot_name: str) -> None:
        self.client = client
        self.pacer = pacer
        self.bot_name = bot_name

    async def call(self, method: str, *, pace: str | None = None, **args: Any) -> dict[str, Any]:
        """``method`` is the SDK's name (``chat_postMessage``); ``pace`` the channel."""
        channel = pace or str(args.get("channel") or args.get("channel_id") or "")

        async def send() -> dict[str, Any]:
            return await self._send(method, channel, args)

        if pace is None:
            try:
                return await send()
            except RateLimited as limited:
                raise SlackCallError(
                    f"Slack rate-limited {method}",
                    error="ratelimited",
                    retry_after=limited.retry_after,
                ) from None
        return await self.pacer.call(pace, send)

    async def _send(self, method: str, channel: str, args: dict[str, Any]) -> dict[str, Any]:
        """The hot JSON methods by :func:`post_json`, the rest
        through slack_sdk; the same errors either way."""
        try:
            web_method = JSON_METHODS.get(method)
            session = self.client.session
            if web_method is not None and session is not None and not session.closed:
                found = await post_json(session, self.client, web_method, args)
                if isinstance(found, SlackReply):
                    raise self._mapped(method, channel, found) from None
                return found
            response = await getattr(self.client, method)(**args)
        except SlackApiError as exc:
            raise self._mapped(method, channel, _reply_of(exc)) from None
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(f"Slack {method} failed: {type(exc).__name__}: {exc}") from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    def _mapped(self, method: str, channel: str, reply: SlackReply) -> Exception:
        data = reply.data
        error = str(data.get("error") or "unknown_error")
        if reply.status == 429 or error == "ratelimited":
            return RateLimited(_retry_after(reply.headers))
        template = _PERMANENT.get(error)
        if template is not None:
            text = template.format(
                channel=channel or "?",
                bot=self.bot_name,
                method=method.replace("_", ".", 1),
                needed=data.get("needed") or "?",
            )
            return PermanentSlackCallError(text, error=error)
        return SlackCallError(f"Slack {method.replace('_', '.', 1)} failed: {error}", error=error)


def _reply_of(exc: SlackApiError) -> SlackReply:
    response = exc.response
    data = response.data if isinstance(response.data, dict) else {}
    return SlackReply(response.status_code, response.headers or {}, data)


def _retry_after(headers: Any) -> float:
    for key in ("Retry-After", "retry-after"):
        value = headers.get(key) if headers else None
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 1.0
