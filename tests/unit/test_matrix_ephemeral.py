"""Matrix ephemeral events (bridge.matrix.ephemeral; docs/presence.md): read by type
and bounds at the edge, and turned into the core's ThreadRead / ThreadTyping: the
bot's and ghosts' ignored, unthreaded receipts placed by the thread index, typing
attributed to the thread of the typist's latest receipt."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.core.frontend import (
    AttendantPost,
    ChatAddress,
    Reply,
    ThreadEvent,
    ThreadRead,
    ThreadTyping,
    UnhandledEvent,
)
from bridge.matrix.ephemeral import (
    EPHEMERAL_LIMIT,
    TYPING_THREAD_SECONDS,
    MatrixEphemeral,
    ReadReceipt,
    Typing,
    ephemeral_of,
    parse,
    with_id,
)
from bridge.matrix.fields import MalformedEvent

ROOM = "!ctl:localhost"
BOB = "@bob:localhost"
GHOST = "@whatsapp_5511987654321:localhost"
BOT = "@whatsappbot:localhost"


def receipt(content: Any, room: Any = ROOM) -> dict[str, Any]:
    return {"type": "m.receipt", "room_id": room, "content": content}


def typing(users: Any, room: Any = ROOM) -> dict[str, Any]:
    return {"type": "m.typing", "room_id": room, "content": {"user_ids": users}}


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (
            receipt({"$e": {"m.read": {BOB: {"ts": 1, "thread_id": "$root"}}}}),
            [ReadReceipt(ROOM, BOB, "$e", "$root")],
        ),
        (
            receipt({"$e": {"m.read": {BOB: {"ts": 1, "thread_id": "main"}}}}),
            [ReadReceipt(ROOM, BOB, "$e", None)],
        ),
        (receipt({"$e": {"m.read": {BOB: {"ts": 1}}}}), [ReadReceipt(ROOM, BOB, "$e", None)]),
        (receipt({"$e": {"m.read.private": {BOB: {"ts": 1}}}}), []),
        (
            receipt({"$a": {"m.read": {BOB: {}}}, "$b": {"m.read": {GHOST: {}}}}),
            [ReadReceipt(ROOM, BOB, "$a", None), ReadReceipt(ROOM, GHOST, "$b", None)],
        ),
        (typing([BOB, GHOST]), Typing(ROOM, frozenset({BOB, GHOST}))),
        (typing([]), Typing(ROOM, frozenset())),
        ({"type": "m.presence", "content": {"presence": "online"}}, None),
        ({}, None),
    ],
)
def test_ephemeral_events_are_read_by_type(raw: dict[str, Any], parsed: object) -> None:
    assert parse(raw) == parsed


@pytest.mark.parametrize(
    "raw",
    [
        receipt([]),
        receipt({"$e": []}),
        receipt({"$e": {"m.read": "bob"}}),
        receipt({"$e": {"m.read": {BOB: {"thread_id": 5}}}}),
        receipt({"$e": {"m.read": {BOB: {}}}}, room=None),
        receipt({"$e": {"m.read": {BOB: {}}}}, room=["!r"]),
        receipt({f"$e{n}": {"m.read": {BOB: {}}} for n in range(101)}),
        receipt({"$e": {"m.read": {f"@u{n}:hs": {} for n in range(101)}}}),
        typing("bob"),
        typing([BOB, 5]),
        typing([f"@u{n}:hs" for n in range(101)]),
        {"type": "m.typing", "room_id": ROOM, "content": "typing"},
        {"type": 5},
    ],
)
def test_a_malformed_ephemeral_event_is_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        parse(raw)


def test_the_stable_key_first_and_at_most_the_limit() -> None:
    stable, unstable = [typing([BOB])], [typing([GHOST])]
    both = {"ephemeral": stable, "de.sorunome.msc2409.ephemeral": unstable}
    assert ephemeral_of(both) == stable
    assert ephemeral_of({"de.sorunome.msc2409.ephemeral": unstable}) == unstable
    assert ephemeral_of({"ephemeral": "nothing", "events": []}) == []
    many = [typing([BOB])] * (EPHEMERAL_LIMIT + 5)
    assert len(ephemeral_of({"ephemeral": many})) == EPHEMERAL_LIMIT


class Inbox:
    """Records what reaches the core."""

    def __init__(self) -> None:
        self.events: list[ThreadEvent] = []

    async def attendant_event(self, event: AttendantPost) -> Reply | None:
        raise AssertionError("not for ephemeral events")

    async def command(self, event: ThreadEvent, text: str) -> Reply | None:
        raise AssertionError("not for ephemeral events")

    async def thread_read(self, event: ThreadRead) -> None:
        self.events.append(event)

    async def thread_typing(self, event: ThreadTyping) -> None:
        self.events.append(event)

    async def set_aside(self, event: UnhandledEvent) -> bool:
        raise AssertionError("not for ephemeral events")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def ephemeral(inbox: Inbox, clock: FakeClock) -> MatrixEphemeral:
    threads = {"$in-thread": "$root", "$root": "$root"}
    return MatrixEphemeral(
        inbox=inbox,
        is_ours=lambda user: user in (BOT, GHOST),
        thread_of=threads.get,
        clock=clock,
    )


def seen(inbox: Inbox) -> list[tuple[str, str | None, str, object]]:
    return [
        (
            type(e).__name__,
            e.place.thread_root,
            e.attendant.user_id,
            e.typing if isinstance(e, ThreadTyping) else e.event_id,
        )
        for e in inbox.events
    ]


async def test_receipts_reach_the_core_with_their_thread(
    ephemeral: MatrixEphemeral, inbox: Inbox
) -> None:
    await ephemeral.handle(receipt({"$e": {"m.read": {BOB: {"thread_id": "$root"}}}}))
    await ephemeral.handle(receipt({"$in-thread": {"m.read": {BOB: {}}}}))  # unthreaded
    await ephemeral.handle(receipt({"$elsewhere": {"m.read": {BOB: {}}}}))  # no thread known
    await ephemeral.handle(receipt({"$e": {"m.read": {GHOST: {"thread_id": "$root"}}}}))
    await ephemeral.handle(receipt({"$e": {"m.read": {BOT: {"thread_id": "$root"}}}}))
    assert seen(inbox) == [
        ("ThreadRead", "$root", BOB, "$e"),
        ("ThreadRead", "$root", BOB, "$in-thread"),
    ]
    assert inbox.events[0].place == ChatAddress(ROOM, "$root")


async def test_typing_counts_in_the_thread_of_the_typists_latest_receipt(
    ephemeral: MatrixEphemeral, inbox: Inbox, clock: FakeClock
) -> None:
    await ephemeral.handle(typing([BOB]))  # no receipt yet: no thread to show it in
    await ephemeral.handle(typing([]))
    assert seen(inbox) == []

    await ephemeral.handle(receipt({"$e": {"m.read": {BOB: {"thread_id": "$root"}}}}))
    inbox.events.clear()
    await ephemeral.handle(typing([BOB, GHOST]))
    await ephemeral.handle(typing([BOB, GHOST]))  # no change: nothing
    await ephemeral.handle(typing([GHOST]))
    assert seen(inbox) == [
        ("ThreadTyping", "$root", BOB, True),
        ("ThreadTyping", "$root", BOB, False),
    ]

    inbox.events.clear()
    await clock.advance(TYPING_THREAD_SECONDS + 1)  # the receipt is too old now
    await ephemeral.handle(typing([BOB]))
    assert seen(inbox) == []


async def test_a_malformed_event_reaches_nobody(ephemeral: MatrixEphemeral, inbox: Inbox) -> None:
    with pytest.raises(MalformedEvent):
        await ephemeral.handle(typing("bob"))
    assert inbox.events == []


def test_each_ephemeral_event_gets_an_id_of_its_own_for_the_quarantine() -> None:
    one, other = with_id(typing("bob")), with_id(typing("eve"))
    assert one["event_id"].startswith("ephemeral:")
    assert one["event_id"] != other["event_id"]
    assert with_id(typing("bob")) == one
    assert with_id({**typing([]), "event_id": "$x"})["event_id"] == "$x"
