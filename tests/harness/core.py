"""A whole bridge for core tests: the real composition root (``bridge.app.Bridge``)
with the sim engine, a fake clock, recording fake frontends and the test database."""

from __future__ import annotations

import asyncio
import inspect
import random
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bridge.app import Bridge
from bridge.clock import FakeClock
from bridge.config import parse_config
from bridge.db.database import Database
from bridge.whatsapp.sim import SimEngine
from tests.fakes.frontend import FakeFrontend

T = TypeVar("T")

CUSTOMER = "+5511987654321"
QUICK_REPLY_FILE = b"%PDF-1.4 prices"
"""The bytes of the ``prices`` quick reply's file (replies/prices.pdf)."""

CONFIG = """\
database: {{url: "sqlite::memory:"}}
data_dir: data
http: {{host: 127.0.0.1, port: {port}}}
whatsapp:
  engine: sim
  send_per_minute: 6000
  send_burst: 1000
  start_stagger_ms: 0
  sim: {{auto_pair: {auto_pair}}}
outbox: {{max_attempts: 4, base_delay_seconds: 1, max_delay_seconds: 8}}
ops: {{alert_grace_seconds: 60}}
tickets: {{reopen_window_minutes: 120}}
companies:
  - id: acme
    name: ACME Support
    admins: ["@alice:localhost"]
    attendants: ["@bob:localhost", "U0BOB"]
    quick_replies:
      - shortcut: hello
        text: "Olá {{name}}, aqui é {{attendant}} (ticket #{{ticket}})."
      - shortcut: prices
        text: "Nossa tabela, {{name}}."
        file: replies/prices.pdf
    sessions:
      - name: sales
        greeting: "Olá! Um atendente já vai falar com você."
        farewell: "Atendimento encerrado. Obrigado!"
      - name: support
        sign_messages: false
  - id: globex
    name: Globex
    admins: ["@gina:localhost"]
    sessions:
      - name: main
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    limit: float = 15.0,
    what: str = "condition",
    clock: FakeClock | None = None,
) -> T:
    """Wait until ``predicate`` is truthy, or fail after ``limit`` s. With a fake
    ``clock``, time is nudged meanwhile so deliveries waiting for a retry come due."""
    deadline = time.monotonic() + limit
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        if clock is not None:
            await clock.advance(0.5)
            await asyncio.sleep(0.05)
        else:
            await asyncio.sleep(0.002)


class BridgeHarness:
    """What every test bridge shares: the real Bridge on the sim engine, a fake
    clock, waiting for its sessions, and settling its outbox."""

    bridge: Bridge
    clock: FakeClock
    db: Database
    auto_pair: bool

    @property
    def sim(self) -> SimEngine:
        engine = self.bridge.engines.get("sim", self.bridge.engine)  # beside other engines
        assert isinstance(engine, SimEngine)
        return engine

    async def wait_sessions(self, *, clock: FakeClock | None = None) -> None:
        """Until every session this instance runs (all of them, alone) is CONNECTED
        (auto-paired) or LOGGED_OUT (never paired)."""
        expected = "CONNECTED" if self.auto_pair else "LOGGED_OUT"

        def ready() -> bool:
            owned = self.bridge.ownership.owned()
            statuses = self.bridge.sessions.statuses()
            return all(str(statuses[key]) == expected for key in owned)

        await until(
            ready,
            what=f"sessions {expected}",
            clock=clock,
        )

    def frontend_calls(self) -> int:
        """How many calls the frontends received so far (settle waits for it to rest)."""
        raise NotImplementedError

    async def settle(self, *, limit: float = 10.0) -> None:
        """Until the outbox has nothing due and nothing in flight, and no task started by
        the last step (timers, engine events) adds more: two identical passes in a row."""
        previous = None
        async with asyncio.timeout(limit):
            while True:
                await self.clock.settle()
                self.bridge.outbox.wake()  # a pass after everything committed so far
                await self.bridge.outbox.wait_idle()
                await asyncio.sleep(0.005)  # let database threads finish their hand-offs
                snapshot = (
                    await self.db.fetchval("SELECT COALESCE(MAX(id), 0) FROM outbox"),
                    await self.bridge.repos.outbox.count_pending(),
                    self.frontend_calls(),
                )
                if snapshot == previous:
                    return
                previous = snapshot


class CoreHarness(BridgeHarness):
    def __init__(
        self,
        tmp_path: Path,
        db: Database,
        *,
        frontends: list[FakeFrontend],
        auto_pair: bool = True,
        config: str = CONFIG,
    ) -> None:
        """``config``: CONFIG or a variant of it (the same placeholders)."""
        self.auto_pair = auto_pair
        text = config.format(port=free_port(), auto_pair=str(auto_pair).lower())
        (tmp_path / "replies").mkdir(exist_ok=True)
        (tmp_path / "replies" / "prices.pdf").write_bytes(QUICK_REPLY_FILE)
        (tmp_path / "config.yaml").write_text(text)
        self.config = parse_config(text, path=tmp_path / "config.yaml")
        self.db = db
        self.clock = FakeClock()
        self.frontends = {fe.name: fe for fe in frontends}
        self.bridge = self._new_bridge()

    def _new_bridge(self) -> Bridge:
        return Bridge(
            self.config,
            clock=self.clock,
            frontends=list(self.frontends.values()),
            database=self.db,
            rng=random.Random(7),
        )

    def frontend_calls(self) -> int:
        return sum(len(fe.calls) for fe in self.frontends.values())

    async def start(self) -> None:
        await self.bridge.start()
        await self.wait_sessions()
        await self.settle()  # control and ops rooms registered

    async def stop(self) -> None:
        await self.bridge.stop()

    async def restart(self, *, away_seconds: float = 0.0) -> None:
        """A new bridge process on the same database and data directory, after
        ``away_seconds`` on the clock with no bridge running."""
        await self.stop()
        await self.clock.advance(away_seconds)
        self.bridge = self._new_bridge()
        await self.start()

    async def customer(
        self,
        kind: str = "text",
        *,
        session: str = "acme/sales",
        sender: str = CUSTOMER,
        name: str = "Maria",
        **fields: Any,
    ) -> str:
        body = {"from": sender, "push_name": name, "kind": kind, **fields}
        wa_id = await self.sim.inbound(session, body)
        await until(
            lambda: self.bridge.repos.messages.find_by_wa_id(
                self.bridge.session_ids[session], wa_id
            ),
            what=f"message {wa_id} stored",
        )
        await self.settle()
        return wa_id

    def outbound(self, session: str = "acme/sales") -> list[dict[str, Any]]:
        return self.sim.outbound(session)
