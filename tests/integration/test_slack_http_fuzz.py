"""``POST /slack/events`` under generated input (issue 11): a whole bridge in HTTP
mode against the strict Slack fake, on SQLite and on PostgreSQL.

Hypothesis generates requests: bodies (Slack-shaped payloads with fields of every
type, JSON documents, bytes), signatures (right, wrong, missing, stale, odd
timestamps), content types and sizes. Every answer must be a 2xx or a 4xx, the
event loop the bridge runs in must never stall for 100 ms or more, and afterwards a
valid signed message in a ticket thread still reaches the customer. Unsigned bodies
of 256 KB and 10 MB, a body over the limit without a length, and a body that
trickles are sent too.

The requests are generated and sent by another process with a plain blocking
client, so the event loop measured by ``LoopStallMonitor`` runs only the bridge and
the fake, and neither Hypothesis's work nor its garbage collections (which hold the
GIL) are counted as the bridge's stalls.
``ZAPBRIDGE_FUZZ_EXAMPLES`` sets how many requests Hypothesis generates (default 300).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import http.client
import json
import logging
import multiprocessing
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bridge.db.database import Database
from bridge.slack import http as slack_http
from tests.fakes.slack import SlackFake, signed_headers
from tests.harness.slack import BOB, SALES, STRANGER, SlackHarness, until
from tests.harness.stall import LoopStallMonitor

EXAMPLES = int(os.environ.get("ZAPBRIDGE_FUZZ_EXAMPLES", "300"))
STALL_LIMIT = 0.1
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class Tally:
    """What was sent: answers by status, and the slowest answer."""

    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def record(self, status: int, seconds: float, what: str) -> None:
        self.statuses[status] += 1
        self.slowest = max(self.slowest, seconds)
        if status >= 500:
            self.failures.append(f"{status} for {what[:300]}")


@dataclass(frozen=True)
class Templates:
    """Valid payloads, built in the loop's thread before the worker starts (the fake
    is not thread-safe); the worker only copies and changes them."""

    port: int
    secret: str
    events: tuple[dict[str, Any], ...]
    click: dict[str, Any]
    slash: dict[str, str]


# --- strategies ------------------------------------------------------------------------

IDS = st.sampled_from([BOB, STRANGER, "U0NOBODY", SALES, "C0NONE", "", "x y", "Ü", "9" * 150])
TEXTS = st.sampled_from(
    ["oi", "", "!help", "!tickets", "!accept", "!close", "!note x", "!logout sales", "<@U0BOB>"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    IDS,
    TEXTS,
    st.sampled_from(["1700000000.000100", "1.2", "abc", "1" * 40]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "type",
        "subtype",
        "user",
        "channel",
        "ts",
        "thread_ts",
        "text",
        "files",
        "bot_id",
        "message",
        "previous_message",
        "item",
        "reaction",
        "deleted_ts",
        "event",
        "event_id",
        "team",
        "authorizations",
        "response_urls",
        "enterprise",
        "actions",
        "container",
        "action_id",
        "action_ts",
        "id",
        "url_private",
        "size",
        "name",
        "mimetype",
        "trigger_id",
        "user_id",
        "channel_id",
        "command",
    ]
)


def _mutate(draw: st.DrawFn, payload: dict[str, Any]) -> dict[str, Any]:
    """Set or drop a few fields, at the top or in a nested object."""
    payload = copy.deepcopy(payload)
    for _ in range(draw(st.integers(0, 4))):
        target = payload
        for nested in ("event", "message", "item", "actions", "files", "user", "container"):
            inner = target.get(nested) if isinstance(target, dict) else None
            if isinstance(inner, list) and inner and isinstance(inner[0], dict):
                inner = inner[0]
            if isinstance(inner, dict) and draw(st.booleans()):
                target = inner
        key = draw(KEYS)
        if draw(st.integers(0, 4)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(VALUES)
    return payload


@st.composite
def bodies(draw: st.DrawFn, templates: Templates) -> tuple[bytes, str]:
    """A body and its content type."""
    kind = draw(st.sampled_from(["event", "event", "click", "slash", "json", "bytes", "odd"]))
    if kind == "event":
        payload = _mutate(draw, draw(st.sampled_from(templates.events)))
        if draw(st.integers(0, 5)) == 0:  # an event where a form is expected
            return urlencode({"payload": json.dumps(payload)}).encode(), FORM_TYPE
        return json.dumps(payload).encode(), JSON_TYPE
    if kind == "click":
        payload = _mutate(draw, templates.click)
        if draw(st.integers(0, 5)) == 0:
            return json.dumps(payload).encode(), JSON_TYPE
        return urlencode({"payload": json.dumps(payload)}).encode(), FORM_TYPE
    if kind == "slash":
        fields = dict(templates.slash)
        for _ in range(draw(st.integers(0, 3))):
            key = draw(st.sampled_from([*fields, "payload", "ssl_check"]))
            fields[key] = draw(st.text(max_size=40) | IDS | TEXTS)
        return urlencode(fields).encode(), FORM_TYPE
    if kind == "json":
        return json.dumps(draw(VALUES)).encode(), draw(st.sampled_from([JSON_TYPE, FORM_TYPE]))
    if kind == "bytes":
        return draw(st.binary(max_size=4000)), draw(
            st.sampled_from([JSON_TYPE, FORM_TYPE, "text/plain", "", "multipart/form-data"])
        )
    odd = draw(
        st.sampled_from(
            [
                b"[" * 20_000 + b"]" * 20_000,
                b'{"type": "event_callback", "event": {"type": "message", "text": "\\udc00"}}',
                b'{"a": NaN}',
                b'{"a": 1e999999}',
                b'{"a": ' + b"1" * 5000 + b"}",
                b"payload=" + b"%5B" * 5000,
                b"&" * 5000,
                b"payload=%ED%A0%80",
                b'{"type": "url_verification", "challenge": "c"}',
                b"ssl_check=1&token=x",
                b"\x00" * 100,
            ]
        )
    )
    return odd, draw(st.sampled_from([JSON_TYPE, FORM_TYPE]))


SIGNINGS = st.sampled_from(
    ["valid"] * 6
    + ["wrong", "no signature", "no timestamp", "stale", "future", "timestamp", "garbage"]
)
HEADER_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)


@st.composite
def requests(draw: st.DrawFn, templates: Templates) -> tuple[bytes, dict[str, str]]:
    body, content_type = draw(bodies(templates))
    signing = draw(SIGNINGS)
    now = int(time.time())
    stamp = {"stale": now - 301, "future": now + 301}.get(signing, now)
    headers = signed_headers(body, secret=templates.secret, timestamp=stamp)
    if signing == "wrong":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif signing == "no signature":
        del headers["X-Slack-Signature"]
    elif signing == "no timestamp":
        del headers["X-Slack-Request-Timestamp"]
    elif signing == "timestamp":
        headers["X-Slack-Request-Timestamp"] = draw(HEADER_TEXT | st.just("abc"))
    elif signing == "garbage":
        headers["X-Slack-Signature"] = draw(HEADER_TEXT)
    if content_type:
        headers["Content-Type"] = content_type
    if draw(st.integers(0, 9)) == 0:
        headers["X-Slack-Retry-Num"] = draw(HEADER_TEXT)
    return body, headers


# --- the worker thread ----------------------------------------------------------------


def post(port: int, body: bytes, headers: dict[str, str], *, timeout: float = 30) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/slack/events", body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def _warm_up() -> None:
    """Run in the child first, so its start-up is not measured."""


def fuzz(templates: Templates) -> Tally:
    tally = Tally()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(requests(templates))
    def one(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        started = time.perf_counter()
        status = post(templates.port, body, headers)
        tally.record(status, time.perf_counter() - started, f"{headers} {body[:200]!r}")

    one()
    return tally


def big_bodies(templates: Templates, tally: Tally) -> Tally:
    """Unsigned 256 KB and 10 MB bodies, a body over the limit with no length, and a
    signed body just under the limit."""
    now = int(time.time())
    wrong = {"X-Slack-Signature": "v0=" + "0" * 64, "X-Slack-Request-Timestamp": str(now)}
    for size in (256 * 1024, 10 * 1024 * 1024):
        body = b"a" * size
        for headers in (wrong, {}):  # a wrong signature; none at all
            started = time.perf_counter()
            status = post(templates.port, body, {**headers, "Content-Type": JSON_TYPE})
            took = time.perf_counter() - started
            tally.record(status, took, f"unsigned {size} bytes")
            # refused by its length, or for lack of a signature, before it is read
            expected = 401 if size < slack_http.MAX_BODY_BYTES or not headers else 413
            assert (status, took < 2) == (expected, True), (size, status, took)
    started = time.perf_counter()
    status = _chunked(templates.port, wrong, chunks=2 * slack_http.MAX_BODY_BYTES // 65536)
    tally.record(status, time.perf_counter() - started, "unsigned chunked body over the limit")
    assert status == 413
    event = copy.deepcopy(templates.events[0])
    event["event"]["blocks"] = [{"type": "rich_text", "text": "ação " * 20} for _ in range(5500)]
    body = json.dumps(event, ensure_ascii=False).encode()
    assert len(body) < slack_http.MAX_BODY_BYTES
    headers = signed_headers(body, secret=templates.secret)
    started = time.perf_counter()
    status = post(templates.port, body, {**headers, "Content-Type": JSON_TYPE})
    tally.record(status, time.perf_counter() - started, f"signed {len(body)} bytes")
    assert status == 200
    return tally


def _chunked(port: int, headers: dict[str, str], *, chunks: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", "/slack/events")
        for name, value in {**headers, "Content-Type": JSON_TYPE}.items():
            connection.putheader(name, value)
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        with contextlib.suppress(ConnectionError):  # the server may stop reading
            for _ in range(chunks):
                connection.send(b"10000\r\n" + b"a" * 65536 + b"\r\n")
            connection.send(b"0\r\n\r\n")
        return connection.getresponse().status
    finally:
        connection.close()


def trickle(port: int, secret: str) -> tuple[int, float]:
    """A signed request whose body never finishes arriving."""
    body = b'{"type": "event_callback"}'
    headers = signed_headers(body, secret=secret)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(
            f"POST /slack/events HTTP/1.1\r\nHost: x\r\n{head}"
            f"Content-Type: {JSON_TYPE}\r\nContent-Length: {len(body) + 100}\r\n\r\n".encode()
            + body
        )
        answer = conn.recv(200).decode("latin-1")
    return int(answer.split()[1]), time.perf_counter() - started


# --- the test --------------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The test process's heap so far (earlier tests, pytest) out of the collector's
    scans: a full collection of it holds the loop, and is no request's doing."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.WARNING):
        yield
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    shown = [
        f"{r.name}: {r.getMessage()}\n{logging.Formatter().formatException(r.exc_info)}"
        for r in tracebacks[:3]
        if r.exc_info
    ]
    assert not tracebacks, "\n".join(shown)


async def test_slack_events_answers_every_input_without_stalling(
    tmp_path: Path,
    db: Database,
    fake: SlackFake,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slack_http, "BODY_SECONDS", 0.5)  # the trickle test waits for it
    h = SlackHarness(tmp_path, db, fake, mode="http")
    await h.start()
    try:
        await h.customer(text="Oi")
        templates = _templates(h)
        with no_tracebacks(caplog):
            loop = asyncio.get_running_loop()
            with (
                ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool,
                frozen_heap(),
            ):
                await loop.run_in_executor(pool, _warm_up)  # the child imports first
                async with LoopStallMonitor() as monitor:
                    tally = await loop.run_in_executor(pool, fuzz, templates)
                    tally = await loop.run_in_executor(pool, big_bodies, templates, tally)
                    status, waited = await loop.run_in_executor(
                        pool, trickle, h.port, fake.signing_secret
                    )
                    await h.settle()
        assert status == 408 and waited < 5
        summary = (
            f"/slack/events: {tally.total + 1} inputs, answers "
            f"{dict(sorted(tally.statuses.items()))}, worst loop stall "
            f"{monitor.worst * 1000:.1f} ms, slowest answer {tally.slowest * 1000:.0f} ms"
        )
        print(f"\n{summary}")  # the figures for the closing note (pytest -s)
        assert not tally.failures, tally.failures[:5]
        assert tally.total >= EXAMPLES
        assert monitor.worst < STALL_LIMIT, monitor.report()
        await _a_valid_message_still_reaches_the_customer(h)
    finally:
        await h.stop()


def _templates(h: SlackHarness) -> Templates:
    root = h.thread_root()
    message = h.fake.user_message(SALES, BOB, "fuzz", thread_ts=root)
    reaction = {
        "type": "reaction_added",
        "user": BOB,
        "reaction": "thumbsup",
        "item": {"type": "message", "channel": SALES, "ts": message["ts"]},
    }
    kept = {k: message[k] for k in ("type", "user", "text", "ts", "thread_ts")}
    changed = {
        "type": "message",
        "subtype": "message_changed",
        "channel": SALES,
        "ts": "1800000000.000100",
        "message": {**kept, "text": "fuzz 2"},
        "previous_message": kept,
    }
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": SALES,
        "ts": "1800000000.000200",
        "deleted_ts": message["ts"],
        "previous_message": kept,
    }
    file = h.fake.host_file("a.png", b"\x89PNG", "image/png")
    shared = h.fake.user_message(SALES, BOB, "file", thread_ts=root, files=[file])
    events = tuple(
        h.fake.event_payload(event) for event in (message, reaction, changed, deleted, shared)
    )
    click = h.fake.block_action_payload(
        "ticket_accept", user_id=BOB, channel_id=SALES, message_ts=root
    )
    slash = h.fake.slash_command_payload("/whatsapp", "tickets", user_id=BOB, channel_id=SALES)
    return Templates(h.port, h.fake.signing_secret, events, click, slash)


async def _a_valid_message_still_reaches_the_customer(h: SlackHarness) -> None:
    other = "+5511900001111"
    await h.customer(text="depois", sender=other, name="Ana")
    ticket = int(await h.db.fetchval("SELECT MAX(id) FROM tickets"))
    root = h.thread_root(ticket_id=ticket)
    event = h.fake.user_message(SALES, BOB, "ainda funciona", thread_ts=root)
    status, _ = await h.http("events_api", h.fake.event_payload(event))
    assert status == 200
    await until(
        lambda: any(
            m.get("to") == other and m.get("text") == "*Bob Silva:*\nainda funciona"
            for m in h.outbound()
        ),
        what="the reply after the fuzzing",
    )
