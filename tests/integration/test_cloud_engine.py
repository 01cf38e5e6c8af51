"""CloudEngine (bridge/whatsapp/cloud/engine.py) against the strict fake Graph API:
connect and the token check, every kind of send, media both ways, templates, read
marks, and every path of the error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.config.schema import CloudConfig
from bridge.errors import (
    DeliveryError,
    EngineError,
    InvalidInput,
    PermanentDeliveryError,
    SessionNotConnected,
    WindowClosed,
)
from bridge.media_limits import FileTooLarge
from bridge.model import (
    ContactCard,
    ContactList,
    Location,
    Media,
    MediaKind,
    Quote,
    Text,
)
from bridge.whatsapp.cloud.engine import NO_QR_CODE, TOKEN_REFUSED_ACTION, CloudEngine
from bridge.whatsapp.cloud.graph import TokenRejected
from bridge.whatsapp.engine import (
    ConnectedEvent,
    DisconnectedEvent,
    EngineEvent,
    LoggedOutEvent,
    SessionSpec,
)
from tests.fakes.graph_api import GraphApiFake
from tests.harness.vcards import IOS

KEY = "acme/sales"
TO = "+5511987654321"
NUMBER_ID = "1000001"
MAX_BYTES = 64 * 1024
CHECK_SECONDS = 300.0
TEMPLATES = {"ticket_update": ("pt_BR", 2), "hello": ("en_US", 0)}
TOKEN_GONE = "the Cloud API access token expired or was revoked: "


class Recorder:
    """The engine's handler: every event, in order."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    async def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[EngineEvent]) -> list[EngineEvent]:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
async def graph() -> AsyncIterator[GraphApiFake]:
    fake = await GraphApiFake(templates=TEMPLATES).start()
    yield fake
    await fake.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def spec(tmp_path: Path) -> SessionSpec:
    return SessionSpec(key=KEY, company="acme", name="sales", device_dir=tmp_path)


def cloud_config(base_url: str, token: str, number_id: str = NUMBER_ID) -> CloudConfig:
    return CloudConfig(
        phone_number_id=number_id,
        access_token=token,
        app_secret="app-secret",
        verify_token="verify-token",
        base_url=base_url,
    )


def new_engine(
    recorder: Recorder, clock: FakeClock, config: CloudConfig, max_bytes: int = MAX_BYTES
) -> CloudEngine:
    return CloudEngine(
        recorder,
        sessions={KEY: config},
        clock=clock,
        media_max_bytes=max_bytes,
        token_check_seconds=CHECK_SECONDS,
    )


@pytest.fixture
async def engine(
    graph: GraphApiFake, recorder: Recorder, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[CloudEngine]:
    """A connected engine."""
    engine = new_engine(recorder, clock, cloud_config(graph.base_url, graph.token))
    await engine.connect(spec(tmp_path))
    assert recorder.events == [ConnectedEvent(KEY, phone="+15550100001")]
    yield engine
    await engine.close()


def last_answered_id(graph: GraphApiFake) -> str:
    answer = graph.calls_to("messages")[-1].answer
    assert answer is not None
    return str(answer["messages"][0]["id"])


# --- connect, login, the token check --------------------------------------------------


async def test_connect_checks_the_token_with_the_number_facts(
    engine: CloudEngine, graph: GraphApiFake, clock: FakeClock
) -> None:
    (call,) = graph.calls
    assert call.route == "node" and call.token == graph.token
    assert f"/v21.0/{NUMBER_ID}?fields=" in call.path and "messaging_limit_tier" in call.path
    assert clock.pending_sleepers == 1  # the token check waits for its turn
    assert await engine.is_paired(spec(Path("/nonexistent")))


async def test_connect_with_a_refused_token_reports_logged_out(
    graph: GraphApiFake, recorder: Recorder, clock: FakeClock, tmp_path: Path
) -> None:
    engine = new_engine(recorder, clock, cloud_config(graph.base_url, "not-the-token"))
    await engine.connect(spec(tmp_path))
    (event,) = recorder.events
    assert isinstance(event, LoggedOutEvent) and event.reason.startswith(TOKEN_GONE)
    assert "(code 190)" in event.reason and "not-the-token" not in event.reason
    assert event.action == TOKEN_REFUSED_ACTION  # what to do: a new token, then a restart
    assert "restart" in event.action and "access_token" in event.action
    assert clock.pending_sleepers == 0
    with pytest.raises(SessionNotConnected):
        await engine.send(KEY, TO, Text("hi"))
    await engine.close()


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [(503, 2, True), (500, None, True), (429, 130429, True), (400, 100, False)],
)
async def test_connect_failures_report_a_disconnect(
    graph: GraphApiFake,
    recorder: Recorder,
    clock: FakeClock,
    tmp_path: Path,
    status: int,
    code: int | None,
    transient: bool,
) -> None:
    engine = new_engine(recorder, clock, cloud_config(graph.base_url, graph.token))
    graph.fail_next(status, code, message="unavailable")
    await engine.connect(spec(tmp_path))
    (event,) = recorder.events
    assert isinstance(event, DisconnectedEvent) and event.transient is transient
    assert clock.pending_sleepers == 0
    await engine.connect(spec(tmp_path))  # the next attempt succeeds
    assert isinstance(recorder.events[-1], ConnectedEvent)
    await engine.close()


