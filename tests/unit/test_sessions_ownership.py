"""The session manager following the leases (docs/cluster.md#ownership-and-fencing):
``start(only=…)``, ``adopt`` and ``release``, and the fence before each send."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.errors import InvalidInput, NotOwner
from bridge.model import Message as WaMessage
from bridge.model import Party, Text
from bridge.whatsapp.engine import DisconnectedEvent, MessageEvent
from bridge.whatsapp.status import SessionStatus
from tests.unit.test_sessions import KEY, make

OTHER = "acme/support"
S = SessionStatus


async def test_start_only_runs_the_sessions_owned_and_adopt_runs_another() -> None:
    h = make((KEY, OTHER))
    await h.manager.start(only={KEY})
    await h.settle()
    assert h.manager.status(KEY) is S.CONNECTED
    assert [c.key for c in h.engine.calls_of("connect")] == [KEY]
    await h.manager.adopt(OTHER)
    await h.settle()
    assert h.manager.status(OTHER) is S.CONNECTED  # from its stored pairing, no QR
    assert not h.engine.calls_of("login")


async def test_release_disconnects_without_logout_retries_or_events() -> None:
    h = make((KEY,))
    await h.manager.start()
    await h.settle()
    before = len(h.store.saved)
    await h.manager.release(KEY)
    assert h.engine.calls_of("disconnect", KEY) and not h.engine.calls_of("logout")
    assert h.gauge("CONNECTED") is None  # the owner reports it now
    await h.engine.send_event(DisconnectedEvent(KEY, reason="closed", transient=True))
    await h.advance(600)
    assert len(h.engine.calls_of("connect")) == 1  # no reconnect here
    assert len(h.store.saved) == before
    with pytest.raises(InvalidInput, match="runs on another instance"):
        await h.manager.login(KEY)
    with pytest.raises(InvalidInput, match="runs on another instance"):
        await h.manager.logout(KEY)
    customer = Party(phone="+5511988887777")
    await h.engine.send_event(
        MessageEvent(KEY, WaMessage(chat=customer, sender=customer, content=Text("oi")))
    )
    assert h.forwarded == []  # not ours to relay: WhatsApp holds it for the owner
    await h.manager.adopt(KEY)  # back again
    await h.settle()
    assert h.manager.status(KEY) is S.CONNECTED


async def test_a_send_the_fence_refuses_reaches_no_engine() -> None:
    h = make((KEY,))
    await h.manager.start()
    await h.settle()
    answers = [True, False]
    asked: list[str] = []

    async def fence(key: str) -> bool:
        asked.append(key)
        return answers.pop(0)

    h.manager.fence_with(fence)
    assert await h.manager.send(KEY, "+5511988887777", Text("one"))
    with pytest.raises(NotOwner):
        await h.manager.send(KEY, "+5511988887777", Text("two"))
    assert [c.args["content"] for c in h.engine.calls_of("send")] == [Text("one")]
    assert asked == [KEY, KEY]


async def test_gains_while_start_runs_open_each_session_once() -> None:
    h = make((KEY, OTHER))
    await asyncio.gather(h.manager.start(only={KEY}), h.manager.adopt(OTHER), h.manager.adopt(KEY))
    await h.manager.adopt(OTHER)  # a second word of the same gain
    await h.settle()
    assert sorted(c.key for c in h.engine.calls_of("connect")) == [KEY, OTHER]
    assert h.manager.status(KEY) is S.CONNECTED and h.manager.status(OTHER) is S.CONNECTED


async def test_a_session_released_while_its_pairing_is_read_is_not_connected() -> None:
    """A start (or a gain) reads the pairing, then connects. A release landing during
    that read (the session handed over at once) wins: nothing connects here, or this
    engine would run a session another instance owns (the sim's shared network then
    gave it the owner's held messages, which the released session dropped)."""
    h = make((KEY,))
    reading, go_on = asyncio.Event(), asyncio.Event()
    is_paired = h.engine.is_paired

    async def slow_is_paired(spec: Any) -> bool:
        reading.set()
        await go_on.wait()
        return await is_paired(spec)

    h.engine.is_paired = slow_is_paired  # type: ignore[method-assign]
    for begin in (lambda: h.manager.start(only={KEY}), lambda: h.manager.adopt(KEY)):
        reading.clear(), go_on.clear()
        opening = asyncio.create_task(begin())
        await reading.wait()
        await h.manager.release(KEY)
        go_on.set()
        await opening
        await h.settle()
        assert not h.engine.calls_of("connect", KEY)
    await h.manager.adopt(KEY)  # a later gain runs it
    await h.settle()
    assert len(h.engine.calls_of("connect", KEY)) == 1
    assert h.manager.status(KEY) is S.CONNECTED
