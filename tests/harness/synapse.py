"""A real Synapse for Matrix tests, started once per test session, plus a whole bridge
(the real composition root, the sim engine, a fake clock) whose Matrix frontend is
the real :class:`MatrixFrontend` talking to it.

- ``synapse``  (session) the homeserver with a fresh appservice registration, and
  the users ``alice`` (admin) and ``bob`` (attendant) with access tokens.
- :class:`MatrixBridge`  a bridge on that homeserver (one per test).
- :class:`MatrixUser`  a plain client-server API client (aiohttp) for alice and bob.

Modules using these run in the session's event loop:
``pytestmark = pytest.mark.asyncio(loop_scope="session")``.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from bridge.app import Bridge
from bridge.clock import FakeClock
from bridge.config import Config, parse_config
from bridge.core.frontend import Frontend
from bridge.db import migrate
from bridge.db.database import Database
from bridge.matrix.frontend import MatrixFrontend
from bridge.matrix.local_synapse import LocalSynapse, free_port
from bridge.matrix.registration import build_registration
from tests.conftest import open_test_database
from tests.harness.core import BridgeHarness, until

T = TypeVar("T")

CONFIG = """\
database: {{url: "sqlite::memory:"}}
data_dir: data
http: {{host: 127.0.0.1, port: {http_port}}}
homeserver: {{address: "{hs_address}", domain: localhost}}
appservice:
  hostname: 127.0.0.1
  port: {as_port}
  address: "http://127.0.0.1:{as_port}"
  as_token: "{as_token}"
  hs_token: "{hs_token}"
media: {{max_size_mb: {max_size_mb}}}
whatsapp:
  engine: sim
  send_per_minute: 6000
  send_burst: 1000
  start_stagger_ms: 0
  sim: {{auto_pair: {auto_pair}}}
outbox: {{max_attempts: 4, base_delay_seconds: 1, max_delay_seconds: 8}}
companies:
  - id: acme
    name: ACME Support
    admins: ["@alice:localhost"]
    attendants: ["@bob:localhost", "U0BOB"]
    ops: {{matrix: true}}
    sessions:
      - name: sales
        matrix: true
        greeting: "Olá! Um atendente já vai falar com você."
        farewell: "Atendimento encerrado. Obrigado!"
      - name: support
        matrix: true
"""


class AppserviceForwarder:
    """Stands on the registered appservice port for the whole test session and
    forwards to the bridge of the current test (each bridge listens on a port of its
    own). While no bridge is attached it acknowledges what Synapse sends: Synapse then
    never finds the appservice down between tests (its recovery from that can lose a
    transaction created while it ends, which made tests flaky)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.target: int | None = None
        self._swallow: Callable[[dict[str, Any]], bool] | None = None
        self.swallowed: list[dict[str, Any]] = []  # events acknowledged, not forwarded
        self.answers: list[tuple[int, int]] = []  # (body bytes, status) of transactions
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def swallow(self, predicate: Callable[[dict[str, Any]], bool] | None) -> None:
        """Acknowledge, without forwarding, the next transaction holding an event
        that matches ``predicate`` (once; ``None`` cancels): Synapse then believes it
        delivered, as when it loses a push while restarting (synapse#11637)."""
        self._swallow = predicate

    async def _swallowed(self, request: web.Request) -> bool:
        predicate = self._swallow
        if predicate is None or "/transactions/" not in request.path:
            return False
        events = (await request.json()).get("events") or []
        if not any(predicate(event) for event in events):
            return False
        self._swallow = None
        self.swallowed += events
        return True

    async def _forward(self, request: web.Request) -> web.Response:
        target, http = self.target, self._http
        if target is None or http is None:
            return web.json_response({})  # between tests: events of finished tests
        if await self._swallowed(request):
            return web.json_response({})
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type")
        }
        body = await request.read()
        try:
            async with http.request(
                request.method,
                f"http://127.0.0.1:{target}{request.rel_url}",
                headers=headers,
                data=body,
            ) as resp:
                if "/transactions/" in request.path:
                    self.answers.append((len(body), resp.status))
                return web.Response(
                    status=resp.status,
                    body=await resp.read(),
                    headers={"Content-Type": resp.headers.get("Content-Type", "application/json")},
                )
        except aiohttp.ClientConnectionError:
            return web.json_response({})  # the bridge is not listening yet or any more