async def test_connect_to_an_unreachable_api_is_transient(
    recorder: Recorder, clock: FakeClock, tmp_path: Path
) -> None:
    gone = await GraphApiFake().start()
    await gone.close()
    engine = new_engine(recorder, clock, cloud_config(gone.base_url, gone.token))
    await engine.connect(spec(tmp_path))
    (event,) = recorder.events
    assert isinstance(event, DisconnectedEvent) and event.transient
    assert "could not be reached" in event.reason
    await engine.close()


async def test_connect_of_an_unknown_session_fails_at_once(
    recorder: Recorder, clock: FakeClock, graph: GraphApiFake, tmp_path: Path
) -> None:
    engine = CloudEngine(recorder, sessions={}, clock=clock, media_max_bytes=MAX_BYTES)
    with pytest.raises(EngineError, match="no Cloud API settings"):
        await engine.connect(spec(tmp_path))
    await engine.close()


async def test_login_explains_there_is_no_qr_code(engine: CloudEngine, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        await engine.login(spec(tmp_path), phone="+15550100001")
    assert caught.value.explanation == NO_QR_CODE
    assert "sessions[].cloud.access_token" in NO_QR_CODE


async def test_the_token_is_checked_periodically(
    engine: CloudEngine, graph: GraphApiFake, recorder: Recorder, clock: FakeClock
) -> None:
    await clock.advance(CHECK_SECONDS - 1)
    assert len(graph.calls_to("node")) == 1
    await clock.advance(1)
    assert len(graph.calls_to("node")) == 2
    graph.fail_next(503, 2)  # a failed check is not a logout
    await clock.advance(CHECK_SECONDS)
    assert len(graph.calls_to("node")) == 3 and len(recorder.events) == 1
    graph.revoke_token()
    await clock.advance(CHECK_SECONDS)
    (event,) = recorder.of(LoggedOutEvent)
    assert isinstance(event, LoggedOutEvent) and event.reason.startswith(TOKEN_GONE)
    assert clock.pending_sleepers == 0
    await clock.advance(10 * CHECK_SECONDS)
    assert len(graph.calls_to("node")) == 4 and len(recorder.of(LoggedOutEvent)) == 1


@pytest.mark.parametrize("stop", ["disconnect", "logout"])
async def test_disconnect_and_logout_stop_the_checks(
    engine: CloudEngine, graph: GraphApiFake, clock: FakeClock, stop: str
) -> None:
    await getattr(engine, stop)(KEY)
    await clock.settle()
    assert clock.pending_sleepers == 0
    await clock.advance(3 * CHECK_SECONDS)
    assert len(graph.calls_to("node")) == 1
    with pytest.raises(SessionNotConnected):
        await engine.send(KEY, TO, Text("hi"))


async def test_reconnect_keeps_one_check(
    engine: CloudEngine, graph: GraphApiFake, clock: FakeClock, tmp_path: Path
) -> None:
    await engine.connect(spec(tmp_path))
    await clock.settle()
    assert clock.pending_sleepers == 1
    await clock.advance(CHECK_SECONDS)
    assert len(graph.calls_to("node")) == 3  # two connects, one check


# --- sends -------------------------------------------------------------------------------


async def test_text_goes_as_is_with_its_reference(engine: CloudEngine, graph: GraphApiFake) -> None:
    wa_id = await engine.send(KEY, TO, Text("*Olá* _Maria_"), message_id="zb1:7:3EB0ABC")
    (body,) = graph.messages
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "5511987654321",
        "type": "text",
        "text": {"body": "*Olá* _Maria_", "preview_url": False},
        "biz_opaque_callback_data": "zb1:7:3EB0ABC",
    }
    assert wa_id.startswith("wamid.") and wa_id == last_answered_id(graph)


