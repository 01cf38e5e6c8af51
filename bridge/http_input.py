"""Reading request bodies from senders the bridge does not trust.

Every public endpoint (``/slack/events``, ``/sim``, the appservice, future webhooks)
reads its body through :func:`read_body` and parses JSON with :func:`parse_json`:

- the body has a limit: a ``Content-Length`` over it is refused before a byte is
  read, and a chunked body is refused as soon as it passes the limit;
- the body has a deadline: a sender that trickles its bytes is cut off;
- JSON is strict: UTF-8 only, no ``NaN``/``Infinity``, no lone surrogates (they
  cannot be stored or encoded), nesting bounded; every refusal costs time linear
  in the body's size.

A refusal is a :class:`RequestRefused` with the HTTP status to answer (400, 408,
413, 415) and a short reason; each endpoint answers it in its own format. The request
head has its own deadline: :data:`HEAD_TIMEOUT_SECONDS`, given to the server as
aiohttp's keep-alive timeout, which starts when a connection opens and closes it
if no complete request arrived by then (see ``docs/operations.md``).
"""

from __future__ import annotations

import asyncio
import json
import re
from itertools import accumulate
from typing import Any

from aiohttp import web

from bridge.errors import RequestRefused

__all__ = [
    "BODY_TIMEOUT_SECONDS",
    "HEAD_TIMEOUT_SECONDS",
    "MAX_JSON_DEPTH",
    "SERVER_OPTIONS",
    "json_kind",
    "parse_json",
    "read_body",
    "read_json",
]

HEAD_TIMEOUT_SECONDS = 15.0  # from connection open (or the last answer) to a whole head
SERVER_OPTIONS: dict[str, Any] = {
    # for every aiohttp server of the bridge: web.AppRunner(app, **SERVER_OPTIONS)
    "keepalive_timeout": HEAD_TIMEOUT_SECONDS,  # cuts off a request head slower than this
    "auto_decompress": False,  # a gzip bomb would inflate on the loop (read_body: 415)
}
BODY_TIMEOUT_SECONDS = 30.0  # from the handler's first read to the body's last byte
MAX_JSON_DEPTH = 64  # far above any JSON Slack, Synapse or the /sim API sends


async def read_body(
    request: web.Request, *, limit: int, seconds: float = BODY_TIMEOUT_SECONDS
) -> bytes:
    """The whole body, at most ``limit`` bytes, arrived within ``seconds``. A
    compressed body is refused (415): servers run with aiohttp's decompression off,
    since 1 MB of gzip can inflate to gigabytes on the event loop."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise RequestRefused(415, "compressed bodies are not accepted (Content-Encoding)")
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestRefused(413, f"the body is over {_size(limit)}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise RequestRefused(413, f"the body is over {_size(limit)}")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestRefused(408, f"the body did not arrive within {seconds:g} s") from None
    except web.RequestPayloadError:  # a malformed chunked body, say
        raise RequestRefused(400, "the body could not be read (malformed framing)") from None
    return b"".join(chunks)


async def read_json(
    request: web.Request, *, limit: int, seconds: float = BODY_TIMEOUT_SECONDS
) -> Any:
    """:func:`read_body` then :func:`parse_json`."""
    return parse_json(await read_body(request, limit=limit, seconds=seconds))


def parse_json(
    body: bytes | str, *, max_depth: int | None = MAX_JSON_DEPTH, surrogates: bool = False
) -> Any:
    """Strict JSON: refuses what Python's ``json`` accepts but nothing else should
    (``NaN``, ``Infinity``, lone surrogates unless ``surrogates``) and nesting deeper
    than ``max_depth``, with a :class:`RequestRefused` (400).

    A source that retries a refused body for ever (a homeserver's transactions)
    parses with ``max_depth=None, surrogates=True`` and sets aside the single event
    it cannot handle instead."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise RequestRefused(400, "the body is not UTF-8") from None
    if max_depth is not None and _depth_exceeds(text, max_depth):
        raise RequestRefused(400, f"the JSON is nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # the depth scan is conservative; belt and braces
        raise RequestRefused(400, "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise RequestRefused(400, f"the body is not valid JSON: {_short(str(exc))}") from None
    if not surrogates and _has_lone_surrogate(text, value):
        raise RequestRefused(400, "the JSON holds a lone surrogate (not a Unicode character)")
    return value


def json_kind(value: object) -> str:
    """The JSON name of a value's type, for refusals that name a field (never the
    value itself): ``a string``, ``an object``, ``null``…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_STEP = [1 if code in b"[{" else -1 if code in b"]}" else 0 for code in range(256)]
_ONLY_BRACKETS = {code: None for code in range(128) if chr(code) not in "[]{}"}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``, in time linear in
    the text and mostly in C: strings and everything but brackets are cut out, a few
    passes remove the innermost pairs (enough for any ordinary document), and what
    remains is summed up bracket by bracket."""
    if text.count("[") + text.count("{") <= limit:
        return False
    skeleton = _STRING.sub("", text)
    if not skeleton.isascii():
        return False  # not JSON: json.loads says where
    brackets = skeleton.translate(_ONLY_BRACKETS)  # ASCII to ASCII: a fast path in C
    passes = 0
    while passes < min(limit, 8):
        inner = brackets.replace("[]", "").replace("{}", "")
        if not inner or len(inner) == len(brackets):
            return False  # done, or unbalanced (json.loads says what is wrong)
        brackets, passes = inner, passes + 1
    # each pass took one or two levels off: the limit holds within a few levels
    return max(accumulate(map(_STEP.__getitem__, brackets.encode()))) > limit - passes


def _has_lone_surrogate(text: str, value: Any) -> bool:
    """Whether a string in ``value`` holds a lone surrogate: only JSON escapes can
    make one (raw UTF-8 cannot), so the walk runs only when the text has one."""
    if not _SURROGATE_ESCAPE.search(text):
        return False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _surrogate_in(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _surrogate_in(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MiB"
    if limit >= 1024:
        return f"{limit / 1024:g} KiB"
    return f"{limit} bytes"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