@dataclass
class Homeserver:
    synapse: LocalSynapse
    forwarder: AppserviceForwarder
    as_port: int
    as_token: str
    hs_token: str
    tokens: dict[str, str]  # localpart → access token
    root: Path

    def user(self, localpart: str) -> MatrixUser:
        return MatrixUser(self.synapse.address, f"@{localpart}:localhost", self.tokens[localpart])


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def synapse(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Homeserver]:
    root = tmp_path_factory.mktemp("synapse")
    as_port, as_token, hs_token = free_port(), secrets.token_hex(16), secrets.token_hex(16)
    config = _config(
        root, hs_address="http://127.0.0.1:1", as_port=as_port, tokens=(as_token, hs_token)
    )
    forwarder = AppserviceForwarder(as_port)
    await forwarder.start()
    server = LocalSynapse(root / "hs", registration=build_registration(config))
    await server.start()
    print(f"\nSynapse started in {server.startup_seconds:.2f} s")
    try:
        tokens = {}
        for name, admin in (("alice", True), ("bob", False)):
            _, tokens[name] = await server.register_user(name, f"{name}-password", admin=admin)
        yield Homeserver(server, forwarder, as_port, as_token, hs_token, tokens, root)
    finally:
        await server.stop()
        await forwarder.stop()


def _config(
    directory: Path,
    *,
    hs_address: str,
    as_port: int,
    tokens: tuple[str, str],
    auto_pair: bool = True,
    max_size_mb: int = 100,
    template: str = CONFIG,
) -> Config:
    text = template.format(
        http_port=free_port(),
        hs_address=hs_address,
        as_port=as_port,
        as_token=tokens[0],
        hs_token=tokens[1],
        auto_pair=str(auto_pair).lower(),
        max_size_mb=max_size_mb,
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(text)
    return parse_config(text, path=directory / "config.yaml")


class MatrixBridge(BridgeHarness):
    """A bridge on the session's Synapse (the sim engine, a fake clock)."""

    def __init__(
        self,
        hs: Homeserver,
        directory: Path,
        db: Database,
        *,
        auto_pair: bool = True,
        max_size_mb: int = 100,
        config: str = CONFIG,
        beside: Sequence[Frontend] = (),
    ) -> None:
        """``config``: CONFIG or a variant of it (the same placeholders); ``beside``:
        frontends sharing the sessions with Matrix (a ``FakeFrontend`` named ``slack``
        shows what is mirrored between the two)."""
        self.hs = hs
        self.directory = directory
        self.db = db
        self.listen_port = free_port()  # the forwarder on hs.as_port relays here
        self.config = _config(
            directory,
            hs_address=hs.synapse.address,
            as_port=self.listen_port,
            tokens=(hs.as_token, hs.hs_token),
            auto_pair=auto_pair,
            max_size_mb=max_size_mb,
            template=config,
        )
        self.clock = FakeClock()
        self.frontend = MatrixFrontend(self.config)
        self.bridge = Bridge(
            self.config,
            clock=self.clock,
            frontends=[self.frontend, *beside],
            database=db,
            rng=random.Random(7),
        )
        self.auto_pair = auto_pair

    async def start(self) -> None:
        self.hs.forwarder.target = self.listen_port
        await self.bridge.start()
        await self.wait_sessions(clock=self.clock)

    async def stop(self, *, leave_rooms: bool = True) -> None:
        """Stop. The bot first leaves its rooms, so the next test's bridge (a fresh
        database on the same homeserver) creates its own instead of finding these;
        it leaves while still listening, so Synapse does not find the appservice
        down pushing those leaves (the next bridge's ping would recover it, but
        Synapse can lose a transaction created while a recovery ends).
        ``leave_rooms=False`` is a plain restart: the rooms stay the bridge's."""
        if leave_rooms:
            bot = MatrixUser(self.hs.synapse.address, "@whatsappbot:localhost", self.hs.as_token)
            rooms = (await bot.request("GET", "/_matrix/client/v3/joined_rooms"))["joined_rooms"]
            for room in rooms:
                await bot.request("POST", f"/_matrix/client/v3/rooms/{quote(room)}/leave", {})
        self.hs.forwarder.target = None
        await self.bridge.stop()

    async def room(self, kind: str, session: str | None = "acme/sales") -> str:
        """The room id the core stored (waiting for its creation)."""
        repo = self.bridge.repos.rooms

        async def stored() -> str | None:
            session_id = self.bridge.session_ids[session] if session else None
            row = await repo.get(
                frontend="matrix", kind=kind, company_id="acme", session_id=session_id
            )
            return row.room_id if row else None

        return await until(stored, what=f"{kind} room", clock=self.clock)

    async def thread_root(self, ticket_id: int = 1) -> str:
        async def stored() -> str | None:
            ref = await self.bridge.repos.threads.get(ticket_id, "matrix")
            return ref.thread_root if ref else None

        return await until(stored, what=f"thread of #{ticket_id}", clock=self.clock)

    async def customer(
        self, kind: str = "text", *, session: str = "acme/sales", **fields: Any
    ) -> str:
        body = {"from": "+5511987654321", "push_name": "Maria", "kind": kind, **fields}
        return await self.sim.inbound(session, body)

    async def outbound(
        self, predicate: Callable[[dict[str, Any]], bool], *, session: str = "acme/sales"
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in reversed(self.sim.outbound(session)) if predicate(m)), None)

        return await until(found, what="a message to the customer", clock=self.clock)


