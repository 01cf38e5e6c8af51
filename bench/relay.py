"""Relay throughput and latency, both ways, through the sim engine.

    python -m bench.relay [--sink null|slack|synapse|all|both] [--db sqlite|postgres|both]
                          [--sessions 5] [--tickets 50] [--messages 2000] [--rate 500]
                          [--profile FILE] [--smoke] [--instances 1,2,3]

With ``--instances``, the Slack sink on PostgreSQL only, through a cluster of that
many bridges per run (``bench.cluster_relay``, CPU per instance and of PostgreSQL).

For each sink and database, two phases over the same tickets (each already opened
and answered once): ``max`` (every ticket's customer and attendant send as fast as
the bridge acknowledges, one message at a time per ticket and side) and ``paced``
(``--rate`` messages/s in total, spread evenly). ``--messages`` is per direction.

Sinks and how the bridge's CPU is measured:

- ``null``: the bridge in this process (``bridge.app.Bridge``, real clock) with a
  frontend that records only ids and arrival times. Customers go through
  ``SimEngine.inbound``, attendants through ``Relay.attendant_event``: each returns
  once the work is persisted, as the real sources do. CPU: ``time.process_time()``
  of this process (the driver's share is a few dict builds per message).
- ``slack``: the bridge as a subprocess (``python -m bridge run``), the Slack fake in
  this process; customers through ``POST /sim/.../inbound``, attendants through the
  fake's Socket Mode. CPU: the child's user + system time from ``/proc/<pid>/stat``,
  so the fake's and the driver's work are not counted; what the bridge spends
  serving the driver's reads of the sim's outbound log is, so that log is read only
  once every customer message reached the chat.
- ``synapse``: the bridge as a subprocess with ``homeserver``/``appservice`` pointing
  at a real local Synapse (``bench.matrix``; started for the run, SQLite). Customers
  through ``POST /sim/.../inbound``; the attendant is a registered Matrix user
  (``@bob:localhost``) who joins the control rooms and posts into each ticket's thread
  (``m.thread`` relation to the root) with ``PUT /send``. CPU: the child's, as for
  Slack (Synapse's own CPU is not counted, though it shares the 2 cores).

``--sink all`` (the default) runs the three; ``--sink both`` keeps its old meaning,
null and slack.

Latency: from the moment the driver hands a message over (``time.time``) to its
arrival at the sink: the null frontend's ``post``; the fake's ``chat.postMessage``;
for Synapse the event's ``origin_server_ts`` (the homeserver's clock when it accepted
the bridge's ``PUT``, same machine, millisecond resolution), read back afterwards
with ``/messages`` by the attendant, so reading never shifts it; toward WhatsApp the
sim's outbound log timestamp. It includes persisting, the outbox hop and the
delivery; for the attendant's side, Synapse's appservice push to the bridge too.
p50/p95/p99 are over both directions; ``to_chat_p50_ms``/``_p99_ms`` (customer →
frontend) and ``to_whatsapp_*`` (attendant → WhatsApp) split them.

Direct: the same number of messages posted straight to the sinks with a minimal
client: ``NullFrontend.post`` and ``SimEngine.send`` calls; for Slack, both
directions' worth against a fake of its own (``bench.sinks.slack_direct``): half
``chat.postMessage`` calls into the tickets' threads, half attendant messages over
Socket Mode, each acknowledged by a raw websocket client, one lane per ticket and
side; for Synapse, ``PUT /rooms/{room}/send/m.room.message/{txn}`` with the
appservice token puppeting each ticket's ghost (``?user_id=``) into its thread, as
the bridge posts a customer message (both directions' worth, one lane per ticket).
``bridge/direct`` is bridge messages/s over direct messages/s.

Slack's direct was until 2026-12 every message a ``chat.postMessage`` through
slack_sdk's ``AsyncWebClient``: half the bridge's messages are attendants' (an
envelope out and an ack back, no post), and slack_sdk's client spent the fake's
process CPU, so that ratio compared unlike work. Neither side counts the WhatsApp
half of an attendant's message (the sim runs inside the bridge, out of a direct
client's reach), and the bridge's runs, unlike the direct, also carry the driver's
``POST /sim/.../inbound`` per customer message in the fake's process.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import time
import uuid
from pathlib import Path
from typing import Any

from bench import cluster_relay
from bench.common import (
    ATTENDANT,
    DB_CHOICES,
    NullFrontend,
    bench_database,
    bridge_config,
    cpu_seconds,
    customer_phone,
    emit,
    engines,
    percentiles,
    session_names,
    table,
    temp_dir,
)
from bench.drive import ATTENDANT_TEXT, paced_lanes
from bench.sinks import SETUPS, Sink
from bench.statements import StatementCounter
from bridge.app import Bridge
from bridge.clock import SystemClock
from bridge.config import parse_config
from bridge.core.frontend import Attendant, AttendantPost, Author, AuthorKind, ChatAddress
from bridge.model import Text
from bridge.whatsapp.sim import SimEngine
from tests.harness.core import free_port

SINKS = ("null", "slack", "synapse")  # the subprocess sinks are set up in bench.sinks
SINK_SETS = {"all": SINKS, "both": ("null", "slack")}
PACED = 1_000_000  # sequence numbers of the paced phase start here
DELIVERY_TIMEOUT = 300  # s after the last send, for every message to arrive


def _record(
    *,
    sink: str,
    engine: str,
    phase: str,
    count: int,
    elapsed: float,
    cpu: float,
    to_chat: list[float],
    to_whatsapp: list[float],
    direct_rate: float | None,
    delivered: int,
) -> dict[str, Any]:
    """One phase's figures; latencies in s, customer → chat and attendant → WhatsApp."""
    rate = delivered / elapsed if elapsed > 0 else 0.0
    return {
        "bench": "relay",
        "sink": sink,
        "db": engine,
        "phase": phase,
        "messages": count,
        "delivered": delivered,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(rate, 1),
        "cpu_ms_per_msg": round(cpu * 1000 / max(delivered, 1), 3),
        **percentiles(to_chat + to_whatsapp),
        "direct_msgs_per_s": round(direct_rate, 1) if direct_rate else None,
        "bridge_over_direct": round(rate / direct_rate, 3) if direct_rate else None,
        **_one_way("to_chat", to_chat),
        **_one_way("to_whatsapp", to_whatsapp),
    }


