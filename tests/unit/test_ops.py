"""OpsNotifier: what the ops channel hears and when (fake clock, recording sink)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.config import Config, parse_config
from bridge.core.ops import LoginCode, OpsNotifier, OpsPost
from bridge.core.qrcode import qr_png
from bridge.model import Message as WaMessage
from bridge.model import Party, Text
from bridge.whatsapp.engine import (
    ConnectedEvent,
    MessageEvent,
    PairCodeEvent,
    QRCodeEvent,
    SessionSpec,
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
    action_ended,
)
from tests.fakes.fake_engine import FakeEngine

S = SessionStatus
KEY = "acme/sales"
OTHER = "acme/support"
PHONE = "+5511900000001"
GRACE, THROTTLE, THRESHOLD = 60.0, 300.0, 100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CONFIG = f"""\
homeserver: {{address: "http://127.0.0.1:8008", domain: example.com}}
appservice: {{as_token: AS-TOKEN, hs_token: HS-TOKEN}}
ops: {{alert_grace_seconds: {GRACE}, backlog_threshold: {THRESHOLD},
      throttle_seconds: {THROTTLE}}}
companies:
  - id: acme
    admins: ["@alice:example.com"]
    ops: {{matrix: true}}
    sessions:
      - {{name: sales, matrix: true}}
      - {{name: support, matrix: true}}
  - id: globex
    admins: ["@hank:example.com"]
    ops: {{matrix: true}}
    sessions:
      - {{name: desk, matrix: true}}
"""


def make_config() -> Config:
    return parse_config(CONFIG, path=Path("/srv/zap/config.yaml"), env={})


@dataclass(frozen=True)
class Sent:
    at: float
    post: OpsPost


@dataclass
class RecordingSink:
    clock: FakeClock
    sent: list[Sent] = field(default_factory=list)
    codes: list[LoginCode] = field(default_factory=list)
    failures_left: int = 0

    async def post_ops(self, post: OpsPost) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("ops room unreachable")
        self.sent.append(Sent(self.clock.now(), post))

    async def post_login_code(self, login: LoginCode) -> None:
        self.codes.append(login)

    @property
    def messages(self) -> list[OpsPost]:
        return [s.post for s in self.sent if s.post.has_message]

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.messages]

    def topics(self, key: str = KEY) -> list[str]:
        return [s.post.topic for s in self.sent if s.post.topic and s.post.session_key == key]


class Harness:
    """Feeds status changes as the session manager would (old = the previous new)."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.sink = RecordingSink(self.clock)
        self.notifier = OpsNotifier(make_config(), self.sink, clock=self.clock)
        self.current: dict[str, S | None] = {}

    async def status(
        self,
        new: S,
        *,
        key: str = KEY,
        reason: str | None = None,
        action: str | None = None,
        phone: str | None = PHONE,
    ) -> None:
        change = StatusChange(
            key=key,
            old=self.current.get(key),
            new=new,
            reason=reason,
            action=action,
            phone=phone,
            at=self.clock.now(),
        )
        self.current[key] = new
        await self.notifier.on_status(change)

    async def connected_at_start(self, key: str = KEY) -> None:
        await self.status(S.OPENING, key=key, reason="starting")
        await self.status(S.CONNECTED, key=key, reason=f"connected as {PHONE}")

    async def outage(self, seconds: float, *, reason: str = "connection reset") -> None:
        """DISCONNECTED, an attempt (OPENING) and CONNECTED again ``seconds`` later."""
        await self.status(S.DISCONNECTED, reason=reason)
        await self.clock.advance(seconds / 2)
        await self.status(S.OPENING, reason="reconnect attempt 1")
        await self.clock.advance(seconds / 2)
        await self.status(S.CONNECTED, reason=f"connected as {PHONE}")


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.notifier.stop()


# --- topics ---------------------------------------------------------------------


