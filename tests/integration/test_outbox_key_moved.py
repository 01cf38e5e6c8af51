"""A key that moved between instances (docs/cluster.md, "A key that moved"): instance a
posts a row into a Slack thread and stops before marking it done; instance b, whose
ledger trusts that thread from earlier, takes the key over and must find a's post
there instead of posting again. PostgreSQL only; Slack on the strict fake."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bridge.clock import SystemClock
from bridge.core.frontend import ChatAddress
from bridge.core.outbox import OutboxWorker
from bridge.core.outbox_claims import DatabaseClaims
from bridge.db import Database, migrate
from bridge.db.notify import Notifier
from bridge.db.outbox import OutboxRepository, OutboxRow
from bridge.db.outbox_claims import OutboxClaimRepository
from bridge.errors import DeliveryError
from bridge.model import Text
from bridge.slack.frontend import SlackFrontend
from bridge.slack.ledger import txn_of
from tests.conftest import _connect_postgres, open_test_database
from tests.fakes.slack import SlackFake
from tests.harness.core import until
from tests.integration.test_outbox_cluster import NEVER, Halting, Owner
from tests.integration.test_slack_idempotent_posts import (
    MARIA,
    SALES,
    Frontends,
    new_thread,
)

pytestmark = pytest.mark.postgres

KEY = "t1:slack"
TXN = "zb-msg-2"


class Instances:
    """Outbox workers on one schema, each delivering through its own Slack frontend."""

    def __init__(self, schema: str, stack: contextlib.AsyncExitStack) -> None:
        self.schema = schema
        self.stack = stack

    async def start(
        self,
        name: str,
        frontend: SlackFrontend,
        place: ChatAddress,
        *,
        after_post: Callable[[], Awaitable[None]] | None = None,
        halting: bool = False,
        poll: float = NEVER,
    ) -> OutboxWorker:
        db = await _connect_postgres(self.schema)
        self.stack.push_async_callback(db.close)
        clock = SystemClock()
        notifier = Notifier(db, clock=clock, rng=random.Random(1))
        claims = OutboxClaimRepository(db, holder=name, seconds=1.0)
        strategy = (Halting if halting else DatabaseClaims)(
            claims, owner=Owner(), notifier=notifier, clock=clock
        )
        worker = OutboxWorker(
            OutboxRepository(db),
            clock=clock,
            rng=random.Random(2),
            max_attempts=5,
            base_delay=0.5,  # a, failed, stops before it retries
            max_delay=0.5,
            poll_seconds=poll,
            claims=strategy,
        )

        async def deliver(row: OutboxRow) -> None:
            txn = str(row.payload["txn"])
            await frontend.post(place, MARIA, Text(txn), reply_to=None, txn_id=txn)
            if after_post is not None:
                await after_post()

        async def resumed(_row: OutboxRow) -> None:
            frontend.forget_trust(place)

        worker.register("slack", deliver, resumed=resumed)
        await notifier.start()
        self.stack.push_async_callback(notifier.stop)
        await worker.start()
        self.stack.push_async_callback(worker.stop)
        return worker


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        slack.add_channel(SALES, "sales")
        yield slack


def posts_of(fake: SlackFake, place: ChatAddress, txn: str) -> int:
    return sum(1 for m in fake.messages(SALES, place.thread_root) if (txn_of(m) or ("",))[0] == txn)


async def hang() -> None:
    await asyncio.Event().wait()  # cut after the post: never marked done


async def refuse() -> None:
    raise DeliveryError("the answer was lost, for the test")  # ambiguous


@pytest.mark.parametrize(
    "how",
    [
        "dies",  # a's claim stays under its name and expires
        "stops",  # a clean stop cancels the drain and releases the claim
        "fails",  # an ambiguous failure: a releases the key, the row waits for its retry
    ],
)
async def test_a_key_taken_over_finds_the_post_its_last_holder_made(
    fake: SlackFake, tmp_path: Path, how: str
) -> None:
    frontends = Frontends(fake)
    async with open_test_database("postgres", tmp_path) as db, contextlib.AsyncExitStack() as stack:
        await migrate(db)
        instances = Instances(str(await db.fetchval("SELECT current_schema()")), stack)
        front_a, front_b = await frontends.new(), await frontends.new()
        for frontend in (front_a, front_b):
            stack.push_async_callback(frontend.stop)
        place = await new_thread(front_b)  # b created the thread: its ledger trusts it
        worker_a = await instances.start(
            "a",
            front_a,
            place,
            after_post=refuse if how == "fails" else hang,
            halting=how == "dies",
        )
        outbox = OutboxRepository(db)
        row = await outbox.enqueue("slack", ordering_key=KEY, payload={"txn": TXN})
        worker_a.wake([KEY])
        await until(lambda: posts_of(fake, place, TXN) == 1, what="a's post")
        if how == "fails":
            await until(
                lambda: db.fetchval("SELECT attempts FROM outbox WHERE id = $1", row.id),
                what="a's failed attempt",
            )
        await worker_a.stop()
        assert await db.fetchval("SELECT status FROM outbox WHERE id = $1", row.id) == "pending"

        await instances.start("b", front_b, place, poll=0.05)
        await until(lambda: _status_is(db, row.id, "done"), what="b's delivery", limit=10)
        assert posts_of(fake, place, TXN) == 1  # found in the thread, not posted again
        assert fake.calls_of("conversations.replies")  # b read the thread it trusted


async def _status_is(db: Database, row_id: int, status: str) -> bool:
    return await db.fetchval("SELECT status FROM outbox WHERE id = $1", row_id) == status


async def test_a_key_no_other_instance_held_costs_no_read(fake: SlackFake, tmp_path: Path) -> None:
    """The normal case: b claims a fresh key (no claim before, never tried): its ledger
    still trusts the thread, and the post makes no extra call."""
    frontends = Frontends(fake)
    async with open_test_database("postgres", tmp_path) as db, contextlib.AsyncExitStack() as stack:
        await migrate(db)
        instances = Instances(str(await db.fetchval("SELECT current_schema()")), stack)
        front_b = await frontends.new()
        stack.push_async_callback(front_b.stop)
        place = await new_thread(front_b)
        worker_b = await instances.start("b", front_b, place)
        rows = [
            await OutboxRepository(db).enqueue("slack", ordering_key=KEY, payload={"txn": txn})
            for txn in ("zb-msg-3", "zb-msg-4")
        ]
        worker_b.wake([KEY])
        for row in rows:
            await until(lambda row=row: _status_is(db, row.id, "done"), what="b's delivery")
        assert [posts_of(fake, place, txn) for txn in ("zb-msg-3", "zb-msg-4")] == [1, 1]
        assert fake.calls_of("conversations.replies") == []
