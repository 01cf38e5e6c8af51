"""Commands from someone who is not staff of the company (issue 12): on Slack they see
a short refusal where they typed (ephemeral, or the slash command's answer), and
nothing else happens: no login or logout, no ticket change, nothing sent to WhatsApp,
nothing posted for the channel to see. A command typed in a channel the bridge does
not serve is answered that it is not bridged. Each test runs on SQLite and on
PostgreSQL (the ``db`` fixture), against the strict Slack fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.db.database import Database
from tests.fakes.slack import SlackFake
from tests.harness.slack import ADMIN, OPS, SALES, STRANGER, SlackHarness, until

REFUSAL = "Sorry, only ACME Support's admins and attendants can use commands here."
NOT_BRIDGED = "This channel is not bridged to WhatsApp"
RANDOM = "C0RANDOM"  # a channel the bot is in but the bridge does not serve


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


@pytest.fixture
async def bridge(tmp_path: Path, db: Database, fake: SlackFake) -> AsyncIterator[SlackHarness]:
    """Sessions connected, one pending ticket (#1) from Maria."""
    harness = SlackHarness(tmp_path, db, fake)
    fake.add_channel(RANDOM, "random")
    await harness.start()
    await harness.customer(text="Oi")
    yield harness
    await harness.stop()


@pytest.fixture
async def unpaired(tmp_path: Path, db: Database, fake: SlackFake) -> AsyncIterator[SlackHarness]:
    """Sessions never paired (LOGGED_OUT): a !login would start pairing."""
    harness = SlackHarness(tmp_path, db, fake, auto_pair=False)
    await harness.start()
    yield harness
    await harness.stop()


@dataclass(frozen=True)
class State:
    """What a command could change, as seen from outside."""

    statuses: dict[str, str]
    tickets: list[tuple[Any, ...]]
    outbound: int
    bot_posts: int  # chat.postMessage / chat.update / files: what the channel sees
    uploads: int

    @classmethod
    async def of(cls, h: SlackHarness) -> State:
        rows = await h.db.fetch("SELECT id, status, assignee FROM tickets ORDER BY id")
        visible = ("chat.postMessage", "chat.update", "files.completeUploadExternal")
        return cls(
            statuses={k: str(v) for k, v in h.bridge.sessions.statuses().items()},
            tickets=[tuple(row) for row in rows],
            outbound=sum(len(h.outbound(key)) for key in ("acme/sales", "acme/support")),
            bot_posts=sum(len(h.fake.calls_of(method)) for method in visible),
            uploads=len(h.fake.calls_of("files.getUploadURLExternal")),
        )


def ephemerals(h: SlackHarness, user: str = STRANGER) -> list[dict[str, Any]]:
    return [c.args for c in h.fake.calls_of("chat.postEphemeral") if c.args.get("user") == user]


async def settle_a_while(h: SlackHarness) -> None:
    """Fake time for what a command could have started (a login's QR, a farewell)."""
    await h.run_for(5)


# --- !command messages ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["!login", "!logout", "!close 1", "!assign 1 U0EVE", "!stats"])
async def test_a_command_in_the_channel_is_refused_to_the_stranger_only(
    bridge: SlackHarness, text: str
) -> None:
    before = await State.of(bridge)
    await bridge.event(bridge.fake.user_message(SALES, STRANGER, text))
    await settle_a_while(bridge)
    [refusal] = ephemerals(bridge)
    assert refusal["text"] == REFUSAL and refusal["channel"] == SALES
    assert "thread_ts" not in refusal
    assert await State.of(bridge) == before


@pytest.mark.parametrize("text", ["!close", "!accept", "!login", "!note segredo", "!reopen"])
async def test_a_command_in_a_ticket_thread_is_refused_to_the_stranger_only(
    bridge: SlackHarness, text: str
) -> None:
    root = bridge.thread_root()
    before = await State.of(bridge)
    await bridge.event(bridge.fake.user_message(SALES, STRANGER, text, thread_ts=root))
    await settle_a_while(bridge)
    [refusal] = ephemerals(bridge)
    assert (refusal["text"], refusal["thread_ts"]) == (REFUSAL, root)
    assert await State.of(bridge) == before


async def test_a_stranger_cannot_log_a_session_in(unpaired: SlackHarness) -> None:
    h = unpaired
    before = await State.of(h)
    for channel, text in ((SALES, "!login"), (OPS, "!login sales"), (SALES, "!login phone +5511")):
        await h.event(h.fake.user_message(channel, STRANGER, text))
    await settle_a_while(h)
    assert [e["text"] for e in ephemerals(h)] == [REFUSAL] * 3
    assert await State.of(h) == before  # still LOGGED_OUT, no QR code uploaded
    assert before.statuses["acme/sales"] == "LOGGED_OUT"
    # the same command from an admin does start pairing: the checks above can fail
    await h.event(h.fake.user_message(SALES, ADMIN, "!login"))
    await until(lambda: h.fake.calls_of("files.getUploadURLExternal"), what="a QR code")


async def test_a_strangers_command_with_a_file_downloads_nothing(bridge: SlackHarness) -> None:
    file = bridge.fake.host_file("qr.png", b"\x89PNG", "image/png")
    before = await State.of(bridge)
    event = bridge.fake.user_message(
        SALES, STRANGER, "!close", thread_ts=bridge.thread_root(), files=[file]
    )
    await bridge.event(event)
    await settle_a_while(bridge)
    assert [e["text"] for e in ephemerals(bridge)] == [REFUSAL]
    assert bridge.fake.downloads == []
    assert await State.of(bridge) == before


# --- /whatsapp ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["login", "logout", "close 1", "tickets", ""])
async def test_the_slash_command_answers_the_stranger(bridge: SlackHarness, text: str) -> None:
    before = await State.of(bridge)
    envelope = await bridge.fake.send_slash_command(
        "/whatsapp", text, user_id=STRANGER, channel_id=SALES
    )
    answer = (await bridge.fake.wait_ack(envelope))["payload"]
    await settle_a_while(bridge)
    assert answer == {"text": REFUSAL, "response_type": "ephemeral"}
    assert await State.of(bridge) == before


async def test_the_slash_command_over_http_answers_the_stranger(
    tmp_path: Path, db: Database, fake: SlackFake
) -> None:
    h = SlackHarness(tmp_path, db, fake, mode="http")
    await h.start()
    try:
        before = await State.of(h)
        payload = fake.slash_command_payload(
            "/whatsapp", "logout", user_id=STRANGER, channel_id=SALES
        )
        status, body = await h.http("slash_commands", payload)
        await settle_a_while(h)
        assert status == 200
        assert json.loads(body) == {"text": REFUSAL, "response_type": "ephemeral"}
        assert await State.of(h) == before
    finally:
        await h.stop()


# --- the card's buttons -------------------------------------------------------------------


@pytest.mark.parametrize("action", ["ticket_accept", "ticket_close"])
async def test_a_card_button_answers_the_stranger(bridge: SlackHarness, action: str) -> None:
    root = bridge.thread_root()
    before = await State.of(bridge)
    envelope = await bridge.fake.send_block_action(
        action, user_id=STRANGER, channel_id=SALES, message_ts=root
    )
    await bridge.fake.wait_ack(envelope)
    await settle_a_while(bridge)
    [refusal] = ephemerals(bridge)
    assert (refusal["text"], refusal["thread_ts"]) == (REFUSAL, root)
    assert await State.of(bridge) == before


# --- a channel the bridge does not serve ----------------------------------------------------


@pytest.mark.parametrize("user", [STRANGER, ADMIN])
async def test_a_command_where_nothing_is_bridged_is_answered(
    bridge: SlackHarness, user: str
) -> None:
    before = await State.of(bridge)
    await bridge.event(bridge.fake.user_message(RANDOM, user, "!login"))
    envelope = await bridge.fake.send_slash_command(
        "/whatsapp", "login", user_id=user, channel_id=RANDOM
    )
    answer = (await bridge.fake.wait_ack(envelope))["payload"]
    await settle_a_while(bridge)
    [told] = ephemerals(bridge, user)
    assert told["channel"] == RANDOM and told["text"].startswith(NOT_BRIDGED)
    assert answer["text"].startswith(NOT_BRIDGED) and answer["response_type"] == "ephemeral"
    assert await State.of(bridge) == before


async def test_plain_chatter_in_a_channel_the_bridge_does_not_serve_is_not_answered(
    bridge: SlackHarness,
) -> None:
    for text in ("bom dia", "!!!", "! não é comando"):
        await bridge.event(bridge.fake.user_message(RANDOM, STRANGER, text))
    assert ephemerals(bridge) == []


# --- when Slack refuses the ephemeral answer ----------------------------------------------


@pytest.mark.parametrize("error", ["user_not_in_channel", "internal_error"])
async def test_a_refusal_slack_will_not_show_ephemerally_is_posted_naming_the_user(
    bridge: SlackHarness, error: str
) -> None:
    """Slack refuses ephemeral messages to some users (one who left the channel, one
    of another workspace): the refusal then goes to the thread for all to see, naming
    the user, instead of only into the log."""
    root = bridge.thread_root()
    before = await State.of(bridge)
    bridge.fake.script("chat.postEphemeral", error=error)
    await bridge.event(bridge.fake.user_message(SALES, STRANGER, "!close", thread_ts=root))
    await settle_a_while(bridge)
    told = [m for m in bridge.replies() if m["text"].startswith(f"<@{STRANGER}> ")]
    assert [m["text"] for m in told] == [f"<@{STRANGER}> {REFUSAL}"]
    after = await State.of(bridge)
    assert after == State(**{**before.__dict__, "bot_posts": before.bot_posts + 1})
