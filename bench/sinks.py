"""A bridge subprocess with its chat frontend, running, and a driver for it.

``bench.relay`` (the ``slack`` and ``synapse`` sinks) and ``bench.faults`` use the
same set-ups: the Slack fake in this process, or a local Synapse with the attendant
``@bob:localhost``. Inside the context the bridge is up with every session
connected, and every ticket has its thread (``Driver.open_tickets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from bench.common import ATTENDANT, BenchDatabase
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
    """``count`` messages, both directions' worth, between minimal clients and a Slack
    fake of their own: half ``chat.postMessage`` calls into the tickets' threads (what
    the bridge makes of a customer's message), half attendant messages arriving over
    Socket Mode and acknowledged (what the bridge takes in); one lane per ticket and
    side, as the bridge is driven. Messages/s.

    Its own fake, because the bridge is connected to the bench's (it would be handed
    the envelopes); it starts as the bench's did, one thread root per ticket, and
    grows by as many messages, so both fakes do the same work per call. The clients
    share the fake's process, as the driver does in the bridge's runs; both are raw
    ``aiohttp`` (a JSON POST with the bot token; a websocket that sends back each
    envelope's id), the least a client can do."""
    tickets = driver.tickets
    per_lane = max(1, count // (2 * len(tickets)))
    async with SlackFake() as fake, aiohttp.ClientSession() as http:
        for ticket in tickets:
            fake.add_channel(ticket.channel, ticket.session)
        fake.add_user(ATTENDANT, name="bob", display_name="Bob")
        post = _poster(http, fake)
        roots = {
            t.number: await post(t.channel, None, f"card {t.phone}", "zapbridge") for t in tickets
        }

        async def customers(ticket: Ticket) -> None:
            for seq in range(per_lane):
                await post(
                    ticket.channel, roots[ticket.number], f"d{ticket.number}n{seq}", ticket.name
                )

        async def attendant(ticket: Ticket) -> None:
            for seq in range(per_lane):
                text = f"da{ticket.number}n{seq}"
                event = fake.user_message(
                    ticket.channel, ATTENDANT, text, thread_ts=roots[ticket.number]
                )
                await fake.wait_ack(await fake.send_event(event), timeout=60)

        async with _socket_acker(http, fake):
            t0 = time.monotonic()
            await asyncio.gather(*(customers(t) for t in tickets), *(attendant(t) for t in tickets))
            elapsed = time.monotonic() - t0
    return 2 * per_lane * len(tickets) / elapsed


def _poster(
    http: aiohttp.ClientSession, fake: SlackFake
) -> Callable[[str, str | None, str, str], Awaitable[str]]:
    url = f"{fake.api_url}chat.postMessage"
    headers = {"Authorization": f"Bearer {fake.bot_token}"}

    async def post(channel: str, root: str | None, text: str, username: str) -> str:
        args = {"channel": channel, "text": text}
        if username:
            args["username"] = username
        if root:
            args["thread_ts"] = root
        async with http.post(url, json=args, headers=headers) as resp:
            found = await resp.json()
        if not found.get("ok"):
            raise RuntimeError(f"direct chat.postMessage refused: {found}")
        return str(found["ts"])

    return post


@contextlib.asynccontextmanager
async def _socket_acker(http: aiohttp.ClientSession, fake: SlackFake) -> AsyncIterator[None]:
    """A Socket Mode connection to ``fake`` acknowledging every envelope at once."""
    headers = {"Authorization": f"Bearer {fake.app_token}"}
    async with http.post(f"{fake.api_url}apps.connections.open", headers=headers) as resp:
        url = str((await resp.json())["url"])
    async with http.ws_connect(url) as ws:

        async def ack_all() -> None:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    envelope_id = json.loads(message.data).get("envelope_id")
                    if envelope_id:
                        await ws.send_str(json.dumps({"envelope_id": envelope_id}))

        task = asyncio.create_task(ack_all())
        try:
            await fake.wait_connected()
            yield
        finally:
            await ws.close()
            await task
