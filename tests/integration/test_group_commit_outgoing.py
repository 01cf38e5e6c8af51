"""``Outgoing.ingest`` over group commit, on both engines: the outbox is woken for a
caller's keys only once its work committed, never for work that did not commit,
and a member run again alone wakes only the keys of the run that committed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, cast

from bridge.clock import FakeClock
from bridge.config import parse_config
from bridge.core.operations import SendBotMessage
from bridge.core.outbox import OutboxWorker
from bridge.core.outgoing import WHATSAPP, Outgoing
from bridge.db import Repositories

CONFIG = """\
database: {{url: "sqlite::memory:", group_commit_ms: {window_ms}}}
homeserver: {{address: "http://127.0.0.1:8008", domain: example.com}}
appservice: {{as_token: AS-TOKEN, hs_token: HS-TOKEN}}
companies:
  - id: acme
    admins: ["@alice:example.com"]
    ops: {{matrix: true}}
    sessions:
      - name: sales
        matrix: true
"""


class RecordingOutbox:
    """Records each wake: its keys, and the ordering keys committed at that moment
    (read by a test through ``committed``, set by the counting ``_begin``)."""

    def __init__(self) -> None:
        self.wakes: list[tuple[set[str], int]] = []
        self.commits = 0

    def wake(self, keys: Iterable[str] | None = None) -> None:
        self.wakes.append((set(keys or ()), self.commits))


def count_commits(repos: Repositories, outbox: RecordingOutbox) -> None:
    db = repos.db
    begin = db._begin

    @contextlib.asynccontextmanager
    async def counting_begin() -> AsyncIterator[Any]:
        async with begin() as conn:
            yield conn
        outbox.commits += 1  # after COMMIT returned

    db._begin = counting_begin  # type: ignore[method-assign]


def outgoing_over(repos: Repositories, outbox: RecordingOutbox, *, window_ms: int) -> Outgoing:
    text = CONFIG.format(window_ms=window_ms)
    config = parse_config(text, path=Path("/srv/zap/config.yaml"))
    assert config.database.group_commit_ms == window_ms
    return Outgoing(
        config,
        repos,
        outbox=cast(OutboxWorker, outbox),
        frontends={},
        session_ids={},
        clock=FakeClock(start=1_000.0),
    )


def enqueue_to(outgoing: Outgoing, *keys: str) -> Callable[[], Awaitable[str]]:
    async def work() -> str:
        for key in keys:
            await outgoing.enqueue(WHATSAPP, key=key, operation=SendBotMessage(1))
        return keys[0]

    return work


async def committed_keys(repos: Repositories) -> list[str]:
    rows = await repos.db.fetch("SELECT ordering_key FROM outbox ORDER BY id")
    return [row["ordering_key"] for row in rows]


async def test_each_caller_wakes_its_own_keys_after_the_shared_commit(repos: Repositories) -> None:
    outbox = RecordingOutbox()
    count_commits(repos, outbox)
    outgoing = outgoing_over(repos, outbox, window_ms=2)
    works = [enqueue_to(outgoing, "a"), enqueue_to(outgoing, "b", "b2"), enqueue_to(outgoing, "c")]
    async with asyncio.timeout(10):
        results = await asyncio.gather(*(outgoing.ingest(work, lane=None) for work in works))
    assert results == ["a", "b", "c"]
    assert outbox.commits == 1  # one shared transaction
    assert sorted(outbox.wakes, key=lambda wake: sorted(wake[0])) == [
        ({"a"}, 1),  # woken once that commit had returned
        ({"b", "b2"}, 1),
        ({"c"}, 1),
    ]
    assert await committed_keys(repos) == ["a", "b", "b2", "c"]


async def test_work_that_did_not_commit_wakes_nothing(repos: Repositories) -> None:
    """The group rolls back; the failing member runs again alone and fails again; the
    one that ran twice wakes only the keys of the run that committed."""
    outbox = RecordingOutbox()
    count_commits(repos, outbox)
    outgoing = outgoing_over(repos, outbox, window_ms=2)
    runs: list[str] = []

    async def varying() -> str:
        runs.append("v")
        key = "first-run" if len(runs) == 1 else "second-run"
        await outgoing.enqueue(WHATSAPP, key=key, operation=SendBotMessage(1))
        return key

    async def failing() -> str:
        await outgoing.enqueue(WHATSAPP, key="never", operation=SendBotMessage(1))
        raise ValueError("bad event")

    async with asyncio.timeout(10):
        results = await asyncio.gather(
            outgoing.ingest(varying, lane=None),
            outgoing.ingest(failing, lane=None),
            return_exceptions=True,
        )
    assert results[0] == "second-run" and isinstance(results[1], ValueError)
    assert outbox.wakes == [({"second-run"}, 1)]  # after its own commit, the only one
    assert await committed_keys(repos) == ["second-run"]


async def test_turned_off_ingest_is_one_transaction_each(repos: Repositories) -> None:
    outbox = RecordingOutbox()
    count_commits(repos, outbox)
    outgoing = outgoing_over(repos, outbox, window_ms=0)
    async with asyncio.timeout(10):
        results = await asyncio.gather(
            outgoing.ingest(enqueue_to(outgoing, "a"), lane="a"),
            outgoing.ingest(enqueue_to(outgoing, "b"), lane="b"),
        )
    assert results == ["a", "b"]
    assert outbox.commits == 2
    assert sorted(keys for wake in outbox.wakes for keys in wake[0]) == ["a", "b"]
