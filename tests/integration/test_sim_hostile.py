"""Hostile input at ``/sim`` against a whole running bridge (issue 11), on both databases.

The real composition root runs on the sim engine with recording frontends; its HTTP
server gets generated requests on every ``/sim`` route: valid and invalid inbound
kinds, wrong types, odd Unicode, huge numbers, deep nesting, raw bytes, odd headers,
odd methods and paths; then bodies too large or too slow. Every answer must be 2xx
or 4xx (JSON ``{"error"}`` for a refusal), the bridge's event loop must never stall
for more than 100 ms, and a customer message sent afterwards must still reach the
frontends. Each test prints how many inputs it tried and the worst stall (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import gc
import gzip
import json
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import MediaConfig
from bridge.core.frontend import AuthorKind
from bridge.db.database import Database
from bridge.model import Text
from bridge.whatsapp import sim_http
from bridge.whatsapp.sim_bodies import FAULT_KINDS, INBOUND_KINDS, MEDIA_KINDS
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CUSTOMER, CoreHarness, until
from tests.harness.stall import LoopStallMonitor

MEDIA_MB = 1  # so that a 10 MB body is over every /sim limit
BODY_SECONDS = 0.5  # the body deadline, shortened for the trickling sender
MAX_STALL = 0.1

# "sales" takes customer messages and never gets a valid fault or scan, so the final
# check can use it; faults and scans go to the other sessions.
MESSAGE_SEGMENTS = ["sales", "acme%2Fsales", "support"]
STATE_SEGMENTS = ["support", "globex%2Fmain"]
ODD_SEGMENTS = ["nobody", "acme%2Fnobody", "%FF", "%00", "acme%252Fsales", "a" * 300, "..", "%2F"]


@dataclass
class Tally:
    """What one test tried, for its report line."""

    inputs: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    worst: float = 0.0

    def add(self, status: int) -> None:
        self.inputs += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def line(self, name: str) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"{name}: {self.inputs} inputs ({codes}), worst loop stall {self.worst * 1000:.1f} ms"
        )


class HostileBridge:
    def __init__(self, core: CoreHarness, http: aiohttp.ClientSession) -> None:
        self.core, self.http = core, http
        self.base = f"http://127.0.0.1:{core.bridge.web.port}"
        self.tally = Tally()
        self.checks = 0

    async def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> int:
        async with self.http.request(method, self.base + path, data=body, headers=headers) as r:
            answer = await r.read()
            status = r.status
            is_json = r.content_type == "application/json"
        self.tally.add(status)
        assert status < 500, (method, path, body and body[:300], headers, answer[:300])
        if status >= 400 and is_json and method != "HEAD":  # aiohttp's own refusals are text
            assert "error" in json.loads(answer), answer[:300]
        return status

    async def customer_message_arrives(self) -> None:
        """A valid customer message still reaches the frontends."""
        self.checks += 1
        text = f"still here {self.checks}"
        body = {"from": CUSTOMER, "push_name": "Maria", "kind": "text", "text": text}
        status = await self.send(
            "POST", "/sim/sessions/sales/inbound", json.dumps(body).encode(), {}
        )
        assert status == 200
        fe = self.core.frontends["matrix"]

        def arrived() -> bool:
            return any(
                c.args["content"] == Text(text) and c.args["author"].kind is AuthorKind.CUSTOMER
                for c in fe.of("post")
            )

        await until(arrived, what=f"customer message {text!r} posted", limit=10)


@pytest.fixture
async def hostile(
    request: pytest.FixtureRequest, tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HostileBridge]:
    slow_cutoff = functools.partial(sim_http.sim_routes, body_seconds=BODY_SECONDS)
    monkeypatch.setattr(sim_http, "sim_routes", slow_cutoff)  # app.py imports it at start
    core = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    core.config = dataclasses.replace(core.config, media=MediaConfig(max_size_mb=MEDIA_MB))
    core.bridge = core._new_bridge()
    await core.start()
    gc.collect()
    gc.freeze()  # the test process's own heap: its collections are no request's doing
    try:
        # a new connection per request: a refusal may close the connection it came on
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            hostile = HostileBridge(core, http)
            yield hostile
    finally:
        gc.unfreeze()
        await core.stop()
    print(f"\n{hostile.tally.line(request.node.name)}")


# --- generated requests ----------------------------------------------------------------

_ODD_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "Ma\x00ria",
        "\x1b[31mred",
        "\u202eevil\u202c",
        "e\u0301" * 50,
        "😀" * 100,
        "\ufeff",
        "a\r\nb",
        "\u200b",
        "x" * 70_000,  # over the text limit
        "\ud800",  # a lone surrogate: strict JSON refuses it
        "+٥٥١١٩٨٧٦٥٤٣٢١",
    ]
)
_TEXT = st.text(max_size=40) | _ODD_TEXT
_NUMBER = st.sampled_from([0, -1, 1, 90, 90.0000001, -180, 1e308, -1e308, 10**30, 2**63, 0.5])
_JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _NUMBER
    | _TEXT
)
_JSON = st.recursive(
    _JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_PHONE = st.sampled_from(
    [CUSTOMER, "+55 (11) 98765-4321", "+٥٥١١٩٨٧٦٥٤٣٢١", "+5511900000099", "123", "abc", ""]
) | st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)
_ID = st.from_regex(r"[!-~]{1,20}", fullmatch=True) | _TEXT
_B64 = st.sampled_from(["aGVsbG8=", "%%%", "", "AAA", "AA==", "aGVsbG8=\n"]) | st.binary(
    min_size=1, max_size=64
).map(lambda b: base64.b64encode(b).decode())


@st.composite
def _kind_fields(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    if kind == "text":
        return {"text": draw(_TEXT)}
    if kind in MEDIA_KINDS:
        media = {"data_b64": draw(_B64)}
        for name in ("mimetype", "filename", "caption"):
            if draw(st.booleans()):
                media[name] = draw(_TEXT | st.just("image/png"))
        for name in ("width", "height", "duration"):
            if draw(st.booleans()):
                media[name] = draw(_NUMBER | st.integers(0, 10_000))
        return {"media": media}
    if kind == "location":
        lat, lon = draw(_NUMBER | st.floats(-90, 90)), draw(_NUMBER | st.floats(-180, 180))
        return {"location": {"lat": lat, "lon": lon, "name": draw(_TEXT)}}
    if kind == "contact":
        return {"contact": {"display_name": draw(_TEXT), "vcard": draw(_TEXT)}}
    if kind == "reaction":
        return {"target": draw(_ID), "emoji": draw(_TEXT)}
    if kind == "edit":
        return {"target": draw(_ID), "text": draw(_TEXT)}
    if kind == "revoke":
        return {"target": draw(_ID)}
    return {"type": draw(_TEXT)}


@st.composite
def _inbound_body(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(INBOUND_KINDS) | _TEXT)
    body: dict[str, Any] = {"from": draw(_PHONE), "kind": kind}
    if kind in INBOUND_KINDS:
        body |= draw(_kind_fields(kind))
    extras = {
        "push_name": _TEXT,
        "quote": _ID,
        "id": _ID,
        "group": st.fixed_dictionaries(
            {"id": st.sampled_from(["120363000000000001@g.us", "x@g.us", ""]), "name": _TEXT}
        ),
        "avatar_url": st.sampled_from(["https://pps.example/a.jpg", "javascript:x", "http://"]),
    }
    for name, strategy in extras.items():
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(strategy)
    return body


@st.composite
def _mutated(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with one field removed, replaced by any JSON value, or added."""
    body = dict(body)
    keys = sorted(body)
    action = draw(st.sampled_from(["keep"] * 3 + ["drop", "replace", "add"]))
    if action == "drop" and keys:
        body.pop(draw(st.sampled_from(keys)))
    elif action == "replace" and keys:
        body[draw(st.sampled_from(keys))] = draw(_JSON)
    elif action == "add":
        body[draw(_TEXT)] = draw(_JSON)
    return body


