"""``!transcript`` on the whole bridge with the Slack frontend: the file arrives
through files v2 (getUploadURLExternal, the upload, completeUploadExternal) in the
ticket's thread, from the bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.db.database import Database
from tests.fakes.slack import SlackFake
from tests.harness.slack import BOB, CUSTOMER, SALES, SlackHarness, until


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


@pytest.fixture
async def bridge(tmp_path: Path, db: Database, fake: SlackFake) -> AsyncIterator[SlackHarness]:
    harness = SlackHarness(tmp_path, db, fake)
    await harness.start()
    yield harness
    await harness.stop()


async def test_transcript_is_uploaded_into_the_thread(bridge: SlackHarness) -> None:
    await bridge.customer(text="Oi, preciso de ajuda")
    root = bridge.thread_root()
    await bridge.event(bridge.fake.user_message(SALES, BOB, "Claro!", thread_ts=root))
    await bridge.event(bridge.fake.user_message(SALES, BOB, "!transcript", thread_ts=root))
    await until(
        lambda: any(f.name == "ticket-1.txt" for f in bridge.fake.files.values()),
        what="the transcript uploaded",
    )
    await bridge.settle()
    [file] = [f for f in bridge.fake.files.values() if f.name == "ticket-1.txt"]
    assert (file.channel, file.thread_ts, file.completed) == (SALES, root, True)
    lines = file.data.decode().split("\n")
    assert lines[:3] == [f"Ticket #1 · Maria ({CUSTOMER}) · acme/sales", "Times in UTC", ""]
    authors_and_texts = [line.split("] ", 1)[1] for line in lines[3:-1]]
    assert authors_and_texts == [
        "Maria: Oi, preciso de ajuda",
        "zapbridge: Olá! Um atendente já vai falar com você.",
        "Bob Silva: Claro!",
    ]
    [complete] = [
        c
        for c in bridge.fake.calls_of("files.completeUploadExternal")
        if c.args.get("thread_ts") == root
    ]
    assert complete.args["channel_id"] == SALES
    assert any(
        "The transcript of ticket #1 is on its way: ticket-1.txt." in m.get("text", "")
        for m in bridge.replies()
    )