async def test_every_status_change_sets_the_control_room_topic(h: Harness) -> None:
    await h.connected_at_start()
    await h.outage(10, reason="connection reset")

    assert h.sink.topics() == [
        f"acme/sales: OPENING {PHONE} · starting",
        f"acme/sales: CONNECTED {PHONE}",
        f"acme/sales: DISCONNECTED {PHONE} · connection reset",
        f"acme/sales: OPENING {PHONE} · reconnect attempt 1",
        f"acme/sales: CONNECTED {PHONE}",
    ]
    assert {s.post.company_id for s in h.sink.sent} == {"acme"}


async def test_a_start_that_connects_posts_no_message(h: Harness) -> None:
    await h.connected_at_start()
    assert h.sink.messages == []


# --- transient disconnects -----------------------------------------------------------


async def test_disconnect_recovered_within_grace_posts_nothing(h: Harness) -> None:
    await h.connected_at_start()
    await h.outage(GRACE - 1)
    await h.clock.advance(GRACE * 3)

    assert h.sink.messages == []
    assert h.sink.topics()[-1] == f"acme/sales: CONNECTED {PHONE}"
    assert h.clock.pending_sleepers == 0  # the grace timer was cancelled


async def test_disconnect_beyond_grace_warns_once_at_grace_then_resolves(h: Harness) -> None:
    await h.connected_at_start()
    down_at = h.clock.now()
    await h.status(S.DISCONNECTED, reason="connection reset")
    await h.clock.advance(GRACE - 0.5)
    assert h.sink.messages == []

    await h.clock.advance(0.5)
    [warning] = [s for s in h.sink.sent if s.post.has_message]
    assert warning.at == down_at + GRACE
    assert warning.post == OpsPost(
        company_id="acme",
        text="⚠️ acme/sales DISCONNECTED for 60 s: connection reset; reconnecting",
        session_key=KEY,
        severity="warning",
    )

    for attempt in range(1, 4):  # attempts failing: no more warnings
        await h.status(S.OPENING, reason=f"reconnect attempt {attempt}")
        await h.clock.advance(5)
        await h.status(S.DISCONNECTED, reason="connection reset")
        await h.clock.advance(5)
    await h.clock.advance(95 - 30 - GRACE)
    await h.status(S.CONNECTED, reason=f"connected as {PHONE}")

    assert h.sink.texts[1:] == ["✅ acme/sales CONNECTED again (resolved after 95 s)"]
    resolved = h.sink.messages[1]
    assert resolved.severity == "resolved"
    assert resolved.topic == f"acme/sales: CONNECTED {PHONE}"


async def test_warning_names_the_latest_disconnect_reason(h: Harness) -> None:
    await h.connected_at_start()
    await h.status(S.DISCONNECTED, reason="connection reset")
    await h.clock.advance(10)
    await h.status(S.OPENING, reason="reconnect attempt 1")
    await h.status(S.DISCONNECTED, reason="network unreachable")
    await h.clock.advance(GRACE)
    assert h.sink.texts == ["⚠️ acme/sales DISCONNECTED for 60 s: network unreachable; reconnecting"]


async def test_failed_first_connect_is_an_outage_too(h: Harness) -> None:
    await h.status(S.OPENING, reason="starting")
    await h.status(S.DISCONNECTED, reason="dns failure")
    await h.clock.advance(GRACE + 10)
    await h.status(S.OPENING, reason="reconnect attempt 2")
    await h.status(S.CONNECTED, reason="connected")
    assert h.sink.texts == [
        "⚠️ acme/sales DISCONNECTED for 60 s: dns failure; reconnecting",
        "✅ acme/sales CONNECTED again (resolved after 70 s)",
    ]


async def test_outages_of_two_sessions_are_timed_separately(h: Harness) -> None:
    await h.connected_at_start(KEY)
    await h.connected_at_start(OTHER)
    await h.status(S.DISCONNECTED, key=KEY, reason="reset")
    await h.clock.advance(30)
    await h.status(S.DISCONNECTED, key=OTHER, reason="reset")
    await h.clock.advance(30)
    await h.status(S.CONNECTED, key=OTHER)
    await h.clock.advance(30)

    assert h.sink.texts == ["⚠️ acme/sales DISCONNECTED for 60 s: reset; reconnecting"]