async def test_without_a_reference_no_callback_data_is_sent(
    engine: CloudEngine, graph: GraphApiFake
) -> None:
    await engine.send(KEY, TO, Text("x"))
    assert "biz_opaque_callback_data" not in graph.messages[0]


async def test_every_kind_of_send_carries_its_reference(
    engine: CloudEngine, graph: GraphApiFake
) -> None:
    audio = Media(MediaKind.AUDIO, "audio/mpeg", data=b"ID3", caption="listen")
    await engine.send(KEY, TO, audio, message_id="ref-audio")
    await engine.react(
        KEY, TO, target="wamid.T", target_sender=TO, emoji="👍", message_id="ref-reaction"
    )
    await engine.send_template(
        KEY, TO, name="hello", language="en_US", params=[], message_id="ref-template"
    )
    references = [(m["type"], m.get("biz_opaque_callback_data")) for m in graph.messages]
    assert references == [
        ("audio", "ref-audio"),
        ("text", None),  # the caption after it: the audio's statuses name the delivery
        ("reaction", "ref-reaction"),
        ("template", "ref-template"),
    ]


async def test_a_reference_longer_than_meta_takes_sends_nothing(
    engine: CloudEngine, graph: GraphApiFake
) -> None:
    with pytest.raises(PermanentDeliveryError, match="1 to 512 characters"):
        await engine.send(KEY, TO, Text("x"), message_id="r" * 513)
    assert graph.messages == []


async def test_location_and_contacts(engine: CloudEngine, graph: GraphApiFake) -> None:
    await engine.send(KEY, TO, Location(-23.56, -46.65, name="Office"))
    await engine.send(KEY, TO, ContactCard("Maria Souza", IOS))
    await engine.send(KEY, TO, ContactList("2", (ContactCard("A", IOS), ContactCard("B", IOS))))
    location, card, cards = graph.messages
    assert location["location"] == {"latitude": -23.56, "longitude": -46.65, "name": "Office"}
    assert card["contacts"][0]["name"]["formatted_name"] == "Maria Souza"
    assert card["contacts"][0]["phones"][0]["wa_id"] == "5511987654321"
    assert [c["name"]["formatted_name"] for c in cards["contacts"]] == ["A", "B"]


async def test_a_reply_carries_the_context(engine: CloudEngine, graph: GraphApiFake) -> None:
    await engine.send(KEY, TO, Text("yes"), quote=Quote("wamid.QUOTED", sender=TO, text="?"))
    assert graph.messages[0]["context"] == {"message_id": "wamid.QUOTED"}


@pytest.mark.parametrize(
    ("media", "kind", "upload_type", "filename"),
    [
        (
            Media(MediaKind.IMAGE, "image/jpeg", data=b"\xff\xd8jpeg", caption="look"),
            "image",
            "image/jpeg",
            None,
        ),
        (
            Media(MediaKind.DOCUMENT, "application/pdf", data=b"%PDF", filename="a.pdf"),
            "document",
            "application/pdf",
            "a.pdf",
        ),
        (
            Media(MediaKind.VOICE, "audio/ogg; codecs=opus", data=b"OggS"),
            "audio",
            "audio/ogg",
            None,
        ),
        (Media(MediaKind.VIDEO, "video/mp4", data=b"mp4", gif=True), "video", "video/mp4", None),
        (Media(MediaKind.STICKER, "image/webp", data=b"RIFF"), "sticker", "image/webp", None),
    ],
)
async def test_media_is_uploaded_then_sent(
    engine: CloudEngine,
    graph: GraphApiFake,
    media: Media,
    kind: str,
    upload_type: str,
    filename: str | None,
) -> None:
    wa_id = await engine.send(KEY, TO, media)
    (upload,) = graph.calls_to("media")
    assert upload.form == {"messaging_product": "whatsapp", "type": upload_type}
    (stored,) = graph.media.values()
    assert stored.data == media.data and stored.mime_type == upload_type
    assert stored.filename == (filename or stored.filename) and stored.filename
    (body,) = graph.messages
    assert body["type"] == kind and body[kind]["id"] == stored.id
    assert body[kind].get("caption") == media.caption
    assert wa_id == last_answered_id(graph)


async def test_an_audio_caption_follows_as_text(engine: CloudEngine, graph: GraphApiFake) -> None:
    media = Media(MediaKind.AUDIO, "audio/mpeg", data=b"ID3", caption="listen to this")
    wa_id = await engine.send(KEY, TO, media, quote=Quote("wamid.Q"))
    audio, caption = graph.messages
    assert audio["type"] == "audio" and "caption" not in audio["audio"]
    assert audio["context"] == {"message_id": "wamid.Q"}
    assert caption["text"]["body"] == "listen to this"
    assert wa_id == graph.calls_to("messages")[0].answer["messages"][0]["id"]  # type: ignore[index]


