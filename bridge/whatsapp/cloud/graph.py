"""The Graph API client of the Cloud API engine: one :class:`GraphClient` per session.

Every call carries ``Authorization: Bearer <access token>`` and goes to
``{base_url}/{api_version}/…`` (docs/cloud.md). The calls: send a message, mark a
message read, upload a file, read a file's download link and fetch it, read the phone
number's facts. Answers are bounded (:data:`MAX_JSON_BYTES`; files by the caller's
:class:`~bridge.media_limits.SizeLimit`) and read by type at this edge
(:class:`GraphFields`).

Failures become the bridge's errors in one pure function, :func:`graph_error`:

- Meta's throttling (HTTP 429; codes 4, 80007, 130429, 131048, 131056) →
  :class:`~bridge.errors.DeliveryError` with ``retry_after`` (the ``Retry-After``
  header, else :data:`DEFAULT_RETRY_AFTER`);
- 131047 (the 24-hour customer-service window is closed) → :class:`WindowClosed`;
- 190, or a 401 without a code (the access token expired or was revoked) →
  :class:`TokenRejected`, an :class:`~bridge.errors.EngineError`: the engine reports
  the session logged out;
- any other 4xx → :class:`~bridge.errors.PermanentDeliveryError` with Meta's words;
- 5xx, timeouts, refused connections → :class:`~bridge.errors.DeliveryError` (retried).

Why aiohttp and not ``pywa``: pywa 4.5 (PyPI) is a bot framework around the Cloud
API: its async client (``pywa_async``) is built on httpx, a second HTTP stack beside
the aiohttp the bridge already runs, and its webhook side expects a FastAPI, Flask or
Starlette server with handlers and filters, while the bridge serves its webhook on its
own aiohttp server (:mod:`bridge.whatsapp.cloud.webhook`). Its Graph layer
(``GraphAPIAsync``) is documented as internal. The bridge needs six calls with its own
error mapping and size limits; they fit here in plain aiohttp.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from bridge.config.schema import CloudConfig
from bridge.errors import (
    DeliveryError,
    EngineError,
    PermanentDeliveryError,
    RequestRefused,
    WindowClosed,
)
from bridge.http_input import parse_json
from bridge.json_fields import JsonFields, Wording
from bridge.media_limits import SizeLimit
from bridge.whatsapp.cloud.outbound import read_payload

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]

MAX_JSON_BYTES = 1024 * 1024  # a Graph API answer (they are a few hundred bytes)
DEFAULT_RETRY_AFTER = 60.0  # seconds, when Meta throttles without a Retry-After header
THROTTLING_CODES = frozenset({4, 80007, 130429, 131048, 131056})
WINDOW_CLOSED_CODE = 131047
TOKEN_CODE = 190
PHONE_FIELDS = "verified_name,display_phone_number,quality_rating,messaging_limit_tier"
_EXPIRED_LINK = frozenset({401, 403, 404, 410})  # a media link past its few minutes


class TokenRejected(EngineError):
    """Meta refused the session's access token (error 190): it expired or was revoked."""


class GraphFields(JsonFields):
    """A Graph API answer, read by type; what cannot be read is a failed call."""

    wording = Wording(
        error=lambda problem: DeliveryError(f"the Graph API answered unreadable JSON: {problem}")
    )


# --- the error mapping ------------------------------------------------------------


@dataclass(frozen=True)
class GraphFailure:
    """A refused call: the HTTP status, Meta's error code (None when the body had
    none), Meta's words and the ``Retry-After`` header as received."""

    status: int
    code: int | None
    message: str
    retry_after: str | None = None


def graph_error(failure: GraphFailure) -> EngineError | DeliveryError:
    """The bridge's error for a refused Graph API call (see the module docstring)."""
    code, status = failure.code, failure.status
    said = f"{failure.message} (code {code})" if code is not None else failure.message
    if code == TOKEN_CODE or (status == 401 and code is None):
        return TokenRejected(f"the Cloud API access token expired or was revoked: {said}")
    if status == 429 or code in THROTTLING_CODES:
        return DeliveryError(
            f"the Cloud API is throttling this number: {said}",
            retry_after=_retry_after(failure.retry_after),
        )
    if code == WINDOW_CLOSED_CODE:
        return WindowClosed(
            "the customer's 24-hour window is closed: WhatsApp only takes an approved "
            f"template now (!template <name>): {said}"
        )
    if 400 <= status < 500:
        return PermanentDeliveryError(f"the Cloud API refused the request: {said}")
    return DeliveryError(f"the Cloud API failed (HTTP {status}): {said}")


def _retry_after(header: str | None) -> float:
    """Seconds from a ``Retry-After`` header in seconds; the default otherwise (an
    HTTP date, a negative or unreadable value)."""
    try:
        seconds = float(header) if header is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER
    return seconds if 0 <= seconds < 86_400 else DEFAULT_RETRY_AFTER


def failure_of(status: int, body: bytes, retry_after: str | None) -> GraphFailure:
    """The :class:`GraphFailure` in Meta's error body
    ``{"error": {"message", "type", "code", "error_subcode", "error_data", "fbtrace_id"}}``;
    a body of another shape keeps the status alone."""
    try:
        parsed = parse_json(body)
    except RequestRefused:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return GraphFailure(status, None, f"HTTP {status}", retry_after)
    code = error.get("code")
    message = error.get("message")
    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, dict) else None
    text = message if isinstance(message, str) and message else f"HTTP {status}"
    if isinstance(details, str) and details and details not in text:
        text = f"{text}: {details}"
    known_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    return GraphFailure(status, known_code, text[:500], retry_after)