# --- flapping ---------------------------------------------------------------------------


async def test_flapping_is_summarised_once_then_quiet_until_throttle(h: Harness) -> None:
    await h.connected_at_start()
    for n in range(3):
        await h.outage(2, reason=f"reset {n + 1}")
        await h.clock.advance(60)
    assert h.sink.messages == []  # each came back within grace

    await h.status(S.DISCONNECTED, reason="reset 4")
    [summary] = h.sink.messages
    assert summary.text == (
        "⚠️ acme/sales is flapping: 4 disconnects in the last 10 min "
        "(last reason: reset 4); DISCONNECTED now, reconnecting"
    )
    assert summary.severity == "warning"
    assert summary.topic == f"acme/sales: DISCONNECTED {PHONE} · reset 4"
    await h.clock.advance(2)
    await h.status(S.CONNECTED)

    for n in range(5, 9):  # still flapping, inside the quiet period
        await h.clock.advance(30)
        await h.outage(2, reason=f"reset {n}")
    assert len(h.sink.messages) == 1

    await h.clock.advance(THROTTLE)  # quiet period over, still flapping
    await h.status(S.DISCONNECTED, reason="reset 9")
    # the first disconnect (t=0) left the 10 min window; eight remain
    assert h.sink.texts[-1].startswith("⚠️ acme/sales is flapping: 8 disconnects")
    assert len(h.sink.messages) == 2


async def test_long_outages_while_flapping_are_not_reported_each(h: Harness) -> None:
    await h.connected_at_start()
    for n in range(3):
        await h.outage(GRACE + 20, reason=f"reset {n + 1}")  # distinct: not throttled
    assert len(h.sink.messages) == 6  # warning + resolved, three times

    await h.outage(GRACE + 20, reason="reset again")
    assert len(h.sink.messages) == 7
    assert "is flapping: 4 disconnects" in h.sink.texts[-1]


async def test_outage_outlasting_the_flapping_quiet_is_reported_then(h: Harness) -> None:
    await h.connected_at_start()
    for _ in range(3):
        await h.outage(2)
        await h.clock.advance(10)
    flap_at = h.clock.now()
    await h.status(S.DISCONNECTED, reason="reset")  # the summary; and it stays down
    await h.clock.advance(THROTTLE - 1)
    assert len(h.sink.messages) == 1

    await h.clock.advance(1)
    [_, warning] = h.sink.sent[-2:]
    assert warning.at == flap_at + THROTTLE
    assert warning.post.text == "⚠️ acme/sales DISCONNECTED for 300 s: reset; reconnecting"
    await h.clock.advance(20)
    await h.status(S.CONNECTED)
    assert h.sink.texts[-1] == "✅ acme/sales CONNECTED again (resolved after 320 s)"


async def test_disconnects_spread_over_more_than_ten_minutes_are_not_flapping(
    h: Harness,
) -> None:
    await h.connected_at_start()
    for _ in range(8):
        await h.outage(2)
        await h.clock.advance(200)
    assert h.sink.messages == []


# --- permanent statuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "action"),
    [
        (S.LOGGED_OUT, "logged out from the phone", ACTION_PHONE_UNLINKED),
        (S.LOGGED_OUT, "logged out by an admin", ACTION_ADMIN_LOGOUT),
        (S.BANNED, "temporarily banned (code 401)", "WhatsApp banned this number; wait."),
        (S.OUTDATED, "client outdated", ACTION_OUTDATED),
        (S.STOPPED, "stream replaced", ACTION_STREAM_REPLACED),
    ],
)
async def test_permanent_status_is_critical_at_once_with_the_action(
    h: Harness, status: S, reason: str, action: str
) -> None:
    await h.connected_at_start()
    await h.status(status, reason=reason, action=action)

    [post] = h.sink.messages
    assert post.text == f"🛑 acme/sales {status}: {reason}. {action}"
    assert post.severity == "critical"
    assert post.topic == f"acme/sales: {status} {PHONE} · {reason}"


