"""Attendants' files from Matrix (a real Synapse): kept in the media store, never in
the database, and refused with a notice in the thread when WhatsApp or
media.max_size_mb would not take them, before they are downloaded."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import bridge.matrix.events as matrix_events
from bridge.db import migrate
from bridge.media_limits import SizeLimit
from tests.conftest import ENGINES, open_test_database
from tests.harness.synapse import (
    Homeserver,
    MatrixBridge,
    MatrixUser,
    bob,
    bridge,
    synapse,
    until,
)

__all__ = ["bob", "bridge", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOT = "@whatsappbot:localhost"
MB = 1024 * 1024


@pytest_asyncio.fixture(loop_scope="session", params=ENGINES)
async def bridge_on(
    request: pytest.FixtureRequest, synapse: Homeserver, tmp_path: Path
) -> AsyncIterator[MatrixBridge]:
    """A bridge on the session's Synapse, on each database engine."""
    async with open_test_database(request.param, tmp_path) as db:
        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def small_bridge(synapse: Homeserver, tmp_path: Path) -> AsyncIterator[MatrixBridge]:
    """A bridge with media.max_size_mb: 1 (SQLite)."""
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db, max_size_mb=1)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


async def ticket_thread(harness: MatrixBridge, bob: MatrixUser) -> tuple[str, str]:
    """Maria writes; bob joins the control room. → (room, thread root)."""
    await harness.customer(text="Oi, preciso de ajuda")
    root = await harness.thread_root()
    room = await harness.room("control")
    await bob.join(room)
    return room, root


def in_thread(content: dict[str, Any], root: str) -> dict[str, Any]:
    relates = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    return {**content, "m.relates_to": {**relates, "m.in_reply_to": {"event_id": root}}}


async def notice_in(harness: MatrixBridge, bob: MatrixUser, room: str, root: str) -> str:
    """The body of the bot's "not sent" notice in the thread ``root``."""

    async def found() -> str | None:
        for event in await bob.messages(room):
            relates = event["content"].get("m.relates_to") or {}
            body = event["content"].get("body", "")
            if event["sender"] == BOT and relates.get("event_id") == root and "not sent" in body:
                return str(body)
        return None

    return await until(found, what="the not-sent notice", clock=harness.clock)


async def test_an_attendant_image_reaches_the_customer_whole_from_the_store(
    bridge_on: MatrixBridge, bob: MatrixUser
) -> None:
    harness = bridge_on
    room, root = await ticket_thread(harness, bob)
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(512 * 1024)
    url = await bob.upload(data, "image/png", "foto.png")
    content = {
        "msgtype": "m.image",
        "body": "veja",
        "filename": "foto.png",
        "url": url,
        "info": {"mimetype": "image/png", "size": len(data)},
    }
    await bob.send(room, in_thread(content, root))
    sent = await harness.outbound(lambda m: m.get("kind") == "image")
    digest = hashlib.sha256(data).hexdigest()
    assert (sent["media"]["sha256"], sent["media"]["size"]) == (digest, len(data))

    assert harness.bridge.media.path_of(digest).read_bytes() == data
    rows = await harness.db.fetch("SELECT content FROM messages WHERE kind = 'image'")
    [raw] = [row["content"] for row in rows]
    assert '"b64"' not in raw and len(raw) < 1000
    assert json.loads(raw)["data"] == {"sha256": digest, "size": len(data)}


async def test_a_file_declared_too_big_for_whatsapp_is_refused_before_any_download(
    bridge: MatrixBridge, bob: MatrixUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []
    real = matrix_events.download_within

    async def spy(bot: Any, mxc: str, *, limit: SizeLimit) -> bytes:
        downloads.append(mxc)
        return await real(bot, mxc, limit=limit)

    monkeypatch.setattr(matrix_events, "download_within", spy)
    room, root = await ticket_thread(bridge, bob)
    small = await bob.upload(b"tiny mp4", "video/mp4", "ok.mp4")
    video = {
        "msgtype": "m.video",
        "body": "filme.mp4",
        "url": "mxc://localhost/never-fetched",
        "info": {"mimetype": "video/mp4", "size": 17 * MB},
    }
    await bob.send(room, in_thread(video, root))
    body = await notice_in(bridge, bob, room, root)
    assert body == "⚠️ not sent: the video is 17 MB; WhatsApp takes videos up to 16 MB"
    assert downloads == []

    fine = {**video, "url": small, "info": {"mimetype": "video/mp4", "size": 8}}
    await bob.send(room, in_thread(fine, root))  # the next file goes through
    sent = await bridge.outbound(lambda m: m.get("kind") == "video")
    assert sent["media"]["sha256"] == hashlib.sha256(b"tiny mp4").hexdigest()
    assert downloads == [small]


async def test_a_file_without_a_declared_size_is_refused_from_the_answer_size(
    small_bridge: MatrixBridge, bob: MatrixUser
) -> None:
    harness = small_bridge
    room, root = await ticket_thread(harness, bob)
    url = await bob.upload(os.urandom(MB + MB // 2), "application/zip", "grande.zip")
    document = {"msgtype": "m.file", "body": "grande.zip", "url": url}  # no info.size
    await bob.send(room, in_thread(document, root))
    body = await notice_in(harness, bob, room, root)
    assert body == "⚠️ not sent: the document is 1.5 MB; media.max_size_mb is 1 MB"
    assert [m for m in harness.sim.outbound("acme/sales") if m.get("kind") == "document"] == []
    assert not any(p.is_file() for p in harness.bridge.media.root.rglob("*"))
