"""A whole bridge with the Slack frontend against ``SlackFake``: the real composition
root, the sim engine, a fake clock, and the fake Slack workspace on a free port."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.app import Bridge
from bridge.clock import FakeClock
from bridge.config import parse_config
from bridge.core.frontend import Frontend
from bridge.db.database import Database
from bridge.slack import SlackFrontend
from bridge.slack.ratelimit import ChannelPacer
from tests.fakes.slack import SlackFake
from tests.harness.core import CUSTOMER, BridgeHarness, free_port, until

__all__ = ["CUSTOMER", "RecordingHost", "SlackHarness", "until"]

SALES, SUPPORT, OPS = "C0SALES", "C0SUPPORT", "C0OPS"
ADMIN, BOB, STRANGER = "U0ADMIN", "U0BOB", "U0EVE"

CONFIG = """\
database: {{url: "sqlite::memory:"}}
data_dir: data
http: {{host: 127.0.0.1, port: {port}}}
slack:
  enabled: true
  mode: {mode}
  bot_token: {bot_token}
  app_token: {app_token}
  signing_secret: {signing_secret}
  api_url: "{api_url}"
  file_hosts: ["{file_host}"]
whatsapp:
  engine: sim
  send_per_minute: 6000
  send_burst: 1000
  start_stagger_ms: 0
  sim: {{auto_pair: {auto_pair}}}
outbox: {{max_attempts: 8, base_delay_seconds: 1, max_delay_seconds: 8}}
ops: {{alert_grace_seconds: 60}}
media: {{max_size_mb: {max_size_mb}}}
tickets: {{reopen_window_minutes: 120}}
companies:
  - id: acme
    name: ACME Support
    admins: ["{admin}"]
    attendants: ["{bob}"]
    ops: {{slack_channel: {ops}}}
    sessions:
      - name: sales
        slack_channel: {sales}
        greeting: "Olá! Um atendente já vai falar com você."
        farewell: "Atendimento encerrado. Obrigado!"
      - name: support
        slack_channel: {support}
        sign_messages: false
"""


class SlackHarness(BridgeHarness):
    def __init__(
        self,
        tmp_path: Path,
        db: Database,
        fake: SlackFake,
        *,
        mode: str = "socket",
        auto_pair: bool = True,
        burst: int = 1000,
        max_size_mb: int = 100,
        config: str = CONFIG,
        beside: Sequence[Frontend] = (),
    ) -> None:
        """``config``: CONFIG or a variant of it (the same placeholders); ``beside``:
        frontends sharing the sessions with Slack (a ``FakeFrontend`` named ``matrix``
        shows what is mirrored between the two)."""
        self.fake = fake
        self.auto_pair = auto_pair
        self.port = free_port()
        text = config.format(
            port=self.port,
            mode=mode,
            bot_token=fake.bot_token,
            app_token=fake.app_token,
            signing_secret=fake.signing_secret,
            api_url=fake.api_url,
            file_host=fake.origin,
            auto_pair=str(auto_pair).lower(),
            admin=ADMIN,
            bob=BOB,
            ops=OPS,
            sales=SALES,
            support=SUPPORT,
            max_size_mb=max_size_mb,
        )
        (tmp_path / "config.yaml").write_text(text)
        self.config = parse_config(text, path=tmp_path / "config.yaml")
        self.db = db
        self.clock = FakeClock()
        pacer = ChannelPacer(clock=self.clock, rate=1.0, burst=burst)
        self.slack = SlackFrontend(
            self.config.slack,
            clock=self.clock,
            pacer=pacer,
            media=self.config.media,
        )
        self.bridge = Bridge(
            self.config,
            clock=self.clock,
            frontends=[self.slack, *beside],
            database=db,
            rng=random.Random(7),
        )
        for channel, name in ((SALES, "sales"), (SUPPORT, "support"), (OPS, "ops")):
            fake.add_channel(channel, name)
        fake.add_user(ADMIN, name="alice", display_name="Alice", real_name="Alice Admin")
        fake.add_user(BOB, name="bob", display_name="", real_name="Bob Silva")
        fake.add_user(STRANGER, name="eve", display_name="Eve")

    def frontend_calls(self) -> int:
        return len(self.fake.calls)

    async def start(self) -> None:
        await self.bridge.start()
        await self.wait_sessions()
        await self.settle()

    async def stop(self) -> None:
        await self.bridge.stop()

    async def run_for(self, seconds: float, *, step: float = 0.5) -> None:
        """Let ``seconds`` of fake time pass in steps, settling after each."""
        elapsed = 0.0
        while elapsed < seconds:
            await self.clock.advance(step)
            await asyncio.sleep(0.01)
            elapsed += step
        await self.settle()

    async def customer(
        self,
        kind: str = "text",
        *,
        session: str = "acme/sales",
        sender: str = CUSTOMER,
        name: str = "Maria",
        settle: bool = True,
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
        if settle:
            await self.settle()
        return wa_id

    async def event(self, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Send ``event`` over Socket Mode, wait for its ack, then settle."""
        envelope = await self.fake.send_event(event, **kwargs)
        ack = await self.fake.wait_ack(envelope)
        await self.settle()
        return ack

    def outbound(self, session: str = "acme/sales") -> list[dict[str, Any]]:
        return self.sim.outbound(session)

    def thread_root(self, channel: str = SALES, ticket_id: int = 1) -> str:
        for message in self.fake.messages(channel):
            if f"Ticket #{ticket_id}" in message.get("text", "") and message.get("blocks"):
                return str(message["ts"])
        raise AssertionError(f"no card of ticket #{ticket_id} in {channel}")

    def replies(self, channel: str = SALES, ticket_id: int = 1) -> list[dict[str, Any]]:
        root = self.thread_root(channel, ticket_id)
        return [m for m in self.fake.messages(channel, root) if m["ts"] != root]

    def customer_posts(self, channel: str = SALES, ticket_id: int = 1) -> list[dict[str, Any]]:
        return [m for m in self.replies(channel, ticket_id) if m.get("username") == "Maria"]

    # --- HTTP mode -------------------------------------------------------------------

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
        """POST ``body`` to ``/slack/events`` as it is: (status, answer text)."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.events_url, data=body, headers=dict(headers)) as response,
        ):
            return response.status, await response.text()

    async def http(self, kind: str, payload: dict[str, Any]) -> tuple[int, str]:
        """Send ``payload`` signed, as Slack would in HTTP mode, then settle."""
        body, headers = self.fake.http_request(kind, payload)
        answer = await self.post(body, headers)
        await self.settle()
        return answer


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordingHost:
    """A local HTTP server that records every request (path, Authorization header)
    and answers with ``handler`` (by default a few bytes): it stands for a file host,
    Slack's or a foreign one ("evil.example"), in tests."""

    handler: Handler | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    origin: str = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> RecordingHost:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.origin = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("Authorization")))
        if self.handler is None:
            return web.Response(body=b"file bytes")
        return await self.handler(request)