async def test_permanent_status_during_an_outage_replaces_its_warning(h: Harness) -> None:
    await h.connected_at_start()
    await h.status(S.DISCONNECTED, reason="reset")
    await h.clock.advance(10)
    await h.status(S.OPENING, reason="reconnect attempt 1")
    await h.status(S.LOGGED_OUT, reason="logged out from the phone", action=ACTION_PHONE_UNLINKED)
    await h.clock.advance(GRACE * 2)

    assert h.sink.texts == [
        f"🛑 acme/sales LOGGED_OUT: logged out from the phone. {ACTION_PHONE_UNLINKED}"
    ]
    assert h.clock.pending_sleepers == 0


async def test_reconnecting_after_a_permanent_status_is_resolved(h: Harness) -> None:
    await h.connected_at_start()
    await h.status(S.STOPPED, reason="stream replaced", action=ACTION_STREAM_REPLACED)
    await h.status(S.OPENING, reason="connecting")  # an admin typed !login
    await h.status(S.CONNECTED)

    assert h.sink.texts[-1] == f"✅ acme/sales CONNECTED as {PHONE} (was STOPPED)"
    assert h.sink.messages[-1].severity == "resolved"


async def test_paired_device_unlinked_while_the_bridge_was_down_is_critical(
    h: Harness,
) -> None:
    await h.status(S.OPENING, reason="starting")
    await h.status(S.LOGGED_OUT, reason="logged out from the phone", action=ACTION_PHONE_UNLINKED)
    assert [p.severity for p in h.sink.messages] == ["critical"]


# --- linking ------------------------------------------------------------------------------


NEVER_LINKED = (
    "acme/sales is not linked to a phone yet (LOGGED_OUT): "
    "an admin types !login in its control room."
)


@pytest.mark.parametrize("start", [None, S.OPENING])
async def test_never_paired_session_is_info_once(h: Harness, start: S | None) -> None:
    h.current[KEY] = start
    await h.status(S.LOGGED_OUT, reason="never linked", action=ACTION_NEVER_PAIRED, phone=None)
    h.current[KEY] = None  # the same announcement again (a second manager start)
    await h.status(S.LOGGED_OUT, reason="never linked", action=ACTION_NEVER_PAIRED, phone=None)

    assert h.sink.texts == [NEVER_LINKED]
    assert h.sink.messages[0].severity == "info"
    assert h.sink.topics() == ["acme/sales: LOGGED_OUT · never linked"] * 2


async def test_login_posts_qrcode_then_connected_as_phone(h: Harness) -> None:
    await h.status(S.LOGGED_OUT, reason="never linked", action=ACTION_NEVER_PAIRED, phone=None)
    await h.status(S.QRCODE, reason="waiting for the QR code to be scanned", phone=None)
    await h.status(S.CONNECTED, reason=f"connected as {PHONE}")

    assert h.sink.texts == [
        NEVER_LINKED,
        "acme/sales QRCODE: waiting for the QR code to be scanned",
        f"acme/sales CONNECTED as {PHONE}",
    ]
    assert {p.severity for p in h.sink.messages} == {"info"}
    assert h.sink.topics()[-1] == f"acme/sales: CONNECTED {PHONE}"


async def test_login_that_ends_without_a_scan_is_a_warning(h: Harness) -> None:
    await h.status(S.LOGGED_OUT, reason="never linked", action=ACTION_NEVER_PAIRED, phone=None)
    await h.status(S.QRCODE, reason="waiting for the QR code to be scanned", phone=None)
    action = action_ended("QR code timed out")
    await h.status(S.LOGGED_OUT, reason="QR code timed out", action=action, phone=None)

    assert h.sink.texts[-1] == f"⚠️ acme/sales LOGGED_OUT: QR code timed out. {action}"
    assert h.sink.messages[-1].severity == "warning"


