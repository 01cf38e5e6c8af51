"""Strict, bounded reading of request bodies (bridge.http_input)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import RequestRefused
from bridge.http_input import MAX_JSON_DEPTH, parse_json, read_body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"seconds": Infinity}', "not valid JSON"),
        (b'{"seconds": NaN}', "not valid JSON"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b"[" * 100 + b"]" * 100, "nested deeper"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nested deeper"),
        (b"1" * 5000, "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
    ],
)
def test_refused_bodies_are_400_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(RequestRefused) as caught:
        parse_json(body)
    assert caught.value.status == 400
    assert reason in caught.value.explanation


def test_ordinary_json_passes_unchanged() -> None:
    value = {"a": ["é", "😀", {"b": None}], "brackets in text": "[[[[{{{{" * 40}
    assert parse_json(json.dumps(value).encode()) == value
    assert parse_json(json.dumps(value, ensure_ascii=False).encode()) == value


def test_depth_limit_is_where_it_says() -> None:
    ok = "[" * (MAX_JSON_DEPTH - 8) + "]" * (MAX_JSON_DEPTH - 8)
    assert parse_json(ok) is not None
    assert parse_json("[" * 500 + "]" * 500, max_depth=None) is not None


def test_lone_surrogates_may_be_let_through_for_a_caller_that_cleans_them() -> None:
    assert parse_json(b'{"a": "\\ud800"}', surrogates=True) == {"a": "\ud800"}


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ("[" * 200_000 + "]" * 200_000, True),
        ("[" + ",".join(["[1]"] * 100_000) + "]", False),
        ("[" + ",".join(['"x"'] * 100_000) + "]", False),
        ('"' + "a" * 1_000_000 + '"', False),
    ],
    ids=["deep", "wide", "strings", "one-long-string"],
)
def test_hostile_shapes_cost_linear_time(body: str, refused: bool) -> None:
    started = time.perf_counter()
    try:
        parse_json(body.encode())
        outcome = False
    except RequestRefused:
        outcome = True
    assert outcome is refused
    assert time.perf_counter() - started < 1.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_parse_or_are_refused_with_400(body: bytes) -> None:
    try:
        parse_json(body)
    except RequestRefused as exc:
        assert exc.status == 400


async def _client(limit: int, seconds: float) -> TestClient:
    async def handler(request: web.Request) -> web.Response:
        try:
            body = await read_body(request, limit=limit, seconds=seconds)
        except RequestRefused as exc:
            return web.Response(status=exc.status, text=exc.explanation)
        return web.Response(text=str(len(body)))

    app = web.Application()
    app.router.add_post("/", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_read_body_refuses_a_declared_length_over_the_limit_before_reading() -> None:
    client = await _client(limit=1000, seconds=5)
    try:
        response = await client.post("/", data=b"x" * 5000)
        assert response.status == 413
        assert "over 1000 bytes" in await response.text()
        response = await client.post("/", data=b"x" * 1000)
        assert (response.status, await response.text()) == (200, "1000")
    finally:
        await client.close()


async def test_read_body_refuses_a_chunked_body_once_it_passes_the_limit() -> None:
    async def chunks():  # no Content-Length: chunked transfer encoding
        for _ in range(100):
            yield b"y" * 1000

    client = await _client(limit=10_000, seconds=5)
    try:
        response = await client.post("/", data=chunks())
        assert response.status == 413
    finally:
        await client.close()


async def test_read_body_cuts_off_a_trickling_sender() -> None:
    async def trickle():
        for _ in range(50):
            yield b"z"
            await asyncio.sleep(0.05)

    client = await _client(limit=10_000, seconds=0.3)
    try:
        started = time.monotonic()
        response = await client.post("/", data=trickle())
        assert response.status == 408
        assert time.monotonic() - started < 2.0
    finally:
        await client.close()