_OTHER_BODIES = {
    "scan": st.fixed_dictionaries({"phone": _PHONE}),
    "receipt": st.fixed_dictionaries(
        {"id": _ID, "status": st.sampled_from(["delivered", "read", "played"]) | _TEXT}
    ),
    "fault": st.fixed_dictionaries(
        {"kind": st.sampled_from(FAULT_KINDS) | _TEXT},
        optional={"seconds": _NUMBER | st.floats(0, 100)},
    ),
    "fail_sends": st.fixed_dictionaries(
        {"count": _NUMBER | st.integers(-5, 2_000)}, optional={"error": _TEXT}
    ),
}
_RAW_BODIES = st.sampled_from(
    [
        b"",
        b"null",
        b"[]",
        b'"x"',
        b"\xff\xfe\x00",
        b'{"kind": NaN}',
        b'{"seconds": Infinity, "kind": "ban"}',
        b'{"kind": "ban", "seconds": 1e400}',
        b'{"kind": "ban", "seconds": 1' + b"0" * 5000 + b"}",
        b'{"text": "\\ud800", "kind": "text", "from": "+5511987654321"}',
        b'{"kind": "text", "kind": "image", "from": "+5511987654321", "text": "dup"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 100 + b"1" + b"}" * 100,
        b"[" * 20,
        b'{"from": "+5511987654321", "kind": "text", "text": "' + b"\\u0000" * 1000 + b'"}',
    ]
) | st.binary(max_size=300)
_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "application/json; charset=latin-1", "x/y"]
        ),
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "identity", "br", "zstd", "x"]),
        "X-Odd": st.sampled_from(["\t", "a" * 4000, "é"]),
    },
)


