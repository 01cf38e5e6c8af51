"""Transcripts (``!transcript``, ``tickets.transcript_on_close``) through the whole
core, on both database engines: the file ``ticket-<id>.txt`` posted into the
ticket's threads, built from the stored messages, surviving a restart."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import AuthorKind, ChatAddress, Reply
from bridge.db.database import Database
from bridge.model import Media, MediaKind
from tests.fakes.frontend import Call, FakeFrontend
from tests.harness.core import CUSTOMER, CoreHarness

BOB = "@bob:localhost"
TIME = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "


def harness(tmp_path: Path, db: Database, *, on_close: bool) -> CoreHarness:
    core = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix"), FakeFrontend("slack")])
    tickets = dataclasses.replace(core.config.tickets, transcript_on_close=on_close)
    core.config = dataclasses.replace(core.config, tickets=tickets)
    core.bridge = core._new_bridge()
    return core


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness_ = harness(tmp_path, db, on_close=False)
    await harness_.start()
    yield harness_
    await harness_.stop()


@pytest.fixture
async def closing(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness_ = harness(tmp_path, db, on_close=True)
    await harness_.start()
    yield harness_
    await harness_.stop()


def thread_of(fe: FakeFrontend, ticket_id: int = 1) -> ChatAddress:
    call = next(c for c in fe.of("thread") if c.args["card"].ticket_id == ticket_id)
    assert call.place is not None
    return call.place


def transcripts(fe: FakeFrontend, ticket_id: int = 1) -> list[Call]:
    root = thread_of(fe, ticket_id).thread_root
    assert root is not None
    return [
        p
        for p in fe.posts_in(root)
        if isinstance(p.args["content"], Media)
        and p.args["content"].filename == f"ticket-{ticket_id}.txt"
    ]


def text_of(post: Call) -> str:
    media = post.args["content"]
    assert isinstance(media, Media) and media.data is not None
    assert (media.media_kind, media.mimetype) == (MediaKind.DOCUMENT, "text/plain")
    assert post.args["author"].kind is AuthorKind.BOT
    return media.data.decode()


def assert_entries(text: str, expected: list[str]) -> None:
    """The transcript's header, then its entries: times matched by their shape, the
    indented lines of a message exactly."""
    lines = text.split("\n")
    assert lines[:3] == [f"Ticket #1 · Maria ({CUSTOMER}) · acme/sales", "Times in UTC", ""]
    assert lines[-1] == ""
    entries = lines[3:-1]
    assert len(entries) == len(expected), entries
    for entry, wanted in zip(entries, expected, strict=True):
        if wanted.startswith("    "):
            assert entry == wanted
        else:
            assert re.fullmatch(TIME + re.escape(wanted), entry), entry


async def test_transcript_posts_the_file_into_every_thread(core: CoreHarness) -> None:
    matrix, slack = core.frontends["matrix"], core.frontends["slack"]
    await core.customer(text="Oi, meu pedido\nnão chegou")
    await matrix.attendant(thread_of(matrix), BOB, "Vou verificar.", name="Bob")
    await core.settle()
    _, reply = await slack.attendant(thread_of(slack), "U0BOB", "!transcript", name="Bob")
    await core.settle()
    assert reply == Reply("The transcript of ticket #1 is on its way: ticket-1.txt.")
    for fe in (matrix, slack):
        [post] = transcripts(fe)
        assert_entries(
            text_of(post),
            [
                "Maria: Oi, meu pedido",
                "    não chegou",
                "zapbridge: Olá! Um atendente já vai falar com você.",
                "Bob: Vou verificar.",
            ],
        )


async def test_media_show_by_file_name_and_the_quick_reply_by_its_text(
    core: CoreHarness,
) -> None:
    matrix = core.frontends["matrix"]
    pdf = {"data_b64": "SGVsbG8=", "mimetype": "application/pdf", "filename": "nota.pdf"}
    await core.customer("document", media={**pdf, "caption": "a nota"})
    await matrix.attendant(thread_of(matrix), BOB, "!r hello", name="Bob")
    await core.settle()
    await matrix.attendant(thread_of(matrix), BOB, "!transcript", name="Bob")
    await core.settle()
    [post] = transcripts(matrix)
    assert_entries(
        text_of(post),
        [
            "Maria: [document: nota.pdf] a nota",
            "zapbridge: Olá! Um atendente já vai falar com você.",
            "Bob: Olá Maria, aqui é Bob (ticket #1).",
        ],
    )


async def test_a_close_posts_no_transcript_unless_configured(core: CoreHarness) -> None:
    matrix = core.frontends["matrix"]
    await core.customer(text="Oi")
    await matrix.attendant(thread_of(matrix), BOB, "!close", name="Bob")
    await core.settle()
    assert transcripts(matrix) == []


async def test_transcript_on_close_posts_it_after_the_farewell(closing: CoreHarness) -> None:
    matrix, slack = closing.frontends["matrix"], closing.frontends["slack"]
    await closing.customer(text="Oi")
    await matrix.attendant(thread_of(matrix), BOB, "!close", name="Bob")
    await closing.settle()
    for fe in (matrix, slack):
        [post] = transcripts(fe)
        assert_entries(
            text_of(post),
            [
                "Maria: Oi",
                "zapbridge: Olá! Um atendente já vai falar com você.",
                "zapbridge: Atendimento encerrado. Obrigado!",
            ],
        )
        root = thread_of(fe).thread_root
        assert root is not None
        assert fe.posts_in(root)[-1] is post  # after the farewell


async def test_a_transcript_requested_before_a_restart_is_posted_after_it(
    tmp_path: Path, db: Database
) -> None:
    core = harness(tmp_path, db, on_close=True)
    await core.start()
    matrix, slack = core.frontends["matrix"], core.frontends["slack"]
    await core.customer(text="Oi")
    matrix.fail_next("post", 1000)  # down from the close on: the transcript stays pending
    slack.fail_next("post", 1000)
    await matrix.attendant(thread_of(matrix), BOB, "!close", name="Bob")
    await core.settle()
    assert transcripts(matrix) == transcripts(slack) == []
    await core.stop()

    matrix._failures.clear()
    slack._failures.clear()
    core.bridge = core._new_bridge()
    await core.start()
    await core.clock.advance(10)  # past the backoff the failed attempts scheduled
    await core.settle()
    for fe in (matrix, slack):
        assert len(transcripts(fe)) == 1
    assert await core.bridge.repos.outbox.count_pending() == 0
    await core.stop()
