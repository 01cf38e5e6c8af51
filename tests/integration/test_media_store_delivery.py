"""Media bytes live in the media store, not in ``messages.content``, on both database
engines: what the rows hold, what reaches the customer and the other frontend, rows
written before the store, a file gone missing, the size limits toward WhatsApp and
the clean-up (``bridge.core.media_cleanup``, fake clock)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.core.media_cleanup import MediaCleanup
from bridge.core.operations import Operation, PostMessage, SendBotMessage, encode
from bridge.core.ordering_keys import ticket_key
from bridge.core.outgoing import WHATSAPP
from bridge.db import Repositories
from bridge.db.database import Database
from bridge.db.messages import NewMessage
from bridge.media_store import MediaStore
from bridge.model import Media, MediaKind, StoredBytes, content_to_dict
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CoreHarness, until

IMAGE = b"\x89PNG\r\n\x1a\n" + os.urandom(300 * 1024)


@pytest.fixture
async def mirrored(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix"), FakeFrontend("slack")])
    await harness.start()
    yield harness
    await harness.stop()


async def opened_ticket(core: CoreHarness) -> Any:
    """Maria writes; → the matrix thread of her ticket."""
    await core.customer(text="Oi")
    fe = core.frontends["matrix"]
    return next(c for c in fe.of("thread")).place


async def raw_contents(db: Database, kind: str) -> list[str]:
    """``messages.content`` as the database holds it (text), for one kind."""
    rows = await db.fetch("SELECT content FROM messages WHERE kind = $1 ORDER BY id", kind)
    return [row["content"] for row in rows]


def media_sent(core: CoreHarness) -> list[dict[str, Any]]:
    return [m for m in core.outbound() if "media" in m]


async def test_an_attendant_file_is_kept_in_the_store_and_reaches_everyone_whole(
    mirrored: CoreHarness,
) -> None:
    core = mirrored
    place = await opened_ticket(core)
    media = Media(MediaKind.IMAGE, "image/png", data=IMAGE, filename="a.png", caption="veja")
    _, reply = await core.frontends["matrix"].attendant(place, "@bob:localhost", media, name="Bob")
    await core.settle()
    assert reply is None

    digest = hashlib.sha256(IMAGE).hexdigest()
    [sent] = media_sent(core)
    assert (sent["media"]["sha256"], sent["media"]["size"]) == (digest, len(IMAGE))
    posts = [c.args["content"] for c in core.frontends["slack"].of("post")]
    assert [p.data for p in posts if isinstance(p, Media)] == [IMAGE]

    [raw] = await raw_contents(core.db, "image")
    assert len(raw) < 1000 and '"b64"' not in raw
    assert json.loads(raw)["data"] == {"sha256": digest, "size": len(IMAGE)}
    assert core.bridge.media.path_of(digest).read_bytes() == IMAGE


async def test_a_customer_file_from_the_sim_is_kept_in_the_store_too(mirrored: CoreHarness) -> None:
    core = mirrored
    data = base64.b64encode(IMAGE).decode()
    await core.customer("image", media={"data_b64": data, "mimetype": "image/png"})
    [raw] = await raw_contents(core.db, "image")
    assert '"b64"' not in raw and len(raw) < 1000
    posts = [c.args["content"] for c in core.frontends["slack"].of("post")]
    assert [p.data for p in posts if isinstance(p, Media)] == [IMAGE]


async def enqueue_attendant_message(
    core: CoreHarness, content: Media | dict[str, Any], kind: str
) -> None:
    """Bob's message on ticket #1 stored with ``content`` as given (a dict: as written
    by an older bridge), with its deliveries to WhatsApp and to Slack."""
    repos = core.bridge.repos
    row = await repos.messages.insert_outbound(
        NewMessage(
            ticket_id=1,
            session_id=core.bridge.session_ids["acme/sales"],
            kind=kind,
            sender="@bob:localhost",
            sender_name="Bob",
            content=content if isinstance(content, dict) else content_to_dict(content),
            timestamp=core.clock.now(),
        ),
        now=core.clock.now(),
    )
    operations: tuple[tuple[str, Operation], ...] = (
        (WHATSAPP, SendBotMessage(row.id)),
        ("slack", PostMessage(row.id)),
    )
    for destination, operation in operations:
        await repos.outbox.enqueue(
            destination,
            ordering_key=ticket_key(1, destination),
            payload=encode(operation),
            now=core.clock.now(),
        )
    core.bridge.outbox.wake()


async def test_a_row_written_before_the_store_is_still_delivered(mirrored: CoreHarness) -> None:
    core = mirrored
    await opened_ticket(core)
    old_content = {  # as rows held media before the store: base64 in the row
        "type": "media",
        "media_kind": "document",
        "mimetype": "application/pdf",
        "data": {"b64": base64.b64encode(b"%PDF-1.4 old").decode()},
        "filename": "boleto.pdf",
    }
    await enqueue_attendant_message(core, old_content, "document")
    await core.settle()
    [sent] = media_sent(core)
    assert sent["media"]["sha256"] == hashlib.sha256(b"%PDF-1.4 old").hexdigest()
    assert sent["media"]["filename"] == "boleto.pdf"
    posts = [c.args["content"] for c in core.frontends["slack"].of("post")]
    assert [p.data for p in posts if isinstance(p, Media)] == [b"%PDF-1.4 old"]


async def test_a_file_missing_from_the_store_is_told_in_the_thread(mirrored: CoreHarness) -> None:
    core = mirrored
    await opened_ticket(core)
    lost = StoredBytes(hashlib.sha256(b"%PDF-1.4 lost").hexdigest(), 13)  # a disk replaced …
    media = Media(MediaKind.DOCUMENT, "application/pdf", stored=lost, filename="x.pdf")
    await enqueue_attendant_message(core, media, "document")

    def told() -> list[str]:
        return [
            c.args["text"]
            for c in core.frontends["matrix"].of("notice")
            if "not delivered to the customer" in c.args["text"]
        ]

    [notice] = await until(told, what="the not-delivered notice", clock=core.clock)
    assert "no longer in the media store" in notice
    assert media_sent(core) == []


async def test_a_file_too_big_for_whatsapp_is_refused_and_nothing_is_kept(
    mirrored: CoreHarness,
) -> None:
    core = mirrored
    place = await opened_ticket(core)
    video = Media(MediaKind.VIDEO, "video/mp4", data=b"\x00" * (17 * 1024 * 1024))
    _, reply = await core.frontends["matrix"].attendant(place, "@bob:localhost", video, name="Bob")
    await core.settle()
    assert reply is not None
    assert reply.text == "⚠️ not sent: the video is 17 MB; WhatsApp takes videos up to 16 MB"
    assert await raw_contents(core.db, "video") == []
    assert media_sent(core) == []
    assert not any(p.is_file() for p in core.bridge.media.root.rglob("*"))
    assert [c for c in core.frontends["slack"].of("post") if c.args["content"] == video] == []


async def test_a_restart_past_the_retention_removes_delivered_files(
    tmp_path: Path, db: Database
) -> None:
    core = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await core.start()
    place = await opened_ticket(core)
    media = Media(MediaKind.IMAGE, "image/png", data=IMAGE)
    await core.frontends["matrix"].attendant(place, "@bob:localhost", media, name="Bob")
    await core.settle()
    path = core.bridge.media.path_of(hashlib.sha256(IMAGE).hexdigest())
    assert path.exists() and len(media_sent(core)) == 1
    await core.stop()
    await core.clock.advance(core.config.media.retention_seconds + 60)
    core.bridge = core._new_bridge()
    await core.start()  # the outbox's first pass runs the clean-ups
    await until(lambda: not path.exists(), what="the delivered file removed")
    await core.stop()


# --- the clean-up, on the repositories -------------------------------------------------

RETENTION = 3600.0


async def stored_message(
    repos: Repositories, store: MediaStore, data: bytes, *, status: str | None, op: str = "send"
) -> StoredBytes:
    """A message naming ``data`` in the store, with an outbox row in ``status`` (None:
    no row, an orphan file)."""
    ref = await store.put(data)
    if status is None:
        return ref
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")
    contact = (await repos.contacts.resolve(session.id, phone="+5511987654321")).contact
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id)
    media = Media(MediaKind.IMAGE, "image/png", stored=ref)
    row = await repos.messages.insert_outbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=session.id,
            kind="image",
            sender="@bob:localhost",
            content=content_to_dict(media),
            timestamp=1.0,
        ),
    )
    destination = WHATSAPP if op == "send" else "slack"
    operation = SendBotMessage(row.id) if op == "send" else PostMessage(row.id)
    key = ticket_key(ticket.id, destination)
    box = await repos.outbox.enqueue(destination, ordering_key=key, payload=encode(operation))
    if status == "done":
        await repos.outbox.mark_done(box.id)
    elif status == "dead":
        await repos.outbox.mark_dead(box.id, error="gave up")
    return ref


async def test_the_clean_up_keeps_what_pending_deliveries_need_and_removes_the_rest(
    repos: Repositories, tmp_path: Path
) -> None:
    clock = FakeClock()
    store = MediaStore(tmp_path / "media", clock=clock)
    cleanup = MediaCleanup(store, repos.messages, retention_seconds=RETENTION)
    pending = await stored_message(repos, store, b"pending send", status="pending")
    mirror = await stored_message(repos, store, b"pending mirror", status="pending", op="post")
    done = await stored_message(repos, store, b"delivered", status="done")
    dead = await stored_message(repos, store, b"dead letter", status="dead")
    orphan = await stored_message(repos, store, b"orphan", status=None)

    assert await cleanup.prune(clock.now()) == 0  # nothing is old yet
    await clock.advance(RETENTION + 1)
    fresh = await stored_message(repos, store, b"fresh orphan", status=None)

    assert await cleanup.prune(clock.now()) == 3
    left = {p.name for p in store.root.rglob("*") if p.is_file()}
    assert left == {pending.sha256, mirror.sha256, fresh.sha256}
    assert not {done.sha256, dead.sha256, orphan.sha256} & left

    assert await repos.messages.media_awaiting_delivery() == {pending.sha256, mirror.sha256}