async def test_nothing_is_uploaded_for_a_group(engine: CloudEngine, graph: GraphApiFake) -> None:
    with pytest.raises(PermanentDeliveryError, match="phone numbers only"):
        await engine.send(KEY, "1203630@g.us", Media(MediaKind.IMAGE, "image/png", data=b"png"))
    assert graph.calls_to("media") == [] and graph.messages == []


@pytest.mark.parametrize("emoji", ["❤️", ""])
async def test_reaction(engine: CloudEngine, graph: GraphApiFake, emoji: str) -> None:
    wa_id = await engine.react(KEY, TO, target="wamid.T", target_sender=TO, emoji=emoji)
    assert graph.messages[0]["reaction"] == {"message_id": "wamid.T", "emoji": emoji}
    assert wa_id == last_answered_id(graph)


async def test_template(engine: CloudEngine, graph: GraphApiFake) -> None:
    params = ["Maria", "#42"]
    wa_id = await engine.send_template(
        KEY, TO, name="ticket_update", language="pt_BR", params=params
    )
    (body,) = graph.sent("template")
    assert body["template"]["name"] == "ticket_update"
    assert body["template"]["components"][0]["parameters"][1] == {"type": "text", "text": "#42"}
    assert wa_id == last_answered_id(graph)
    with pytest.raises(PermanentDeliveryError, match="code 132000"):
        await engine.send_template(KEY, TO, name="ticket_update", language="pt_BR", params=["x"])
    with pytest.raises(PermanentDeliveryError, match="code 132001"):
        await engine.send_template(KEY, TO, name="nope", language="en_US", params=[])


async def test_edit_and_revoke_are_refused(engine: CloudEngine, graph: GraphApiFake) -> None:
    with pytest.raises(PermanentDeliveryError, match="cannot edit"):
        await engine.edit(KEY, TO, target="wamid.T", text="new")
    with pytest.raises(PermanentDeliveryError, match="cannot delete"):
        await engine.revoke(KEY, TO, target="wamid.T")
    assert graph.calls_to("messages") == []


async def test_mark_read_marks_the_last(engine: CloudEngine, graph: GraphApiFake) -> None:
    await engine.mark_read(KEY, TO, ids=[], sender=TO)
    assert graph.calls_to("messages") == []
    await engine.mark_read(KEY, TO, ids=["wamid.A", "wamid.B"], sender=TO)
    assert graph.read_marks == ["wamid.B"]


async def test_typing_is_not_shown(engine: CloudEngine, graph: GraphApiFake) -> None:
    """Meta's typing indicator would mark the message read too (docs/presence.md)."""
    assert await engine.chat_presence(KEY, TO, state="composing") is False
    assert graph.calls_to("messages") == [] and graph.read_marks == []


async def test_account_facts(engine: CloudEngine, graph: GraphApiFake) -> None:
    assert await engine.account_facts(KEY) == {
        "verified name": "Acme Support",
        "quality rating": "GREEN",
        "messaging limit": "TIER_1K",
    }
    graph.fail_next(503, 2, message="down")
    facts = await engine.account_facts(KEY)
    assert list(facts) == ["Cloud API"] and "down" in facts["Cloud API"]
    await engine.disconnect(KEY)
    assert await engine.account_facts(KEY) == {}


# --- downloads ----------------------------------------------------------------------------


def inbound(media_id: str, kind: MediaKind = MediaKind.IMAGE) -> Media:
    return Media(kind, "image/jpeg", ref={"cloud_media_id": media_id})


async def test_download(engine: CloudEngine, graph: GraphApiFake) -> None:
    media_id = graph.add_media(b"\xff\xd8customer photo", "image/jpeg")
    assert await engine.download(KEY, inbound(media_id)) == b"\xff\xd8customer photo"
    info, file = graph.calls[-2:]
    assert info.route == "node" and info.path == f"/v21.0/{media_id}"
    assert file.route == "file" and file.token == graph.token and file.status == 200


