"""Driving a bridge subprocess both ways through a chat frontend, and reading every sink.

Customers speak through ``POST /sim/sessions/{s}/inbound`` with an explicit WhatsApp
id, resent until acknowledged (a phone does the same, with the same id). Attendants
speak in the ticket threads of the frontend: the Slack fake's Socket Mode (an
envelope the bridge did not acknowledge is redelivered on the next connection, as
Slack does) or a real Matrix user on a local Synapse (``bench.matrix``). Every text
is unique (``c<ticket>n<seq>`` / ``a<ticket>n<seq>``), so the sinks can be counted:
the frontend's thread messages (customer → chat) and the sim's outbound log
(chat → customer).
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import ATTENDANT, channel_of, customer_phone
from bench.proc import BridgeProcess
from tests.fakes.slack import SlackFake

CUSTOMER_TEXT = re.compile(r"\bc(\d+)n(\d+)\b")
ATTENDANT_TEXT = re.compile(r"\ba(\d+)n(\d+)\b")


@dataclass
class Ticket:
    number: int
    session: str
    phone: str
    root: str = ""  # the thread root: a Slack ts or a Matrix event id
    room: str = ""  # Matrix: the session's control room

    @property
    def channel(self) -> str:
        return channel_of(self.session)

    @property
    def name(self) -> str:
        return f"Cust{self.number}"


@dataclass
class Sent:
    """When each unique text left the driver (``time.monotonic`` / ``time.time``)."""

    mono: dict[str, float] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)

    def mark(self, text: str) -> None:
        self.mono[text] = time.monotonic()
        self.wall[text] = time.time()


def by_ticket(texts: Sequence[str], pattern: re.Pattern[str]) -> dict[int, list[int]]:
    """Sequence numbers per ticket of the texts matching ``pattern``, in the given order."""
    found: dict[int, list[int]] = {}
    for text in texts:
        match = pattern.search(text)
        if match:
            found.setdefault(int(match[1]), []).append(int(match[2]))
    return found


class Driver(abc.ABC):
    """Customers through the sim, attendants through one frontend (a subclass)."""

    frontend = ""
    poll_seconds = 0.5  # between reads of the sinks while waiting for arrivals: each read
    # of the sim outbound log costs the bridge CPU (it serves /sim), and arrival times
    # come from the sinks' own timestamps, so reading less often changes no figure

    def __init__(self, bridge: BridgeProcess, *, tickets: int) -> None:
        self.bridge = bridge
        sessions = bridge.sessions
        self.tickets = [
            Ticket(t, sessions[t % len(sessions)], customer_phone(t)) for t in range(tickets)
        ]
        self.sent = Sent()
        self.resent = 0  # customer messages posted again after no acknowledgement
        self.redelivered = 0  # attendant messages that needed more than one try

    # --- what a frontend provides ----------------------------------------------------

    @abc.abstractmethod
    async def attendant(self, ticket: Ticket, text: str) -> None:
        """Post ``text`` in the ticket's thread as the attendant; return once accepted."""

    @abc.abstractmethod
    async def find_root(self, ticket: Ticket) -> str:
        """The ticket's thread root if it is visible yet, else ``""``."""

    @abc.abstractmethod
    async def frontend_texts(self) -> list[str]:
        """Every customer text that reached the frontend's threads, in thread order."""

    @abc.abstractmethod
    async def frontend_arrivals(self) -> dict[str, float]:
        """When (``time.time``) each customer text reached the frontend."""

    # --- shared ----------------------------------------------------------------------

    async def open_tickets(self, *, timeout: float = 60) -> None:  # noqa: ASYNC109
        """One greeting message per ticket, then wait for every thread root."""
        for ticket in self.tickets:
            await self.customer(ticket, f"hello{ticket.number}", wa_id=f"HELLO{ticket.number}")
        async with asyncio.timeout(timeout):
            while not all(t.root for t in self.tickets):
                for ticket in self.tickets:
                    ticket.root = ticket.root or await self.find_root(ticket)
                await asyncio.sleep(0.05)

    async def customer(self, ticket: Ticket, text: str, *, wa_id: str) -> None:
        body = {
            "from": ticket.phone,
            "push_name": ticket.name,
            "kind": "text",
            "text": text,
            "id": wa_id,
        }
        for attempt in range(6000):  # bounded: 6000 × ≤ 50 ms
            status = await self.bridge.inbound(ticket.session, body)
            if status == 200:
                return
            if attempt == 0:
                self.resent += 1
            await asyncio.sleep(0.05)
        raise RuntimeError(f"customer message {text} never acknowledged")

    async def run(
        self,
        *,
        per_ticket: int,
        rate: float,
        offset: int = 0,
        on_progress: asyncio.Queue[int] | None = None,
    ) -> Sent:
        """Every ticket: ``per_ticket`` customer messages and as many attendant replies,
        each side in order; ``rate`` messages/s in total (0: as fast as answered).
        Sequence numbers start at ``offset``; returns when each text was sent."""
        sent = Sent()
        counter = [0]

        async def send(ticket: Ticket, side: str, seq: int) -> None:
            text = f"{side}{ticket.number}n{seq}"
            sent.mark(text)
            if side == "c":
                await self.customer(ticket, text, wa_id=f"BENCH{ticket.number}N{seq}")
            else:
                await self.attendant(ticket, text)
            counter[0] += 1
            if on_progress is not None:
                on_progress.put_nowait(counter[0])

        self.sent = sent
        lanes = [(t, side) for t in self.tickets for side in ("c", "a")]
        await paced_lanes(lanes, send, offset=offset, per_lane=per_ticket, rate=rate)
        return sent

    async def whatsapp_entries(self) -> list[dict]:
        entries: list[dict] = []
        for session in self.bridge.sessions:
            entries += await self.bridge.outbound(session)
        return entries

    async def whatsapp_texts(self) -> list[str]:
        """Every text the bridge sent to customers, oldest first per session."""
        return [str(e.get("text", "")) for e in await self.whatsapp_entries()]

    async def whatsapp_arrivals(self) -> dict[str, float]:
        """When (``time.time``, the sim's timestamp) each attendant text reached WhatsApp."""
        arrivals: dict[str, float] = {}
        for entry in await self.whatsapp_entries():
            match = ATTENDANT_TEXT.search(str(entry.get("text", "")))
            if match:
                arrivals.setdefault(match[0], float(entry["timestamp"]))
        return arrivals

    async def counted(self) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        """(customer texts per ticket at the frontend, attendant texts at WhatsApp)."""
        chat = by_ticket(await self.frontend_texts(), CUSTOMER_TEXT)
        return chat, by_ticket(await self.whatsapp_texts(), ATTENDANT_TEXT)

    async def wait_delivered(
        self,
        *,
        per_ticket: int,
        timeout: float,  # noqa: ASYNC109
        stall: float | None = None,
        both_ways: bool = True,
    ) -> None:
        """Until every text reached its sink, or ``timeout`` s, or (``stall``) nothing
        new arrived for ``stall`` s; then counting shows what was lost."""
        want = len(self.tickets) * per_ticket
        deadline = time.monotonic() + timeout
        arrived, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            chat, wa = await self.counted()
            chat_n = sum(len(set(v)) for v in chat.values())
            wa_n = sum(len(set(v)) for v in wa.values())
            if chat_n >= want and (not both_ways or wa_n >= want):
                return
            if chat_n + wa_n != arrived:
                arrived, last_change = chat_n + wa_n, time.monotonic()
            elif stall is not None and time.monotonic() - last_change > stall:
                return
            await asyncio.sleep(max(self.poll_seconds, 0.2))


