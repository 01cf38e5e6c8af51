"""The Matrix side of the benchmarks: a local Synapse, a minimal client, a reader.

- :class:`BenchHomeserver`: a real Synapse (``bridge.matrix.local_synapse``) whose
  appservice registration is built from the bridge subprocess's own config, with the
  attendant ``@bob:localhost`` registered; it can be stopped and started again on the
  same port and data (the ``synapse-restart`` fault).
- :class:`MatrixClient`: the client-server API over one aiohttp session: a user's
  token, or the appservice token puppeting one of its users (``?user_id=``).
- :class:`TimelineReader`: every event of the control rooms, read forward with
  ``GET /rooms/{room}/messages?dir=f`` from the room's start, then from the last
  ``end`` token; kept in timeline order and once per event id, so a duplicate is two
  events with the same text, never one event read twice.
- :class:`MatrixDriver`: the bench driver whose attendant is that Matrix user,
  posting into the ticket threads (``m.thread`` relation to the root).

Arrival at Matrix is the event's ``origin_server_ts``: the homeserver's wall clock
when it accepted the event, on the same machine as the driver (millisecond
resolution). It is read back afterwards, so polling never delays or shifts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.common import MATRIX_ATTENDANT, MATRIX_DOMAIN, MatrixEndpoints
from bench.drive import CUSTOMER_TEXT, Driver, Ticket
from bench.proc import BridgeProcess
from bridge.matrix.local_synapse import LocalSynapse, free_port
from bridge.matrix.registration import build_registration

ROOM_STATE = "io.zapbridge.room"
CLIENT = "/_matrix/client/v3"
RETRY_SECONDS = 0.05


def new_endpoints() -> MatrixEndpoints:
    """Free ports and fresh tokens for one bridge and its homeserver."""
    return MatrixEndpoints(
        hs_port=free_port(),
        as_port=free_port(),
        as_token=secrets.token_hex(16),
        hs_token=secrets.token_hex(16),
    )


class MatrixCallError(Exception):
    """The homeserver answered an error (``status``) or was unreachable (``status`` 0)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