async def test_an_expired_link_is_asked_for_again(engine: CloudEngine, graph: GraphApiFake) -> None:
    media_id = graph.add_media(b"voice", "audio/ogg")
    graph.expire_next_links(1)
    assert await engine.download(KEY, inbound(media_id, MediaKind.VOICE)) == b"voice"
    assert [c.status for c in graph.calls_to("file")] == [404, 200]
    graph.expire_next_links(2)
    with pytest.raises(DeliveryError, match="kept expiring") as caught:
        await engine.download(KEY, inbound(media_id, MediaKind.VOICE))
    assert not isinstance(caught.value, PermanentDeliveryError)


@pytest.mark.parametrize("announced_truly", [True, False])
async def test_a_file_over_the_limit_is_refused(
    engine: CloudEngine, graph: GraphApiFake, announced_truly: bool
) -> None:
    """Refused by the size Meta announces, before the fetch; or, when that size is
    small, by the size of what arrives."""
    data = b"v" * (MAX_BYTES + 1)
    media_id = graph.add_media(data, "video/mp4", reported_size=None if announced_truly else 10)
    with pytest.raises(FileTooLarge, match=r"media\.max_size_mb"):
        await engine.download(KEY, inbound(media_id, MediaKind.VIDEO))
    assert len(graph.calls_to("file")) == (0 if announced_truly else 1)


async def test_download_refusals(engine: CloudEngine, graph: GraphApiFake) -> None:
    with pytest.raises(PermanentDeliveryError, match="does not exist"):
        await engine.download(KEY, inbound("424242"))
    with pytest.raises(PermanentDeliveryError, match="no Cloud API media id"):
        await engine.download(KEY, Media(MediaKind.IMAGE, "image/jpeg", ref={"url": "x"}))
    held = Media(MediaKind.IMAGE, "image/jpeg", data=b"held")
    assert await engine.download(KEY, held) == b"held"


# --- the error mapping, end to end -------------------------------------------------------


async def test_throttling_carries_retry_after(engine: CloudEngine, graph: GraphApiFake) -> None:
    graph.fail_next(429, 130429, message="Rate limit hit", retry_after="17")
    with pytest.raises(DeliveryError) as caught:
        await engine.send(KEY, TO, Text("hi"))
    assert caught.value.retry_after == 17.0 and "Rate limit hit" in caught.value.explanation
    graph.fail_next(400, 131056, message="pair rate limit")
    with pytest.raises(DeliveryError) as caught:
        await engine.react(KEY, TO, target="wamid.T", target_sender=None, emoji="👍")
    assert caught.value.retry_after == 60.0
    assert await engine.send(KEY, TO, Text("hi")) == last_answered_id(graph)


async def test_window_closed(engine: CloudEngine, graph: GraphApiFake) -> None:
    graph.fail_next(400, 131047, message="Re-engagement message")
    with pytest.raises(WindowClosed, match="Re-engagement message"):
        await engine.send(KEY, TO, Text("hi"))


async def test_refusal_and_server_errors(engine: CloudEngine, graph: GraphApiFake) -> None:
    graph.fail_next(400, 131026, message="Message undeliverable")
    with pytest.raises(PermanentDeliveryError, match="Message undeliverable"):
        await engine.send(KEY, TO, Text("hi"))
    graph.fail_next(500, 1, message="unknown error")
    with pytest.raises(DeliveryError) as caught:
        await engine.send(KEY, TO, Text("hi"))
    assert caught.value.ambiguous
    graph.fail_next(502, None, route="media")
    with pytest.raises(DeliveryError, match="HTTP 502"):
        await engine.send(KEY, TO, Media(MediaKind.IMAGE, "image/png", data=b"png"))
    assert graph.messages == []


async def test_a_refused_token_during_sends_logs_out_once(
    engine: CloudEngine, graph: GraphApiFake, recorder: Recorder, clock: FakeClock
) -> None:
    graph.revoke_token()
    results = await asyncio.gather(
        engine.send(KEY, TO, Text("one")),
        engine.mark_read(KEY, TO, ids=["wamid.A"], sender=TO),
        return_exceptions=True,
    )
    assert all(isinstance(result, TokenRejected) for result in results)
    (event,) = recorder.of(LoggedOutEvent)
    assert isinstance(event, LoggedOutEvent) and event.reason.startswith(TOKEN_GONE)
    assert clock.pending_sleepers == 0
    with pytest.raises(SessionNotConnected):
        await engine.send(KEY, TO, Text("two"))


async def test_an_unreachable_api_is_a_retried_failure(
    engine: CloudEngine, graph: GraphApiFake
) -> None:
    await graph.close()
    with pytest.raises(DeliveryError, match="could not be reached") as caught:
        await engine.send(KEY, TO, Text("hi"))
    assert caught.value.ambiguous
