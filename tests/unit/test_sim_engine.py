"""SimEngine: pairing, QR timing, inbound → neutral messages, outbound log, faults."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.clock import FakeClock
from bridge.errors import (
    ConfigError,
    EngineError,
    InvalidInput,
    PermanentDeliveryError,
    SessionNotConnected,
)
from bridge.model import (
    AckStatus,
    ContactCard,
    ContactList,
    Content,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Party,
    Quote,
    Reaction,
    Text,
    Unsupported,
)
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    ContactUpdateEvent,
    DisconnectedEvent,
    EngineEvent,
    LoggedOutEvent,
    MessageEvent,
    PairCodeEvent,
    PairSuccessEvent,
    QRCodeEvent,
    ReceiptEvent,
    SessionSpec,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.sim import QR_TIMEOUT_REASON, SimEngine
from bridge.whatsapp.sim_session import PRESENCE_KEPT
from bridge.whatsapp.sim_store import SimSessionStore

KEY = "acme/sales"
CUSTOMER = "+5511987654321"
PNG = b"\x89PNG\r\n\x1a\n-fake-image-bytes"
QR_PATTERN = re.compile(
    r"2@[A-Za-z0-9+/=]+,[A-Za-z0-9+/=]{44},[A-Za-z0-9+/=]{44},[A-Za-z0-9+/=]{44}"
)
ID_PATTERN = re.compile(r"3EB0[0-9A-F]{18}")
E = TypeVar("E", bound=EngineEvent)


class Recorder:
    """The engine's event handler: keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    async def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    def of(self, cls: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, cls)]

    def types(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def clear(self) -> None:
        self.events.clear()


def spec(tmp_path: Path, key: str = KEY) -> SessionSpec:
    company, name = key.split("/")
    return SessionSpec(key=key, company=company, name=name, device_dir=tmp_path / "dev" / name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> Recorder:
    return Recorder()


MakeSim = Callable[..., SimEngine]


@pytest.fixture
async def make_sim(tmp_path: Path, clock: FakeClock, events: Recorder) -> AsyncIterator[MakeSim]:
    made: list[SimEngine] = []

    def make(**kwargs: Any) -> SimEngine:
        kwargs.setdefault("seed", 7 + len(made))
        sim = SimEngine(events, data_dir=tmp_path / "data", clock=clock, **kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        await sim.close()


@pytest.fixture
async def sim(make_sim: MakeSim) -> SimEngine:
    return make_sim()


@pytest.fixture
async def connected(sim: SimEngine, tmp_path: Path, events: Recorder) -> SimEngine:
    await sim.login(spec(tmp_path))
    await sim.scan(KEY, "+5511900000042")
    events.clear()
    return sim


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- pairing and login -----------------------------------------------------


async def test_never_paired_session_is_not_paired_and_cannot_connect(
    sim: SimEngine, tmp_path: Path
) -> None:
    assert not await sim.is_paired(spec(tmp_path))
    assert sim.link_status(KEY) == "LOGGED_OUT"
    with pytest.raises(EngineError, match="no paired device"):
        await sim.connect(spec(tmp_path))


async def test_qr_codes_rotate_first_after_60_then_every_20_seconds(
    sim: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await sim.login(spec(tmp_path))
    first = events.of(QRCodeEvent)
    assert len(first) == 1 and first[0].expires_in == 60
    assert QR_PATTERN.fullmatch(first[0].code)
    assert sim.current_qr(KEY) == first[0].code
    assert sim.link_status(KEY) == "QRCODE"

    await clock.advance(59.9)
    assert len(events.of(QRCodeEvent)) == 1
    await clock.advance(0.1)
    codes = events.of(QRCodeEvent)
    assert len(codes) == 2 and codes[1].expires_in == 20
    assert codes[1].code != codes[0].code
    # only the server's ref rotates; the device's keys stay
    assert codes[1].code.split(",")[1:] == codes[0].code.split(",")[1:]
    assert sim.current_qr(KEY) == codes[1].code

    await clock.advance(19.9)
    assert len(events.of(QRCodeEvent)) == 2
    await clock.advance(0.1)
    assert len(events.of(QRCodeEvent)) == 3


async def test_login_gives_up_after_max_qr_codes(
    make_sim: MakeSim, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    sim = make_sim(qr_first_seconds=30, qr_next_seconds=10, max_qr_codes=3)
    await sim.login(spec(tmp_path))
    await clock.advance(30 + 10 + 9)
    assert len(events.of(QRCodeEvent)) == 3
    assert not events.of(DisconnectedEvent)
    await clock.advance(1)
    assert events.of(DisconnectedEvent) == [
        DisconnectedEvent(KEY, reason=QR_TIMEOUT_REASON, transient=False)
    ]
    assert sim.current_qr(KEY) is None
    assert sim.link_status(KEY) == "LOGGED_OUT"
    await clock.advance(600)
    assert len(events.of(QRCodeEvent)) == 3
    assert clock.pending_sleepers == 0


async def test_scan_pairs_and_connects_and_stops_rotation(
    sim: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await sim.login(spec(tmp_path))
    events.clear()
    await sim.scan(KEY, "+55 11 90000-0042")
    assert events.events == [
        PairSuccessEvent(KEY, phone="+5511900000042"),
        ConnectedEvent(KEY, phone="+5511900000042"),
    ]
    assert sim.link_status(KEY) == "CONNECTED"
    assert sim.phone_of(KEY) == "+5511900000042"
    assert await sim.is_paired(spec(tmp_path))
    await clock.advance(1000)
    assert events.types() == ["PairSuccessEvent", "ConnectedEvent"]


async def test_scan_without_pending_login_is_invalid(sim: SimEngine) -> None:
    with pytest.raises(InvalidInput, match="no pending login"):
        await sim.scan(KEY, "+5511900000042")


async def test_scan_with_bad_phone_is_invalid(sim: SimEngine, tmp_path: Path) -> None:
    await sim.login(spec(tmp_path))
    with pytest.raises(InvalidInput, match="not a phone number"):
        await sim.scan(KEY, "12")


async def test_pairing_code_login(
    sim: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await sim.login(spec(tmp_path), phone="+55 11 90000-0042")
    [event] = events.events
    assert isinstance(event, PairCodeEvent)
    assert event.phone == "+5511900000042"
    assert re.fullmatch(r"[1-9A-Z]{4}-[1-9A-Z]{4}", event.code)
    assert sim.current_pair_code(KEY) == event.code and sim.current_qr(KEY) is None
    with pytest.raises(InvalidInput, match="issued for"):
        await sim.scan(KEY, "+5511900000099")
    await sim.scan(KEY, "+5511900000042")
    assert events.types()[-2:] == ["PairSuccessEvent", "ConnectedEvent"]


async def test_pairing_code_login_times_out_like_qr(
    sim: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await sim.login(spec(tmp_path), phone="+5511900000042")
    await clock.advance(60 + 20 * 5 - 1)
    assert not events.of(DisconnectedEvent)
    await clock.advance(1)
    assert events.of(DisconnectedEvent)[0].reason == QR_TIMEOUT_REASON


async def test_new_login_replaces_the_pending_one(
    sim: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await sim.login(spec(tmp_path))
    await clock.advance(30)
    await sim.login(spec(tmp_path))
    await clock.advance(59)  # the first login's 60 s mark has passed: no rotation from it
    assert len(events.of(QRCodeEvent)) == 2
    await clock.advance(1)
    assert len(events.of(QRCodeEvent)) == 3


async def test_login_on_paired_session_is_refused(connected: SimEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="already paired"):
        await connected.login(spec(tmp_path))


async def test_scan_from_inside_the_qr_handler(tmp_path: Path, clock: FakeClock) -> None:
    seen: list[EngineEvent] = []

    async def handler(event: EngineEvent) -> None:
        seen.append(event)
        if isinstance(event, QRCodeEvent):
            await engine.scan(KEY, "+5511900000042")

    engine = SimEngine(handler, data_dir=tmp_path, clock=clock, seed=1)
    await engine.login(spec(tmp_path))
    await clock.advance(1000)
    assert [type(e).__name__ for e in seen] == ["QRCodeEvent", "PairSuccessEvent", "ConnectedEvent"]
    assert clock.pending_sleepers == 0
    await engine.close()


async def test_auto_pair_gives_fake_phones_in_session_order(
    make_sim: MakeSim, tmp_path: Path, events: Recorder
) -> None:
    sim = make_sim(auto_pair=True)
    assert await sim.is_paired(spec(tmp_path, "acme/sales"))
    assert await sim.is_paired(spec(tmp_path, "acme/support"))
    assert await sim.is_paired(spec(tmp_path, "acme/sales"))
    assert sim.phone_of("acme/sales") == "+5511900000001"
    assert sim.phone_of("acme/support") == "+5511900000002"
    await sim.connect(spec(tmp_path, "acme/support"))
    assert events.events == [ConnectedEvent("acme/support", phone="+5511900000002")]

    # persisted: a new engine (without auto_pair) finds the same devices
    again = make_sim()
    assert await again.is_paired(spec(tmp_path, "acme/sales"))
    assert again.phone_of("acme/sales") == "+5511900000001"
    # and a later auto-paired session takes the next free number
    third = make_sim(auto_pair=True)
    assert await third.is_paired(spec(tmp_path, "beta/desk"))
    assert third.phone_of("beta/desk") == "+5511900000003"


async def test_auto_pairing_many_sessions_reads_the_disk_once_per_session(
    make_sim: MakeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = 0
    original = SimSessionStore.load_device

    def counting(self: SimSessionStore) -> Any:
        nonlocal reads
        reads += 1
        return original(self)

    monkeypatch.setattr(SimSessionStore, "load_device", counting)
    sim = make_sim(auto_pair=True)
    for n in range(60):
        assert await sim.is_paired(spec(tmp_path, f"acme/s{n:02d}"))
    assert {sim.phone_of(f"acme/s{n:02d}") for n in range(60)} == {
        f"+55119{n:08d}" for n in range(1, 61)
    }
    assert reads <= 2 * 60  # was one read of every device file per new session


async def test_paired_device_survives_a_new_engine(
    connected: SimEngine, make_sim: MakeSim, tmp_path: Path, events: Recorder
) -> None:
    device = tmp_path / "data" / "sim" / "acme" / "sales" / "device.json"
    assert json.loads(device.read_text())["phone"] == "+5511900000042"
    restarted = make_sim()
    assert await restarted.is_paired(spec(tmp_path))
    assert restarted.link_status(KEY) == "DISCONNECTED"
    await restarted.connect(spec(tmp_path))
    assert events.events == [ConnectedEvent(KEY, phone="+5511900000042")]


async def test_disconnect_and_logout_calls(
    connected: SimEngine, tmp_path: Path, events: Recorder
) -> None:
    await connected.disconnect(KEY)
    assert connected.link_status(KEY) == "STOPPED"
    with pytest.raises(SessionNotConnected):
        await connected.send(KEY, CUSTOMER, Text("hi"))
    await connected.connect(spec(tmp_path))
    await connected.logout(KEY)
    assert connected.link_status(KEY) == "LOGGED_OUT"
    assert not await connected.is_paired(spec(tmp_path))
    assert events.types() == ["ConnectedEvent"]  # the callers' own acts emit nothing


def test_bad_settings_are_config_errors(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(ConfigError):
        SimEngine(Recorder(), data_dir=tmp_path, clock=clock, max_qr_codes=0)
    with pytest.raises(ConfigError):
        SimEngine(Recorder(), data_dir=tmp_path, clock=clock, qr_next_seconds=0)


# --- faults ---------------------------------------------------------------


async def test_disconnect_fault_refuses_reconnect_until_seconds_pass(
    connected: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await connected.fault(KEY, "disconnect", 30)
    [event] = events.events
    assert isinstance(event, DisconnectedEvent) and event.transient
    assert connected.link_status(KEY) == "DISCONNECTED"
    with pytest.raises(SessionNotConnected):
        await connected.send(KEY, CUSTOMER, Text("hi"))
    await clock.advance(29)
    with pytest.raises(EngineError, match="refuses"):
        await connected.connect(spec(tmp_path))
    await clock.advance(1)
    await connected.connect(spec(tmp_path))
    assert isinstance(events.events[-1], ConnectedEvent)
    assert connected.link_status(KEY) == "CONNECTED"


async def test_disconnect_fault_with_zero_seconds_may_reconnect_at_once(
    connected: SimEngine, tmp_path: Path, events: Recorder
) -> None:
    await connected.fault(KEY, "disconnect", 0)
    await connected.connect(spec(tmp_path))
    assert events.types() == ["DisconnectedEvent", "ConnectedEvent"]


async def test_logout_fault_forgets_the_device(
    connected: SimEngine, make_sim: MakeSim, tmp_path: Path, events: Recorder
) -> None:
    await connected.fault(KEY, "logout", 0)
    assert events.events == [LoggedOutEvent(KEY)]
    assert connected.link_status(KEY) == "LOGGED_OUT"
    assert not await connected.is_paired(spec(tmp_path))
    assert not await make_sim().is_paired(spec(tmp_path))
    with pytest.raises(EngineError, match="no paired device"):
        await connected.connect(spec(tmp_path))


async def test_ban_fault_refuses_connect_until_it_expires(
    connected: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await connected.fault(KEY, "ban", 3600)
    assert events.events == [TemporaryBanEvent(KEY, code="ban", expires_in=3600.0)]
    assert connected.link_status(KEY) == "BANNED"
    await clock.advance(3599)
    with pytest.raises(EngineError, match="banned"):
        await connected.connect(spec(tmp_path))
    await clock.advance(1)
    await connected.connect(spec(tmp_path))
    assert connected.link_status(KEY) == "CONNECTED"


@pytest.mark.parametrize(
    ("kind", "event", "status"),
    [
        ("outdated", ClientOutdatedEvent(KEY), "OUTDATED"),
        ("stream_replaced", StreamReplacedEvent(KEY), "STOPPED"),
    ],
)
async def test_permanent_faults_emit_their_event_and_do_not_block_connect(
    connected: SimEngine,
    tmp_path: Path,
    events: Recorder,
    kind: str,
    event: EngineEvent,
    status: str,
) -> None:
    await connected.fault(KEY, kind, 0)
    assert events.events == [event]
    assert connected.link_status(KEY) == status
    with pytest.raises(SessionNotConnected):
        await connected.send(KEY, CUSTOMER, Text("hi"))
    await connected.connect(spec(tmp_path))
    assert connected.link_status(KEY) == "CONNECTED"


async def test_fault_ends_a_pending_login(
    sim: SimEngine, tmp_path: Path, clock: FakeClock, events: Recorder
) -> None:
    await sim.login(spec(tmp_path))
    await sim.fault(KEY, "disconnect", 10)
    assert sim.current_qr(KEY) is None
    with pytest.raises(EngineError, match="refuses"):
        await sim.login(spec(tmp_path))
    await clock.advance(500)
    assert events.types() == ["QRCodeEvent", "DisconnectedEvent"]


@pytest.mark.parametrize(
    ("kind", "seconds", "reason"),
    [
        ("explode", 0, "kind must be one of"),
        ("ban", -1, "seconds must be a number from 0 to 2592000"),
        ("ban", "10", "seconds must be a number"),
        ("ban", True, "seconds must be a number"),
        ("ban", None, "seconds must be a number"),
        ("disconnect", math.inf, "seconds must be a number from 0 to 2592000"),
        ("disconnect", math.nan, "seconds must be a number from 0 to 2592000"),
        ("disconnect", -math.inf, "seconds must be a number from 0 to 2592000"),
        ("ban", 2_592_001, "seconds must be a number from 0 to 2592000"),
        ("ban", 10**400, "seconds must be a number from 0 to 2592000"),  # no float overflow
    ],
)
async def test_bad_faults_are_invalid(
    connected: SimEngine, kind: str, seconds: Any, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        await connected.fault(KEY, kind, seconds)
    assert connected.link_status(KEY) == "CONNECTED"


# --- inbound --------------------------------------------------------------


def _media_body(kind: str, **extra: Any) -> dict[str, Any]:
    return {"media": {"data_b64": b64(PNG), "mimetype": "image/png", **extra}, "kind": kind}


INBOUND_CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("text", {"text": "Olá *mundo*"}, Text("Olá *mundo*")),
    *[
        (
            kind,
            _media_body(kind, filename=f"f.{kind}", caption="look"),
            Media(
                media_kind=MediaKind(kind),
                mimetype="image/png",
                data=PNG,
                filename=f"f.{kind}",
                caption="look",
                size=len(PNG),
                sha256=hashlib.sha256(PNG).hexdigest(),
            ),
        )
        for kind in ("image", "video", "audio", "voice", "document", "sticker")
    ],
    (
        "location",
        {"location": {"lat": -23.55, "lon": -46.63, "name": "Sé", "address": "Praça da Sé"}},
        Location(lat=-23.55, lon=-46.63, name="Sé", address="Praça da Sé"),
    ),
    (
        "contact",
        {"contact": {"display_name": "João", "vcard": "BEGIN:VCARD\nEND:VCARD"}},
        ContactCard(display_name="João", vcard="BEGIN:VCARD\nEND:VCARD"),
    ),
    ("reaction", {"target": "3EB0AA", "emoji": "👍"}, Reaction(target="3EB0AA", emoji="👍")),
    ("reaction", {"target": "3EB0AA", "emoji": ""}, Reaction(target="3EB0AA", emoji="")),
    ("edit", {"target": "3EB0AA", "text": "fixed"}, Edit(target="3EB0AA", new=Text("fixed"))),
    ("revoke", {"target": "3EB0AA"}, Deletion(target="3EB0AA")),
    ("unsupported", {"type": "poll"}, Unsupported(type_name="poll")),
]


@pytest.mark.parametrize(
    ("kind", "fields", "content"),
    INBOUND_CASES,
    ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(INBOUND_CASES)],
)
async def test_inbound_kind_becomes_the_neutral_message(
    connected: SimEngine,
    clock: FakeClock,
    events: Recorder,
    kind: str,
    fields: dict[str, Any],
    content: Any,
) -> None:
    body = {"from": "+55 11 98765-4321", "push_name": "Maria", "kind": kind, **fields}
    wa_id = await connected.inbound(KEY, body)
    assert ID_PATTERN.fullmatch(wa_id)
    [message_event] = events.of(MessageEvent)
    message = message_event.message
    assert message_event.session == KEY and not message_event.history
    maria = Party(phone=CUSTOMER, name="Maria")
    assert message.chat == maria and message.sender == maria
    assert message.content == content
    assert message.wa_id == wa_id
    assert message.timestamp == clock.now()
    assert message.quote is None and not message.from_me


async def test_media_mimetype_defaults_per_kind(connected: SimEngine, events: Recorder) -> None:
    body = {"from": CUSTOMER, "kind": "voice", "media": {"data_b64": b64(b"OggS")}}
    await connected.inbound(KEY, body)
    media = events.of(MessageEvent)[0].message.content
    assert isinstance(media, Media) and media.mimetype == "audio/ogg; codecs=opus"
    assert media.filename is None and media.caption is None
    assert await connected.download(KEY, media) == b"OggS"


async def test_unsupported_message_has_a_visible_placeholder(
    connected: SimEngine, events: Recorder
) -> None:
    await connected.inbound(KEY, {"from": CUSTOMER, "kind": "unsupported", "type": "poll"})
    content = events.of(MessageEvent)[0].message.content
    assert isinstance(content, Unsupported)
    assert content.placeholder == "unsupported message: poll"


async def test_inbound_ids_are_unique(connected: SimEngine) -> None:
    body = {"from": CUSTOMER, "kind": "text", "text": "hi"}
    ids = {await connected.inbound(KEY, body) for _ in range(200)}
    assert len(ids) == 200


async def test_inbound_may_carry_its_own_id_to_replay_a_delivery(
    connected: SimEngine, events: Recorder
) -> None:
    body = {"id": "3EB0DUPLICATE", "from": CUSTOMER, "kind": "text", "text": "hi"}
    assert await connected.inbound(KEY, body) == "3EB0DUPLICATE"
    assert await connected.inbound(KEY, body) == "3EB0DUPLICATE"
    assert [e.message.wa_id for e in events.of(MessageEvent)] == ["3EB0DUPLICATE"] * 2


async def test_group_message(connected: SimEngine, events: Recorder) -> None:
    body = {
        "from": CUSTOMER,
        "push_name": "Maria",
        "kind": "text",
        "text": "oi grupo",
        "group": {"id": "120363000000000001@g.us", "name": "Clientes VIP"},
    }
    await connected.inbound(KEY, body)
    message = events.of(MessageEvent)[0].message
    assert message.chat == Party(group="120363000000000001@g.us", name="Clientes VIP")
    assert message.chat.is_group
    assert message.sender == Party(phone=CUSTOMER, name="Maria")


async def test_quote_of_a_known_inbound_message(connected: SimEngine, events: Recorder) -> None:
    first = await connected.inbound(KEY, {"from": CUSTOMER, "kind": "text", "text": "pergunta"})
    reply = {"from": CUSTOMER, "kind": "text", "text": "e então?", "quote": first}
    await connected.inbound(KEY, reply)
    quote = events.of(MessageEvent)[1].message.quote
    assert quote == Quote(wa_id=first, sender=CUSTOMER, text="pergunta")


async def test_quote_of_our_outbound_message(connected: SimEngine, events: Recorder) -> None:
    ours = await connected.send(KEY, CUSTOMER, Text("*Bob:*\nbom dia"))
    body = {"from": CUSTOMER, "kind": "text", "text": "obrigada", "quote": ours}
    await connected.inbound(KEY, body)
    quote = events.of(MessageEvent)[0].message.quote
    assert quote == Quote(wa_id=ours, sender=None, text="*Bob:*\nbom dia")


async def test_quote_of_an_edited_message_quotes_the_new_text(
    connected: SimEngine, events: Recorder
) -> None:
    first = await connected.inbound(KEY, {"from": CUSTOMER, "kind": "text", "text": "tpyo"})
    await connected.inbound(
        KEY, {"from": CUSTOMER, "kind": "edit", "target": first, "text": "typo"}
    )
    await connected.inbound(KEY, {"from": CUSTOMER, "kind": "text", "text": "?", "quote": first})
    assert events.of(MessageEvent)[2].message.quote == Quote(first, sender=CUSTOMER, text="typo")


async def test_quote_of_an_unknown_message_keeps_only_the_id(
    connected: SimEngine, events: Recorder
) -> None:
    body = {"from": CUSTOMER, "kind": "text", "text": "?", "quote": "3EB0UNKNOWN"}
    await connected.inbound(KEY, body)
    assert events.of(MessageEvent)[0].message.quote == Quote(wa_id="3EB0UNKNOWN")


async def test_push_name_contact_update_first_time_and_on_change(
    connected: SimEngine, events: Recorder
) -> None:
    async def say(name: str | None) -> None:
        body: dict[str, Any] = {"from": CUSTOMER, "kind": "text", "text": "hi"}
        if name is not None:
            body["push_name"] = name
        await connected.inbound(KEY, body)

    await say("Maria")
    await say("Maria")
    await say(None)
    await say("Maria S.")
    assert events.types() == [
        "ContactUpdateEvent",
        "MessageEvent",
        "MessageEvent",
        "MessageEvent",
        "ContactUpdateEvent",
        "MessageEvent",
    ]
    updates = events.of(ContactUpdateEvent)
    assert [u.party for u in updates] == [
        Party(phone=CUSTOMER, name="Maria"),
        Party(phone=CUSTOMER, name="Maria S."),
    ]


async def test_avatar_url_contact_update_first_time_and_on_change(
    connected: SimEngine, events: Recorder
) -> None:
    async def say(avatar_url: str | None, name: str | None = None) -> None:
        body: dict[str, Any] = {"from": CUSTOMER, "kind": "text", "text": "hi"}
        if avatar_url is not None:
            body["avatar_url"] = avatar_url
        if name is not None:
            body["push_name"] = name
        await connected.inbound(KEY, body)

    await say("http://pics.example/a.png")
    await say("http://pics.example/a.png")
    await say(None)
    await say("https://pics.example/b.png")
    await say(None, name="Maria")
    assert events.types() == [
        "ContactUpdateEvent",
        "MessageEvent",
        "MessageEvent",
        "MessageEvent",
        "ContactUpdateEvent",
        "MessageEvent",
        "ContactUpdateEvent",
        "MessageEvent",
    ]
    updates = events.of(ContactUpdateEvent)
    assert [(u.party, u.avatar_url) for u in updates] == [
        (Party(phone=CUSTOMER), "http://pics.example/a.png"),
        (Party(phone=CUSTOMER), "https://pics.example/b.png"),
        (Party(phone=CUSTOMER, name="Maria"), "https://pics.example/b.png"),
    ]


INVALID_INBOUND: list[tuple[dict[str, Any], str]] = [
    ({"kind": "text", "text": "x"}, "from is required"),
    ({"from": "12", "kind": "text", "text": "x"}, "from: not a phone number"),
    ({"from": 5511987654321, "kind": "text", "text": "x"}, "from must be a string"),
    ({"from": CUSTOMER, "text": "x"}, "kind is required"),
    ({"from": CUSTOMER, "kind": "poll"}, "kind must be one of"),
    ({"from": CUSTOMER, "kind": "text"}, "text is required"),
    ({"from": CUSTOMER, "kind": "text", "text": ""}, "text must not be empty"),
    ({"from": CUSTOMER, "kind": "image"}, "media is required"),
    ({"from": CUSTOMER, "kind": "image", "media": "x"}, "media must be an object"),
    ({"from": CUSTOMER, "kind": "image", "media": {}}, "media.data_b64 is required"),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "not base64!"}},
        "media.data_b64 is not valid base64",
    ),
    ({"from": CUSTOMER, "kind": "image", "media": {"data_b64": "AAA"}}, "not valid base64"),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "AA==", "mimetype": 3}},
        "media.mimetype must be a string",
    ),
    (
        {"from": CUSTOMER, "kind": "video", "media": {"data_b64": "AA==", "duration": -1}},
        "media.duration must be an integer from 0 to 604800",
    ),
    ({"from": CUSTOMER, "kind": "location", "location": {"lat": 1}}, "location.lon is required"),
    (
        {"from": CUSTOMER, "kind": "location", "location": {"lat": "1", "lon": 2}},
        "location.lat must be a number",
    ),
    (
        {"from": CUSTOMER, "kind": "location", "location": {"lat": 91, "lon": 2}},
        "location.lat must be a number from -90 to 90",
    ),
    (
        {"from": CUSTOMER, "kind": "location", "location": {"lat": 1, "lon": math.inf}},
        "location.lon must be a number from -180 to 180",
    ),
    (
        {"from": CUSTOMER, "kind": "location", "location": {"lat": math.nan, "lon": 1}},
        "location.lat must be a number from -90 to 90",
    ),
    (
        {"from": CUSTOMER, "kind": "location", "location": {"lat": 10**400, "lon": 1}},
        "location.lat must be a number from -90 to 90",
    ),
    (
        {"from": CUSTOMER, "kind": "location", "location": {"lat": 1, "lon": 1, "name": 5}},
        "location.name must be a string",
    ),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "AAéé"}},
        "media.data_b64 is not valid base64",  # not ASCII
    ),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": ""}},
        "media.data_b64 must not be empty",
    ),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "AA==", "mimetype": "x"}},
        "media.mimetype must be an ASCII type/subtype",
    ),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "AA==", "width": 10**6}},
        "media.width must be an integer from 0 to 100000",
    ),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "AA==", "height": 1.5}},
        "media.height must be an integer",
    ),
    (
        {"from": CUSTOMER, "kind": "image", "media": {"data_b64": "AA==", "caption": ["x"]}},
        "media.caption must be a string",
    ),
    (
        {"from": CUSTOMER, "kind": "image", "media": "AA=="},
        "media must be an object",
    ),
    ({"from": CUSTOMER, "kind": "text", "text": "x" * 65_537}, "text is longer than 65536"),
    ({"from": CUSTOMER, "kind": "text", "text": ""}, "text must not be empty"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "push_name": "n" * 1025}, "push_name is"),
    ({"from": CUSTOMER, "kind": 5, "text": "x"}, "kind must be a string"),
    ({"from": CUSTOMER, "kind": "x" * 10_000}, "kind must be one of text, image"),
    ({"from": 5511987654321, "kind": "text", "text": "x"}, "from must be a string"),
    ({"from": "+٥٥ letters", "kind": "text", "text": "x"}, "from: not a phone number"),
    ({"kind": "text", "text": "x"}, "from is required"),
    ({"from": CUSTOMER, "kind": "reaction", "target": "X", "emoji": "👍" * 40}, "emoji is"),
    ({"from": CUSTOMER, "kind": "reaction", "target": "X Y", "emoji": ""}, "target must be"),
    ({"from": CUSTOMER, "kind": "revoke", "target": "3EB0\x00"}, "target must be printable"),
    ({"from": CUSTOMER, "kind": "revoke", "target": "A" * 129}, "target is longer than 128"),
    ({"from": CUSTOMER, "kind": "unsupported", "type": "p" * 65}, "type is longer than 64"),
    (
        {"from": CUSTOMER, "kind": "contact", "contact": {"display_name": "J", "vcard": []}},
        "contact.vcard must be a string",
    ),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "quote": "a b"}, "quote must be printable"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "id": ""}, "id must not be empty"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "id": 7}, "id must be a string"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "group": "g"}, "group must be an object"),
    (
        {"from": CUSTOMER, "kind": "text", "text": "x", "group": {"id": "friends"}},
        "group.id must be a group JID",
    ),
    (
        {"from": CUSTOMER, "kind": "text", "text": "x", "group": {"id": "1@g.us", "name": 1}},
        "group.name must be a string",
    ),
    (
        {"from": CUSTOMER, "kind": "text", "text": "x", "avatar_url": "http://h/a b.png"},
        "avatar_url must be an http(s) URL",
    ),
    (
        {"from": CUSTOMER, "kind": "text", "text": "x", "avatar_url": "https://h/" + "a" * 2048},
        "avatar_url is longer than 2048",
    ),
    (
        {"from": CUSTOMER, "kind": "contact", "contact": {"display_name": "J"}},
        "contact.vcard is required",
    ),
    ({"from": CUSTOMER, "kind": "reaction", "target": "X"}, "emoji is required"),
    ({"from": CUSTOMER, "kind": "edit", "target": "X"}, "text is required"),
    ({"from": CUSTOMER, "kind": "revoke"}, "target is required"),
    ({"from": CUSTOMER, "kind": "unsupported"}, "type is required"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "quote": 5}, "quote must be a string"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "group": {}}, "group.id is required"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "push_name": 1}, "push_name must be a"),
    ({"from": CUSTOMER, "kind": "text", "text": "x", "avatar_url": 1}, "avatar_url must be a"),
    (
        {"from": CUSTOMER, "kind": "text", "text": "x", "avatar_url": "ftp://h/a.png"},
        "avatar_url must be an http(s) URL",
    ),
    (
        {"from": CUSTOMER, "kind": "text", "text": "x", "avatar_url": "http://"},
        "avatar_url must be an http(s) URL",
    ),
]


