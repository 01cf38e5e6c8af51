"""Slack input the bridge must survive (issue 11): replayed clicks and slash commands
run once; malformed but signed payloads are refused with a 4xx (acknowledged in
Socket Mode) and persist nothing; a database failure leaves the request for Slack
to retry; a shared file on a foreign host never receives the bot token. Each test
runs on SQLite and on PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.db.database import Database
from bridge.errors import DatabaseError
from tests.fakes.slack import SlackFake
from tests.harness.slack import (
    ADMIN,
    BOB,
    SALES,
    RecordingHost,
    SlackHarness,
    until,
)

FAREWELL = "Atendimento encerrado. Obrigado!"
MARKER = "MARKER-7f3a"  # written into payloads: never to appear in a log line


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


@pytest.fixture
async def http_bridge(tmp_path: Path, db: Database, fake: SlackFake) -> AsyncIterator[SlackHarness]:
    harness = SlackHarness(tmp_path, db, fake, mode="http")
    await harness.start()
    yield harness
    await harness.stop()


@pytest.fixture
async def socket_bridge(
    tmp_path: Path, db: Database, fake: SlackFake
) -> AsyncIterator[SlackHarness]:
    harness = SlackHarness(tmp_path, db, fake)
    await harness.start()
    yield harness
    await harness.stop()


def farewells(h: SlackHarness) -> int:
    return [m.get("text") for m in h.outbound()].count(FAREWELL)


async def ticket_status(h: SlackHarness, ticket_id: int = 1) -> str:
    return str(await h.db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket_id))


def ephemeral_texts(h: SlackHarness, user: str = BOB) -> list[str]:
    calls = h.fake.calls_of("chat.postEphemeral")
    return [c.args["text"] for c in calls if c.args.get("user") == user]


# --- replays ---------------------------------------------------------------------------


async def test_a_replayed_close_click_closes_once_even_after_a_reopen(
    http_bridge: SlackHarness,
) -> None:
    h = http_bridge
    await h.customer(text="Oi")
    click = h.fake.block_action_payload(
        "ticket_close", user_id=BOB, channel_id=SALES, message_ts=h.thread_root()
    )
    body, headers = h.fake.http_request("interactive", click)  # captured once
    assert (await h.post(body, headers))[0] == 200
    await h.settle()
    assert await ticket_status(h) == "closed" and farewells(h) == 1

    assert (await h.post(body, headers))[0] == 200  # replayed at once
    await h.settle()
    assert farewells(h) == 1
    await h.customer(text="voltei")  # within the reopen window: the same ticket reopens
    assert await ticket_status(h) != "closed"

    assert (await h.post(body, headers))[0] == 200  # replayed after the reopen
    await h.settle()
    assert await ticket_status(h) != "closed"
    assert farewells(h) == 1
    assert sum("Already done" in t for t in ephemeral_texts(h)) == 2


async def test_a_redelivered_click_over_socket_mode_runs_once(socket_bridge: SlackHarness) -> None:
    h = socket_bridge
    await h.customer(text="Oi")
    click = h.fake.block_action_payload(
        "ticket_close", user_id=BOB, channel_id=SALES, message_ts=h.thread_root()
    )
    for attempt in range(2):
        envelope = await h.fake.send_event(
            copy.deepcopy(click), envelope_type="interactive", retry_attempt=attempt
        )
        await h.fake.wait_ack(envelope)
        await h.settle()
        if attempt == 0:
            assert await ticket_status(h) == "closed"
            await h.customer(text="voltei")  # reopened before the redelivery
    assert farewells(h) == 1 and await ticket_status(h) != "closed"
    assert not h.fake.unacked


async def test_two_clicks_are_two_events(socket_bridge: SlackHarness) -> None:
    """Dedupe is per click (action_ts, user, card), not per button: a second, real
    click is not mistaken for a replay."""
    h = socket_bridge
    await h.customer(text="Oi")
    root = h.thread_root()
    for _ in range(2):
        envelope = await h.fake.send_block_action(
            "ticket_accept", user_id=BOB, channel_id=SALES, message_ts=root
        )
        await h.fake.wait_ack(envelope)
        await h.settle()
    texts = ephemeral_texts(h)
    assert not any("Already done" in t for t in texts)
    assert any("already" in t for t in texts)  # the command itself refused the second


async def test_a_replayed_slash_command_runs_once(http_bridge: SlackHarness) -> None:
    h = http_bridge
    logout = h.fake.slash_command_payload("/whatsapp", "logout", user_id=ADMIN, channel_id=SALES)
    body, headers = h.fake.http_request("slash_commands", logout)
    status, answer = await h.post(body, headers)
    assert status == 200 and "Already done" not in answer
    await until(lambda: str(h.bridge.sessions.status("acme/sales")) == "LOGGED_OUT", what="out")

    status, _ = await h.http(
        "slash_commands",
        h.fake.slash_command_payload("/whatsapp", "login", user_id=ADMIN, channel_id=SALES),
    )
    assert status == 200
    await until(lambda: str(h.bridge.sessions.status("acme/sales")) == "CONNECTED", what="in")

    status, answer = await h.post(body, headers)  # the captured logout, replayed
    assert status == 200
    assert json.loads(answer)["text"].startswith("Already done")
    await h.settle()
    assert str(h.bridge.sessions.status("acme/sales")) == "CONNECTED"


async def test_a_slash_command_redelivered_over_socket_mode_runs_once(
    socket_bridge: SlackHarness,
) -> None:
    h = socket_bridge
    await h.customer(text="Oi")
    payload = h.fake.slash_command_payload("/whatsapp", "tickets", user_id=BOB, channel_id=SALES)
    answers = []
    for _ in range(2):
        envelope = await h.fake.send_event(dict(payload), envelope_type="slash_commands")
        answers.append((await h.fake.wait_ack(envelope))["payload"]["text"])
    assert "#1 pending Maria" in answers[0]
    assert answers[1].startswith("Already done")


# --- a failure to persist: Slack retries, and the retry runs ------------------------------


async def test_a_database_failure_leaves_the_request_for_slacks_retry(
    http_bridge: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = http_bridge
    await h.customer(text="Oi")
    event = h.fake.user_message(SALES, BOB, "depois da falha", thread_ts=h.thread_root())
    body, headers = h.fake.http_request("events_api", h.fake.event_payload(event))
    seen_before = h.bridge.repos.events.seen_before
    failures = iter([DatabaseError("database is down")])

    async def failing(*args: Any, **kwargs: Any) -> bool:
        for failure in failures:
            raise failure
        return await seen_before(*args, **kwargs)

    monkeypatch.setattr(h.bridge.repos.events, "seen_before", failing)
    assert (await h.post(body, headers))[0] == 503
    await h.settle()
    assert not [m for m in h.outbound() if "depois da falha" in (m.get("text") or "")]
    assert (await h.post(body, headers))[0] == 200  # Slack's retry
    assert (await h.post(body, headers))[0] == 200  # and one more: deduped
    await h.settle()
    assert [m.get("text") for m in h.outbound()].count("*Bob Silva:*\ndepois da falha") == 1


async def test_a_command_that_fails_to_persist_runs_on_the_retry(
    socket_bridge: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = socket_bridge
    await h.customer(text="Oi")
    registry = h.bridge.commands
    handle = registry.handle
    failures = iter([DatabaseError("database is down")])

    async def failing(*args: Any, **kwargs: Any) -> Any:
        for failure in failures:
            raise failure
        return await handle(*args, **kwargs)

    monkeypatch.setattr(registry, "handle", failing)
    click = h.fake.block_action_payload(
        "ticket_close", user_id=BOB, channel_id=SALES, message_ts=h.thread_root()
    )
    first = await h.fake.send_event(copy.deepcopy(click), envelope_type="interactive")
    with pytest.raises(TimeoutError):
        await h.fake.wait_ack(first, timeout=1)  # not acknowledged: Slack delivers it again
    second = await h.fake.send_event(click, envelope_type="interactive", retry_attempt=1)
    await h.fake.wait_ack(second)
    await h.settle()
    assert await ticket_status(h) == "closed" and farewells(h) == 1
    assert not any("Already done" in t for t in ephemeral_texts(h))


# --- malformed but signed payloads ------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _parent(payload: dict[str, Any], path: str) -> tuple[Any, str | int]:
    """The container of the field at ``path`` (``actions.0.action_ts``) and its key."""
    *parents, last = path.split(".")
    target: Any = payload
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    return target, int(last) if isinstance(target, list) else last


def _set(path: str, value: Any) -> Mutation:
    def mutate(payload: dict[str, Any]) -> None:
        target, key = _parent(payload, path)
        target[key] = value

    return mutate


def _drop(*paths: str) -> Mutation:
    def mutate(payload: dict[str, Any]) -> None:
        for path in paths:
            target, key = _parent(payload, path)
            del target[key]

    return mutate


MESSAGE_MUTATIONS = {
    "event_id int": _set("event_id", 5),
    "event_id missing": _drop("event_id"),
    "event list": _set("event", []),
    "event null": _set("event", None),
    "event.type int": _set("event.type", 1),
    "channel int": _set("event.channel", 42),
    "channel object": _set("event.channel", {"id": 5}),
    "channel list": _set("event.channel", ["C0SALES"]),
    "user int": _set("event.user", 7),
    "user object": _set("event.user", {"id": "U0BOB"}),
    "user bool": _set("event.user", True),
    "ts text": _set("event.ts", "yesterday"),
    "ts number": _set("event.ts", 1.5),
    "thread_ts object": _set("event.thread_ts", {}),
    "text object": _set("event.text", {"t": MARKER}),
    "text list": _set("event.text", [MARKER]),
    "text with NUL": _set("event.text", f"{MARKER}\x00"),
    "text too long": _set("event.text", MARKER * 5000),
    "subtype int": _set("event.subtype", 3),
    "bot_id list": _set("event.bot_id", ["B0"]),
    "files object": _set("event.files", {"0": {}}),
    "files of numbers": _set("event.files", [1, 2]),
    "file url int": _set("event.files", [{"url_private": 5, "name": MARKER}]),
    "file size text": _set("event.files", [{"url_private": "x", "size": "big"}]),
    "file name object": _set("event.files", [{"url_private": "x", "name": {}}]),
    "authorizations text": _set("authorizations", MARKER),
    "authorizations of lists": _set("authorizations", [[MARKER]]),
    "team list": _set("team", [MARKER]),
    "response_urls object": _set("response_urls", {"0": {}}),
}

CLICK_MUTATIONS = {
    "actions empty": _set("actions", []),
    "actions object": _set("actions", {"0": {}}),
    "action not object": _set("actions", [MARKER]),
    "action_id int": _set("actions.0.action_id", 5),
    "action_ts text": _set("actions.0.action_ts", MARKER),
    "action_ts missing": _drop("actions.0.action_ts"),
    "user text": _set("user", "U0BOB"),
    "user.id int": _set("user.id", 5),
    "channel int": _set("channel", 5),
    "channel.id list": _set("channel.id", ["C0SALES"]),
    "container list": _set("container", [MARKER]),
    "message.ts object": _set("message.ts", {}),
    "no place at all": _drop("channel", "container", "message"),
}


async def _count_rows(h: SlackHarness) -> tuple[int, ...]:
    tables = ("messages", "outbox", "processed_events", "tickets")
    return tuple([int(await h.db.fetchval(f"SELECT COUNT(*) FROM {t}")) for t in tables])


def _assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback at ERROR, and no log line of the bridge carries the payload."""
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    for record in caplog.records:
        if record.name.startswith("bridge"):
            line = record.getMessage()
            assert MARKER not in line and "\n" not in line, line


