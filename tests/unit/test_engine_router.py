"""EngineRouter: each session's calls reach the engine serving it, and no other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.errors import EngineError
from bridge.model import Media, MediaKind, Quote, Text
from bridge.whatsapp.engine import (
    ConnectedEvent,
    EngineEvent,
    EventHandler,
    PairSuccessEvent,
    SessionSpec,
)
from bridge.whatsapp.engine_router import EngineRouter, one_engine
from tests.fakes.fake_engine import FakeEngine

WHATSMEOW_KEY = "acme/sales"
CLOUD_KEY = "acme/api"


class RecordingEngine(FakeEngine):
    """FakeEngine that also records the calls it leaves to the base class."""

    def __init__(self, handler: EventHandler, *, clock: FakeClock, name: str) -> None:
        super().__init__(handler, clock=clock)
        self.name = name
        self.closed = 0

    async def send_template(
        self,
        key: str,
        to: str,
        *,
        name: str,
        language: str,
        params: Sequence[str],
        message_id: str | None = None,
    ) -> str:
        self._record(
            "send_template",
            key,
            to=to,
            name=name,
            language=language,
            params=list(params),
            message_id=message_id,
        )
        return "wamid.TEMPLATE"

    async def account_facts(self, key: str) -> dict[str, str]:
        self._record("account_facts", key)
        return {"engine": self.name}

    async def close(self) -> None:
        self.closed += 1


class Setup:
    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        clock = FakeClock()
        self.whatsmeow = RecordingEngine(self.events_handler, clock=clock, name="whatsmeow")
        self.cloud = RecordingEngine(self.events_handler, clock=clock, name="cloud")
        self.router = EngineRouter(
            engines={"whatsmeow": self.whatsmeow, "cloud": self.cloud},
            engine_of={WHATSMEOW_KEY: "whatsmeow", CLOUD_KEY: "cloud"},
        )

    async def events_handler(self, event: EngineEvent) -> None:
        self.events.append(event)


def spec(key: str) -> SessionSpec:
    company, _, name = key.partition("/")
    return SessionSpec(key=key, company=company, name=name, device_dir=Path("/nonexistent"))


MEDIA = Media(MediaKind.IMAGE, "image/jpeg", ref={"cloud_media_id": "123"})
QUOTE = Quote("wamid.Q", sender="+5511900000001", text="hi")

Call = Callable[[EngineRouter, str], Awaitable[Any]]
OPERATIONS: list[tuple[str, Call, dict[str, Any]]] = [
    ("is_paired", lambda r, k: r.is_paired(spec(k)), {}),
    ("connect", lambda r, k: r.connect(spec(k)), {}),
    ("login", lambda r, k: r.login(spec(k), phone="+5511900000001"), {"phone": "+5511900000001"}),
    ("disconnect", lambda r, k: r.disconnect(k), {}),
    ("logout", lambda r, k: r.logout(k), {}),
    (
        "send",
        lambda r, k: r.send(k, "+5511900000001", Text("oi"), quote=QUOTE, message_id="M1"),
        {"to": "+5511900000001", "content": Text("oi"), "quote": QUOTE, "message_id": "M1"},
    ),
    (
        "react",
        lambda r, k: r.react(
            k, "+5511900000001", target="wamid.T", target_sender=None, emoji="👍", message_id="M2"
        ),
        {
            "to": "+5511900000001",
            "target": "wamid.T",
            "target_sender": None,
            "emoji": "👍",
            "message_id": "M2",
        },
    ),
    (
        "edit",
        lambda r, k: r.edit(k, "+5511900000001", target="wamid.T", text="new", message_id="M3"),
        {"to": "+5511900000001", "target": "wamid.T", "text": "new", "message_id": "M3"},
    ),
    (
        "revoke",
        lambda r, k: r.revoke(k, "+5511900000001", target="wamid.T", message_id="M4"),
        {"to": "+5511900000001", "target": "wamid.T", "message_id": "M4"},
    ),
    (
        "mark_read",
        lambda r, k: r.mark_read(k, "+5511900000001", ids=["wamid.A"], sender="+5511900000001"),
        {"chat": "+5511900000001", "ids": ["wamid.A"], "sender": "+5511900000001"},
    ),
    (
        "chat_presence",
        lambda r, k: r.chat_presence(k, "+5511900000001", state="composing"),
        {"to": "+5511900000001", "state": "composing"},
    ),
    ("download", lambda r, k: r.download(k, MEDIA), {"media": MEDIA}),
    (
        "send_template",
        lambda r, k: r.send_template(
            k, "+5511900000001", name="ticket_followup", language="pt_BR", params=["12"]
        ),
        {
            "to": "+5511900000001",
            "name": "ticket_followup",
            "language": "pt_BR",
            "params": ["12"],
            "message_id": None,
        },
    ),
    ("account_facts", lambda r, k: r.account_facts(k), {}),
]


def calls(engine: FakeEngine) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.method, c.key, c.args) for c in engine.calls]


@pytest.mark.parametrize(("method", "call", "args"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
async def test_each_call_goes_to_the_engine_of_its_session(
    method: str, call: Call, args: dict[str, Any]
) -> None:
    setup = Setup()
    await call(setup.router, CLOUD_KEY)
    assert calls(setup.cloud) == [(method, CLOUD_KEY, args)]
    assert calls(setup.whatsmeow) == []

    await call(setup.router, WHATSMEOW_KEY)
    assert calls(setup.whatsmeow) == [(method, WHATSMEOW_KEY, args)]
    assert len(setup.cloud.calls) == 1


async def test_answers_come_back_from_the_engine_that_served_the_call() -> None:
    setup = Setup()
    setup.cloud.paired.add(CLOUD_KEY)
    assert await setup.router.is_paired(spec(CLOUD_KEY)) is True
    assert await setup.router.is_paired(spec(WHATSMEOW_KEY)) is False
    assert await setup.router.send(CLOUD_KEY, "+5511900000001", Text("a")) == "FAKE1"
    assert await setup.router.account_facts(CLOUD_KEY) == {"engine": "cloud"}
    assert await setup.router.account_facts(WHATSMEOW_KEY) == {"engine": "whatsmeow"}
    document = Media(MediaKind.DOCUMENT, "text/plain", data=b"x")
    assert await setup.router.download(CLOUD_KEY, document) == b"x"


async def test_an_unknown_session_is_an_engine_error_and_reaches_no_engine() -> None:
    setup = Setup()
    with pytest.raises(EngineError) as caught:
        await setup.router.send("acme/nobody", "+5511900000001", Text("a"))
    assert caught.value.explanation == (
        "no engine serves the session acme/nobody: it is not configured"
    )
    with pytest.raises(EngineError):
        await setup.router.connect(spec("globex/sales"))
    assert setup.cloud.calls == setup.whatsmeow.calls == []


async def test_a_session_naming_an_engine_not_built_is_refused_at_construction() -> None:
    engine = RecordingEngine(Setup().events_handler, clock=FakeClock(), name="whatsmeow")
    with pytest.raises(ValueError, match="sessions name engines that were not built: cloud"):
        EngineRouter(engines={"whatsmeow": engine}, engine_of={CLOUD_KEY: "cloud"})


async def test_events_reach_the_shared_handler_from_each_engine_and_none_from_the_router() -> None:
    setup = Setup()
    await setup.cloud.scan(CLOUD_KEY, "+5511900000009")
    await setup.router.connect(spec(WHATSMEOW_KEY))  # the fake emits ConnectedEvent
    assert setup.events == [
        PairSuccessEvent(CLOUD_KEY, phone="+5511900000009"),
        ConnectedEvent(CLOUD_KEY, phone="+5511900000009"),
        ConnectedEvent(WHATSMEOW_KEY, phone=None),
    ]
    with pytest.raises(NotImplementedError):
        await setup.router.emit(ConnectedEvent(CLOUD_KEY))
    assert len(setup.events) == 3


async def test_close_closes_each_engine_once() -> None:
    setup = Setup()
    router = EngineRouter(
        engines={"whatsmeow": setup.whatsmeow, "sim": setup.whatsmeow, "cloud": setup.cloud},
        engine_of={WHATSMEOW_KEY: "whatsmeow", CLOUD_KEY: "cloud"},
    )
    await router.close()
    assert (setup.whatsmeow.closed, setup.cloud.closed) == (1, 1)


async def test_an_engine_failing_to_close_does_not_keep_the_other_open() -> None:
    setup = Setup()

    async def failing_close() -> None:
        raise EngineError("the Graph API client would not close")

    setup.cloud.close = failing_close  # type: ignore[method-assign]
    with pytest.raises(EngineError, match="would not close"):
        await setup.router.close()
    assert setup.whatsmeow.closed == 1


def test_one_engine_is_the_engine_itself_when_only_one_is_built() -> None:
    setup = Setup()
    only = one_engine({"cloud": setup.cloud}, {CLOUD_KEY: "cloud", "acme/b": "cloud"})
    assert only is setup.cloud
    routed = one_engine(
        {"whatsmeow": setup.whatsmeow, "cloud": setup.cloud},
        {WHATSMEOW_KEY: "whatsmeow", CLOUD_KEY: "cloud"},
    )
    assert isinstance(routed, EngineRouter)
    assert routed.engine_for(CLOUD_KEY) is setup.cloud