@pytest.mark.parametrize(("body", "reason"), INVALID_INBOUND)
async def test_invalid_inbound_names_the_field(
    connected: SimEngine, events: Recorder, body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(reason)):
        await connected.inbound(KEY, body)
    assert events.events == []


async def test_inbound_on_a_session_that_is_not_connected(sim: SimEngine) -> None:
    body = {"from": CUSTOMER, "kind": "text", "text": "hi"}
    with pytest.raises(InvalidInput) as info:
        await sim.inbound(KEY, body)
    assert info.value.explanation == "session acme/sales is not connected (status LOGGED_OUT)"


# --- outbound -------------------------------------------------------------


CARD = ContactCard(display_name="Suporte", vcard="BEGIN:VCARD\nTEL:+5511900000042\nEND:VCARD")
OUTBOUND_CASES: list[tuple[Content, dict[str, Any]]] = [
    (Text("*Bob:*\nOlá"), {"kind": "text", "text": "*Bob:*\nOlá"}),
    (
        Media(
            media_kind=MediaKind.IMAGE,
            mimetype="image/png",
            data=PNG,
            filename="a.png",
            caption="veja",
        ),
        {
            "kind": "image",
            "media": {
                "sha256": hashlib.sha256(PNG).hexdigest(),
                "size": len(PNG),
                "mimetype": "image/png",
                "filename": "a.png",
                "caption": "veja",
            },
        },
    ),
    (
        Media(media_kind=MediaKind.VOICE, mimetype="audio/ogg; codecs=opus", data=b"OggS"),
        {
            "kind": "voice",
            "media": {
                "sha256": hashlib.sha256(b"OggS").hexdigest(),
                "size": 4,
                "mimetype": "audio/ogg; codecs=opus",
                "filename": None,
                "caption": None,
            },
        },
    ),
    *[
        (
            Media(media_kind=MediaKind(kind), mimetype="application/pdf", data=b"%PDF"),
            {
                "kind": kind,
                "media": {
                    "sha256": hashlib.sha256(b"%PDF").hexdigest(),
                    "size": 4,
                    "mimetype": "application/pdf",
                    "filename": None,
                    "caption": None,
                },
            },
        )
        for kind in ("video", "audio", "document", "sticker")
    ],
    (
        Location(lat=-23.5, lon=-46.6, name="Loja", address="Rua A, 1"),
        {
            "kind": "location",
            "location": {"lat": -23.5, "lon": -46.6, "name": "Loja", "address": "Rua A, 1"},
        },
    ),
    (
        CARD,
        {"kind": "contact", "contact": {"display_name": "Suporte", "vcard": CARD.vcard}},
    ),
    (
        ContactList(display_name="2 contacts", cards=(CARD, ContactCard("Ana", "BEGIN:VCARD"))),
        {
            "kind": "contact",
            "contact": {"display_name": "Suporte", "vcard": CARD.vcard},
            "contacts": [
                {"display_name": "Suporte", "vcard": CARD.vcard},
                {"display_name": "Ana", "vcard": "BEGIN:VCARD"},
            ],
        },
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"),
    OUTBOUND_CASES,
    ids=[f"{e['kind']}-{i}" for i, (_, e) in enumerate(OUTBOUND_CASES)],
)
async def test_outbound_log_entry_for_each_kind(
    connected: SimEngine,
    clock: FakeClock,
    events: Recorder,
    content: Content,
    expected: dict[str, Any],
) -> None:
    wa_id = await connected.send(KEY, "+55 11 98765-4321", content)
    assert ID_PATTERN.fullmatch(wa_id)
    [entry] = connected.outbound(KEY)
    assert entry == {"id": wa_id, "to": CUSTOMER, "timestamp": clock.now(), **expected}
    assert events.events == []  # the return value means "sent"


async def test_outbound_actions_and_quote(connected: SimEngine) -> None:
    first = await connected.send(KEY, CUSTOMER, Text("oi"), quote=Quote("3EB0CUSTOMER", CUSTOMER))
    await connected.react(KEY, CUSTOMER, target="3EB0CUSTOMER", target_sender=CUSTOMER, emoji="❤")
    await connected.edit(KEY, CUSTOMER, target=first, text="olá")
    await connected.revoke(KEY, CUSTOMER, target=first)
    group = "120363000000000001@g.us"
    await connected.send(KEY, group, Text("todos"))
    entries = [
        {k: v for k, v in e.items() if k not in ("id", "timestamp")}
        for e in connected.outbound(KEY)
    ]
    assert entries == [
        {"to": CUSTOMER, "kind": "text", "text": "oi", "quote": "3EB0CUSTOMER"},
        {"to": CUSTOMER, "kind": "reaction", "target": "3EB0CUSTOMER", "emoji": "❤"},
        {"to": CUSTOMER, "kind": "edit", "target": first, "text": "olá"},
        {"to": CUSTOMER, "kind": "revoke", "target": first},
        {"to": group, "kind": "text", "text": "todos"},
    ]
    ids = [e["id"] for e in connected.outbound(KEY)]
    assert len(set(ids)) == 5


async def test_outbound_log_survives_a_new_engine(
    connected: SimEngine, make_sim: MakeSim, tmp_path: Path, events: Recorder
) -> None:
    first = await connected.send(KEY, CUSTOMER, Text("um"))
    await connected.send(KEY, CUSTOMER, Text("dois"))
    log_file = tmp_path / "data" / "sim" / "acme" / "sales" / "outbound.jsonl"
    assert [json.loads(line)["text"] for line in log_file.read_text().splitlines()] == [
        "um",
        "dois",
    ]

    restarted = make_sim()
    assert restarted.outbound(KEY) == connected.outbound(KEY)
    await restarted.connect(spec(tmp_path))
    await restarted.send(KEY, CUSTOMER, Text("três"))
    assert [e["text"] for e in restarted.outbound(KEY)] == ["um", "dois", "três"]
    # old messages are still known: receipts and quotes work after the restart
    await restarted.receipt(KEY, first, "read")
    await restarted.inbound(KEY, {"from": CUSTOMER, "kind": "text", "text": "?", "quote": first})
    assert events.of(MessageEvent)[-1].message.quote == Quote(first, sender=None, text="um")


async def test_outbound_entries_name_the_sending_instance(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    """With ``sender`` (a cluster instance) each entry says who sent it; without, no field."""
    plain = make_sim()
    await plain.login(spec(tmp_path))
    await plain.scan(KEY, "+5511900000042")
    await plain.send(KEY, CUSTOMER, Text("um"))
    named = make_sim(sender="zap-2")  # the same device, run by instance zap-2
    await named.connect(spec(tmp_path))
    await named.send(KEY, CUSTOMER, Text("dois"))
    assert "instance" not in plain.outbound(KEY)[-1]
    assert named.outbound(KEY)[-1]["instance"] == "zap-2"


async def test_sends_need_a_connected_session(sim: SimEngine) -> None:
    with pytest.raises(SessionNotConnected):
        await sim.send(KEY, CUSTOMER, Text("hi"))
    with pytest.raises(SessionNotConnected):
        await sim.react(KEY, CUSTOMER, target="X", target_sender=None, emoji="👍")
    with pytest.raises(SessionNotConnected):
        await sim.mark_read(KEY, CUSTOMER, ids=["X"], sender=CUSTOMER)
    assert sim.outbound(KEY) == []


async def test_unsendable_content_and_bad_address_are_permanent(connected: SimEngine) -> None:
    with pytest.raises(PermanentDeliveryError, match="unsupported"):
        await connected.send(KEY, CUSTOMER, Unsupported("poll"))
    with pytest.raises(PermanentDeliveryError, match="cannot send to"):
        await connected.send(KEY, "nobody", Text("hi"))
    assert connected.outbound(KEY) == []


async def test_fail_next_sends(connected: SimEngine) -> None:
    connected.fail_next_sends(KEY, 2, error="boom")
    for _ in range(2):
        with pytest.raises(EngineError, match="boom"):
            await connected.send(KEY, CUSTOMER, Text("hi"))
    await connected.send(KEY, CUSTOMER, Text("hi"))
    assert len(connected.outbound(KEY)) == 1
    for count in (-1, 1_001, True, 1.0, "1", None):
        with pytest.raises(InvalidInput, match="count must be an integer from 0 to 1000"):
            connected.fail_next_sends(KEY, count)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="error must be a string"):
        connected.fail_next_sends(KEY, 1, "x" * 1025)


async def test_fail_next_sends_counts_only_sends_that_reach_the_network(
    connected: SimEngine, tmp_path: Path
) -> None:
    connected.fail_next_sends(KEY, 1)
    await connected.disconnect(KEY)
    with pytest.raises(SessionNotConnected):
        await connected.send(KEY, CUSTOMER, Text("hi"))
    await connected.connect(spec(tmp_path))
    with pytest.raises(EngineError, match="sim: send failed"):
        await connected.send(KEY, CUSTOMER, Text("hi"))
    await connected.send(KEY, CUSTOMER, Text("hi"))


async def test_mark_read_is_recorded(connected: SimEngine) -> None:
    await connected.mark_read(KEY, CUSTOMER, ids=["A", "B"], sender=CUSTOMER)
    await connected.mark_read(KEY, CUSTOMER, ids=["C"], sender=CUSTOMER)
    assert connected.read_ids(KEY) == ("A", "B", "C")


async def test_typing_is_recorded_apart_from_outbound_and_bounded(connected: SimEngine) -> None:
    for n in range(PRESENCE_KEPT + 3):
        await connected.chat_presence(KEY, CUSTOMER, state="composing" if n % 2 else "paused")
    typing = connected.presence(KEY)["typing"]
    assert len(typing) == PRESENCE_KEPT
    assert typing[-1]["state"] == "paused" and typing[-1]["to"] == CUSTOMER
    assert connected.outbound(KEY) == []


async def test_download_needs_inline_bytes(connected: SimEngine) -> None:
    media = Media(media_kind=MediaKind.IMAGE, mimetype="image/png", ref={"path": "/x"})
    with pytest.raises(EngineError, match="inline"):
        await connected.download(KEY, media)


# --- receipts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "chat"),
    [
        (CUSTOMER, Party(phone=CUSTOMER)),
        ("120363000000000001@g.us", Party(group="120363000000000001@g.us")),
        ("123456789@lid", Party(lid="123456789")),
    ],
)
async def test_receipt_for_an_outbound_message(
    connected: SimEngine, clock: FakeClock, events: Recorder, to: str, chat: Party
) -> None:
    wa_id = await connected.send(KEY, to, Text("hi"))
    await connected.receipt(KEY, wa_id, "delivered")
    await connected.receipt(KEY, wa_id, "read")
    assert events.events == [
        ReceiptEvent(
            KEY, chat=chat, ids=(wa_id,), status=AckStatus.DELIVERED, timestamp=clock.now()
        ),
        ReceiptEvent(KEY, chat=chat, ids=(wa_id,), status=AckStatus.READ, timestamp=clock.now()),
    ]