class MatrixClient:
    """One Matrix identity on one homeserver."""

    def __init__(
        self, http: aiohttp.ClientSession, address: str, token: str, *, puppet: str | None = None
    ) -> None:
        self._http = http
        self._address = address
        self._headers = {"Authorization": f"Bearer {token}"}
        self._query = {"user_id": puppet} if puppet else {}

    async def call(
        self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None
    ) -> dict[str, Any]:
        params = {**self._query, **(query or {})}
        try:
            async with self._http.request(
                method, self._address + path, json=body, headers=self._headers, params=params
            ) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise MatrixCallError(resp.status, str(data))
                return dict(data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MatrixCallError(0, repr(exc)) from exc

    async def send(self, room: str, content: dict[str, Any], *, txn: str) -> str:
        """``PUT /rooms/{room}/send/m.room.message/{txn}`` → the event id."""
        path = f"{CLIENT}/rooms/{quote(room)}/send/m.room.message/{quote(txn)}"
        return str((await self.call("PUT", path, content))["event_id"])

    async def send_until_accepted(
        self,
        room: str,
        content: dict[str, Any],
        *,
        txn: str,
        timeout: float = 300,  # noqa: ASYNC109
    ) -> tuple[str, int]:
        """``send``, retried with the same ``txn`` while the homeserver is away or
        failing (as Element does); → (event id, attempts)."""
        attempts = 0
        async with asyncio.timeout(timeout):
            while True:
                attempts += 1
                try:
                    return await self.send(room, content, txn=txn), attempts
                except MatrixCallError as exc:
                    if not exc.transient:
                        raise
                await asyncio.sleep(RETRY_SECONDS)

    async def invited_rooms(self) -> list[str]:
        data = await self.call("GET", f"{CLIENT}/sync", query={"timeout": "0"})
        return list(data.get("rooms", {}).get("invite", {}))

    async def joined_rooms(self) -> list[str]:
        return list((await self.call("GET", f"{CLIENT}/joined_rooms"))["joined_rooms"])

    async def join(self, room: str) -> None:
        await self.call("POST", f"{CLIENT}/join/{quote(room)}", {})

    async def state(self, room: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        return await self.call(
            "GET", f"{CLIENT}/rooms/{quote(room)}/state/{event_type}/{state_key}"
        )

    async def forward(
        self, room: str, since: str | None, *, limit: int = 1000
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The room's events after ``since`` (the room's start if None), oldest first,
        and the token to continue from (None once at the end)."""
        query = {"dir": "f", "limit": str(limit)} | ({"from": since} if since else {})
        data = await self.call("GET", f"{CLIENT}/rooms/{quote(room)}/messages", query=query)
        return list(data.get("chunk", [])), data.get("end")


class TimelineReader:
    """Every event of some rooms, in timeline order, each event id once."""

    def __init__(self, client: MatrixClient) -> None:
        self._client = client
        self._since: dict[str, str | None] = {}
        self._seen: set[str] = set()
        self.events: dict[str, list[dict[str, Any]]] = {}

    def follow(self, room: str) -> None:
        self._since.setdefault(room, None)
        self.events.setdefault(room, [])

    async def poll(self) -> None:
        """Read what is new in every followed room."""
        for room in self._since:
            while True:
                chunk, end = await self._client.forward(room, self._since[room])
                self._keep(room, chunk)
                if end is None or not chunk:
                    break
                self._since[room] = end

    def _keep(self, room: str, chunk: list[dict[str, Any]]) -> None:
        for event in chunk:
            if event["event_id"] not in self._seen:
                self._seen.add(event["event_id"])
                self.events[room].append(event)


class BenchHomeserver:
    """A local Synapse serving one bridge subprocess, and the attendant's account."""

    def __init__(self, directory: Path, bridge: BridgeProcess, endpoints: MatrixEndpoints) -> None:
        self.synapse = LocalSynapse(
            directory, registration=build_registration(bridge.config), port=endpoints.hs_port
        )
        self.endpoints = endpoints
        self.attendant_token = ""
        self.downtime: list[float] = []  # seconds each restart left the homeserver away

    @property
    def address(self) -> str:
        return self.synapse.address

    async def start(self) -> None:
        await self.synapse.start()
        _, self.attendant_token = await self.synapse.register_user(
            MATRIX_ATTENDANT, secrets.token_hex(8)
        )

    async def restart(self, *, down_seconds: float) -> None:
        """Stop Synapse (SIGTERM), keep it away ``down_seconds``, start it again."""
        began = time.monotonic()
        await self.synapse.stop()
        await asyncio.sleep(down_seconds)
        await self.synapse.start()
        self.downtime.append(time.monotonic() - began)

    async def stop(self) -> None:
        await self.synapse.stop()


@contextlib.asynccontextmanager
async def homeserver_for(
    directory: Path, bridge: BridgeProcess, endpoints: MatrixEndpoints
) -> AsyncIterator[BenchHomeserver]:
    """A started homeserver for ``bridge`` (its registration), stopped afterwards."""
    hs = BenchHomeserver(directory, bridge, endpoints)
    try:
        await hs.start()
        yield hs
    finally:
        await hs.stop()


class MatrixDriver(Driver):
    """The attendant is ``@bob:localhost``: joins the control rooms it is invited to
    and posts into the ticket threads; the customer side reads the same rooms."""

    frontend = "matrix"

    def __init__(
        self,
        bridge: BridgeProcess,
        hs: BenchHomeserver,
        http: aiohttp.ClientSession,
        *,
        tickets: int,
    ) -> None:
        super().__init__(bridge, tickets=tickets)
        self.hs = hs
        self.http = http
        self.client = MatrixClient(http, hs.address, hs.attendant_token)
        self.reader = TimelineReader(self.client)
        self.rooms: dict[str, str] = {}  # session name → control room
        self._ghost_prefix = f"@{bridge.config.appservice.user_prefix}"
        self.client_user = f"@{MATRIX_ATTENDANT}:{MATRIX_DOMAIN}"

    async def join_control_rooms(self, *, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Accept the bridge's invitations to every session's control room."""
        async with asyncio.timeout(timeout):
            while len(self.rooms) < len(self.bridge.sessions):
                for room in await self.client.invited_rooms():
                    await self.client.join(room)
                for room in await self.client.joined_rooms():
                    state = await self.client.state(room, ROOM_STATE)
                    self.rooms[state["session"]] = room
                await asyncio.sleep(0.05)
        for ticket in self.tickets:
            ticket.room = self.rooms[ticket.session]
            self.reader.follow(ticket.room)

    async def open_tickets(self, *, timeout: float = 60) -> None:  # noqa: ASYNC109
        await self.join_control_rooms(timeout=timeout)
        await super().open_tickets(timeout=timeout)

    async def find_root(self, ticket: Ticket) -> str:
        """The bot's card ``Ticket #<id> · <name> (<phone>) · <status>`` (not an edit)."""
        await self.reader.poll()
        for event in self.reader.events[ticket.room]:
            content = event.get("content") or {}
            body = str(content.get("body", ""))
            if "m.relates_to" not in content and body.startswith("Ticket #"):
                if f"({ticket.phone})" in body:
                    return str(event["event_id"])
        return ""

    async def attendant(self, ticket: Ticket, text: str) -> None:
        content = {
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": {"rel_type": "m.thread", "event_id": ticket.root},
        }
        _, attempts = await self.client.send_until_accepted(ticket.room, content, txn=f"b-{text}")
        if attempts > 1:
            self.redelivered += 1

    def customer_events(self) -> list[dict[str, Any]]:
        """Messages from ghosts (customers) in the ticket threads, in timeline order."""
        found = []
        for room in dict.fromkeys(t.room for t in self.tickets):
            for event in self.reader.events[room]:
                relation = (event.get("content") or {}).get("m.relates_to") or {}
                ghost = str(event.get("sender", "")).startswith(self._ghost_prefix)
                if ghost and relation.get("rel_type") == "m.thread":
                    found.append(event)
        return found

    async def frontend_texts(self) -> list[str]:
        await self.reader.poll()
        return [str(e["content"].get("body", "")) for e in self.customer_events()]

    async def frontend_arrivals(self) -> dict[str, float]:
        """``origin_server_ts`` of each customer text's first event."""
        await self.reader.poll()
        arrivals: dict[str, float] = {}
        for event in self.customer_events():
            match = CUSTOMER_TEXT.search(str(event["content"].get("body", "")))
            if match:
                arrivals.setdefault(match[0], event["origin_server_ts"] / 1000)
        return arrivals

    def attendant_events(self) -> dict[str, str]:
        """``room:event id`` of each attendant text the homeserver accepted (the key the
        bridge records a handled Matrix event under, in ``processed_events``)."""
        found: dict[str, str] = {}
        for room in dict.fromkeys(t.room for t in self.tickets):
            for event in self.reader.events[room]:
                if event.get("sender") == self.client_user:
                    body = str((event.get("content") or {}).get("body", ""))
                    found.setdefault(body, f"{room}:{event['event_id']}")
        return found

    def ghost_of(self, ticket: Ticket) -> str:
        """The customer's Matrix user, as seen in the thread."""
        for event in self.customer_events():
            if (event["content"].get("m.relates_to") or {}).get("event_id") == ticket.root:
                return str(event["sender"])
        raise LookupError(f"no customer message seen in the thread of {ticket.name}")


async def direct_sends(driver: MatrixDriver, count: int) -> float:
    """``count`` messages straight to Synapse, one lane per ticket: the appservice
    token puppeting the ticket's ghost, ``PUT /send`` into its thread, as the bridge
    posts a customer message; → messages/s."""
    as_token = driver.hs.endpoints.as_token
    per_lane = max(1, count // len(driver.tickets))
    stamp = secrets.token_hex(4)

    async def lane(ticket: Ticket) -> None:
        ghost = MatrixClient(
            driver.http, driver.hs.address, as_token, puppet=driver.ghost_of(ticket)
        )
        for seq in range(per_lane):
            content = {
                "msgtype": "m.text",
                "body": f"direct d{ticket.number}n{seq}",
                "m.relates_to": {"rel_type": "m.thread", "event_id": ticket.root},
            }
            await ghost.send(ticket.room, content, txn=f"d-{stamp}-{ticket.number}-{seq}")

    t0 = time.monotonic()
    await asyncio.gather(*(lane(t) for t in driver.tickets))
    return per_lane * len(driver.tickets) / (time.monotonic() - t0)