@st.composite
def _request(draw: st.DrawFn) -> tuple[str, str, bytes | None, dict[str, str]]:
    endpoint = draw(
        st.sampled_from(
            ["inbound"] * 8
            + ["scan", "receipt", "fault", "fail_sends"] * 3
            + ["get", "outbound", "nothing", "inbound/x", ""]
        )
    )
    known = STATE_SEGMENTS if endpoint in ("scan", "fault") else MESSAGE_SEGMENTS + STATE_SEGMENTS
    odd = draw(st.integers(0, 7)) == 0
    segment = draw(st.sampled_from(ODD_SEGMENTS if odd else known))
    path = f"/sim/sessions/{segment}" + ("" if endpoint == "get" else f"/{endpoint}")
    method = "GET" if endpoint in ("get", "outbound") else "POST"
    method = draw(st.sampled_from([method] * 30 + ["PUT", "DELETE", "PATCH", "HEAD"]))
    if endpoint == "inbound":
        value: Any = draw(_inbound_body().flatmap(_mutated))
    elif endpoint in _OTHER_BODIES:
        value = draw(_OTHER_BODIES[endpoint].flatmap(_mutated))
    else:
        value = draw(_JSON)
    form = draw(st.sampled_from(["json", "json", "json", "ascii", "raw", "none"]))
    if form == "none":
        body = None
    elif form == "raw":
        body = draw(_RAW_BODIES)
    else:
        body = json.dumps(value, ensure_ascii=form == "ascii").encode("utf-8", "surrogatepass")
    headers = draw(_HEADERS)
    if headers.get("Content-Encoding") == "gzip" and body is not None and draw(st.booleans()):
        body = gzip.compress(body)
    if method == "HEAD":  # aiohttp's own 400 to a HEAD with a bad encoding carries a body
        body, headers = None, {}
    return method, path, body, headers


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(requests=st.lists(_request(), min_size=1, max_size=6))
async def test_generated_requests_get_2xx_or_4xx_and_never_stall_the_bridge(
    hostile: HostileBridge, requests: list[tuple[str, str, bytes | None, dict[str, str]]]
) -> None:
    async with LoopStallMonitor() as monitor:
        for method, path, body, headers in requests:
            await hostile.send(method, path, body, headers)
        await hostile.customer_message_arrives()
    hostile.tally.worst = max(hostile.tally.worst, monitor.worst)
    assert monitor.worst < MAX_STALL, monitor.report()


# --- sizes and slowness ----------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024
POSTS = ["inbound", "scan", "receipt", "fault", "fail_sends"]


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for _ in range(total // size):
        yield b" " * size


async def test_large_and_slow_bodies_are_refused_fast(hostile: HostileBridge) -> None:
    async with LoopStallMonitor() as monitor:
        for endpoint in POSTS:
            path = f"/sim/sessions/sales/{endpoint}"
            started = time.monotonic()
            assert await hostile.send("POST", path, b" " * TEN_MB, {}) == 413  # declared
            assert time.monotonic() - started < 2.0
            async with hostile.http.post(hostile.base + path, data=_chunks(TEN_MB)) as r:
                hostile.tally.add(r.status)
                assert r.status == 413  # chunked: cut off once it passes the limit
            await _trickle(hostile, path)
            await _short_body(hostile, path)
        await hostile.customer_message_arrives()
    hostile.tally.worst = monitor.worst
    assert monitor.worst < MAX_STALL, monitor.report()


async def _trickle(hostile: HostileBridge, path: str) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" "
            await asyncio.sleep(0.1)

    started = time.monotonic()
    async with hostile.http.post(hostile.base + path, data=trickle()) as r:
        hostile.tally.add(r.status)
        assert r.status == 408
        assert (await r.json())["error"] == f"the body did not arrive within {BODY_SECONDS:g} s"
    assert time.monotonic() - started < BODY_SECONDS + 1.5


async def _short_body(hostile: HostileBridge, path: str) -> None:
    """A Content-Length the sender never fulfils: the deadline ends the wait."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hostile.core.bridge.web.port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode()
    writer.write(head)
    await writer.drain()
    started = time.monotonic()
    status_line = await asyncio.wait_for(reader.readline(), BODY_SECONDS + 2)
    writer.close()
    status = int(status_line.split()[1])
    hostile.tally.add(status)
    assert status == 408
    assert time.monotonic() - started < BODY_SECONDS + 1.5


async def test_a_gzip_bomb_does_not_stall_the_bridge(hostile: HostileBridge) -> None:
    bomb = _gzip_bomb()
    async with LoopStallMonitor() as monitor:
        status = await hostile.send(
            "POST", "/sim/sessions/sales/inbound", bomb, {"Content-Encoding": "gzip"}
        )
        assert status == 415
        await asyncio.sleep(3)  # the drain after the answer
        await hostile.customer_message_arrives()
    hostile.tally.worst = monitor.worst
    assert monitor.worst < MAX_STALL, monitor.report()


@functools.cache
def _gzip_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GB of spaces (made without holding 1 GB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
    chunk = b" " * (1024 * 1024)
    return b"".join(packer.compress(chunk) for _ in range(1024)) + packer.flush()