# --- throttling ---------------------------------------------------------------------------


async def test_identical_alerts_are_throttled_with_a_suppressed_count(h: Harness) -> None:
    banned = {"reason": "temporarily banned (code 401)", "action": "Wait for the ban to end."}
    await h.connected_at_start()
    for _ in range(4):
        await h.status(S.BANNED, **banned)
        await h.clock.advance(20)
        await h.status(S.OPENING, reason="connecting")
        await h.status(S.CONNECTED)
    criticals = [p.text for p in h.sink.messages if p.severity == "critical"]
    assert criticals == [
        "🛑 acme/sales BANNED: temporarily banned (code 401). Wait for the ban to end."
    ]

    await h.clock.advance(THROTTLE)
    await h.status(S.BANNED, **banned)
    assert h.sink.texts[-1] == (
        "🛑 acme/sales BANNED: temporarily banned (code 401). Wait for the ban to end. "
        "(3 similar alerts suppressed)"
    )
    await h.clock.advance(THROTTLE)
    await h.status(S.OPENING, reason="connecting")
    await h.status(S.BANNED, **banned)
    assert h.sink.texts[-1].endswith("Wait for the ban to end.")  # the count was reset


async def test_repeated_identical_outages_warn_once_and_resolve_only_what_was_warned(
    h: Harness,
) -> None:
    await h.connected_at_start()
    for _ in range(2):  # warnings due at t=60 and t=330: the second is suppressed
        await h.outage(GRACE + 10, reason="connection reset")
        await h.clock.advance(200)
    assert h.sink.texts == [
        "⚠️ acme/sales DISCONNECTED for 60 s: connection reset; reconnecting",
        "✅ acme/sales CONNECTED again (resolved after 70 s)",
    ]
    await h.outage(GRACE + 10, reason="connection reset")  # due at t=600: passes
    assert h.sink.texts[2:] == [
        "⚠️ acme/sales DISCONNECTED for 60 s: connection reset; reconnecting "
        "(1 similar alert suppressed)",
        "✅ acme/sales CONNECTED again (resolved after 70 s)",
    ]


async def test_alerts_differing_in_session_company_or_text_are_not_throttled(
    h: Harness,
) -> None:
    await h.notifier.on_dead_letter(
        company_id="acme", session_key=KEY, ticket_id=1, destination="slack", error="timeout"
    )
    await h.notifier.on_dead_letter(
        company_id="acme", session_key=KEY, ticket_id=2, destination="matrix", error="timeout"
    )
    await h.notifier.on_dead_letter(
        company_id="acme", session_key=KEY, ticket_id=3, destination="slack", error="forbidden"
    )
    await h.notifier.on_dead_letter(
        company_id="globex", session_key=None, ticket_id=4, destination="slack", error="timeout"
    )
    assert len(h.sink.messages) == 4


# --- dead letters and backlog ---------------------------------------------------------------


async def test_dead_letter_is_critical_and_throttled_per_destination_and_error(
    h: Harness,
) -> None:
    for ticket in (12, 13, 14):
        await h.notifier.on_dead_letter(
            company_id="acme",
            session_key=KEY,
            ticket_id=ticket,
            destination="whatsapp",
            error="session acme/sales is DISCONNECTED",
        )
    assert h.sink.messages == [
        OpsPost(
            company_id="acme",
            text="❌ Not delivered to whatsapp for ticket #12 after retries: "
            "session acme/sales is DISCONNECTED",
            session_key=KEY,
            severity="critical",
        )
    ]
    await h.clock.advance(THROTTLE)
    await h.notifier.on_dead_letter(
        company_id="acme",
        session_key=None,
        ticket_id=None,
        destination="whatsapp",
        error="session acme/sales is DISCONNECTED",
    )
    assert h.sink.texts[-1] == (
        "❌ Not delivered to whatsapp after retries: session acme/sales is DISCONNECTED "
        "(2 similar alerts suppressed)"
    )