class MatrixUser:
    """A real user of the homeserver, through the client-server API."""

    def __init__(self, address: str, user_id: str, token: str) -> None:
        self.address = address
        self.user_id = user_id
        self.token = token
        self._txn = 0

    async def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession() as http:
            async with http.request(
                method, f"{self.address}{path}", json=body, headers=headers, **kwargs
            ) as resp:
                data = await resp.json(content_type=None) if resp.content_type else None
                if resp.status >= 400:
                    raise AssertionError(f"{method} {path} → {resp.status} {data}")
                return data

    async def raw(self, method: str, path: str, **kwargs: Any) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        async with aiohttp.ClientSession() as http:
            async with http.request(
                method, f"{self.address}{path}", headers=headers, **kwargs
            ) as resp:
                assert resp.status < 400, (resp.status, await resp.text())
                return await resp.read()

    async def join(self, room: str) -> None:
        await self.request("POST", f"/_matrix/client/v3/join/{quote(room)}", {})

    async def send(
        self, room: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        self._txn += 1
        path = (
            f"/_matrix/client/v3/rooms/{quote(room)}/send/{event_type}/t{time.time_ns()}{self._txn}"
        )
        return (await self.request("PUT", path, content))["event_id"]

    async def redact(self, room: str, event_id: str) -> str:
        path = f"/_matrix/client/v3/rooms/{quote(room)}/redact/{quote(event_id)}/r{time.time_ns()}"
        return (await self.request("PUT", path, {}))["event_id"]

    async def upload(self, data: bytes, mimetype: str, filename: str) -> str:
        path = f"/_matrix/media/v3/upload?filename={quote(filename)}"
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": mimetype}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.address}{path}", data=data, headers=headers) as resp:
                return (await resp.json())["content_uri"]

    async def download(self, mxc: str) -> bytes:
        server, media_id = mxc.removeprefix("mxc://").split("/", 1)
        return await self.raw("GET", f"/_matrix/client/v1/media/download/{server}/{media_id}")

    async def state(self, room: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        path = f"/_matrix/client/v3/rooms/{quote(room)}/state/{event_type}/{state_key}"
        return await self.request("GET", path)

    async def messages(self, room: str, limit: int = 100) -> list[dict[str, Any]]:
        """Recent events of ``room``, oldest first."""
        path = f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b&limit={limit}"
        return list(reversed((await self.request("GET", path))["chunk"]))

    async def invited_rooms(self) -> set[str]:
        data = await self.request("GET", "/_matrix/client/v3/sync?timeout=0")
        return set(data.get("rooms", {}).get("invite", {}))


@pytest_asyncio.fixture(loop_scope="session")
async def bridge(synapse: Homeserver, tmp_path: Path) -> AsyncIterator[MatrixBridge]:
    """A bridge of this test on the session's Synapse (SQLite in tmp_path)."""
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        harness = MatrixBridge(synapse, tmp_path / "bridge", db)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


@pytest.fixture
def bob(synapse: Homeserver) -> MatrixUser:
    return synapse.user("bob")


@pytest.fixture
def alice(synapse: Homeserver) -> MatrixUser:
    return synapse.user("alice")
