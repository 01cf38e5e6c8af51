"""A bridge subprocess driven over loopback: its ``/sim`` API, the Slack fake and a
local Synapse.

Used by ``bench.relay`` (the Slack and Synapse sinks: the bridge's CPU is then the
child's own, read from ``/proc``) and ``bench.faults`` (``kill -9`` and restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.common import (
    ATTENDANT,
    MatrixEndpoints,
    bridge_config,
    channel_of,
    session_names,
)
from bridge.config import Config, parse_config
from tests.fakes.slack import SlackFake
from tests.harness.core import free_port

REPO = Path(__file__).resolve().parent.parent


class BridgeProcess:
    """``python -m bridge run -c <config>`` with the sim engine on a free port."""

    def __init__(
        self,
        directory: Path,
        *,
        db_url: str,
        sessions: int,
        fake: SlackFake | None = None,
        matrix: MatrixEndpoints | None = None,
        extra_config: str = "",
        log_level: str = "WARNING",
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.sessions = session_names(sessions)
        slack = None
        if fake is not None:
            slack = {
                "bot_token": fake.bot_token,
                "app_token": fake.app_token,
                "signing_secret": fake.signing_secret,
                "api_url": fake.api_url,
            }
            for name in self.sessions:
                fake.add_channel(channel_of(name), name)
            fake.add_user(ATTENDANT, name="bob", display_name="Bob")
        self.config_path = directory / "config.yaml"
        self.config_path.write_text(
            bridge_config(
                db_url=db_url,
                port=self.port,
                sessions=sessions,
                slack=slack,
                matrix=matrix,
                log_level=log_level,
            )
            + extra_config
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.http: aiohttp.ClientSession | None = None

    @property
    def config(self) -> Config:
        """The config the subprocess reads (for the homeserver's registration)."""
        return parse_config(self.config_path.read_text(), path=self.config_path)

    async def start(self, *, timeout: float = 60) -> None:  # noqa: ASYNC109
        self.starts += 1
        log = (self.directory / f"bridge-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [sys.executable, "-m", "bridge", "run", "-c", str(self.config_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        await self._wait_healthy(timeout)

    async def _wait_healthy(self, timeout: float) -> None:  # noqa: ASYNC109
        assert self.http is not None
        async with asyncio.timeout(timeout):
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"bridge exited {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with self.http.get(f"{self.base}/health") as resp:
                        body = await resp.json()
                    if body["sessions"] and all(
                        s == "CONNECTED" for s in body["sessions"].values()
                    ):
                        return
                except (aiohttp.ClientError, ValueError, KeyError):
                    pass
                await asyncio.sleep(0.1)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[BridgeProcess]:
        """Started (all sessions connected) inside, stopped afterwards."""
        try:
            await self.start()
            yield self
        finally:
            await self.stop()

    def log_tail(self, lines: int = 30) -> str:
        text = (self.directory / f"bridge-{self.starts}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush beyond what the OS already has."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.http is not None:
            await self.http.close()
            self.http = None

    def _url(self, session: str, what: str) -> str:
        return f"{self.base}/sim/sessions/{quote('acme/' + session, safe='')}/{what}"

    async def inbound(self, session: str, body: dict[str, Any]) -> int:
        """POST a customer message; the HTTP status (0: the bridge is not answering)."""
        assert self.http is not None
        try:
            async with self.http.post(self._url(session, "inbound"), json=body) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return 0

    async def outbound(self, session: str) -> list[dict[str, Any]]:
        assert self.http is not None
        async with self.http.get(self._url(session, "outbound")) as resp:
            resp.raise_for_status()
            return list((await resp.json())["messages"])

    async def fault(self, session: str, kind: str, seconds: float) -> int:
        assert self.http is not None
        try:
            body = {"kind": kind, "seconds": seconds}
            async with self.http.post(self._url(session, "fault"), json=body) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return 0