async def test_backlog_alerts_every_company_once_then_resolves(h: Harness) -> None:
    await h.notifier.on_backlog(THRESHOLD)
    assert h.sink.messages == []

    await h.notifier.on_backlog(250)
    await h.notifier.on_backlog(400)
    assert [(p.company_id, p.text, p.severity) for p in h.sink.messages] == [
        (c, "⚠️ Outbox backlog: 250 deliveries pending (alert threshold 100)", "warning")
        for c in ("acme", "globex")
    ]

    await h.notifier.on_backlog(40)
    await h.notifier.on_backlog(10)
    assert [(p.company_id, p.text, p.severity) for p in h.sink.messages[2:]] == [
        (c, "✅ Outbox backlog resolved: 40 deliveries pending", "resolved")
        for c in ("acme", "globex")
    ]

    await h.clock.advance(THROTTLE)
    await h.notifier.on_backlog(101)
    assert len(h.sink.messages) == 6


async def test_backlog_bouncing_within_throttle_is_quiet(h: Harness) -> None:
    await h.notifier.on_backlog(150)
    await h.notifier.on_backlog(50)
    await h.notifier.on_backlog(150)  # again within throttle_seconds: suppressed
    await h.notifier.on_backlog(50)  # so no resolved for it either
    assert len(h.sink.messages) == 4
    await h.clock.advance(THROTTLE)
    await h.notifier.on_backlog(150)
    assert h.sink.texts[-1].endswith("(1 similar alert suppressed)")


# --- login codes ------------------------------------------------------------------------------


async def test_qr_code_event_posts_a_png_of_the_code(h: Harness) -> None:
    await h.notifier.on_engine_event(QRCodeEvent(KEY, code="2@abc,def,ghi", expires_in=20.0))
    await h.notifier.on_engine_event(QRCodeEvent(KEY, code="2@xyz,def,ghi", expires_in=20.0))

    first, second = h.sink.codes
    assert (first.session_key, first.code, first.kind, first.expires_in) == (
        KEY,
        "2@abc,def,ghi",
        "qr",
        20.0,
    )
    assert first.png is not None and first.png.startswith(PNG_SIGNATURE)
    assert first.png == qr_png("2@abc,def,ghi")
    assert second.png != first.png
    assert h.sink.sent == []


async def test_pairing_code_event_posts_the_code_without_image(h: Harness) -> None:
    await h.notifier.on_engine_event(PairCodeEvent(KEY, code="ABCD-EFGH", phone=PHONE))
    assert h.sink.codes == [LoginCode(KEY, "ABCD-EFGH", "pair", png=None, expires_in=None)]


