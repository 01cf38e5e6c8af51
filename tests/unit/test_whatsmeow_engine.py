"""The whatsmeow engine's lifecycle on a recording fake neonize client: device store,
connect/login, QR and pairing codes, connection events, threads, downloads."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from neonize.aioze.client import NewAClient
from neonize.exc import DownloadError, NeonizeError, PairPhoneError
from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from bridge.errors import EngineError, SessionNotConnected
from bridge.model import Media, MediaKind, Text
from bridge.whatsapp import jid as jids
from bridge.whatsapp.device_files import DeviceFiles
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    ContactUpdateEvent,
    DisconnectedEvent,
    EngineErrorEvent,
    EngineEvent,
    LoggedOutEvent,
    MessageEvent,
    OfflineSyncCompletedEvent,
    PairCodeEvent,
    PairSuccessEvent,
    QRCodeEvent,
    ReceiptEvent,
    SessionSpec,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from bridge.whatsapp.whatsmeow import WhatsmeowEngine
from bridge.whatsapp.whatsmeow_lifecycle import SUBSCRIBED_EVENTS
from tests.fakes.neonize_client import OWN_DEVICE, EngineHarness, FakeNeonizeClient

KEY = "acme/sales"
CUSTOMER = "5511987654321"
PG = "postgresql://bridge@db.example/zapbridge"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    harness = EngineHarness(tmp_path / "devices")
    yield harness
    await harness.engine.close()


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> neonize.JID:
    return neonize.JID(User=user, Server=server, Device=device)


def text_event(text: str, ident: str, *, push: str = "Maria") -> neonize.Message:
    chat = jid(CUSTOMER)
    return neonize.Message(
        Info=neonize.MessageInfo(
            MessageSource=neonize.MessageSource(Chat=chat, Sender=chat),
            ID=ident,
            Pushname=push,
            Timestamp=1_700_000_000_000,
        ),
        Message=wa.Message(conversation=text),
    )


# --- the fake is faithful -------------------------------------------------------------

USED_METHODS = [
    "__init__",
    "connect",
    "stop",
    "disconnect",
    "logout",
    "get_me",
    "PairPhone",
    "send_message",
    "upload",
    "download_any",
    "mark_read",
    "send_chat_presence",
    "is_on_whatsapp",
    "get_profile_picture",
]


@pytest.mark.parametrize("name", USED_METHODS)
def test_fake_has_the_real_client_signatures(name: str) -> None:
    def shape(func: Any) -> list[tuple[str, Any, bool]]:
        params = inspect.signature(func).parameters.values()
        return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in params]

    assert shape(getattr(FakeNeonizeClient, name)) == shape(getattr(NewAClient, name))
    real = getattr(NewAClient, name)
    assert inspect.iscoroutinefunction(getattr(FakeNeonizeClient, name)) == (
        inspect.iscoroutinefunction(real)
    )


# --- device store ---------------------------------------------------------------------


async def test_not_paired_until_a_device_is_stored(h: EngineHarness) -> None:
    assert not await h.engine.is_paired(h.spec)
    h.pair()
    assert await h.engine.is_paired(h.spec)
    DeviceFiles(h.spec).sqlite.unlink()
    assert not await h.engine.is_paired(h.spec), "a record without its SQLite store"


async def test_connect_opens_one_sqlite_store_per_session(h: EngineHarness) -> None:
    h.pair()
    await h.engine.connect(h.spec)
    client = h.client
    files = DeviceFiles(h.spec)
    assert client.name == str(files.sqlite.resolve())
    assert files.sqlite.parent == h.spec.device_dir
    assert (client.uuid, client.jid, client.new_device) == (f"{KEY}#1", None, False)
    assert client.props is not None and client.props.os == "zapbridge"
    assert set(client.event.handlers) == set(SUBSCRIBED_EVENTS)
    assert client.event.qr_handler is not None
    assert client.calls_to("connect")


def test_sessions_get_distinct_store_files(tmp_path: Path) -> None:
    def files(key: str) -> DeviceFiles:
        company, name = key.split("/")
        return DeviceFiles(SessionSpec(key=key, company=company, name=name, device_dir=tmp_path))

    a, b, c = files("acme/sales"), files("acme/sales 2"), files("acme/sales_2")
    assert len({a.sqlite, b.sqlite, c.sqlite}) == 3 and len({a.record, b.record, c.record}) == 3
    for name in (a.sqlite.name, b.sqlite.name):
        assert not set(name) & set("%/?# "), "the SQLite URI must not mangle the file name"


async def test_connect_on_postgres_names_the_paired_device(tmp_path: Path) -> None:
    h = EngineHarness(tmp_path / "devices", database_url=PG)
    h.pair()
    await h.engine.connect(h.spec)
    assert h.client.name == PG
    assert h.client.jid is not None
    assert jids.jid_to_str(h.client.jid) == OWN_DEVICE
    assert not DeviceFiles(h.spec).sqlite.exists()


async def test_connect_on_postgres_when_the_device_is_gone(tmp_path: Path) -> None:
    h = EngineHarness(tmp_path / "devices", database_url=PG)
    h.pair()
    h.stored_devices.clear()
    await h.engine.connect(h.spec)
    assert h.factory.clients == [], "no client may be built on a missing device (Go would panic)"
    [event] = h.events
    assert isinstance(event, LoggedOutEvent) and "missing" in event.reason
    assert not await h.engine.is_paired(h.spec)


async def test_connect_without_pairing_fails_at_once(h: EngineHarness) -> None:
    with pytest.raises(EngineError, match="not paired"):
        await h.engine.connect(h.spec)


async def test_connect_twice_keeps_one_client(h: EngineHarness) -> None:
    h.pair()
    await h.engine.connect(h.spec)
    await h.engine.connect(h.spec)
    assert len(h.factory.clients) == 1


async def test_an_emptied_store_asks_for_a_new_login(h: EngineHarness) -> None:
    h.pair()
    await h.engine.connect(h.spec)
    await h.client.deliver_qr("2@abc")  # a paired device never gets a QR code
    assert h.client.stopped
    [event] = h.events
    assert isinstance(event, LoggedOutEvent)
    assert not await h.engine.is_paired(h.spec)


# --- connection events ----------------------------------------------------------------


async def test_connected_reports_our_phone_and_learns_our_lid(h: EngineHarness) -> None:
    h.pair()
    await h.engine.connect(h.spec)
    h.client.me = neonize.Device(JID=jid("5511900000001", device=7), LID=jid("99000001", "lid"))
    await h.client.deliver(neonize.Connected(status=True))
    await h.settle()
    assert h.events == [ConnectedEvent(session=KEY, phone="+5511900000001")]
    await h.until(lambda: (p := DeviceFiles(h.spec).read()) is not None and p.lid is not None)
    pairing = DeviceFiles(h.spec).read()
    assert pairing is not None and (pairing.jid, pairing.lid) == (OWN_DEVICE, "99000001")


async def test_a_transient_loss_stops_the_client_and_leaves_retries_to_the_manager(
    h: EngineHarness,
) -> None:
    old = await h.connected()
    await old.deliver(neonize.Disconnected(status=True))
    assert old.stopped, "whatsmeow's own reconnect loop must not race the session manager"
    assert h.events[-1] == DisconnectedEvent(
        session=KEY, reason="the connection to WhatsApp was lost", transient=True
    )
    with pytest.raises(SessionNotConnected):
        await h.engine.send(KEY, "+5511987654321", Text(body="hi"))
    await h.engine.connect(h.spec)
    assert h.client is not old
    assert h.client.uuid != old.uuid
    assert not old._stop_finalizer.alive, "a collected old client must not stop its successor"
    before = len(h.events)
    await old.deliver(text_event("late", "3EB0LATE"))
    assert len(h.events) == before, "events of a stopped client are dropped"


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        (
            neonize.TemporaryBan(Code=neonize.TemporaryBan.BROADCAST_LIST, Expire=600),
            TemporaryBanEvent(session=KEY, code="BROADCAST_LIST", expires_in=600.0),
        ),
        (neonize.ClientOutdated(), ClientOutdatedEvent(session=KEY)),
        (neonize.StreamReplaced(), StreamReplacedEvent(session=KEY)),
    ],
    ids=["ban", "outdated", "stream replaced"],
)
async def test_permanent_failures_stop_the_client(
    h: EngineHarness, ev: Any, expected: EngineEvent
) -> None:
    client = await h.connected()
    await client.deliver(ev)
    assert client.stopped
    assert h.events[-1] == expected
    assert await h.engine.is_paired(h.spec), "the device stays paired"


async def test_logged_out_forgets_the_device(h: EngineHarness) -> None:
    client = await h.connected()
    await client.deliver(neonize.LoggedOut(Reason=neonize.LOGGED_OUT))
    assert client.stopped
    assert h.events[-1] == LoggedOutEvent(
        session=KEY, reason="the device was unlinked from the phone"
    )
    assert not await h.engine.is_paired(h.spec)


async def test_offline_sync_completed(h: EngineHarness) -> None:
    client = await h.connected()
    await client.deliver(neonize.OfflineSyncCompleted(Count=3))
    assert h.events[-1] == OfflineSyncCompletedEvent(session=KEY, count=3)
    assert not client.stopped


async def test_a_client_that_dies_is_a_transient_loss(h: EngineHarness) -> None:
    h.pair()
    h.factory.setup = lambda c: setattr(c, "exit_error", "database is locked")
    await h.engine.connect(h.spec)
    await h.settle()
    [event] = h.events
    assert isinstance(event, DisconnectedEvent) and event.transient
    assert "database is locked" in event.reason


# --- messages -------------------------------------------------------------------------


async def test_messages_receipts_and_contacts(h: EngineHarness) -> None:
    client = await h.connected()
    await client.deliver(text_event("oi", "3EB0A"))
    await client.deliver(text_event("tudo bem?", "3EB0B"))
    await client.deliver(
        neonize.Receipt(
            MessageSource=neonize.MessageSource(Chat=jid(CUSTOMER), Sender=jid(CUSTOMER)),
            MessageIDs=["3EB0OURS"],
            Timestamp=1_700_000_005,
            Type=neonize.Receipt.READ,
        )
    )
    kinds = [type(e) for e in h.events[1:]]
    assert kinds == [ContactUpdateEvent, MessageEvent, MessageEvent, ReceiptEvent], (
        "the unchanged push name is reported once"
    )
    assert [e.message.wa_id for e in h.of_type(MessageEvent)] == ["3EB0A", "3EB0B"]


async def test_the_sender_avatar_is_asked_once_and_reported(h: EngineHarness) -> None:
    client = await h.connected()
    client.pictures[CUSTOMER] = "https://pps.whatsapp.net/v/maria.jpg"
    await client.deliver(text_event("oi", "3EB0A"))
    await client.deliver(text_event("tudo bem?", "3EB0B"))
    await client.deliver(text_event("e aí?", "3EB0C", push="Maria S."))
    asked = client.calls_to("get_profile_picture")
    asked_of = [(c.args[0].User, c.args[0].Server) for c in asked]
    assert asked_of == [(CUSTOMER, "s.whatsapp.net")], "asked once per person per run"
    kinds = [type(e) for e in h.events[1:]]
    assert kinds == [
        ContactUpdateEvent,
        MessageEvent,
        MessageEvent,
        ContactUpdateEvent,
        MessageEvent,
    ]
    updates = h.of_type(ContactUpdateEvent)
    assert [u.avatar_url for u in updates] == ["https://pps.whatsapp.net/v/maria.jpg"] * 2
    assert [u.party.name for u in updates] == ["Maria", "Maria S."]


async def test_no_profile_picture_is_asked_once_and_not_reported(h: EngineHarness) -> None:
    client = await h.connected()
    client.failures["get_profile_picture"] = NeonizeError("not-authorized")
    await client.deliver(text_event("oi", "3EB0A"))
    await client.deliver(text_event("oi?", "3EB0B"))
    assert len(client.calls_to("get_profile_picture")) == 1
    assert [u.avatar_url for u in h.of_type(ContactUpdateEvent)] == [None]
    assert [e.message.wa_id for e in h.of_type(MessageEvent)] == ["3EB0A", "3EB0B"]


async def test_history_sync_messages_are_marked_as_history(h: EngineHarness) -> None:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as hs
    from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

    client = await h.connected()
    chat = f"{CUSTOMER}@s.whatsapp.net"
    web = WebMessageInfo(
        key=MessageKey(remoteJID=chat, ID="3EB0OLD"),
        message=wa.Message(conversation="yesterday"),
        messageTimestamp=1_690_000_000,
    )
    data = hs.HistorySync(
        conversations=[hs.Conversation(ID=chat, messages=[hs.HistorySyncMsg(message=web)])]
    )
    await client.deliver(neonize.HistorySync(Data=data))
    [event] = h.of_type(MessageEvent)
    assert event.history and event.message.wa_id == "3EB0OLD"


async def test_handlers_run_on_the_loop_in_arrival_order(h: EngineHarness) -> None:
    client = await h.connected()
    loop_thread = threading.get_ident()
    seen: list[tuple[str, int]] = []

    async def slow_handler(event: EngineEvent) -> None:
        for _ in range(3):
            await asyncio.sleep(0)  # would let later events overtake without ordering
        if isinstance(event, MessageEvent):
            seen.append((event.message.wa_id or "", threading.get_ident()))

    h.engine._handler = slow_handler
    handler = client.event.handlers[neonize.Message]
    loop = asyncio.get_running_loop()

    def go_thread() -> list[Any]:  # neonize fires and forgets, one coroutine per event
        return [
            asyncio.run_coroutine_threadsafe(handler(client, text_event("x", f"3EB0{n:02d}")), loop)
            for n in range(20)
        ]

    futures = await asyncio.to_thread(go_thread)
    await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    assert [ident for ident, _ in seen] == [f"3EB0{n:02d}" for n in range(20)]
    assert {thread for _, thread in seen} == {loop_thread}


async def test_a_failing_handler_does_not_stop_the_session(h: EngineHarness) -> None:
    client = await h.connected()
    calls: list[str] = []

    async def flaky(event: EngineEvent) -> None:
        if isinstance(event, MessageEvent):
            calls.append(event.message.wa_id or "")
            if len(calls) == 1:
                raise RuntimeError("database down")

    h.engine._handler = flaky
    await client.deliver(text_event("a", "3EB0A", push=""))
    await client.deliver(text_event("b", "3EB0B", push=""))
    assert calls == ["3EB0A", "3EB0B"]
    assert not client.stopped


async def test_odd_events_are_reported_and_the_next_one_is_handled(h: EngineHarness) -> None:
    client = await h.connected()
    await client.deliver(text_event("oi", "3EB0" + "A" * 500))  # not a WhatsApp id
    await client.deliver(
        neonize.Receipt(MessageIDs=["3EB0OURS"], Type=neonize.Receipt.READ)  # no chat
    )
    await client.deliver(neonize.TemporaryBan(Expire=2**63 - 1))
    await client.deliver(text_event("tudo bem?", "3EB0B"))
    errors = h.of_type(EngineErrorEvent)
    assert len(errors) == 1 and "the message id has 504 characters" in errors[0].explanation
    [ban] = h.of_type(TemporaryBanEvent)
    assert ban.expires_in is None  # an absurd expiry is unknown, the ban is real


async def test_an_event_whose_handling_fails_is_reported(
    h: EngineHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await h.connected()

    def broken(*args: Any, **kwargs: Any) -> list[EngineEvent]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("bridge.whatsapp.wa_inbound.translate_receipt", broken)
    await client.deliver(
        neonize.Receipt(
            MessageSource=neonize.MessageSource(Chat=jid(CUSTOMER), Sender=jid(CUSTOMER)),
            MessageIDs=["3EB0OURS"],
            Type=neonize.Receipt.READ,
        )
    )
    [error] = h.of_type(EngineErrorEvent)
    assert error.explanation.startswith("a WhatsApp Receipt event was set aside: RecursionError")
    await client.deliver(text_event("ainda aqui", "3EB0C"))
    assert [e.message.wa_id for e in h.of_type(MessageEvent)] == ["3EB0C"]
    assert not client.stopped


# --- login: QR codes and pairing codes ------------------------------------------------


async def test_qr_login_until_connected(h: EngineHarness) -> None:
    await h.engine.login(h.spec)
    client = h.client
    assert client.new_device and client.jid is None
    await client.deliver_qr("2@first,key1,key2,adv")
    await client.deliver_qr("2@second,key1,key2,adv")
    assert h.events == [
        QRCodeEvent(session=KEY, code="2@first,key1,key2,adv", expires_in=60.0),
        QRCodeEvent(session=KEY, code="2@second,key1,key2,adv", expires_in=20.0),
    ]
    await client.deliver(
        neonize.PairStatus(ID=jid("5511900000001", device=9), Status=neonize.PairStatus.SUCCESS)
    )
    assert h.events[-1] == PairSuccessEvent(session=KEY, phone="+5511900000001")
    assert await h.engine.is_paired(h.spec)
    await client.deliver(neonize.Connected(status=True))
    assert h.events[-1] == ConnectedEvent(session=KEY, phone="+5511900000001")
    await h.clock.advance(1000)
    assert isinstance(h.events[-1], ConnectedEvent), "no login timeout after pairing"
    pairing = DeviceFiles(h.spec).read()
    assert pairing is not None and pairing.jid == "5511900000001:9@s.whatsapp.net"


async def test_connected_during_a_login_completes_it(h: EngineHarness) -> None:
    await h.engine.login(h.spec)
    client = h.client
    await client.deliver_qr("2@a")
    client.me = neonize.Device(JID=jid("5511900000001", device=4))
    await client.deliver(neonize.Connected(status=True))
    assert h.events[-1] == ConnectedEvent(session=KEY, phone=None)
    await h.until(lambda: DeviceFiles(h.spec).read() is not None)
    await h.clock.advance(1000)
    assert not client.stopped, "no login timeout once connected"
    assert await h.engine.is_paired(h.spec)


async def test_qr_login_times_out_after_the_last_code(h: EngineHarness) -> None:
    await h.engine.login(h.spec)
    client = h.client
    await client.deliver_qr("2@a")
    await h.clock.advance(50)
    await client.deliver_qr("2@b")  # the next code restarts the wait: 20 s + grace
    await h.clock.advance(25)
    assert not client.stopped
    await h.clock.advance(10)
    assert client.stopped
    assert h.events[-1] == DisconnectedEvent(
        session=KEY, reason="QR code timed out", transient=False
    )


async def test_connection_lost_during_login_ends_the_login(h: EngineHarness) -> None:
    await h.engine.login(h.spec)
    await h.client.deliver_qr("2@a")
    await h.client.deliver(neonize.Disconnected(status=True))
    event = h.events[-1]
    assert isinstance(event, DisconnectedEvent) and not event.transient
    assert event.reason.startswith("login interrupted")


async def test_login_refuses_a_paired_session(h: EngineHarness) -> None:
    h.pair()
    with pytest.raises(EngineError, match="already paired"):
        await h.engine.login(h.spec)


async def test_pairing_code_login(h: EngineHarness) -> None:
    h.factory.setup = lambda c: c.auto_qr.append("2@first")
    await h.engine.login(h.spec, phone="+55 (11) 98765-4321")
    client = h.client
    [call] = client.calls_to("PairPhone")
    assert call.args == ("5511987654321", True)
    assert h.events == [PairCodeEvent(session=KEY, code="ABCD-EFGH", phone="+5511987654321")]


async def test_pairing_code_login_without_an_answer(h: EngineHarness) -> None:
    login = asyncio.ensure_future(h.engine.login(h.spec, phone="+5511987654321"))
    await h.until(lambda: h.clock.pending_sleepers > 0)
    await h.clock.advance(31)
    with pytest.raises(EngineError, match="did not open the login"):
        await login
    assert h.client.stopped and not h.client.calls_to("PairPhone")


async def test_pairing_code_refused(h: EngineHarness) -> None:
    def setup(client: FakeNeonizeClient) -> None:
        client.auto_qr.append("2@first")
        client.failures["PairPhone"] = PairPhoneError("rate-overlimit")

    h.factory.setup = setup
    with pytest.raises(EngineError, match="rate-overlimit"):
        await h.engine.login(h.spec, phone="+5511987654321")
    assert h.client.stopped


# --- disconnect / logout --------------------------------------------------------------


async def test_disconnect_keeps_the_device(h: EngineHarness) -> None:
    client = await h.connected()
    count = len(h.events)
    await h.engine.disconnect(KEY)
    assert client.stopped and len(h.events) == count
    assert await h.engine.is_paired(h.spec)


async def test_logout_unlinks_and_forgets(h: EngineHarness) -> None:
    client = await h.connected()
    await h.engine.logout(KEY)
    assert client.calls_to("logout") and client.stopped
    assert not await h.engine.is_paired(h.spec)


async def test_logout_offline_forgets_locally(h: EngineHarness) -> None:
    h.pair()
    assert await h.engine.is_paired(h.spec)
    await h.engine.logout(KEY)
    assert h.factory.clients == []
    assert not await h.engine.is_paired(h.spec)


# --- downloads ------------------------------------------------------------------------

REF_MEDIA = Media(
    media_kind=MediaKind.IMAGE,
    mimetype="image/jpeg",
    ref={
        "message_type": "imageMessage",
        "direct_path": "/v/t62.7118-24/f.enc",
        "url": "",
        "media_key": "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=",
        "file_enc_sha256": "",
        "file_sha256": "",
        "file_length": 10,
        "mimetype": "image/jpeg",
    },
)


async def test_download_returns_data_it_already_has(h: EngineHarness) -> None:
    media = Media(media_kind=MediaKind.IMAGE, mimetype="image/png", data=b"png")
    assert await h.engine.download(KEY, media) == b"png"


async def test_download_through_the_client(h: EngineHarness) -> None:
    client = await h.connected()
    client.downloads.append(b"\xff\xd8jpeg")
    assert await h.engine.download(KEY, REF_MEDIA) == b"\xff\xd8jpeg"
    [call] = client.calls_to("download_any")
    message = call.args[0]
    assert message.imageMessage.directPath == "/v/t62.7118-24/f.enc"
    assert message.imageMessage.mediaKey == b"k" * 32


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DownloadError("download failed with status code 404"), "no longer on WhatsApp's servers"),
        (DownloadError("connection reset"), "downloading the image from WhatsApp failed"),
    ],
)
async def test_download_failures_explain(h: EngineHarness, error: Exception, expected: str) -> None:
    client = await h.connected()
    client.failures["download_any"] = error
    with pytest.raises(EngineError, match=expected):
        await h.engine.download(KEY, REF_MEDIA)


async def test_download_needs_a_connection(h: EngineHarness) -> None:
    with pytest.raises(SessionNotConnected):
        await h.engine.download(KEY, REF_MEDIA)


async def test_download_of_an_empty_file(h: EngineHarness) -> None:
    await h.connected()
    with pytest.raises(EngineError, match="empty"):
        await h.engine.download(KEY, REF_MEDIA)


# --- threads --------------------------------------------------------------------------


async def test_engine_installs_an_executor_big_enough_for_its_clients(tmp_path: Path) -> None:
    h = EngineHarness(tmp_path, executor_threads=48)
    h.pair()
    await h.engine.connect(h.spec)
    name = await asyncio.to_thread(lambda: threading.current_thread().name)
    assert name.startswith("neonize")
    assert isinstance(h.engine, WhatsmeowEngine)
    await h.engine.close()