@pytest.mark.parametrize("name", list(MESSAGE_MUTATIONS) + [f"click {n}" for n in CLICK_MUTATIONS])
async def test_malformed_signed_payloads_get_a_4xx_and_persist_nothing(
    http_bridge: SlackHarness, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    h = http_bridge
    await h.customer(text="Oi")
    root = h.thread_root()
    if name.startswith("click "):
        payload = h.fake.block_action_payload(
            "ticket_close", user_id=BOB, channel_id=SALES, message_ts=root
        )
        CLICK_MUTATIONS[name.removeprefix("click ")](payload)
        kind = "interactive"
    else:
        event = h.fake.user_message(SALES, BOB, f"ok {MARKER}", thread_ts=root)
        payload = h.fake.event_payload(event)
        MESSAGE_MUTATIONS[name](payload)
        kind = "events_api"
    before = await _count_rows(h)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status, answer = await h.http(kind, payload)
    assert 400 <= status < 500, (status, answer)
    assert MARKER not in answer and len(answer) < 300
    assert await _count_rows(h) == before
    assert await ticket_status(h) == "pending"
    _assert_quiet(caplog)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "reason"),
    [
        ("application/x-www-form-urlencoded", b"payload=%7Bnot+json", 400, "not valid JSON"),
        ("application/x-www-form-urlencoded", b"payload=%5B1%5D", 400, "expected an object"),
        ("application/x-www-form-urlencoded", b"payload=%FF", 400, "not UTF-8"),
        ("application/x-www-form-urlencoded", b"&".join([b"a=1"] * 100), 400, "64 fields"),
        ("application/json", b"a=b&c=d", 400, "not valid JSON"),
        ("application/json", b"[" * 5000 + b"]" * 5000, 400, "nested deeper"),
        ("application/json", b'{"type": "x", "t": "\\ud800"}', 400, "lone surrogate"),
        ("application/json", b'{"a": NaN}', 400, "not valid JSON"),
        ("application/json", b"\xff\xfe", 400, "not UTF-8"),
        ("application/json", b'"just a string"', 400, "expected an object"),
        ("text/plain", b'{"type": "event_callback"}', 415, "expected application/json"),
        ("multipart/form-data; boundary=x", b"--x--", 415, "expected application/json"),
        ("application/x-www-form-urlencoded", b"command=%2Fother&text=x", 404, "does not handle"),
    ],
)
async def test_bodies_that_are_not_slack_payloads(
    http_bridge: SlackHarness,
    caplog: pytest.LogCaptureFixture,
    content_type: str,
    body: bytes,
    status: int,
    reason: str,
) -> None:
    h = http_bridge
    headers = {**h.fake.signed_headers(body), "Content-Type": content_type}
    with caplog.at_level(logging.INFO):
        answer = await h.post(body, headers)
    assert answer[0] == status and reason in json.loads(answer[1])["error"], answer
    _assert_quiet(caplog)
    warnings = [r for r in caplog.records if r.name.startswith("bridge") and r.levelno >= 30]
    assert len(warnings) <= 1


