"""Files attendants share on Slack are held to what WhatsApp takes for their kind and
to ``media.max_size_mb`` before they are downloaded (issue 12): a file Slack declares
too big is never asked for, one that turns out too big is cut off while it arrives,
and the thread is told why the file did not go while the message's text still goes.
Each test runs on SQLite and PostgreSQL, against the strict Slack fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.db.database import Database
from bridge.media_limits import MB
from tests.fakes.slack import SlackFake
from tests.harness.slack import BOB, SALES, SlackHarness

SIGNATURE = "*Bob Silva:*\n"


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


async def started(h: SlackHarness) -> SlackHarness:
    await h.start()
    await h.customer(text="Oi")
    return h


@pytest.fixture
async def bridge(tmp_path: Path, db: Database, fake: SlackFake) -> AsyncIterator[SlackHarness]:
    harness = await started(SlackHarness(tmp_path, db, fake))
    yield harness
    await harness.stop()


def shared(h: SlackHarness, name: str, mimetype: str, *, declared: int | None) -> dict[str, Any]:
    """A file a human uploaded, with the size Slack declares for it (None: none)."""
    file = h.fake.host_file(name, b"\x00" * 2048, mimetype)
    if declared is None:
        del file["size"]
    else:
        file["size"] = declared
    return file


async def attendant_shares(h: SlackHarness, text: str, *files: dict[str, Any]) -> None:
    event = h.fake.user_message(SALES, BOB, text, thread_ts=h.thread_root(), files=list(files))
    await h.event(event)


def notices(h: SlackHarness) -> list[str]:
    return [m["text"] for m in h.replies() if m["text"].startswith("⚠️")]


async def test_a_video_declared_too_big_is_never_downloaded(bridge: SlackHarness) -> None:
    before = len(bridge.outbound())
    video = shared(bridge, "clip.mp4", "video/mp4", declared=17 * MB)
    await attendant_shares(bridge, "segue o vídeo", video)
    assert bridge.fake.downloads == []
    assert notices(bridge) == [
        "⚠️ not sent: the video is 17 MB; WhatsApp takes videos up to 16 MB (clip.mp4)"
    ]
    sent = bridge.outbound()[before:]
    assert [(m["kind"], m["text"]) for m in sent] == [("text", SIGNATURE + "segue o vídeo")]


@pytest.mark.parametrize(
    ("name", "mimetype", "subtype", "told"),
    [
        ("foto.png", "image/png", None, "the image is 17 MB; WhatsApp takes images up to 16 MB"),
        (
            "audio.webm",
            "audio/webm",
            "slack_audio",
            "the voice note is 17 MB; WhatsApp takes voice notes up to 16 MB",
        ),
        (
            "musica.mp3",
            "audio/mpeg",
            None,
            "the audio file is 17 MB; WhatsApp takes audio files up to 16 MB",
        ),
    ],
)
async def test_the_limit_is_whatsapps_for_the_kind(
    bridge: SlackHarness, name: str, mimetype: str, subtype: str | None, told: str
) -> None:
    file = shared(bridge, name, mimetype, declared=17 * MB)
    if subtype:
        file["subtype"] = subtype
    await attendant_shares(bridge, "", file)
    assert bridge.fake.downloads == []
    assert notices(bridge) == [f"⚠️ not sent: {told} ({name})"]


async def test_a_document_of_the_same_size_goes(bridge: SlackHarness) -> None:
    """WhatsApp takes documents up to 100 MB: 17 MB declared is fetched and sent."""
    document = shared(bridge, "contrato.pdf", "application/pdf", declared=17 * MB)
    await attendant_shares(bridge, "o contrato", document)
    assert bridge.fake.downloads == [document["id"]]
    sent = bridge.outbound()[-1]
    assert (sent["kind"], sent["media"]["filename"]) == ("document", "contrato.pdf")
    assert notices(bridge) == []


async def test_one_file_too_big_does_not_hold_back_the_others(bridge: SlackHarness) -> None:
    video = shared(bridge, "clip.mp4", "video/mp4", declared=20 * MB)
    photo = shared(bridge, "foto.png", "image/png", declared=2048)
    await attendant_shares(bridge, "as fotos", video, photo)
    assert bridge.fake.downloads == [photo["id"]]
    sent = bridge.outbound()[-1]
    assert (sent["kind"], sent["media"]["caption"]) == ("image", "as fotos")
    assert notices(bridge) == [
        "⚠️ not sent: the video is 20 MB; WhatsApp takes videos up to 16 MB (clip.mp4)"
    ]


async def test_media_max_size_mb_is_the_limit_when_it_is_lower(
    tmp_path: Path, db: Database, fake: SlackFake
) -> None:
    """With ``media.max_size_mb: 1``: a declared 2 MB image is not asked for, and a
    file Slack declares no size for is refused by the answer's Content-Length (the
    bytes counted as they arrive are tested in test_slack_files)."""
    h = await started(SlackHarness(tmp_path, db, fake, max_size_mb=1))
    try:
        image = shared(h, "foto.png", "image/png", declared=2 * MB)
        await attendant_shares(h, "foto", image)
        assert h.fake.downloads == []
        undeclared = h.fake.host_file("grande.pdf", b"\x00" * (MB + 300_000), "application/pdf")
        del undeclared["size"]
        await attendant_shares(h, "pdf", undeclared)
        assert h.fake.downloads == [undeclared["id"]]
        assert notices(h) == [
            "⚠️ not sent: the image is 2 MB; media.max_size_mb is 1 MB (foto.png)",
            "⚠️ not sent: the document is 1.3 MB; media.max_size_mb is 1 MB (grande.pdf)",
        ]
        texts = [m.get("text") for m in h.outbound()]
        assert SIGNATURE + "foto" in texts and SIGNATURE + "pdf" in texts
        assert not [m for m in h.outbound() if m["kind"] != "text"]
    finally:
        await h.stop()
