"""A bridge subprocess with its chat frontend, running, and a driver for it.

``bench.relay`` (the ``slack`` and ``synapse`` sinks) and ``bench.faults`` use the
same set-ups: the Slack fake in this process, or a local Synapse with the attendant
``@bob:localhost``. Inside the context the bridge is up with every session
connected, and every ticket has its thread (``Driver.open_tickets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bench.common import BenchDatabase
from bench.drive import Driver, SlackDriver, Ticket
from bench.matrix import MatrixDriver, direct_sends, homeserver_for, new_endpoints
from bench.proc import BridgeProcess
from tests.fakes.slack import SlackFake


class SinkSize(Protocol):
    sessions: int
    tickets: int


@dataclass
class Sink:
    """A running bridge, its driver, and ``direct(count)`` → messages/s posted
    straight to the frontend with a minimal client."""

    bridge: BridgeProcess
    driver: Driver
    direct: Callable[[int], Awaitable[float]]


@contextlib.asynccontextmanager
async def slack_sink(
    size: SinkSize, directory: Path, database: BenchDatabase
) -> AsyncIterator[Sink]:
    async with SlackFake() as fake:
        bridge = BridgeProcess(directory, db_url=database.url, sessions=size.sessions, fake=fake)
        driver = SlackDriver(bridge, fake, tickets=size.tickets)
        async with bridge.running():
            await driver.open_tickets()
            yield Sink(bridge, driver, lambda count: slack_direct(driver, count))


@contextlib.asynccontextmanager
async def synapse_sink(
    size: SinkSize, directory: Path, database: BenchDatabase
) -> AsyncIterator[Sink]:
    endpoints = new_endpoints()
    bridge = BridgeProcess(directory, db_url=database.url, sessions=size.sessions, matrix=endpoints)
    async with (
        homeserver_for(directory / "synapse", bridge, endpoints) as hs,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        bridge.running(),
    ):
        driver = MatrixDriver(bridge, hs, http, tickets=size.tickets)
        await driver.open_tickets()
        yield Sink(bridge, driver, lambda count: direct_sends(driver, count))


SETUPS = {"slack": slack_sink, "synapse": synapse_sink}


async def slack_direct(driver: SlackDriver, count: int) -> float:
    """``count`` ``chat.postMessage`` calls to the fake, one lane per ticket."""
    fake = driver.fake
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    per_lane = max(1, count // len(driver.tickets))

    async def lane(ticket: Ticket) -> None:
        for seq in range(per_lane):
            await client.chat_postMessage(
                channel=ticket.channel,
                thread_ts=ticket.root,
                text=f"direct d{ticket.number}n{seq}",
                username=ticket.name,
            )

    t0 = time.monotonic()
    await asyncio.gather(*(lane(t) for t in driver.tickets))
    return per_lane * len(driver.tickets) / (time.monotonic() - t0)
