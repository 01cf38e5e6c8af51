"""The sim network in the database (``whatsapp.sim.network: database``, docs/sim.md
"Shared network"): two sim engines over one database are two instances of one
config. A message posted to either instance's /sim is held by the network until the
instance that runs the session takes it, once and in order; /sim outbound shows what
both sent; a session moved from one instance to the other keeps its pairing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.clock import FakeClock
from bridge.db import Database, migrate
from bridge.db.sim_network import SimNetworkRepository
from bridge.errors import DatabaseError
from bridge.http_input import SERVER_OPTIONS
from bridge.model import Text
from bridge.whatsapp.engine import (
    ConnectedEvent,
    EngineErrorEvent,
    EngineEvent,
    MessageEvent,
    SessionSpec,
)
from bridge.whatsapp.sim import SimEngine
from bridge.whatsapp.sim_http import sim_routes
from tests.conftest import _connect_postgres, open_test_database

KEY = "acme/sales"
CUSTOMER = "+5511987654321"
POLL = 0.05  # seconds between looks at the held messages when not woken


class Instance:
    """One bridge instance: a sim engine over its own database connection, its
    handler recording what the bridge 'persisted', and its /sim API."""

    def __init__(self, name: str, db: Database, tmp_path: Path, clock: FakeClock) -> None:
        self.name = name
        self.db = db
        self.events: list[EngineEvent] = []
        self.refuse: str | None = None  # the database refuses messages (not persisted)
        self.sim = SimEngine(
            self.handle,
            data_dir=tmp_path / name,  # not shared: everything shared is in the database
            clock=clock,
            network=SimNetworkRepository(db),
            poll_seconds=POLL,
            auto_pair=False,
        )
        self.client: TestClient | None = None

    async def handle(self, event: EngineEvent) -> None:
        if self.refuse and isinstance(event, MessageEvent):
            raise DatabaseError(self.refuse)
        self.events.append(event)

    def texts(self) -> list[str]:
        return [
            e.message.content.body
            for e in self.events
            if isinstance(e, MessageEvent) and isinstance(e.message.content, Text)
        ]

    async def serve(self) -> TestClient:
        app = web.Application()
        app.add_routes(
            sim_routes(
                self.sim,
                status_of=lambda key: None,
                resolve=lambda s: KEY if s in (KEY, "sales") else None,
                media_bytes=30_000,
            )
        )
        server = TestServer(app)
        await server.start_server(**SERVER_OPTIONS)
        self.client = TestClient(server)
        await self.client.start_server()
        return self.client

    async def post(self, text: str, **extra: Any) -> str:
        assert self.client is not None
        body = {"from": CUSTOMER, "push_name": "Maria", "kind": "text", "text": text, **extra}
        response = await self.client.post("/sim/sessions/acme%2Fsales/inbound", json=body)
        assert response.status == 200, await response.text()
        return str((await response.json())["id"])

    async def close(self) -> None:
        await self.sim.close()
        if self.client is not None:
            await self.client.close()


def spec(tmp_path: Path) -> SessionSpec:
    return SessionSpec(key=KEY, company="acme", name="sales", device_dir=tmp_path / "dev")


async def until(predicate: Callable[[], Any], *, what: str, limit: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Pair:
    a: Instance
    b: Instance


@contextlib.asynccontextmanager
async def two_instances(engine: str, tmp_path: Path) -> AsyncIterator[Pair]:
    """Two instances over two connections to one database (one PostgreSQL schema)."""
    clock = FakeClock()
    async with open_test_database(engine, tmp_path) as first:
        await migrate(first)
        if engine == "postgres":
            schema = str(await first.fetchval("SELECT current_schema()"))
            second = await _connect_postgres(schema)
        else:
            second = first  # SQLite: one instance per file; the same database object
        a = Instance("a", first, tmp_path, clock)
        b = Instance("b", second, tmp_path, clock)
        try:
            await a.serve()
            await b.serve()
            yield Pair(a, b)
        finally:
            await a.close()
            await b.close()
            if second is not first:
                await second.close()


async def paired_on(instance: Instance, tmp_path: Path) -> None:
    """Log the session in on ``instance`` (a QR scan), which then runs it."""
    await instance.sim.login(spec(tmp_path))
    await instance.sim.scan(KEY, "+5511900000042")


# --- two instances over one PostgreSQL schema -----------------------------------


@pytest.mark.postgres
async def test_inbound_posted_to_one_instance_reaches_the_owner_once_in_order(
    tmp_path: Path,
) -> None:
    async with two_instances("postgres", tmp_path) as pair:
        await paired_on(pair.b, tmp_path)  # B runs the session
        posted = [await pair.a.post(f"m{n}") for n in range(20)]  # all posted to A
        await until(lambda: len(pair.b.texts()) == 20, what="B received the 20 messages")
        assert pair.b.texts() == [f"m{n}" for n in range(20)]
        ids = [e.message.wa_id for e in pair.b.events if isinstance(e, MessageEvent)]
        assert ids == posted
        assert pair.a.texts() == []  # A does not run the session: nothing there
        await asyncio.sleep(POLL * 4)  # several more looks: still exactly once
        assert len(pair.b.texts()) == 20
        assert await SimNetworkRepository(pair.a.db).held(KEY) == []


@pytest.mark.postgres
async def test_outbound_shows_what_every_instance_sent(tmp_path: Path) -> None:
    async with two_instances("postgres", tmp_path) as pair:
        await paired_on(pair.a, tmp_path)
        await pair.a.sim.send(KEY, CUSTOMER, Text("from a"))
        await pair.a.sim.disconnect(KEY)  # the session moves to B
        await pair.b.sim.connect(spec(tmp_path))
        await pair.b.sim.send(KEY, CUSTOMER, Text("from b"))
        for instance in (pair.a, pair.b):
            assert instance.client is not None
            response = await instance.client.get("/sim/sessions/sales/outbound")
            entries = (await response.json())["messages"]
            assert [e["text"] for e in entries] == ["from a", "from b"]


@pytest.mark.postgres
async def test_a_moved_session_keeps_its_pairing_and_gets_what_was_held(
    tmp_path: Path,
) -> None:
    async with two_instances("postgres", tmp_path) as pair:
        await paired_on(pair.a, tmp_path)
        first = await pair.a.post("before")
        await until(lambda: pair.a.texts() == ["before"], what="A received the first")
        sent = await pair.a.sim.send(KEY, CUSTOMER, Text("answer"), message_id="3EB0" + "A" * 18)
        await pair.a.sim.disconnect(KEY)  # A stops (hands over); nobody runs it now
        while_away = [await pair.b.post(f"away {n}") for n in range(3)]
        await asyncio.sleep(POLL * 4)
        assert pair.b.texts() == []  # held: B does not run it yet
        assert pair.b.client is not None
        view = await (await pair.b.client.get("/sim/sessions/sales")).json()
        assert view["phone"] == "+5511900000042"  # B sees the pairing A made
        # B takes the session over: paired, no QR code, and the held messages arrive
        assert await pair.b.sim.is_paired(spec(tmp_path))
        await pair.b.sim.connect(spec(tmp_path))
        assert pair.b.events[0] == ConnectedEvent(KEY, phone="+5511900000042")
        await until(lambda: len(pair.b.texts()) == 3, what="the held messages on B")
        assert pair.b.texts() == ["away 0", "away 1", "away 2"]
        ids = [e.message.wa_id for e in pair.b.events if isinstance(e, MessageEvent)]
        assert ids == while_away and first not in ids
        # what A sent is known on B: a repeated chosen id is dropped, quotes work
        again = await pair.b.sim.send(KEY, CUSTOMER, Text("answer"), message_id=sent)
        assert again == sent
        assert len(await pair.b.sim.outbound_log(KEY)) == 1
        await pair.a.post("about that", quote=sent)
        await until(lambda: len(pair.b.texts()) == 4, what="the reply")
        reply = [e for e in pair.b.events if isinstance(e, MessageEvent)][-1]
        assert reply.message.quote is not None and reply.message.quote.text == "answer"


@pytest.mark.postgres
async def test_a_message_the_database_refused_stays_held_and_comes_once(
    tmp_path: Path,
) -> None:
    async with two_instances("postgres", tmp_path) as pair:
        await paired_on(pair.b, tmp_path)
        pair.b.refuse = "database unavailable"
        await pair.a.post("one")
        await pair.a.post("two")
        await asyncio.sleep(POLL * 4)  # B tried and could not persist: still held
        assert len(await SimNetworkRepository(pair.a.db).held(KEY)) == 2
        pair.b.refuse = None
        await until(lambda: len(pair.b.texts()) == 2, what="both after the outage")
        await asyncio.sleep(POLL * 4)
        assert pair.b.texts() == ["one", "two"]


@pytest.mark.postgres
async def test_a_held_message_the_owner_cannot_read_is_set_aside_not_blocking(
    tmp_path: Path,
) -> None:
    async with two_instances("postgres", tmp_path) as pair:
        await paired_on(pair.b, tmp_path)
        await pair.b.sim.disconnect(KEY)
        lid_body = {"from": CUSTOMER, "lid": "111@lid", "kind": "text", "text": "linked"}
        assert pair.a.client is not None
        url = "/sim/sessions/sales/inbound"
        assert (await pair.a.client.post(url, json=lid_body)).status == 200
        other = {"from": "+5511911111111", "lid": "111@lid", "kind": "text", "text": "clash"}
        assert (await pair.a.client.post(url, json=other)).status == 200  # not linked yet
        await pair.a.post("after")
        await pair.b.sim.connect(spec(tmp_path))
        await until(lambda: "after" in pair.b.texts(), what="the message behind the bad one")
        assert pair.b.texts() == ["linked", "after"]
        errors = [e for e in pair.b.events if isinstance(e, EngineErrorEvent)]
        assert len(errors) == 1 and "linked to another phone" in errors[0].explanation


@pytest.mark.postgres
async def test_inbound_for_a_session_never_linked_is_refused(tmp_path: Path) -> None:
    async with two_instances("postgres", tmp_path) as pair:
        assert pair.a.client is not None
        body = {"from": CUSTOMER, "kind": "text", "text": "hello?"}
        response = await pair.a.client.post("/sim/sessions/sales/inbound", json=body)
        assert response.status == 400
        assert "no linked device" in (await response.json())["error"]


# --- one instance, either database ----------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_restarted_instance_keeps_device_log_links_and_held(
    engine: str, tmp_path: Path
) -> None:
    async with two_instances(engine, tmp_path) as pair:
        first = pair.a
        await paired_on(first, tmp_path)
        await first.sim.inbound(
            KEY, {"from": CUSTOMER, "lid": "222@lid", "kind": "text", "text": "x"}
        )
        await until(lambda: first.texts() == ["x"], what="the first message")
        await first.sim.send(KEY, CUSTOMER, Text("sent before"))
        await first.sim.disconnect(KEY)
        await first.sim.inbound(KEY, {"lid": "222@lid", "kind": "text", "text": "offline"})
        await first.close()
        restarted = Instance("a2", first.db, tmp_path, FakeClock())
        try:
            assert await restarted.sim.is_paired(spec(tmp_path))
            await restarted.sim.connect(spec(tmp_path))
            await until(lambda: restarted.texts() == ["offline"], what="the held message")
            message = next(e for e in restarted.events if isinstance(e, MessageEvent))
            assert message.message.sender.phone == CUSTOMER  # the LID link survived
            assert [e["text"] for e in await restarted.sim.outbound_log(KEY)] == ["sent before"]
        finally:
            await restarted.close()