# --- what the calls answer --------------------------------------------------------


@dataclass(frozen=True)
class MediaInfo:
    """``GET /{media_id}``: a download link valid for a few minutes, and the file's facts."""

    url: str
    mime_type: str
    sha256: str | None
    file_size: int | None


@dataclass(frozen=True)
class PhoneNumberInfo:
    """``GET /{phone_number_id}``: what Meta says about the number."""

    display_phone_number: str
    verified_name: str | None = None
    quality_rating: str | None = None
    messaging_limit_tier: str | None = None


# --- the client ---------------------------------------------------------------------


class GraphClient:
    """The Graph API calls of one session, over the engine's ``http`` session."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        config: CloudConfig,
        *,
        timeout: float = 30.0,
        media_timeout: float = 300.0,
    ) -> None:
        self._http = http
        self._config = config
        self._root = f"{config.base_url.rstrip('/')}/{config.api_version}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._media_timeout = aiohttp.ClientTimeout(total=media_timeout)

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._config.access_token}"}

    async def send_message(self, payload: JsonDict) -> str:
        """POST a message (``payload`` from :mod:`bridge.whatsapp.cloud.outbound`);
        the ``wamid.…`` Meta gave it."""
        answer = await self._call(
            "POST", f"{self._config.phone_number_id}/messages", payload=payload
        )
        first = answer.objects("messages", limit=16)
        if not first:
            raise DeliveryError("the Graph API accepted the message without giving its id")
        return first[0].string("id", limit=256, allow_empty=False)

    async def mark_read(self, message_id: str) -> None:
        payload = read_payload(message_id)
        await self._call("POST", f"{self._config.phone_number_id}/messages", payload=payload)

    async def upload_media(self, data: bytes, *, mimetype: str, filename: str) -> str:
        """Upload a file for a message; the media id to send it with."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mimetype)
        form.add_field("file", data, filename=filename, content_type=mimetype)
        answer = await self._call(
            "POST", f"{self._config.phone_number_id}/media", data=form, patience=self._media_timeout
        )
        return answer.string("id", limit=256, allow_empty=False)

    async def media_info(self, media_id: str) -> MediaInfo:
        answer = await self._call("GET", media_id)
        size = answer.raw("file_size")
        return MediaInfo(
            url=answer.string("url", limit=4096, allow_empty=False),
            mime_type=answer.optional_string("mime_type", limit=255) or "application/octet-stream",
            sha256=answer.optional_string("sha256", limit=128),
            # Meta sends the size as a number; older answers as a string of digits
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )

    async def download_media(self, media_id: str, *, limit: SizeLimit) -> bytes:
        """The bytes of ``media_id`` within ``limit``: its link is read, then fetched; a
        link that expired before the fetch is read again, once."""
        for _ in range(2):
            info = await self.media_info(media_id)
            limit.check(info.file_size)
            data = await self._fetch(info.url, limit)
            if data is None:
                log.info("the download link of media %s expired; asking for a new one", media_id)
                continue
            if info.sha256 and hashlib.sha256(data).hexdigest() != info.sha256.lower():
                raise DeliveryError(f"the file {media_id} arrived damaged (its SHA-256 differs)")
            return data
        raise DeliveryError(f"WhatsApp's download links for the file {media_id} kept expiring")

    async def phone_number_info(self) -> PhoneNumberInfo:
        answer = await self._call(
            "GET", self._config.phone_number_id, params={"fields": PHONE_FIELDS}
        )
        return PhoneNumberInfo(
            display_phone_number=answer.string("display_phone_number", limit=64),
            verified_name=answer.optional_string("verified_name", limit=256),
            quality_rating=answer.optional_string("quality_rating", limit=64),
            messaging_limit_tier=answer.optional_string("messaging_limit_tier", limit=64),
        )

    # --- the wire ---------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        payload: JsonDict | None = None,
        data: aiohttp.FormData | None = None,
        params: dict[str, str] | None = None,
        patience: aiohttp.ClientTimeout | None = None,
    ) -> GraphFields:
        url = f"{self._root}/{path}"
        try:
            async with self._http.request(
                method,
                url,
                json=payload,
                data=data,
                params=params,
                headers=self._auth,
                timeout=patience or self._timeout,
            ) as response:
                body = await _bounded(response, MAX_JSON_BYTES)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"the Graph API could not be reached: {_said(exc)}") from exc
        if status >= 400:
            failure = failure_of(status, body, retry_after)
            log.info("%s %s: HTTP %d, code %s", method, path, status, failure.code)
            raise graph_error(failure)
        try:
            parsed = parse_json(body)
        except RequestRefused as exc:
            problem = exc.explanation
            raise DeliveryError(f"the Graph API answered unreadable JSON: {problem}") from exc
        return GraphFields.of(parsed)

    async def _fetch(self, url: str, limit: SizeLimit) -> bytes | None:
        """A media link's bytes within ``limit``; None when the link has expired."""
        try:
            async with self._http.get(
                url, headers=self._auth, timeout=self._media_timeout
            ) as response:
                if response.status in _EXPIRED_LINK:
                    return None
                if response.status >= 400:
                    status = response.status
                    raise DeliveryError(f"fetching a file from WhatsApp failed: HTTP {status}")
                return await limit.read(response)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(f"fetching a file from WhatsApp failed: {_said(exc)}") from exc


async def _bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of an answer; a larger one is a failed call."""
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        received += len(chunk)
        if received > limit:
            raise DeliveryError(f"the Graph API answered more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _said(exc: BaseException) -> str:
    """An exception in words without the request (never the token: aiohttp's messages
    name the URL, never the headers)."""
    return str(exc) or type(exc).__name__