def _one_way(prefix: str, latencies: list[float]) -> dict[str, float | None]:
    figures = percentiles(latencies)
    return {f"{prefix}_p50_ms": figures["p50_ms"], f"{prefix}_p99_ms": figures["p99_ms"]}


# --- the null sink, in process -------------------------------------------------------


class NullRun:
    def __init__(self, bridge: Bridge, null: NullFrontend, *, tickets: int) -> None:
        self.bridge = bridge
        self.null = null
        names = session_names(len(bridge.session_specs))
        self.tickets = [
            (t, f"acme/{names[t % len(names)]}", customer_phone(t)) for t in range(tickets)
        ]
        self.places: dict[int, ChatAddress] = {}

    @property
    def sim(self) -> SimEngine:
        assert isinstance(self.bridge.engine, SimEngine)
        return self.bridge.engine

    async def customer(self, key: str, phone: str, text: str, number: int) -> None:
        body = {"from": phone, "push_name": f"Cust{number}", "kind": "text", "text": text}
        await self.sim.inbound(key, body)

    async def attendant(self, number: int, text: str) -> None:
        await self.bridge.relay.attendant_event(
            AttendantPost(
                frontend="null",
                place=self.places[number],
                event_id=uuid.uuid4().hex,
                attendant=Attendant(ATTENDANT, "Bob"),
                content=Text(text),
            )
        )

    async def open_tickets(self) -> None:
        for number, key, phone in self.tickets:
            await self.customer(key, phone, f"hello{number}", number)
        db = self.bridge.db_required
        async with asyncio.timeout(60):
            while len(self.places) < len(self.tickets):
                for number, _key, phone in self.tickets:
                    ticket_id = await db.fetchval(
                        "SELECT t.id FROM tickets t JOIN contacts c ON c.id = t.contact_id "
                        "WHERE c.phone = $1",
                        phone,
                    )
                    if ticket_id is not None and ticket_id in self.null.threads:
                        self.places[number] = self.null.threads[ticket_id]
                await asyncio.sleep(0.02)
        for number, _key, _phone in self.tickets:
            await self.attendant(number, f"welcome{number}")
        await self._drain(lambda: True)

    async def _drain(self, done: Any, timeout: float = 120) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not done():  # noqa: ASYNC110 - polling
                await asyncio.sleep(0.002)
        self.bridge.outbox.wake()
        await asyncio.wait_for(self.bridge.outbox.wait_idle(), timeout)

    def _wa_arrivals(self) -> dict[str, float]:
        arrivals: dict[str, float] = {}
        for key in {key for _number, key, _phone in self.tickets}:
            for entry in self.sim.outbound(key):
                match = ATTENDANT_TEXT.search(str(entry.get("text", "")))
                if match:
                    arrivals[match[0]] = float(entry["timestamp"])
        return arrivals

    async def phase(self, *, offset: int, per_ticket: int, rate: float) -> dict[str, Any]:
        """Both sides of every ticket; sequence numbers from ``offset`` keep phases apart."""
        sent_in: dict[str, float] = {}
        sent_out: dict[str, float] = {}

        async def send(number: int, key: str, phone: str, side: str, seq: int) -> None:
            text = f"{side}{number}n{seq}"
            if side == "c":
                sent_in[text] = time.monotonic()
                await self.customer(key, phone, text, number)
            else:
                sent_out[text] = time.time()
                await self.attendant(number, text)

        lanes = [(n, k, p, side) for n, k, p in self.tickets for side in ("c", "a")]
        cpu0, t0 = time.process_time(), time.monotonic()
        await paced_lanes(lanes, send, offset=offset, per_lane=per_ticket, rate=rate)
        await self._drain(lambda: sent_in.keys() <= self.null.posted.keys())
        async with asyncio.timeout(120):
            while not sent_out.keys() <= (arrivals := self._wa_arrivals()).keys():  # noqa: ASYNC110 - polling
                await asyncio.sleep(0.01)
        cpu = time.process_time() - cpu0
        ins = [self.null.posted[t] - s for t, s in sent_in.items()]
        outs = [arrivals[t] - s for t, s in sent_out.items() if t in arrivals]
        wall_to_mono = time.monotonic() - time.time()
        ends = [self.null.posted[t] for t in sent_in]
        ends += [arrivals[t] + wall_to_mono for t in sent_out if t in arrivals]
        return {
            "count": len(sent_in) + len(sent_out),
            "delivered": len(ins) + len(outs),
            "elapsed": max(ends) - t0,
            "cpu": cpu,
            "to_chat": ins,
            "to_whatsapp": outs,
        }

    async def direct(self, count: int) -> float:
        """``count`` messages straight to the same sinks, as many lanes as tickets."""
        author = Author(AuthorKind.CUSTOMER, "Cust")
        per_lane = max(1, count // (2 * len(self.tickets)))

        async def lane(number: int, key: str, phone: str) -> None:
            for seq in range(per_lane):
                await self.null.post(
                    self.places[number], author, Text(f"d{number}n{seq}"), reply_to=None, txn_id="d"
                )
                await self.sim.send(key, phone, Text(f"d{number}n{seq}"))

        t0 = time.monotonic()
        await asyncio.gather(*(lane(n, k, p) for n, k, p in self.tickets))
        return 2 * per_lane * len(self.tickets) / (time.monotonic() - t0)


async def _run_null(args: argparse.Namespace, engine: str) -> list[dict[str, Any]]:
    records = []
    with temp_dir("zb-relay-") as tmp:
        async with bench_database(engine, Path(tmp)) as database:
            db = await database.connect()
            text = bridge_config(
                db_url="sqlite::memory:",
                port=free_port(),
                sessions=args.sessions,
                group_commit_ms=args.group_commit_ms,
            )
            config = parse_config(text, path=Path(tmp) / "config.yaml")
            null = NullFrontend()
            bridge = Bridge(config, clock=SystemClock(), frontends=[null], database=db)
            try:
                await bridge.start()
                async with asyncio.timeout(30):
                    while any(str(s) != "CONNECTED" for s in bridge.sessions.statuses().values()):  # noqa: ASYNC110 - polling
                        await asyncio.sleep(0.01)
                run = NullRun(bridge, null, tickets=args.tickets)
                await run.open_tickets()
                per_ticket = max(1, args.messages // args.tickets)
                profiler = cProfile.Profile() if args.profile else None
                counter = StatementCounter()
                if profiler is not None:
                    counter.attach(db)
                    profiler.enable()
                figures = await run.phase(offset=0, per_ticket=per_ticket, rate=0)
                if profiler is not None:
                    profiler.disable()
                    _save_profile(profiler, Path(f"{args.profile}.{engine}"))
                    report = counter.report(figures["count"])
                    await asyncio.to_thread(
                        Path(f"{args.profile}.{engine}.statements.txt").write_text, report
                    )
                direct = await run.direct(figures["count"])
                records.append(
                    _record(sink="null", engine=engine, phase="max", direct_rate=direct, **figures)
                )
                figures = await run.phase(offset=PACED, per_ticket=per_ticket, rate=args.rate)
                records.append(
                    _record(
                        sink="null",
                        engine=engine,
                        phase=f"paced@{args.rate:g}",
                        direct_rate=None,
                        **figures,
                    )
                )
            finally:
                await bridge.stop()
                await db.close()
    return records


def _save_profile(profiler: cProfile.Profile, path: Path) -> None:
    profiler.dump_stats(str(path))
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    path.with_suffix(path.suffix + ".txt").write_text(out.getvalue())


# --- the Slack and Synapse sinks, bridge in a subprocess ---------------------------------


async def _subprocess_phase(
    sink: Sink, *, offset: int, per_ticket: int, rate: float
) -> dict[str, Any]:
    driver, pid = sink.driver, sink.bridge.pid
    cpu0, t0 = cpu_seconds(pid), time.time()
    sent = await driver.run(per_ticket=per_ticket, rate=rate, offset=offset)
    to_chat = [t for t in sent.wall if t.startswith("c")]
    async with asyncio.timeout(DELIVERY_TIMEOUT):
        while True:
            # The sim's outbound log is read only once every customer text reached the
            # chat: the bridge serves it (its whole log, as JSON, per session), and
            # while its outbox drained a backlog these reads took 7-10 % of its CPU.
            chat = await driver.frontend_arrivals()
            if all(t in chat for t in to_chat):
                wa = await driver.whatsapp_arrivals()
                if all(t in chat or t in wa for t in sent.wall):
                    break
            await asyncio.sleep(driver.poll_seconds)
    cpu = cpu_seconds(pid) - cpu0
    ends = {t: chat[t] if t.startswith("c") else wa[t] for t in sent.wall}
    return {
        "count": len(sent.wall),
        "delivered": len(ends),
        "elapsed": max(ends.values()) - t0,
        "cpu": cpu,
        "to_chat": [ends[t] - sent.wall[t] for t in sent.wall if t.startswith("c")],
        "to_whatsapp": [ends[t] - sent.wall[t] for t in sent.wall if t.startswith("a")],
    }


async def _run_subprocess(args: argparse.Namespace, engine: str, sink_name: str) -> list[dict]:
    records = []
    per_ticket = max(1, args.messages // args.tickets)
    with temp_dir(f"zb-relay-{sink_name}-") as tmp:
        async with (
            bench_database(engine, Path(tmp)) as database,
            SETUPS[sink_name](args, Path(tmp), database) as sink,
        ):
            for ticket in sink.driver.tickets:
                await sink.driver.attendant(ticket, f"welcome{ticket.number}")
            figures = await _subprocess_phase(sink, offset=0, per_ticket=per_ticket, rate=0)
            direct = await sink.direct(figures["count"])
            records.append(
                _record(sink=sink_name, engine=engine, phase="max", direct_rate=direct, **figures)
            )
            figures = await _subprocess_phase(
                sink, offset=PACED, per_ticket=per_ticket, rate=args.rate
            )
            records.append(
                _record(
                    sink=sink_name,
                    engine=engine,
                    phase=f"paced@{args.rate:g}",
                    direct_rate=None,
                    **figures,
                )
            )
    return records


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sink",
        choices=(*SINKS, *SINK_SETS),
        default="all",
        help="all: every sink; both: null and slack (its meaning before the synapse sink)",
    )
    parser.add_argument("--db", choices=DB_CHOICES, default="both")
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--tickets", type=int, default=50, help="concurrent tickets")
    parser.add_argument("--messages", type=int, default=2000, help="per direction, per phase")
    parser.add_argument("--rate", type=float, default=500, help="paced phase: messages/s in all")
    parser.add_argument(
        "--profile",
        help="cProfile the null sink's max phase into FILE.<db>(.txt), statements per "
        "message into FILE.<db>.statements.txt",
    )
    parser.add_argument(
        "--group-commit-ms",
        type=float,
        help="database.group_commit_ms of the null sink's bridge (default: the config's)",
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds in all")
    parser.add_argument(
        "--instances", help="comma list of instance counts: a cluster per count (slack, postgres)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.sessions, args.tickets, args.messages, args.rate = 2, 4, 40, 200
    return args


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    records = []
    if args.instances:
        for count in (int(n) for n in args.instances.split(",")):
            for record in await cluster_relay.run_instances(args, count):
                emit(record)
                records.append(record)
        return records
    sinks = SINK_SETS.get(args.sink, (args.sink,))
    for engine in engines(args.db):
        for sink in sinks:
            runs = await (
                _run_null(args, engine) if sink == "null" else _run_subprocess(args, engine, sink)
            )
            for record in runs:
                emit(record)
                records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    records = asyncio.run(main_async(args))
    columns = [
        *(["instances", "instance_cpu_ms_per_msg", "postgres_cpu_ms_per_msg", "machine_busy"]
          if args.instances else []),
        "sink", "db", "phase", "delivered", "seconds", "msgs_per_s", "cpu_ms_per_msg",
        "p50_ms", "p95_ms", "p99_ms", "direct_msgs_per_s", "bridge_over_direct",
        "to_chat_p99_ms", "to_whatsapp_p99_ms",
    ]  # fmt: skip
    print()
    print(table(records, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