async def test_bad_receipts_are_invalid(connected: SimEngine) -> None:
    wa_id = await connected.send(KEY, CUSTOMER, Text("hi"))
    theirs = await connected.inbound(KEY, {"from": CUSTOMER, "kind": "text", "text": "x"})
    with pytest.raises(InvalidInput, match="no message"):
        await connected.receipt(KEY, "3EB0NOPE", "read")
    with pytest.raises(InvalidInput, match="no message"):
        await connected.receipt(KEY, theirs, "read")
    with pytest.raises(InvalidInput, match="status must be one of delivered, read"):
        await connected.receipt(KEY, wa_id, "sent")
    with pytest.raises(InvalidInput, match="id must be printable ASCII"):
        await connected.receipt(KEY, "3EB0 NOPE", "read")


def test_bad_session_key_is_invalid(sim: SimEngine) -> None:
    for key in ("acme", "acme/../x", "a/b/c", "/sales"):
        with pytest.raises(InvalidInput, match="not a session key"):
            sim.link_status(key)


async def test_seed_makes_runs_reproducible(tmp_path: Path, clock: FakeClock) -> None:
    async def run(directory: Path) -> tuple[str, str]:
        recorder = Recorder()
        engine = SimEngine(recorder, data_dir=directory, clock=clock, seed=42)
        await engine.login(spec(tmp_path))
        await engine.scan(KEY, "+5511900000042")
        wa_id = await engine.send(KEY, CUSTOMER, Text("x"))
        await engine.close()
        return recorder.of(QRCodeEvent)[0].code, wa_id

    assert await run(tmp_path / "one") == await run(tmp_path / "two")
