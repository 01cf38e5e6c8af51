"""Quick replies (``!r``, ``!replies``) through the whole core, on both database
engines: a saved reply goes exactly as a typed one (stored, signed, mirrored, the
first response), with its placeholders filled and its file attached."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import AuthorKind, ChatAddress, Reply
from bridge.db.database import Database
from bridge.model import Media, MediaKind, Text
from tests.fakes.frontend import FakeFrontend
from tests.harness.cloud_bridge import CloudHarness
from tests.harness.core import QUICK_REPLY_FILE, CoreHarness

BOB = "@bob:localhost"
HELLO = "Olá Maria, aqui é Bob (ticket #1)."
DAY = 24 * 60 * 60


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix"), FakeFrontend("slack")])
    await harness.start()
    yield harness
    await harness.stop()


def thread_of(fe: FakeFrontend, ticket_id: int = 1) -> ChatAddress:
    call = next(c for c in fe.of("thread") if c.args["card"].ticket_id == ticket_id)
    assert call.place is not None
    return call.place


def attendant_posts(fe: FakeFrontend) -> list:  # type: ignore[type-arg]
    root = thread_of(fe).thread_root
    assert root is not None
    return [p for p in fe.posts_in(root) if p.args["author"].kind is AuthorKind.ATTENDANT]


async def test_a_quick_reply_goes_as_a_typed_reply_with_its_placeholders_filled(
    core: CoreHarness,
) -> None:
    matrix, slack = core.frontends["matrix"], core.frontends["slack"]
    await core.customer(text="Oi")
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!r hello", name="Bob")
    await core.settle()
    assert reply is None
    assert core.outbound()[-1]["text"] == f"*Bob:*\n{HELLO}"  # signed like a typed reply
    for fe in (matrix, slack):  # the sender's thread shows what was sent, too
        [post] = attendant_posts(fe)
        assert post.args["content"] == Text(HELLO)
        assert post.args["author"].name == "Bob"
    rows = await core.bridge.repos.messages.list_by_ticket(1)
    [row] = [r for r in rows if r.sender == BOB]
    assert (row.direction, row.content["body"]) == ("out", HELLO)
    ticket = await core.bridge.repos.tickets.get(1)
    assert ticket is not None and ticket.first_response_at is not None
    assert matrix.cards[thread_of(matrix).thread_root].status == "open"  # type: ignore[index]


async def test_a_quick_reply_sends_its_file_with_the_text_as_caption(core: CoreHarness) -> None:
    matrix, slack = core.frontends["matrix"], core.frontends["slack"]
    await core.customer(text="Quanto custa?")
    _, reply = await slack.attendant(thread_of(slack), "U0BOB", "!r PRICES", name="Bob")
    await core.settle()
    assert reply is None
    sent = core.outbound()[-1]
    assert sent["kind"] == "document"
    assert sent["media"]["filename"] == "prices.pdf"
    assert sent["media"]["caption"] == "Nossa tabela, Maria."
    assert sent["media"]["sha256"] == hashlib.sha256(QUICK_REPLY_FILE).hexdigest()
    [post] = attendant_posts(matrix)
    media = post.args["content"]
    assert isinstance(media, Media) and media.media_kind is MediaKind.DOCUMENT
    assert (media.filename, media.caption) == ("prices.pdf", "Nossa tabela, Maria.")


async def test_a_file_gone_since_the_start_is_told_and_nothing_is_sent(
    core: CoreHarness, tmp_path: Path
) -> None:
    matrix = core.frontends["matrix"]
    await core.customer(text="Oi")
    sent_before = len(core.outbound())
    (tmp_path / "replies" / "prices.pdf").unlink()
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!r prices", name="Bob")
    await core.settle()
    missing = tmp_path / "replies" / "prices.pdf"
    assert reply == Reply(
        f"Could not run !r: cannot read the quick reply's file {missing}: "
        "No such file or directory",
        ephemeral=True,
    )
    assert len(core.outbound()) == sent_before
    assert attendant_posts(matrix) == []


async def test_an_unknown_shortcut_suggests_the_close_one_and_sends_nothing(
    core: CoreHarness,
) -> None:
    matrix = core.frontends["matrix"]
    await core.customer(text="Oi")
    sent_before = len(core.outbound())
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!r helo", name="Bob")
    await core.settle()
    assert reply == Reply(
        "No quick reply named helo. Did you mean !r hello? Type !replies for the list.",
        ephemeral=True,
    )
    assert len(core.outbound()) == sent_before
    assert attendant_posts(matrix) == []


async def test_replies_lists_the_shortcuts(core: CoreHarness) -> None:
    matrix = core.frontends["matrix"]
    await core.customer(text="Oi")
    _, reply = await matrix.attendant(thread_of(matrix), BOB, "!replies", name="Bob")
    assert reply == Reply(
        "*hello*: Olá {name}, aqui é {attendant} (ticket #{ticket}).\n"
        "*prices*: Nossa tabela, {name}. (+ prices.pdf)"
    )


async def test_a_quick_reply_on_a_closed_ticket_is_refused_like_a_typed_one(
    core: CoreHarness,
) -> None:
    matrix = core.frontends["matrix"]
    await core.customer(text="Oi")
    place = thread_of(matrix)
    await matrix.attendant(place, BOB, "!close", name="Bob")
    await core.settle()
    sent_before = len(core.outbound())
    _, typed = await matrix.attendant(place, BOB, "Ainda aí?", name="Bob")
    _, quick = await matrix.attendant(place, BOB, "!r hello", name="Bob")
    await core.settle()
    assert quick == typed
    assert quick is not None and quick.text.startswith("Ticket #1 is closed")
    assert len(core.outbound()) == sent_before


async def test_the_same_quick_reply_event_again_is_sent_once(core: CoreHarness) -> None:
    matrix = core.frontends["matrix"]
    await core.customer(text="Oi")
    place = thread_of(matrix)
    await matrix.attendant(place, BOB, "!r hello", name="Bob", event_id="$r1")
    await matrix.attendant(place, BOB, "!r hello", name="Bob", event_id="$r1")  # redelivered
    await core.settle()
    assert [o["text"] for o in core.outbound()].count(f"*Bob:*\n{HELLO}") == 1


@pytest.fixture
async def cloud(tmp_path: Path, db: Database) -> AsyncIterator[CloudHarness]:
    harness = CloudHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


async def test_a_quick_reply_after_the_cloud_window_is_refused_like_a_typed_one(
    cloud: CloudHarness,
) -> None:
    matrix = cloud.frontends["matrix"]
    await cloud.customer(text="Oi")
    await cloud.clock.advance(DAY + 1)
    sent_before = len(cloud.outbound())
    _, typed = await matrix.attendant(thread_of(matrix), BOB, "Ainda aí?", name="Bob")
    _, quick = await matrix.attendant(thread_of(matrix), BOB, "!r hello", name="Bob")
    await cloud.settle()
    assert quick == typed
    assert quick is not None and "24-hour window closed" in quick.text
    assert len(cloud.outbound()) == sent_before
    assert await cloud.bridge.repos.outbox.count_pending() == 0
