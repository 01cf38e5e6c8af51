"""SessionManager: status transitions, reconnect schedule, permanent failures,
staggered start, pacing, listeners, persistence and metrics (fake clock only)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any

import pytest

from bridge.backoff import Backoff
from bridge.clock import FakeClock
from bridge.errors import DatabaseError, EngineError, InvalidInput, SessionNotConnected
from bridge.metrics import Metrics
from bridge.model import Media, MediaKind, Party, Quote, Text
from bridge.model import Message as WaMessage
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    ContactUpdateEvent,
    DisconnectedEvent,
    EngineErrorEvent,
    EngineEvent,
    LoggedOutEvent,
    MessageEvent,
    PairCodeEvent,
    QRCodeEvent,
    SessionSpec,
    StreamReplacedEvent,
    TemporaryBanEvent,
    session_key,
)
from bridge.whatsapp.sessions import SessionManager
from bridge.whatsapp.status import (
    ACTION_ADMIN_LOGOUT,
    ACTION_NEVER_PAIRED,
    ACTION_OUTDATED,
    ACTION_PHONE_UNLINKED,
    ACTION_STREAM_REPLACED,
    SessionStatus,
    StatusChange,
)
from tests.fakes.fake_engine import FakeEngine

S = SessionStatus
KEY = "acme/sales"
PHONE = "+5511900000001"
SEED = 1234
INITIAL, MAXIMUM, STABLE = 2.0, 60.0, 30.0


def make_spec(key: str) -> SessionSpec:
    company, name = key.split("/")
    return SessionSpec(key=key, company=company, name=name, device_dir=Path("devices") / key)


@dataclass(frozen=True)
class Saved:
    key: str
    status: str
    phone: str | None
    error: str | None
    connected_at: float | None


class MemoryStore:
    def __init__(self) -> None:
        self.saved: list[Saved] = []
        self.broken = False

    async def save_status(
        self,
        key: str,
        status: str,
        *,
        phone: str | None,
        error: str | None,
        connected_at: float | None,
    ) -> None:
        if self.broken:
            raise DatabaseError("database is gone")
        self.saved.append(Saved(key, status, phone, error, connected_at))

    def last(self, key: str = KEY) -> Saved:
        return [s for s in self.saved if s.key == key][-1]


@dataclass
class Harness:
    clock: FakeClock
    manager: SessionManager
    engine: FakeEngine
    store: MemoryStore
    metrics: Metrics
    changes: list[StatusChange] = field(default_factory=list)
    forwarded: list[EngineEvent] = field(default_factory=list)

    def transitions(self, key: str = KEY) -> list[tuple[S | None, S]]:
        return [(c.old, c.new) for c in self.changes if c.key == key]

    async def settle(self) -> None:
        await self.clock.settle()
        await self.manager.flush()

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.manager.flush()

    def metric(self, line_start: str) -> float | None:
        for line in self.metrics.render().decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def gauge(self, status: str, key: str = KEY) -> float | None:
        return self.metric(f'zapbridge_session_status{{session="{key}",status="{status}"}}')


def make(
    keys: tuple[str, ...] = (KEY,),
    *,
    paired: tuple[str, ...] | None = None,
    stagger: float = 0.0,
    **options: Any,
) -> Harness:
    clock = FakeClock()
    store = MemoryStore()
    metrics = Metrics()
    settings: dict[str, Any] = {
        "reconnect_initial": INITIAL,
        "reconnect_max": MAXIMUM,
        "stable_seconds": STABLE,
        "stagger_seconds": stagger,
        "send_per_minute": 20,
        "send_burst": 5,
    }
    settings.update(options)
    manager = SessionManager(
        None,
        specs=[make_spec(k) for k in keys],
        store=store,
        clock=clock,
        rng=random.Random(SEED),
        metrics=metrics,
        **settings,
    )
    engine = FakeEngine(
        manager.handle_event,
        clock=clock,
        paired=keys if paired is None else paired,
        phones={k: f"+55119{n:08d}" for n, k in enumerate(keys, start=1)},
    )
    manager.attach_engine(engine)
    harness = Harness(clock, manager, engine, store, metrics)
    manager.add_listener(harness.changes.append)

    async def downstream(event: EngineEvent) -> None:
        harness.forwarded.append(event)

    manager.set_downstream(downstream)
    return harness


async def started(**kwargs: Any) -> Harness:
    h = make(**kwargs)
    await h.manager.start()
    await h.settle()
    return h


def schedule(attempts: Iterable[int]) -> list[float]:
    """The delays the manager draws for ``attempts`` in turn: the same backoff and a
    twin of its rng."""
    twin = random.Random(SEED)
    backoff = Backoff(initial=INITIAL, maximum=MAXIMUM)
    return [backoff.delay(n, twin) for n in attempts]


# --- start -------------------------------------------------------------------------


async def test_paired_session_starts_opening_then_connected() -> None:
    h = await started()
    assert h.manager.status(KEY) is S.CONNECTED
    assert h.transitions() == [(None, S.OPENING), (S.OPENING, S.CONNECTED)]
    assert h.manager.phone(KEY) == PHONE
    assert h.store.last() == Saved(KEY, "CONNECTED", PHONE, None, h.clock.now())
    assert h.gauge("CONNECTED") == 1.0 and h.gauge("OPENING") == 0.0


async def test_never_paired_session_starts_logged_out_and_is_not_connected() -> None:
    h = await started(paired=())
    assert h.manager.status(KEY) is S.LOGGED_OUT
    assert h.transitions() == [(None, S.LOGGED_OUT)]
    assert h.changes[0].action == ACTION_NEVER_PAIRED
    assert h.engine.calls_of("connect") == []
    assert h.store.last().status == "LOGGED_OUT"


async def test_status_before_start_is_opening() -> None:
    h = make()
    assert h.manager.statuses() == {KEY: S.OPENING}
    assert h.changes == []


async def test_two_hundred_sessions_connect_staggered_and_all_end_connected() -> None:
    keys = tuple(session_key("acme", f"s{n:03d}") for n in range(200))
    h = make(keys, stagger=0.5)
    t0 = h.clock.now()
    await h.manager.start()
    await h.settle()
    assert len(h.engine.calls_of("connect")) == 1  # only the first slot is due
    assert set(h.manager.statuses().values()) == {S.OPENING, S.CONNECTED}

    await h.advance(200 * 0.5)
    connects = h.engine.calls_of("connect")
    assert [c.key for c in connects] == list(keys)
    assert [c.at - t0 for c in connects] == pytest.approx([0.5 * n for n in range(200)])
    assert set(h.manager.statuses().values()) == {S.CONNECTED}
    rendered = h.metrics.render().decode()
    assert rendered.count('status="CONNECTED"} 1.0') == 200


async def test_unpaired_sessions_take_no_stagger_slot() -> None:
    keys = ("acme/a", "acme/b", "acme/c")
    h = make(keys, paired=("acme/a", "acme/c"), stagger=2.0)
    t0 = h.clock.now()
    await h.manager.start()
    await h.advance(10)
    assert [(c.key, c.at - t0) for c in h.engine.calls_of("connect")] == [
        ("acme/a", 0.0),
        ("acme/c", 2.0),
    ]
    assert h.manager.statuses() == {
        "acme/a": S.CONNECTED,
        "acme/b": S.LOGGED_OUT,
        "acme/c": S.CONNECTED,
    }


async def test_a_failing_first_connect_backs_off_like_a_reconnect() -> None:
    h = make()
    h.engine.fail_connects(KEY, 1, explanation="no route")
    await h.manager.start()
    await h.settle()
    assert h.manager.status(KEY) is S.DISCONNECTED
    assert h.changes[-1].reason == "no route (1)"
    await h.advance(schedule(range(1, 2))[0])
    assert h.manager.status(KEY) is S.CONNECTED
    assert len(h.engine.calls_of("connect")) == 2


# --- reconnects ---------------------------------------------------------------------


async def test_reconnect_schedule_under_repeated_faults() -> None:
    h = await started()
    h.changes.clear()
    h.engine.fail_connects(KEY, 3)
    t0 = h.clock.now()
    await h.engine.drop(KEY, "stream error")
    await h.settle()
    assert h.manager.status(KEY) is S.DISCONNECTED

    await h.advance(1000)
    delays = schedule(range(1, 5))
    assert delays[0] <= 2 and delays[1] <= 4 and delays[2] <= 8 and delays[3] <= 16
    attempt_times = [t - t0 for t in h.engine.times_of("connect")[1:]]
    assert attempt_times == pytest.approx(list(accumulate(delays)))
    assert h.transitions() == [
        (S.CONNECTED, S.DISCONNECTED),
        *[(S.DISCONNECTED, S.OPENING), (S.OPENING, S.DISCONNECTED)] * 3,
        (S.DISCONNECTED, S.OPENING),
        (S.OPENING, S.CONNECTED),
    ]
    disconnected = [c for c in h.changes if c.new is S.DISCONNECTED]
    assert [c.attempt for c in disconnected] == [1, 2, 3, 4]
    assert [(c.until or 0) - c.at for c in disconnected] == pytest.approx(delays)
    assert [c.reason for c in disconnected] == [
        "stream error",
        "network down (1)",
        "network down (2)",
        "network down (3)",
    ]
    assert h.metric('zapbridge_reconnects_total{session="acme/sales"}') == 4.0
    assert h.store.last().status == "CONNECTED"


async def flapping_harness() -> Harness:
    """Connected again after four attempts (three failed), exactly now."""
    h = await started()
    h.engine.fail_connects(KEY, 3)
    await h.engine.drop(KEY)
    await h.advance(sum(schedule(range(1, 5))))
    assert h.manager.status(KEY) is S.CONNECTED
    return h


async def test_a_stable_connection_resets_the_attempt_counter() -> None:
    h = await flapping_harness()
    await h.advance(STABLE)
    before = h.clock.now()
    await h.engine.drop(KEY)
    await h.settle()
    assert h.changes[-1].attempt == 1
    await h.advance(1000)
    delay = schedule([1, 2, 3, 4, 1])[-1]  # the fifth draw, for a first attempt again
    assert h.engine.times_of("connect")[-1] - before == pytest.approx(delay)
    assert delay <= INITIAL  # the ceiling of a first attempt


async def test_a_flap_before_the_stable_period_keeps_backing_off() -> None:
    h = await flapping_harness()
    await h.advance(STABLE - 1)
    before = h.clock.now()
    await h.engine.drop(KEY)
    await h.settle()
    assert h.changes[-1].attempt == 5
    await h.advance(1000)
    delay = schedule(range(1, 6))[-1]
    assert h.engine.times_of("connect")[-1] - before == pytest.approx(delay)


async def test_backoff_is_capped() -> None:
    h = await started(reconnect_max=10.0)
    h.engine.fail_connects(KEY, 12)
    t0 = h.clock.now()
    await h.engine.drop(KEY)
    await h.advance(10_000)
    times = [t0, *h.engine.times_of("connect")[1:]]
    gaps = [b - a for a, b in pairwise(times)]
    assert len(gaps) == 13
    assert max(gaps) <= 10.0
    assert h.manager.status(KEY) is S.CONNECTED


async def test_a_repeated_disconnect_while_waiting_changes_nothing() -> None:
    h = await started()
    await h.engine.drop(KEY)
    await h.settle()
    first = h.changes[-1]
    await h.engine.drop(KEY, "again")
    await h.settle()
    assert h.changes[-1] is first
    await h.advance(1000)
    assert len(h.engine.calls_of("connect")) == 2
    assert h.manager.status(KEY) is S.CONNECTED


async def test_connect_that_returns_but_then_drops_schedules_the_next_attempt() -> None:
    h = await started()
    h.engine.emit_connected = False  # connect() returns; the engine reports later
    await h.engine.drop(KEY)
    await h.advance(schedule(range(1, 2))[0])
    assert h.manager.status(KEY) is S.OPENING
    await h.engine.drop(KEY, "handshake failed")
    await h.settle()
    assert h.manager.status(KEY) is S.DISCONNECTED
    assert h.changes[-1].attempt == 2
    h.engine.emit_connected = True
    await h.advance(1000)
    assert h.manager.status(KEY) is S.CONNECTED
    assert len(h.engine.calls_of("connect")) == 3


async def test_the_engine_reconnecting_by_itself_cancels_the_pending_attempt() -> None:
    h = await started()
    await h.engine.drop(KEY)
    await h.settle()
    await h.engine.send_event(ConnectedEvent(KEY))
    await h.advance(1000)
    assert h.manager.status(KEY) is S.CONNECTED
    assert len(h.engine.calls_of("connect")) == 1
    assert h.manager.phone(KEY) == PHONE  # kept when the event has none


# --- permanent failures ---------------------------------------------------------------

PERMANENT_CASES = [
    pytest.param(LoggedOutEvent(KEY), S.LOGGED_OUT, ACTION_PHONE_UNLINKED, id="logged-out"),
    pytest.param(
        LoggedOutEvent(KEY, reason="token refused", action="Replace the token."),
        S.LOGGED_OUT,
        "Replace the token.",
        id="logged-out-with-the-engine's-action",
    ),
    pytest.param(TemporaryBanEvent(KEY, code="403", expires_in=None), S.BANNED, None, id="ban"),
    pytest.param(ClientOutdatedEvent(KEY), S.OUTDATED, ACTION_OUTDATED, id="outdated"),
    pytest.param(StreamReplacedEvent(KEY), S.STOPPED, ACTION_STREAM_REPLACED, id="replaced"),
    pytest.param(
        DisconnectedEvent(KEY, reason="QR code timed out", transient=False),
        S.LOGGED_OUT,
        "The session cannot resume on its own (QR code timed out). An admin must type "
        "!login in the control room to link it again.",
        id="non-transient",
    ),
]


@pytest.mark.parametrize(("event", "status", "action"), PERMANENT_CASES)
async def test_permanent_failures_stop_retrying_and_say_what_to_do(
    event: EngineEvent, status: S, action: str | None
) -> None:
    h = await started()
    h.changes.clear()
    await h.engine.send_event(event)
    await h.engine.drop(KEY, "socket closed")  # engines often add a plain disconnect
    await h.advance(100_000)

    assert h.engine.calls_of("connect") != [] and len(h.engine.calls_of("connect")) == 1
    assert h.manager.status(KEY) is status
    assert h.transitions() == [(S.CONNECTED, status)]
    change = h.changes[0]
    assert change.action
    if action is not None:
        assert change.action == action
    assert change.phone == PHONE
    saved = h.store.last()
    assert (saved.status, saved.phone, saved.error) == (status.value, PHONE, change.reason)
    assert saved.connected_at is None
    assert h.gauge(status.value) == 1.0 and h.gauge("CONNECTED") == 0.0
    assert h.forwarded == []  # status events are announced, not forwarded


@pytest.mark.parametrize(("event", "status", "action"), PERMANENT_CASES)
async def test_a_permanent_failure_cancels_a_pending_retry(
    event: EngineEvent, status: S, action: str | None
) -> None:
    h = await started()
    await h.engine.drop(KEY)
    await h.settle()
    assert h.manager.status(KEY) is S.DISCONNECTED
    await h.engine.send_event(event)
    await h.advance(100_000)
    assert len(h.engine.calls_of("connect")) == 1
    assert h.manager.status(KEY) is status


async def test_a_permanent_failure_during_a_connect_attempt_is_final() -> None:
    h = await started()

    class BannedOnConnect(FakeEngine):
        async def connect(self, spec: SessionSpec) -> None:
            self._record("connect", spec.key)
            await self.emit(TemporaryBanEvent(spec.key, code="403", expires_in=60.0))
            raise EngineError("connection refused: banned")

    engine = BannedOnConnect(h.manager.handle_event, clock=h.clock, paired=[KEY])
    h.manager.attach_engine(engine)
    await engine.drop(KEY)
    await h.advance(100_000)
    assert len(engine.calls_of("connect")) == 1
    assert h.manager.status(KEY) is S.BANNED


async def test_ban_keeps_its_expiry_and_login_waits_for_it() -> None:
    h = await started()
    assert h.clock.now() == 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    await h.engine.send_event(TemporaryBanEvent(KEY, code="403", expires_in=600.0))
    await h.settle()
    change = h.changes[-1]
    assert change.until == pytest.approx(h.clock.now() + 600)
    assert change.action == (
        "WhatsApp banned this number temporarily (until 22:23 UTC). "
        "Wait for the ban to end, then !login; check the number is not sending spam."
    )
    assert change.reason == "temporarily banned (code 403)"

    with pytest.raises(InvalidInput, match="banned until 22:23 UTC"):
        await h.manager.login(KEY)
    await h.advance(601)
    assert len(h.engine.calls_of("connect")) == 1  # no retry while banned
    await h.manager.login(KEY)  # still paired: connects at once
    await h.settle()
    assert h.manager.status(KEY) is S.CONNECTED
    assert h.transitions()[-2:] == [(S.BANNED, S.OPENING), (S.OPENING, S.CONNECTED)]


async def test_a_ban_across_midnight_names_the_day() -> None:
    h = await started()
    assert h.clock.now() == 1_700_000_000.0
    await h.engine.send_event(TemporaryBanEvent(KEY, code="403", expires_in=86_400.0))
    await h.settle()
    assert "(until 2023-11-15 22:13 UTC)" in (h.changes[-1].action or "")


@pytest.mark.parametrize("expires_in", [1e300, 9.2e18, math.inf])
async def test_an_absurd_ban_expiry_still_bans(expires_in: float) -> None:
    h = await started()
    await h.engine.send_event(TemporaryBanEvent(KEY, code="403", expires_in=expires_in))
    await h.settle()
    assert h.manager.status(KEY) is S.BANNED
    assert "(until an unknown time)" in (h.changes[-1].action or "")


async def test_stream_replaced_then_login_reconnects_the_paired_device() -> None:
    h = await started()
    await h.engine.send_event(StreamReplacedEvent(KEY))
    await h.manager.login(KEY)
    await h.settle()
    assert h.manager.status(KEY) is S.CONNECTED
    assert h.engine.calls_of("login") == []


# --- login / logout --------------------------------------------------------------------


async def test_login_shows_qr_then_scan_connects() -> None:
    h = await started(paired=())
    await h.manager.login(KEY)
    await h.settle()
    assert h.manager.status(KEY) is S.QRCODE
    assert [type(e) for e in h.forwarded] == [QRCodeEvent]  # the ops notifier shows it

    await h.engine.scan(KEY, "+5511988887777")
    await h.settle()
    assert h.manager.status(KEY) is S.CONNECTED
    assert h.manager.phone(KEY) == "+5511988887777"
    assert h.transitions() == [
        (None, S.LOGGED_OUT),
        (S.LOGGED_OUT, S.QRCODE),
        (S.QRCODE, S.CONNECTED),
    ]
    assert h.store.last() == Saved(KEY, "CONNECTED", "+5511988887777", None, h.clock.now())


async def test_login_by_phone_forwards_the_pairing_code() -> None:
    h = await started(paired=())
    await h.manager.login(KEY, phone="+5511988887777")
    await h.settle()
    assert h.manager.status(KEY) is S.QRCODE
    assert h.engine.calls_of("login")[0].args == {"phone": "+5511988887777"}
    assert h.forwarded == [PairCodeEvent(KEY, code="ABCD-EFGH", phone="+5511988887777")]


async def test_login_when_connected_is_refused() -> None:
    h = await started()
    with pytest.raises(InvalidInput) as caught:
        await h.manager.login(KEY)
    assert caught.value.explanation == f"session {KEY} is already connected as {PHONE}"
    assert h.engine.calls_of("login") == []


async def test_login_of_an_unknown_session_is_refused() -> None:
    h = await started()
    with pytest.raises(InvalidInput, match="there is no session acme/nope"):
        await h.manager.login("acme/nope")


async def test_qr_timeout_ends_logged_out_without_retry() -> None:
    h = await started(paired=())
    await h.manager.login(KEY)
    await h.engine.send_event(DisconnectedEvent(KEY, reason="QR code timed out", transient=False))
    await h.advance(10_000)
    assert h.manager.status(KEY) is S.LOGGED_OUT
    assert h.changes[-1].reason == "QR code timed out"
    assert h.engine.calls_of("connect") == []


async def test_an_interrupted_login_is_logged_out_not_retried() -> None:
    h = await started(paired=())
    await h.manager.login(KEY)
    await h.engine.drop(KEY, "socket closed")
    await h.advance(10_000)
    assert h.manager.status(KEY) is S.LOGGED_OUT
    assert h.changes[-1].reason == "login interrupted: socket closed"
    assert h.engine.calls_of("connect") == []


async def test_login_while_disconnected_connects_now_instead_of_waiting() -> None:
    h = await started()
    h.engine.fail_connects(KEY, 5)
    await h.engine.drop(KEY)
    await h.advance(10)  # a few failed attempts, the counter is up
    h.engine.clear_connect_failures(KEY)
    assert h.manager.status(KEY) is S.DISCONNECTED
    calls = len(h.engine.calls_of("connect"))
    await h.manager.login(KEY)
    await h.settle()
    assert h.manager.status(KEY) is S.CONNECTED
    assert len(h.engine.calls_of("connect")) == calls + 1
    await h.advance(1000)  # the cancelled retry does not fire
    assert len(h.engine.calls_of("connect")) == calls + 1


async def test_login_that_cannot_connect_reports_and_keeps_retrying() -> None:
    h = await started()
    await h.engine.send_event(StreamReplacedEvent(KEY))
    h.engine.fail_connects(KEY, 1, explanation="still refused")
    with pytest.raises(EngineError, match="could not connect: still refused"):
        await h.manager.login(KEY)
    await h.settle()
    assert h.manager.status(KEY) is S.DISCONNECTED
    await h.advance(1000)
    assert h.manager.status(KEY) is S.CONNECTED


async def test_logout_unlinks_and_never_retries() -> None:
    h = await started()
    await h.manager.logout(KEY)
    await h.engine.send_event(LoggedOutEvent(KEY))  # the engine confirms
    await h.advance(10_000)
    assert h.manager.status(KEY) is S.LOGGED_OUT
    assert h.changes[-1].action == ACTION_ADMIN_LOGOUT
    assert h.changes[-1].reason == "logged out by an admin"
    assert [c.method for c in h.engine.calls if c.method in ("logout", "connect")] == [
        "connect",
        "logout",
    ]
    await h.manager.login(KEY)  # no device any more: a QR login
    await h.settle()
    assert h.manager.status(KEY) is S.QRCODE


# --- listeners, downstream, persistence --------------------------------------------------


async def test_listeners_get_exactly_the_changes_and_failures_do_not_stop_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = make()
    seen: list[tuple[S | None, S]] = []

    def broken(change: StatusChange) -> None:
        raise RuntimeError("listener bug")

    async def async_listener(change: StatusChange) -> None:
        await asyncio.sleep(0)
        seen.append((change.old, change.new))

    h.manager.add_listener(broken)
    h.manager.add_listener(async_listener)
    with caplog.at_level(logging.ERROR, logger="bridge.session"):
        await h.manager.start()
        await h.settle()
    assert seen == [(None, S.OPENING), (S.OPENING, S.CONNECTED)]
    failures = [r for r in caplog.records if "status listener" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].name == "bridge.session.acme.sales"
    assert failures[0].exc_info is not None


async def test_a_listener_may_call_back_into_the_manager() -> None:
    h = make(paired=())

    async def relogin(change: StatusChange) -> None:
        if change.new is S.LOGGED_OUT:
            await h.manager.login(change.key)

    h.manager.add_listener(relogin)
    await h.manager.start()
    await h.settle()
    assert h.transitions() == [(None, S.LOGGED_OUT), (S.LOGGED_OUT, S.QRCODE)]


async def test_other_events_go_downstream_and_a_lost_message_is_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = await started()
    customer = Party(phone="+5511987654321", name="Maria")
    message = MessageEvent(KEY, WaMessage(chat=customer, sender=customer, content=Text("oi")))
    await h.engine.send_event(message)
    await h.engine.send_event(EngineErrorEvent(KEY, explanation="undecryptable message"))
    assert h.forwarded == [message, EngineErrorEvent(KEY, explanation="undecryptable message")]

    async def broken(event: EngineEvent) -> None:
        raise RuntimeError("relay bug")

    h.manager.set_downstream(broken)
    with caplog.at_level(logging.ERROR):
        await h.engine.send_event(EngineErrorEvent(KEY, explanation="x"))  # not raised
        # a message the downstream could not persist must not look delivered to the engine
        with pytest.raises(RuntimeError, match="relay bug"):
            await h.engine.send_event(message)
    record = next(r for r in caplog.records if "downstream handler failed" in r.getMessage())
    assert record.name == "bridge.session.acme.sales" and record.exc_info is not None
    assert h.manager.status(KEY) is S.CONNECTED


async def test_every_event_goes_downstream_cleaned() -> None:
    h = await started()
    sender = Party(phone="+5511987654321", name="Ma\x00ria\ud800")
    dirty = WaMessage(
        chat=sender,
        sender=sender,
        content=Media(
            MediaKind.DOCUMENT, "application/pdf", data=b"\x00%PDF", filename="a\x1b.pdf"
        ),
        wa_id="3EB0\x00AA",
        quote=Quote(wa_id="3EB0\x01BB", text="\udc00"),
    )
    await h.engine.send_event(MessageEvent(KEY, dirty))
    await h.engine.send_event(ContactUpdateEvent(KEY, party=sender))
    await h.engine.send_event(EngineErrorEvent(KEY, explanation="bad\x00"))
    message, update, error = h.forwarded
    assert isinstance(message, MessageEvent) and isinstance(update, ContactUpdateEvent)
    clean_sender = Party(phone="+5511987654321", name="Maria\ufffd")
    assert message.message.sender == message.message.chat == clean_sender
    assert message.message.wa_id == "3EB0AA"
    assert message.message.quote == Quote(wa_id="3EB0BB", text="\ufffd")
    assert isinstance(message.message.content, Media)
    assert message.message.content.filename == "a.pdf"
    assert message.message.content.data == b"\x00%PDF"  # bytes are not text
    assert update.party == clean_sender
    assert error == EngineErrorEvent(KEY, explanation="bad")


async def test_an_event_that_cleaning_empties_is_set_aside_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = await started()
    group = Party(group="\x00\x01")  # nothing left of its only address
    message = WaMessage(chat=group, sender=Party(phone="+5511987654321"), content=Text("oi"))
    with caplog.at_level(logging.WARNING, logger="bridge.session"):
        await h.engine.send_event(MessageEvent(KEY, message))
    [event] = h.forwarded
    assert isinstance(event, EngineErrorEvent)
    assert "MessageEvent from WhatsApp was set aside" in event.explanation
    assert "unusable MessageEvent set aside" in caplog.text
    assert h.manager.status(KEY) is S.CONNECTED


async def test_events_of_unknown_sessions_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = await started()
    with caplog.at_level(logging.WARNING, logger="bridge.session"):
        await h.engine.send_event(LoggedOutEvent("acme/ghost"))
    assert "unknown session acme/ghost" in caplog.text
    assert h.manager.statuses() == {KEY: S.CONNECTED}


async def test_a_failing_store_is_logged_and_listeners_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = make()
    h.store.broken = True
    with caplog.at_level(logging.ERROR):
        await h.manager.start()
        await h.settle()
    assert h.transitions() == [(None, S.OPENING), (S.OPENING, S.CONNECTED)]
    assert "could not save status" in caplog.text


async def test_persisted_errors_and_connection_times() -> None:
    h = await started()
    connected_at = h.clock.now()
    await h.advance(5)
    await h.engine.drop(KEY, "stream error")
    await h.settle()
    assert [(s.status, s.error, s.connected_at) for s in h.store.saved] == [
        ("OPENING", None, None),
        ("CONNECTED", None, connected_at),
        ("DISCONNECTED", "stream error", None),
    ]
    assert all(s.phone == PHONE for s in h.store.saved[1:])


# --- stop ---------------------------------------------------------------------------------


async def test_stop_cancels_retries_and_disconnects_without_persisting_stopped() -> None:
    keys = ("acme/a", "acme/b")
    h = await started(keys=keys)
    await h.engine.drop("acme/a")
    await h.settle()
    await h.manager.stop()
    await h.engine.drop("acme/b")  # caused by our own disconnect
    await h.advance(10_000)
    assert sorted(c.key for c in h.engine.calls_of("disconnect")) == list(keys)
    assert len(h.engine.calls_of("connect")) == 2
    assert h.manager.statuses() == {"acme/a": S.DISCONNECTED, "acme/b": S.CONNECTED}
    assert "STOPPED" not in {s.status for s in h.store.saved}


async def test_stop_is_bounded_when_the_engine_hangs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    h = await started()
    hung: list[str] = []
    cancelled: list[str] = []

    async def hang(key: str) -> None:
        hung.append(key)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(key)
            raise

    monkeypatch.setattr(h.engine, "disconnect", hang)
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    await asyncio.wait_for(h.manager.stop(grace_seconds=0.05), timeout=2)
    assert loop.time() - started_at < 1.0  # about 2 × grace, far below the 2 s guard
    assert hung == [KEY] and cancelled == [KEY]  # it tried, then gave up on the engine
    assert "did not disconnect every session within" in caplog.text


# --- outbound --------------------------------------------------------------------------------


async def test_thirty_sends_are_paced_and_complete_in_order() -> None:
    h = await started()
    t0 = h.clock.now()
    done: list[int] = []

    async def send(n: int) -> str:
        wa_id = await h.manager.send(KEY, "+5511987654321", Text(f"message {n}"))
        done.append(n)
        return wa_id

    tasks = [asyncio.create_task(send(n)) for n in range(30)]
    await h.settle()
    assert len(h.engine.calls_of("send")) == 5
    assert h.manager.pending_sends(KEY) == 25
    await h.advance(100)
    ids = [await t for t in tasks]
    assert len(set(ids)) == 30
    assert done == list(range(30))
    sends = h.engine.calls_of("send")
    assert [c.args["content"].body for c in sends] == [f"message {n}" for n in range(30)]
    times = [c.at - t0 for c in sends]
    assert times == pytest.approx([0.0] * 5 + [3.0 * k for k in range(1, 26)])
    rate = 25 / (times[-1] - times[4]) * 60
    assert rate == pytest.approx(20)


async def test_react_edit_revoke_share_the_pacing_of_sends() -> None:
    h = await started(send_burst=1)
    t0 = h.clock.now()
    tasks = [
        asyncio.create_task(h.manager.send(KEY, "+551199", Text("hi"))),
        asyncio.create_task(
            h.manager.react(KEY, "+551199", target="W1", target_sender="+551199", emoji="👍")
        ),
        asyncio.create_task(h.manager.edit(KEY, "+551199", target="W2", text="fixed")),
        asyncio.create_task(h.manager.revoke(KEY, "+551199", target="W3")),
    ]
    await h.advance(20)
    await asyncio.gather(*tasks)
    calls = [c for c in h.engine.calls if c.method in ("send", "react", "edit", "revoke")]
    assert [c.method for c in calls] == ["send", "react", "edit", "revoke"]
    assert [c.at - t0 for c in calls] == pytest.approx([0, 3, 6, 9])


async def test_templates_share_the_pacing_of_sends() -> None:
    h = await started(send_burst=1)
    t0 = h.clock.now()
    tasks = [
        asyncio.create_task(h.manager.send(KEY, "+551199", Text("hi"))),
        asyncio.create_task(
            h.manager.send_template(
                KEY, "+551199", name="order_update", language="pt_BR", params=["1", "Ana"]
            )
        ),
    ]
    await h.advance(20)
    sent = await asyncio.gather(*tasks)
    calls = [c for c in h.engine.calls if c.method in ("send", "send_template")]
    assert [c.method for c in calls] == ["send", "send_template"]
    assert [c.at - t0 for c in calls] == pytest.approx([0, 3])
    assert calls[1].args == {
        "to": "+551199",
        "name": "order_update",
        "language": "pt_BR",
        "params": ("1", "Ana"),
        "message_id": None,
    }
    assert sent[1] == "FAKE2"


async def test_a_template_to_a_disconnected_session_raises_at_once() -> None:
    h = await started()
    await h.engine.drop(KEY)
    await h.settle()
    with pytest.raises(SessionNotConnected):
        await h.manager.send_template(KEY, "+551199", name="hello", language="en_US", params=())
    assert h.engine.calls_of("send_template") == []


async def test_account_facts_come_from_the_engine_in_any_status() -> None:
    h = await started()
    assert await h.manager.account_facts(KEY) == {}
    h.engine.facts[KEY] = {"quality_rating": "GREEN"}
    await h.engine.drop(KEY)
    await h.settle()
    assert await h.manager.account_facts(KEY) == {"quality_rating": "GREEN"}


async def test_read_receipts_have_a_budget_of_their_own() -> None:
    """The only send token is spent: read receipts still go at once, up to the
    presence burst; the next one waits for a presence token, not a send token."""
    h = await started(send_burst=1, send_per_minute=1, presence_burst=3, presence_per_minute=60)
    await h.manager.send(KEY, "+551199", Text("hi"))
    for n in range(3):
        await h.manager.mark_read(KEY, "+551199", ids=[f"W{n}"], sender="+551199")
    assert len(h.engine.calls_of("mark_read")) == 3
    late = asyncio.create_task(h.manager.mark_read(KEY, "+551199", ids=["W3"], sender="+551199"))
    await h.settle()
    assert not late.done()
    await h.clock.advance(1.0)  # one presence token a second; a send token takes a minute
    await late
    assert len(h.engine.calls_of("mark_read")) == 4


async def test_typing_beyond_the_presence_budget_is_dropped_and_sends_do_not_wait() -> None:
    h = await started(send_burst=2, send_per_minute=1, presence_burst=2, presence_per_minute=1)
    shown = [await h.manager.chat_presence(KEY, "+551199", state="composing") for _ in range(10)]
    assert shown == [True, True] + [False] * 8
    assert len(h.engine.calls_of("chat_presence")) == 2
    await h.manager.send(KEY, "+551199", Text("one"))  # both send tokens are still there
    await h.manager.send(KEY, "+551199", Text("two"))
    assert len(h.engine.calls_of("send")) == 2


async def test_a_send_to_a_disconnected_session_raises_at_once() -> None:
    h = await started()
    await h.engine.drop(KEY)
    await h.settle()
    with pytest.raises(SessionNotConnected) as caught:
        await h.manager.send(KEY, "+551199", Text("hi"))
    assert caught.value.explanation == "session acme/sales is DISCONNECTED"
    with pytest.raises(SessionNotConnected):
        await h.manager.mark_read(KEY, "+551199", ids=["W1"], sender="+551199")
    with pytest.raises(SessionNotConnected):
        await h.manager.chat_presence(KEY, "+551199", state="composing")
    assert h.engine.calls_of("send") == []


async def test_queued_sends_fail_when_the_session_drops() -> None:
    h = await started(send_burst=1)
    h.engine.fail_connects(KEY, 100)  # it stays down
    tasks = [asyncio.create_task(h.manager.send(KEY, "+551199", Text(f"m{n}"))) for n in range(4)]
    await h.settle()
    await h.engine.drop(KEY)
    await h.advance(3)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[0], str)
    assert all(isinstance(o, SessionNotConnected) for o in outcomes[1:])
    assert len(h.engine.calls_of("send")) == 1


async def test_two_hundred_sim_sessions_start_staggered_on_the_sim_engine(tmp_path: Path) -> None:
    """The same with the real sim engine (auto-paired devices persisted in data_dir)."""
    from bridge.whatsapp.sim import SimEngine

    keys = [session_key("acme", f"s{n:03d}") for n in range(200)]
    clock = FakeClock()
    manager = SessionManager(
        None,
        specs=[make_spec(k) for k in keys],
        store=MemoryStore(),
        clock=clock,
        rng=random.Random(SEED),
        metrics=Metrics(),
        reconnect_initial=INITIAL,
        reconnect_max=MAXIMUM,
        stable_seconds=STABLE,
        stagger_seconds=0.25,
        send_per_minute=20,
        send_burst=5,
    )
    sim = SimEngine(manager.handle_event, data_dir=tmp_path, clock=clock, auto_pair=True)
    manager.attach_engine(sim)
    await manager.start()
    await clock.advance(100 * 0.25)  # halfway through the staggered start
    halfway = sum(s is S.CONNECTED for s in manager.statuses().values())
    assert 95 <= halfway <= 105
    await clock.advance(100 * 0.25)
    assert set(manager.statuses().values()) == {S.CONNECTED}
    assert len({manager.phone(k) for k in keys}) == 200  # each number its own device
    await manager.stop()