class SlackDriver(Driver):
    frontend = "slack"

    def __init__(self, bridge: BridgeProcess, fake: SlackFake, *, tickets: int) -> None:
        super().__init__(bridge, tickets=tickets)
        self.fake = fake

    async def find_root(self, ticket: Ticket) -> str:
        for message in self.fake.messages(ticket.channel):
            if message.get("blocks") and ticket.phone in message.get("text", ""):
                return str(message["ts"])
        return ""

    async def attendant(self, ticket: Ticket, text: str) -> None:
        event = self.fake.user_message(ticket.channel, ATTENDANT, text, thread_ts=ticket.root)
        envelope = await self.fake.send_event(event)
        for attempt in range(120):  # bounded: 120 × 5 s
            try:
                await self.fake.wait_ack(envelope, timeout=5)
                return
            except TimeoutError:
                if attempt == 0:
                    self.redelivered += 1
        raise RuntimeError(f"attendant message {text} never acknowledged")

    async def frontend_texts(self) -> list[str]:
        """Customer messages (posted with a ``username``) in channel order."""
        texts: list[str] = []
        for channel in dict.fromkeys(t.channel for t in self.tickets):
            texts += [
                str(m.get("text", "")) for m in self.fake.messages(channel) if m.get("username")
            ]
        return texts

    async def frontend_arrivals(self) -> dict[str, float]:
        """``chat.postMessage`` arrival at the fake of each customer text."""
        mono_to_wall = time.time() - time.monotonic()
        arrivals: dict[str, float] = {}
        for call in self.fake.calls_of("chat.postMessage"):
            match = CUSTOMER_TEXT.search(str(call.args.get("text", "")))
            if match and call.response and call.response.get("ok"):
                arrivals.setdefault(match[0], call.at + mono_to_wall)
        return arrivals


async def paced_lanes(
    lanes: Sequence[tuple[Any, ...]],
    send: Callable[..., Awaitable[None]],
    *,
    offset: int,
    per_lane: int,
    rate: float,
) -> None:
    """Each lane calls ``send(*lane, seq)`` for ``per_lane`` sequence numbers from
    ``offset``, one at a time; ``rate`` messages/s over all lanes (0: unpaced). The
    lanes' schedules are staggered by ``1 / rate``, so messages arrive evenly
    rather than in one burst per lane period."""
    gap = len(lanes) / rate if rate > 0 else 0.0
    t0 = time.monotonic()

    async def one(index: int, lane: tuple[Any, ...]) -> None:
        start = t0 + index / rate if rate > 0 else t0
        for n in range(per_lane):
            if gap:
                delay = start + n * gap - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await send(*lane, offset + n)

    await asyncio.gather(*(one(index, lane) for index, lane in enumerate(lanes)))


def loss_report(found: dict[int, list[int]], *, tickets: int, per_ticket: int) -> dict[str, int]:
    """Lost, duplicated and out-of-order counts of one sink."""
    lost = duplicated = out_of_order = 0
    for t in range(tickets):
        seqs = found.get(t, [])
        counts = Counter(seqs)
        lost += sum(1 for s in range(per_ticket) if s not in counts)
        duplicated += sum(c - 1 for c in counts.values())
        firsts = list(dict.fromkeys(seqs))
        out_of_order += sum(1 for a, b in itertools.pairwise(firsts) if b < a)
    return {"lost": lost, "duplicated": duplicated, "out_of_order": out_of_order}