async def test_unrenderable_qr_code_is_still_passed_on_without_image(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await h.notifier.on_engine_event(QRCodeEvent(KEY, code="x" * 5000, expires_in=20.0))
    [code] = h.sink.codes
    assert code.png is None and code.kind == "qr"
    assert "cannot render the QR code of acme/sales" in caplog.text


async def test_other_engine_events_are_ignored(h: Harness) -> None:
    customer = Party(phone="+5511987654321")
    message = WaMessage(chat=customer, sender=customer, content=Text("oi"), wa_id="W1")
    await h.notifier.on_engine_event(MessageEvent(KEY, message=message))
    await h.notifier.on_engine_event(ConnectedEvent(KEY, phone=PHONE))
    assert h.sink.codes == [] and h.sink.sent == []


# --- lifecycle and failures ------------------------------------------------------------------


async def test_stop_cancels_the_grace_timers(h: Harness) -> None:
    await h.connected_at_start(KEY)
    await h.connected_at_start(OTHER)
    await h.status(S.DISCONNECTED, key=KEY, reason="reset")
    await h.status(S.DISCONNECTED, key=OTHER, reason="reset")
    await h.clock.settle()
    assert h.clock.pending_sleepers == 2

    await h.notifier.stop()
    assert h.clock.pending_sleepers == 0
    await h.clock.advance(GRACE * 2)
    await h.status(S.CONNECTED)
    assert h.sink.messages == []


async def test_resolved_waits_for_a_warning_still_being_posted(h: Harness) -> None:
    gate = asyncio.Event()
    post_ops = h.sink.post_ops

    async def slow_warnings(post: OpsPost) -> None:
        if post.severity == "warning":
            await gate.wait()
        await post_ops(post)

    h.sink.post_ops = slow_warnings  # type: ignore[method-assign]
    await h.connected_at_start()
    await h.status(S.DISCONNECTED, reason="reset")
    await h.clock.advance(GRACE)  # the warning is on its way, stuck in the sink
    connected = asyncio.create_task(h.status(S.CONNECTED))
    await h.clock.settle()
    assert h.sink.messages == [] and not connected.done()

    gate.set()
    await connected
    assert h.sink.texts == [
        "⚠️ acme/sales DISCONNECTED for 60 s: reset; reconnecting",
        "✅ acme/sales CONNECTED again (resolved after 60 s)",
    ]


async def test_sink_failure_is_logged_and_the_notifier_goes_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await h.connected_at_start()
    h.sink.failures_left = 1
    with caplog.at_level(logging.ERROR, logger="bridge.core.ops"):
        await h.status(S.DISCONNECTED, reason="reset")  # its topic post fails
    [record] = [r for r in caplog.records if r.name == "bridge.core.ops"]
    assert record.exc_info is not None and "ops sink failed" in record.getMessage()

    await h.clock.advance(GRACE)
    assert h.sink.texts == ["⚠️ acme/sales DISCONNECTED for 60 s: reset; reconnecting"]


# --- with the real session manager ----------------------------------------------------------


async def test_wired_to_the_session_manager_and_engine() -> None:
    clock = FakeClock()
    sink = RecordingSink(clock)
    notifier = OpsNotifier(make_config(), sink, clock=clock)

    class NoStore:
        async def save_status(self, key: str, status: str, **_: object) -> None:
            return None

    spec = SessionSpec(key=KEY, company="acme", name="sales", device_dir=Path("devices"))
    manager = SessionManager(
        None,
        specs=[spec],
        store=NoStore(),
        clock=clock,
        rng=random.Random(7),
        metrics=None,
        reconnect_initial=2.0,
        reconnect_max=30.0,
        stable_seconds=30.0,
        stagger_seconds=0.0,
        send_per_minute=20,
        send_burst=5,
    )
    engine = FakeEngine(manager.handle_event, clock=clock, paired=())
    manager.attach_engine(engine)
    manager.add_listener(notifier.on_status)
    manager.set_downstream(notifier.on_engine_event)

    async def advance(seconds: float) -> None:
        await clock.advance(seconds)
        await manager.flush()

    try:
        await manager.start()
        await manager.flush()
        await manager.login(KEY)
        await manager.flush()
        assert [c.kind for c in sink.codes] == ["qr"] and sink.codes[0].png is not None
        await engine.scan(KEY, PHONE)
        await manager.flush()
        assert sink.texts == [
            NEVER_LINKED,
            "acme/sales QRCODE: waiting for the QR code to be scanned",
            f"acme/sales CONNECTED as {PHONE}",
        ]

        engine.fail_connects(KEY, 100, explanation="network down")
        down_at = clock.now()
        await engine.drop(KEY, reason="connection reset")
        await advance(GRACE)
        assert sink.texts[-1].startswith("⚠️ acme/sales DISCONNECTED for 60 s: network down")

        engine.clear_connect_failures(KEY)
        await advance(60)
        assert manager.status(KEY) is S.CONNECTED
        up_at = sink.sent[-1].at
        assert sink.texts[-1] == (
            f"✅ acme/sales CONNECTED again (resolved after {round(up_at - down_at)} s)"
        )
        assert sink.topics()[-1] == f"acme/sales: CONNECTED {PHONE}"
    finally:
        await notifier.stop()
        await manager.stop()