async def test_a_malformed_envelope_over_socket_mode_is_acked_and_set_aside(
    socket_bridge: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = socket_bridge
    await h.customer(text="Oi")
    event = h.fake.user_message(SALES, BOB, "ok", thread_ts=h.thread_root())
    before = await _count_rows(h)
    with caplog.at_level(logging.INFO):
        for broken in ({**event, "channel": 5}, {**event, "item": [MARKER]}):
            envelope = await h.fake.send_event(broken)
            await h.fake.wait_ack(envelope)  # acknowledged: never delivered again
        click = h.fake.block_action_payload(
            "ticket_close", user_id=BOB, channel_id=SALES, message_ts=h.thread_root()
        )
        click["actions"][0]["action_ts"] = MARKER
        await h.fake.wait_ack(await h.fake.send_event(click, envelope_type="interactive"))
    await h.settle()
    assert not h.fake.unacked and not h.fake.socket_protocol_errors
    assert await _count_rows(h) == before
    _assert_quiet(caplog)
    refusals = [r.getMessage() for r in caplog.records if r.name.startswith("bridge.slack")]
    assert len([line for line in refusals if "refused" in line or "set aside" in line]) == 3


# --- files on a foreign host --------------------------------------------------------------


async def test_a_file_on_a_foreign_host_never_gets_the_token(
    http_bridge: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = http_bridge
    await h.customer(text="Oi")
    async with RecordingHost() as evil:
        good = h.fake.host_file("ok.png", b"\x89PNG good", "image/png")
        bad = {**good, "id": "F0EVIL", "name": "boleto.pdf"}
        bad["url_private"] = bad["url_private_download"] = f"{evil.origin}/files-pri/x/boleto.pdf"
        event = h.fake.user_message(
            SALES, BOB, "segue", thread_ts=h.thread_root(), files=[bad, good]
        )
        with caplog.at_level(logging.INFO):
            status, _ = await h.http("events_api", h.fake.event_payload(event))
        assert status == 200
        assert evil.requests == []
    sent = h.outbound()[-1]
    assert sent["kind"] == "image" and sent["media"]["size"] == len(b"\x89PNG good")
    assert sent["media"]["caption"] == "segue"  # the text rides on the file that was sent
    port = evil.origin.rsplit(":", 1)[1]
    told = [m["text"] for m in h.replies() if "not sent to the customer" in m.get("text", "")]
    assert told == [
        f"⚠️ boleto.pdf was not sent to the customer: it is on 127.0.0.1:{port}, "
        "not one of Slack's file hosts (slack.file_hosts)."
    ]
    assert h.fake.bot_token not in caplog.text


async def test_only_a_refused_file_still_sends_the_text(http_bridge: SlackHarness) -> None:
    h = http_bridge
    await h.customer(text="Oi")
    file = h.fake.host_file("x.bin", b"x", "application/octet-stream")
    file["url_private"] = file["url_private_download"] = "https://evil.example/x.bin"
    event = h.fake.user_message(SALES, BOB, "veja", thread_ts=h.thread_root(), files=[file])
    assert (await h.http("events_api", h.fake.event_payload(event)))[0] == 200
    assert h.outbound()[-1]["text"] == "*Bob Silva:*\nveja"
    assert any("x.bin was not sent" in m.get("text", "") for m in h.replies())
