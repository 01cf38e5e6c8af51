"""``/cloud/webhook`` (bridge.whatsapp.cloud.webhook) in a small aiohttp app, with a
recording emit: Meta's verification, signatures over the raw body, routing by
``phone_number_id`` among the signing app's sessions, refusals, and any body."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config.schema import CloudConfig
from bridge.errors import DatabaseError
from bridge.model import Party, Text
from bridge.whatsapp.cloud.inbound import MAX_ITEMS
from bridge.whatsapp.cloud.webhook import PATH, SIGNATURE_HEADER, CloudWebhook
from bridge.whatsapp.engine import EngineEvent, MessageEvent, ReceiptEvent
from tests.harness.core import until

SECRET_A = "app-a-secret-0123456789abcdef"
SECRET_B = "app-b-secret-fedcba9876543210"
SALES = CloudConfig("1001", "token-sales", SECRET_A, "verify-a")
SUPPORT = CloudConfig("1002", "token-support", SECRET_A, "verify-a")
OTHER = CloudConfig("2001", "token-other", SECRET_B, "verify-b")
SESSIONS = {"acme/sales": SALES, "acme/support": SUPPORT, "beta/desk": OTHER}
CUSTOMER = "16505551234"
LIMIT = 64 * 1024

log = logging.getLogger(__name__)


@dataclass
class Recorder:
    """The emit: records each event; ``fail_after`` events it raises, ``gate`` holds it
    (``called`` counts the calls, held or not)."""

    events: list[EngineEvent] = field(default_factory=list)
    fail_after: int | None = None
    gate: asyncio.Event | None = None
    called: int = 0

    async def __call__(self, event: EngineEvent) -> None:
        self.called += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_after is not None and len(self.events) >= self.fail_after:
            raise DatabaseError("the database is away")
        self.events.append(event)


def text(wa_id: str, words: str, sender: str = CUSTOMER) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wa_id,
        "timestamp": "1749416383",
        "type": "text",
        "text": {"body": words},
    }


def change(number_id: str, **value: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": "15550000000", "phone_number_id": number_id}
    return {
        "field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": metadata, **value},
    }


def payload(*changes: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": list(changes)}]}


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


def signature(raw: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def altered(header: str) -> str:
    """``header`` with its last hex digit changed."""
    return header[:-1] + ("1" if header.endswith("0") else "0")


@dataclass
class Hook:
    client: TestClient[web.Request, web.Application]
    emitted: Recorder

    async def post(
        self, raw: bytes, *, secret: str | None = SECRET_A, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        sent = {"Content-Type": "application/json"}
        if secret is not None:
            sent[SIGNATURE_HEADER] = signature(raw, secret)
        sent.update(headers or {})
        async with self.client.post(PATH, data=raw, headers=sent) as answer:
            return answer.status, await answer.text()

    async def verify(self, **query: str) -> tuple[int, str]:
        async with self.client.get(PATH, params=query) as answer:
            return answer.status, await answer.text()


def app_of(emit: Callable[[EngineEvent], Awaitable[None]]) -> web.Application:
    app = web.Application()
    app.add_routes(CloudWebhook(SESSIONS, emit, max_body_bytes=LIMIT).routes())
    return app


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    recorder = Recorder()
    client = TestClient(TestServer(app_of(recorder), auto_decompress=False))
    await client.start_server()
    try:
        yield Hook(client, recorder)
    finally:
        await client.close()


# --- verification -------------------------------------------------------------------------


async def test_verification_answers_the_challenge_for_any_sessions_token(hook: Hook) -> None:
    for token in ("verify-a", "verify-b"):
        status, answer = await hook.verify(
            **{"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
        )
        assert (status, answer) == (200, "1158201444")


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        (
            {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
            403,
            "token",
        ),
        (
            {"hub.mode": "subscribe", "hub.verify_token": "verify-a"},
            400,
            "hub.challenge is missing",
        ),
        ({"hub.verify_token": "verify-a", "hub.challenge": "1"}, 400, "hub.mode is missing"),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, 400, "hub.verify_token is missing"),
        (
            {"hub.mode": "unsubscribe", "hub.verify_token": "verify-a", "hub.challenge": "1"},
            400,
            "subscribe",
        ),
        (
            {"hub.mode": "subscribe", "hub.verify_token": "verify-a", "hub.challenge": "<b> x"},
            400,
            "challenge",
        ),
    ],
)
async def test_verification_refusals(
    hook: Hook, query: dict[str, str], status: int, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    got, answer = await hook.verify(**query)
    assert got == status and words in answer
    assert "verify-a" not in answer and "verify-a" not in caplog.text


# --- signed bodies --------------------------------------------------------------------------


async def test_a_signed_body_is_emitted_in_order_for_the_session_of_its_number(hook: Hook) -> None:
    statuses = [
        {"id": "wamid.OURS", "status": "read", "timestamp": "1749416383", "recipient_id": CUSTOMER}
    ]
    body = payload(
        change("1001", messages=[text("wamid.A", "one"), text("wamid.B", "two")]),
        change("1002", statuses=statuses),
    )
    assert await hook.post(encoded(body)) == (200, "ok")
    assert [(e.session, type(e)) for e in hook.emitted.events] == [
        ("acme/sales", MessageEvent),
        ("acme/sales", MessageEvent),
        ("acme/support", ReceiptEvent),
    ]
    first = hook.emitted.events[0]
    assert isinstance(first, MessageEvent)
    assert first.message.content == Text("one") and first.message.chat == Party(
        phone="+" + CUSTOMER
    )


async def test_the_other_apps_secret_signs_for_its_own_number(hook: Hook) -> None:
    body = encoded(payload(change("2001", messages=[text("wamid.C", "hi")])))
    assert (await hook.post(body, secret=SECRET_B))[0] == 200
    assert [e.session for e in hook.emitted.events] == ["beta/desk"]


async def test_an_app_cannot_speak_for_another_apps_number(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    body = encoded(
        payload(
            change("2001", messages=[text("wamid.X", "not yours")]),
            change("1001", messages=[text("wamid.Y", "yours")]),
        )
    )
    with caplog.at_level(logging.WARNING, "bridge.whatsapp.cloud"):
        assert (await hook.post(body, secret=SECRET_A))[0] == 200
    assert [
        (e.session, e.message.wa_id) for e in hook.emitted.events if isinstance(e, MessageEvent)
    ] == [("acme/sales", "wamid.Y")]
    assert "beta/desk left out: signed by another app" in caplog.text
    assert SECRET_A not in caplog.text and SECRET_B not in caplog.text


async def test_an_unknown_number_is_logged_and_answered_200(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    body = encoded(payload(change("9999", messages=[text("wamid.Z", "who?")])))
    with caplog.at_level(logging.WARNING, "bridge.whatsapp.cloud"):
        assert await hook.post(body) == (200, "ok")
    assert hook.emitted.events == []
    assert "'9999' left out" in caplog.text


async def test_other_fields_and_objects_are_answered_200_without_events(hook: Hook) -> None:
    template = {"field": "message_template_status_update", "value": {"event": "APPROVED"}}
    for body in (payload(template), {"object": "page", "entry": []}):
        assert (await hook.post(encoded(body)))[0] == 200
    assert hook.emitted.events == []


# --- refusals -----------------------------------------------------------------------------------

BODY = encoded(payload(change("1001", messages=[text("wamid.A", "one")])))


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "not signed"),
        ({SIGNATURE_HEADER: ""}, "not signed"),
        ({SIGNATURE_HEADER: "sha1=" + "0" * 40}, "not sha256="),
        ({SIGNATURE_HEADER: "sha256=xyz"}, "not sha256="),
        ({SIGNATURE_HEADER: signature(BODY, "another secret")}, "signature"),
        ({SIGNATURE_HEADER: signature(BODY + b" ", SECRET_A)}, "signature"),
        ({SIGNATURE_HEADER: altered(signature(BODY, SECRET_A))}, "signature"),
    ],
)
async def test_unsigned_or_missigned_bodies_are_401_and_nothing_is_emitted(
    hook: Hook, headers: dict[str, str], words: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "bridge.whatsapp.cloud"):
        status, answer = await hook.post(BODY, secret=None, headers=headers)
    assert status == 401 and words in answer
    assert hook.emitted.events == []
    assert "refused (401)" in caplog.text


async def test_an_uppercase_hex_signature_is_accepted(hook: Hook) -> None:
    header = "sha256=" + signature(BODY, SECRET_A).removeprefix("sha256=").upper()
    assert (await hook.post(BODY, secret=None, headers={SIGNATURE_HEADER: header}))[0] == 200
    assert len(hook.emitted.events) == 1


@pytest.mark.parametrize(
    ("raw", "status", "words"),
    [
        (b'{"object": "whatsapp_business_account", "entry": [', 400, "not valid JSON"),
        (b'{"a": NaN}', 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not UTF-8"),
        (encoded([1, 2]), 400, "the body must be an object"),
        (
            encoded({"object": "whatsapp_business_account", "entry": "x"}),
            400,
            "entry must be a list",
        ),
        (encoded(payload({"field": "messages", "value": {}})), 400, "metadata is required"),
        (
            encoded(
                payload(
                    change("1001", messages=[text(f"wamid.{n}", "x") for n in range(MAX_ITEMS + 1)])
                )
            ),
            400,
            "more than 1000 entries",
        ),
        (
            encoded(
                payload(
                    change(
                        "1001",
                        messages=[text(f"wamid.{n}", "x") for n in range(MAX_ITEMS // 2 + 1)],
                    ),
                    change(
                        "1002",
                        messages=[text(f"wamid.{n}", "x") for n in range(MAX_ITEMS // 2 + 1)],
                    ),
                )
            ),
            413,
            "more than 1000 messages",
        ),
    ],
)
async def test_signed_bodies_of_the_wrong_shape_are_refused_with_a_reason(
    hook: Hook, raw: bytes, status: int, words: str
) -> None:
    big = CloudWebhook(SESSIONS, hook.emitted, max_body_bytes=1024 * 1024)
    app = web.Application()
    app.add_routes(big.routes())
    async with TestClient(TestServer(app)) as client:
        headers = {SIGNATURE_HEADER: signature(raw, SECRET_A), "Content-Type": "application/json"}
        async with client.post(PATH, data=raw, headers=headers) as answer:
            assert (answer.status, words in await answer.text()) == (status, True)
    assert hook.emitted.events == []


async def test_a_body_over_the_limit_is_413_before_its_signature_is_checked(hook: Hook) -> None:
    raw = b" " * (LIMIT + 1)
    status, answer = await hook.post(raw)
    assert status == 413 and "over 64 KiB" in answer


async def test_a_compressed_body_is_415(hook: Hook) -> None:
    raw = gzip.compress(BODY)
    status, _ = await hook.post(
        raw,
        secret=None,
        headers={SIGNATURE_HEADER: signature(raw, SECRET_A), "Content-Encoding": "gzip"},
    )
    assert status == 415
    assert hook.emitted.events == []


# --- the answer waits for the emits -------------------------------------------------------------


async def test_the_answer_comes_only_after_every_emit_returned(hook: Hook) -> None:
    hook.emitted.gate = asyncio.Event()
    body = encoded(
        payload(change("1001", messages=[text("wamid.A", "one"), text("wamid.B", "two")]))
    )
    answer = asyncio.create_task(hook.post(body))
    await until(lambda: hook.emitted.called == 1, what="the first emit")
    await asyncio.sleep(0)  # let the handler run on, were it not held by the emit
    assert not answer.done(), "answered while an emit was still running"
    assert hook.emitted.events == []
    hook.emitted.gate.set()
    assert await asyncio.wait_for(answer, timeout=5) == (200, "ok")
    assert [e.message.wa_id for e in hook.emitted.events if isinstance(e, MessageEvent)] == [
        "wamid.A",
        "wamid.B",
    ]


async def test_an_emit_that_raises_is_a_500_so_meta_sends_the_body_again(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.emitted.fail_after = 1
    body = encoded(
        payload(change("1001", messages=[text("wamid.A", "one"), text("wamid.B", "two")]))
    )
    with caplog.at_level(logging.ERROR, "bridge.whatsapp.cloud"):
        status, _ = await hook.post(body)
    assert status == 500
    assert "acme/sales was not taken" in caplog.text
    hook.emitted.fail_after = None
    assert (await hook.post(body))[0] == 200  # Meta's redelivery, once the database is back
    assert [e.message.wa_id for e in hook.emitted.events if isinstance(e, MessageEvent)] == [
        "wamid.A",
        "wamid.A",
        "wamid.B",
    ]


# --- any body -----------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=16,
)
OUR_NUMBERS = st.sampled_from(["1001", "1002", "2001", "9999"])
IDS = st.from_regex(r"wamid\.[A-Za-z0-9=]{1,24}", fullmatch=True) | JSON
SENDERS = st.sampled_from([CUSTOMER, "5511987654321"]) | JSON
KINDS = st.sampled_from(["text", "image", "audio", "reaction", "contacts", "location", "button"])
PARTS = (
    st.fixed_dictionaries({"body": st.text(max_size=30)})
    | st.fixed_dictionaries(
        {"id": st.text(max_size=12)}, optional={"mime_type": JSON, "voice": JSON}
    )
    | st.fixed_dictionaries({"message_id": IDS}, optional={"emoji": st.text(max_size=3)})
    | st.fixed_dictionaries({"latitude": JSON, "longitude": st.floats(-200, 200)})
    | JSON
)
MESSAGES = st.lists(
    st.builds(
        lambda kind, part, envelope: (
            {"type": kind, kind if isinstance(kind, str) else "x": part} | envelope
        ),
        KINDS | JSON,
        PARTS,
        st.fixed_dictionaries(
            {"from": SENDERS, "id": IDS}, optional={"context": JSON, "timestamp": JSON}
        ),
    ),
    max_size=3,
)
STATUSES = st.lists(
    st.fixed_dictionaries(
        {
            "id": IDS,
            "status": st.sampled_from(["sent", "delivered", "read", "failed", "deleted"]) | JSON,
            "recipient_id": SENDERS,
        },
        optional={
            "errors": st.lists(st.dictionaries(st.text(max_size=8), JSON)),
            "timestamp": JSON,
        },
    ),
    max_size=3,
)


def shaped(number_id: Any, messages: Any, statuses: Any, extra: dict[str, Any]) -> dict[str, Any]:
    value = {"metadata": {"phone_number_id": number_id}, "messages": messages, "statuses": statuses}
    return payload({"field": "messages", "value": value | extra})


CONTACTS = st.lists(st.fixed_dictionaries({"wa_id": SENDERS, "profile": JSON}), max_size=2)
WELL_SHAPED = st.builds(
    shaped, OUR_NUMBERS, MESSAGES, STATUSES, st.fixed_dictionaries({"contacts": CONTACTS})
)
ODDLY_SHAPED = st.builds(
    shaped,
    OUR_NUMBERS | JSON,
    MESSAGES | JSON,
    STATUSES | JSON,
    st.dictionaries(st.sampled_from(["contacts", "errors", "metadata"]), JSON),
)
BODIES = st.one_of(
    WELL_SHAPED.map(encoded),
    WELL_SHAPED.map(encoded),
    ODDLY_SHAPED.map(encoded),
    JSON.map(encoded),
    st.binary(max_size=200),
    ODDLY_SHAPED.map(lambda value: encoded(value)[: len(encoded(value)) // 2]),
)


class Loop:
    """A client on its own event loop, for Hypothesis's synchronous examples."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.recorder = Recorder()
        self.client = self.loop.run_until_complete(self._started())

    async def _started(self) -> TestClient[web.Request, web.Application]:
        client = TestClient(TestServer(app_of(self.recorder)))
        await client.start_server()
        return client

    def post(self, raw: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async def send() -> tuple[int, str]:
            async with self.client.post(PATH, data=raw, headers=headers) as answer:
                return answer.status, await answer.text()

        return self.loop.run_until_complete(send())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


@pytest.fixture(scope="module")
def looped() -> Iterator[Loop]:
    loop = Loop()
    try:
        yield loop
    finally:
        loop.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=BODIES, signed=st.booleans())
def test_any_body_is_processed_or_refused_never_a_crash(
    looped: Loop, raw: bytes, signed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(looped.recorder.events)
    headers = {SIGNATURE_HEADER: signature(raw, SECRET_A if signed else "not ours")}
    caplog.clear()
    with caplog.at_level(logging.INFO, "bridge.whatsapp.cloud"):
        status, answer = looped.post(raw, headers)
    if not signed:
        assert status == 401 and len(looped.recorder.events) == before
        return
    assert status == 200 or 400 <= status < 500, (status, answer)
    if status != 200:
        assert len(looped.recorder.events) == before
        assert f"refused ({status})" in caplog.text
    for event in looped.recorder.events[before:]:
        assert event.session in ("acme/sales", "acme/support")
