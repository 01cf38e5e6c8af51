"""Slack posts are idempotent per txn id: a delivery that reached the thread before a
crash (or whose answer was lost) is found there instead of being posted again, and
a normal post costs no extra API call. Against the strict SlackFake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bridge.clock import SystemClock
from bridge.config import SlackConfig
from bridge.core.frontend import Author, AuthorKind, ChatAddress, Posted, TicketCard
from bridge.errors import DeliveryError
from bridge.model import ContactCard, Media, MediaKind, Text
from bridge.slack.frontend import SlackFrontend
from bridge.slack.ledger import EVENT_TYPE
from bridge.slack.ratelimit import ChannelPacer
from tests.fakes.slack import SlackFake

SALES = "C0SALES"
MARIA = Author(AuthorKind.CUSTOMER, "Maria", phone="+5511987654321")
CARD = TicketCard(
    ticket_id=1,
    session_key="acme/sales",
    contact_name="Maria",
    phone="+5511987654321",
    is_group=False,
    status="pending",
    assignee=None,
)


class NoInbox:
    async def attendant_event(self, event: object) -> None:
        return None

    async def command(self, event: object, text: str) -> None:
        return None


MakeFrontend = Callable[[], "AsyncIterator[SlackFrontend]"]


class Frontends:
    """Slack frontends over one fake: each new one is the bridge after a restart."""

    def __init__(self, fake: SlackFake) -> None:
        self.fake = fake
        self.started: list[SlackFrontend] = []

    async def new(self) -> SlackFrontend:
        config = SlackConfig(
            enabled=True,
            mode="http",
            bot_token=self.fake.bot_token,
            signing_secret=self.fake.signing_secret,
            api_url=self.fake.api_url,
        )
        clock = SystemClock()
        pacer = ChannelPacer(clock=clock, rate=1000.0, burst=1000)
        frontend = SlackFrontend(config, clock=clock, pacer=pacer)
        await frontend.start(NoInbox())  # type: ignore[arg-type]
        self.started.append(frontend)
        return frontend

    def count(self, method: str) -> int:
        return len(self.fake.calls_of(method))


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        slack.add_channel(SALES, "sales")
        yield slack


@pytest.fixture
async def frontends(fake: SlackFake) -> AsyncIterator[Frontends]:
    made = Frontends(fake)
    yield made
    for frontend in made.started:
        await frontend.stop()


async def new_thread(frontend: SlackFrontend) -> ChatAddress:
    root = await frontend.create_thread(SALES, CARD, txn_id="zb-thread-1")
    return ChatAddress(SALES, root)


async def post_text(frontend: SlackFrontend, place: ChatAddress, text: str, txn: str) -> Posted:
    return await frontend.post(place, MARIA, Text(text), reply_to=None, txn_id=txn)


def thread_texts(fake: SlackFake, place: ChatAddress) -> list[str]:
    replies = fake.messages(SALES, place.thread_root)[1:]
    return [m["text"] for m in replies]


async def test_posts_carry_the_txn_id_in_message_metadata(
    frontends: Frontends, fake: SlackFake
) -> None:
    frontend = await frontends.new()
    place = await new_thread(frontend)
    await post_text(frontend, place, "oi", "zb-msg-7")
    [post] = [c.args for c in fake.calls_of("chat.postMessage") if c.args.get("text") == "oi"]
    assert post["metadata"] == {
        "event_type": EVENT_TYPE,
        "event_payload": {"txn_id": "zb-msg-7", "part": 0},
    }


async def test_normal_posts_make_no_extra_api_call(frontends: Frontends, fake: SlackFake) -> None:
    frontend = await frontends.new()
    place = await new_thread(frontend)
    before = len(fake.calls)
    for n in range(3):
        await post_text(frontend, place, f"m{n}", f"zb-msg-{n}")
    assert [c.method for c in fake.calls[before:]] == ["chat.postMessage"] * 3
    assert thread_texts(fake, place) == ["m0", "m1", "m2"]


async def test_a_post_that_reached_the_thread_before_a_restart_is_not_posted_again(
    frontends: Frontends, fake: SlackFake
) -> None:
    first = await frontends.new()
    place = await new_thread(first)
    posted = await post_text(first, place, "oi", "zb-msg-7")  # ... then kill -9

    restarted = await frontends.new()
    posts = frontends.count("chat.postMessage")
    again = await post_text(restarted, place, "oi", "zb-msg-7")  # the resumed row

    assert again == posted
    assert frontends.count("chat.postMessage") == posts
    assert thread_texts(fake, place) == ["oi"]
    # the thread was read once; later posts into it cost nothing more
    reads = frontends.count("conversations.replies")
    assert reads == 1
    await post_text(restarted, place, "tudo bem?", "zb-msg-8")
    assert frontends.count("conversations.replies") == reads
    assert thread_texts(fake, place) == ["oi", "tudo bem?"]


async def test_a_new_post_after_a_restart_reads_the_thread_once_then_posts(
    frontends: Frontends, fake: SlackFake
) -> None:
    first = await frontends.new()
    place = await new_thread(first)
    await post_text(first, place, "oi", "zb-msg-7")

    restarted = await frontends.new()
    await post_text(restarted, place, "outra", "zb-msg-8")
    await post_text(restarted, place, "mais uma", "zb-msg-9")
    assert frontends.count("conversations.replies") == 1
    assert thread_texts(fake, place) == ["oi", "outra", "mais uma"]


async def test_a_lost_answer_is_checked_before_the_retry_posts(
    frontends: Frontends, fake: SlackFake
) -> None:
    frontend = await frontends.new()
    place = await new_thread(frontend)
    fake.script("chat.postMessage", error="internal_error", status=503, applied=True)
    with pytest.raises(DeliveryError):
        await post_text(frontend, place, "oi", "zb-msg-7")
    assert thread_texts(fake, place) == ["oi"]  # Slack posted it all the same

    await post_text(frontend, place, "oi", "zb-msg-7")  # the outbox retries
    assert thread_texts(fake, place) == ["oi"]
    assert frontends.count("conversations.replies") == 1


async def test_a_refused_post_is_retried_without_reading_the_thread(
    frontends: Frontends, fake: SlackFake
) -> None:
    frontend = await frontends.new()
    place = await new_thread(frontend)
    fake.script("chat.postMessage", retry_after=0, times=3)  # 429s: Slack did nothing
    with pytest.raises(DeliveryError):
        await post_text(frontend, place, "oi", "zb-msg-7")
    await post_text(frontend, place, "oi", "zb-msg-7")
    assert frontends.count("conversations.replies") == 0
    assert thread_texts(fake, place) == ["oi"]


async def test_metadata_is_read_from_every_page_of_a_long_thread(
    frontends: Frontends, fake: SlackFake
) -> None:
    first = await frontends.new()
    place = await new_thread(first)
    for n in range(250):  # more than one 200-message page
        await post_text(first, place, f"m{n}", f"zb-msg-{n}")

    restarted = await frontends.new()
    await post_text(restarted, place, "m249", "zb-msg-249")
    assert frontends.count("conversations.replies") == 2
    assert len(thread_texts(fake, place)) == 250


async def test_an_upload_that_reached_the_thread_is_not_uploaded_again(
    frontends: Frontends, fake: SlackFake
) -> None:
    image = Media(media_kind=MediaKind.IMAGE, mimetype="image/png", data=b"\x89PNG-1")
    first = await frontends.new()
    place = await new_thread(first)
    posted = await first.post(place, MARIA, image, reply_to=None, txn_id="zb-msg-7")

    restarted = await frontends.new()
    uploads = frontends.count("files.completeUploadExternal")
    again = await restarted.post(place, MARIA, image, reply_to=None, txn_id="zb-msg-7")
    assert again == posted
    assert frontends.count("files.completeUploadExternal") == uploads
    # the next file (another message, so another default name) does go up
    await restarted.post(place, MARIA, image, reply_to=None, txn_id="zb-msg-8")
    shared = [m["files"][0]["name"] for m in fake.messages(SALES, place.thread_root)[1:]]
    assert shared == ["image-7.png", "image-8.png"]


async def test_a_contact_resumed_after_a_restart_posts_only_its_missing_parts(
    frontends: Frontends, fake: SlackFake
) -> None:
    card = ContactCard(display_name="Ana", vcard="BEGIN:VCARD\nFN:Ana\nEND:VCARD")
    first = await frontends.new()
    place = await new_thread(first)
    posted = await first.post(place, MARIA, card, reply_to=None, txn_id="zb-msg-7")
    assert len(posted.event_ids) == 2  # the text, then the .vcf

    restarted = await frontends.new()
    again = await restarted.post(place, MARIA, card, reply_to=None, txn_id="zb-msg-7")
    assert again == posted
    assert len(fake.messages(SALES, place.thread_root)) == 3  # root, text, file


async def test_a_notice_in_a_thread_is_idempotent_too(
    frontends: Frontends, fake: SlackFake
) -> None:
    first = await frontends.new()
    place = await new_thread(first)
    ts = await first.notice(place, "Ticket fechado", txn_id="zb-notice-3")
    restarted = await frontends.new()
    assert await restarted.notice(place, "Ticket fechado", txn_id="zb-notice-3") == ts
    assert thread_texts(fake, place) == ["Ticket fechado"]


async def test_a_card_posted_before_a_restart_is_not_posted_again(
    frontends: Frontends, fake: SlackFake
) -> None:
    first = await frontends.new()
    root = await first.create_thread(SALES, CARD, txn_id="zb-thread-1")  # ... then kill -9

    restarted = await frontends.new()
    posts, reads = frontends.count("chat.postMessage"), frontends.count("conversations.history")
    assert await restarted.create_thread(SALES, CARD, txn_id="zb-thread-1") == root
    assert frontends.count("chat.postMessage") == posts
    assert [m["ts"] for m in fake.messages(SALES) if m.get("thread_ts") in (None, m["ts"])] == [
        root
    ]
    # the channel was read once; the next card is posted at once
    second = await restarted.create_thread(SALES, CARD, txn_id="zb-thread-2")
    assert second != root
    assert frontends.count("conversations.history") == reads + 1
    assert frontends.count("chat.postMessage") == posts + 1


async def test_a_channel_notice_after_a_lost_answer_is_checked_before_the_retry(
    frontends: Frontends, fake: SlackFake
) -> None:
    frontend = await frontends.new()
    await frontend.notice(
        ChatAddress(SALES), "primeiro", txn_id="zb-ops-1"
    )  # the channel is trusted
    fake.script("chat.postMessage", status=503, applied=True)  # posted, answer lost
    with pytest.raises(DeliveryError):
        await frontend.notice(ChatAddress(SALES), "CONNECTED", txn_id="zb-ops-2")
    ts = await frontend.notice(ChatAddress(SALES), "CONNECTED", txn_id="zb-ops-2")  # the retry
    texts = [m["text"] for m in fake.messages(SALES)]
    assert texts.count("CONNECTED") == 1
    assert ts == next(m["ts"] for m in fake.messages(SALES) if m["text"] == "CONNECTED")


async def test_web_api_calls_share_one_connection(frontends: Frontends, fake: SlackFake) -> None:
    """slack_sdk opens a connection per call unless given a session (TLS each time)."""
    frontend = await frontends.new()
    place = await new_thread(frontend)
    for n in range(3):
        await post_text(frontend, place, f"m{n}", f"zb-msg-{n}")
    posts = fake.calls_of("chat.postMessage")
    assert len(posts) == 4 and len({call.peer for call in posts}) == 1
