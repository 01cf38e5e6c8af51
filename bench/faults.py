"""Loss under faults: the bridge as a subprocess, 5,000 messages each way, faults.

    python -m bench.faults [--faults kill,disconnect,slack-errors,synapse-restart,db-outage]
                           [--db sqlite|postgres|both] [--messages 5000] [--tickets 20]
                           [--sessions 4] [--rate 500] [--synapse-down 2] [--db-down 10]
                           [--smoke]

The bridge runs as ``python -m bridge run -c <config>`` with the sim engine
(``auto_pair``) and one chat frontend (``bench.sinks``): Slack in Socket Mode
against a ``SlackFake`` in this process (``slack.per_channel_per_second`` raised: the
fake has no limit), or, for ``synapse-restart``, Matrix against a real local Synapse.
Customers post through ``/sim/.../inbound`` with unique texts and explicit ids;
attendants answer in the ticket threads: through the fake's socket, or as the
Matrix user ``@bob:localhost`` (``PUT /send`` with an ``m.thread`` relation, retried
with the same transaction id while the homeserver is away, as Element does).
Variants:

- ``kill``: ``kill -9`` of the bridge once half the messages were sent, then a restart;
- ``disconnect``: every ``--disconnect-every`` s each sim session gets a ``disconnect``
  fault (the network refuses it for ``--disconnect-seconds``);
- ``slack-errors``: about 10 % of ``chat.postMessage`` calls answer 429 (Retry-After)
  and another 10 % answer HTTP 503, so 20 % in all;
- ``synapse-restart``: once half the messages were sent, Synapse is stopped (SIGTERM),
  kept away ``--synapse-down`` s, and started again on the same port and data; the
  bridge keeps running throughout.
- ``db-outage``: once half the messages were sent, the database is unavailable for
  ``--db-down`` s (``tests.harness.outage``). PostgreSQL: the run uses a throwaway
  database whose connections are terminated (``pg_terminate_backend``) and new ones
  refused (``ALLOW_CONNECTIONS false``); SQLite: another process holds the write lock
  (``BEGIN EXCLUSIVE``). Customer messages meanwhile are journaled by the bridge
  (answered 200, replayed in order once the database is back); attendant messages
  are not acknowledged, and the Slack fake redelivers an envelope unacknowledged for
  ``--slack-retry`` s (Slack retries after 3 s, then 1 and 5 minutes; compressed here
  so the run does not wait minutes). ``journaled`` and ``dropped`` are the bridge's
  ``zapbridge_inbound_journaled_total`` / ``zapbridge_inbound_dropped_total`` (WhatsApp
  events), ``slack_redeliveries`` the envelopes the fake sent again.

Afterwards every sink is counted by unique text: lost, duplicated, out of order per
ticket; plus dead letters left in the outbox. ``to_frontend_*`` counts the customer
texts at the frontend named in ``frontend`` (the fake's channels, or the ghosts'
events in the Matrix threads read back with ``/messages``); ``to_whatsapp_*`` the
attendant texts in the sim's outbound log. For Matrix,
``to_whatsapp_lost_never_pushed`` says how many of the lost attendant messages
Synapse accepted but never pushed to the bridge's appservice (the bridge has no
record of handling their event ids).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    DB_CHOICES,
    PG_URL,
    BenchDatabase,
    bench_database,
    emit,
    engines,
    table,
    temp_dir,
)
from bench.drive import Driver, SlackDriver, loss_report
from bench.matrix import MatrixDriver
from bench.proc import BridgeProcess
from bench.sinks import SETUPS, Sink
from tests.fakes.slack import SlackFake
from tests.harness.outage import (
    Outage,
    PostgresOutage,
    SQLiteLockProcess,
    throwaway_database,
)

FAULTS = ("kill", "disconnect", "slack-errors", "synapse-restart", "db-outage")
SINK_OF = {"synapse-restart": "synapse"}  # the others run against the Slack fake
ONE_OFF = ("kill", "synapse-restart", "db-outage")


async def _at_half(
    progress: asyncio.Queue[int], half: int, action: Callable[[], Awaitable[str]], events: list[str]
) -> None:
    """Once ``half`` messages were sent, run ``action`` and note what it says."""
    while await progress.get() < half:
        pass
    events.append(await action())


async def _kill_and_restart(bridge: BridgeProcess) -> str:
    bridge.kill()
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await bridge.start()
    return f"kill -9 at half, restarted in {time.monotonic() - started:.2f} s"


async def _restart_synapse(driver: Driver, down_seconds: float) -> str:
    assert isinstance(driver, MatrixDriver), "synapse-restart needs the synapse sink"
    await driver.hs.restart(down_seconds=down_seconds)
    return f"Synapse stopped at half, away {driver.hs.downtime[-1]:.2f} s"


async def _database_away(outage: Outage, seconds: float, watch: JournalWatch) -> str:
    started = time.monotonic()
    await outage.begin()
    began = time.monotonic() - started
    try:
        await asyncio.sleep(seconds)
    finally:
        await outage.end()
        watch.back_at = time.monotonic()
    terminated = getattr(outage, "terminated", None)
    killed = f", {terminated} connections terminated" if terminated is not None else ""
    return f"database away {seconds:g} s at half (taken in {began:.2f} s{killed})"


@contextlib.asynccontextmanager
async def outage_database(
    engine: str, directory: Path
) -> AsyncIterator[tuple[BenchDatabase, Outage]]:
    """A database of its own for the run, and the outage that takes it away."""
    if engine == "sqlite":
        path = directory / "bench.db"
        yield BenchDatabase("sqlite", f"sqlite:{path}", None), SQLiteLockProcess(path)
        return
    async with throwaway_database(PG_URL, prefix="zapbridge_bench") as url:
        yield BenchDatabase("postgres", url, None), PostgresOutage(PG_URL, url)


class JournalWatch:
    """The bridge's journal of WhatsApp events, read from /metrics every 0.25 s: its
    peak, and how long after the database came back it was empty again."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.back_at: float | None = None
        self.drained_after: float | None = None

    async def run(self, bridge: BridgeProcess) -> None:
        while True:  # cancelled when the run ends
            pending = (await _metric_values(bridge)).get("zapbridge_journal_pending")
            if pending is not None:
                self.peak = max(self.peak, pending)
                if self.back_at is not None and self.drained_after is None and pending == 0:
                    self.drained_after = time.monotonic() - self.back_at
            await asyncio.sleep(0.25)


async def _slack_retries(fake: SlackFake, after: float, counter: list[int]) -> None:
    """Slack's retries of unacknowledged events (compressed: every ``after`` s)."""
    while True:  # cancelled when the run ends
        counter[0] += await fake.retry_unacked(after=after)
        await asyncio.sleep(0.25)


async def _disconnect_every(bridge: BridgeProcess, every: float, seconds: float) -> int:
    count = 0
    while True:  # cancelled when the run ends
        await asyncio.sleep(every)
        for session in bridge.sessions:
            if await bridge.fault(session, "disconnect", seconds) == 200:
                count += 1


async def _slack_5xx(fake: SlackFake, every: int) -> None:
    """One HTTP 503 for every ``every`` ``chat.postMessage`` calls."""
    scripted = 0
    while True:  # cancelled when the run ends
        calls = len(fake.calls_of("chat.postMessage"))
        while scripted < calls // every:
            fake.script("chat.postMessage", error="service_unavailable", status=503)
            scripted += 1
        await asyncio.sleep(0.05)


def _inject(
    fault: str,
    sink: Sink,
    args: argparse.Namespace,
    *,
    half: int,
    events: list[str],
    outage: Outage | None,
    redeliveries: list[int],
    watch: JournalWatch,
) -> tuple[list[asyncio.Task[Any]], asyncio.Queue[int]]:
    """Start the fault: (background tasks, the queue the driver reports progress to).
    The first task of a one-off fault (``kill``, ``synapse-restart``, ``db-outage``)
    ends once done."""
    progress: asyncio.Queue[int] = asyncio.Queue()
    bridge, driver = sink.bridge, sink.driver
    if fault == "db-outage":
        assert outage is not None and isinstance(driver, SlackDriver)
        away = functools.partial(_database_away, outage, args.db_down, watch)
        return [
            asyncio.create_task(_at_half(progress, half, away, events)),
            asyncio.create_task(_slack_retries(driver.fake, args.slack_retry, redeliveries)),
        ], progress
    if fault == "kill":
        action: Callable[[], Awaitable[str]] = functools.partial(_kill_and_restart, bridge)
    elif fault == "synapse-restart":
        action = functools.partial(_restart_synapse, driver, args.synapse_down)
    elif fault == "disconnect":
        every, seconds = args.disconnect_every, args.disconnect_seconds
        return [asyncio.create_task(_disconnect_every(bridge, every, seconds))], progress
    else:
        assert isinstance(driver, SlackDriver)
        driver.fake.script_fraction("chat.postMessage", fraction=0.1, retry_after=1, seed=7)
        return [asyncio.create_task(_slack_5xx(driver.fake, every=10))], progress
    return [asyncio.create_task(_at_half(progress, half, action, events))], progress


@contextlib.asynccontextmanager
async def _database_for(
    fault: str, engine: str, directory: Path
) -> AsyncIterator[tuple[BenchDatabase, Outage | None]]:
    if fault == "db-outage":
        async with outage_database(engine, directory) as (database, outage):
            yield database, outage
        return
    async with bench_database(engine, directory) as database:
        yield database, None


async def run_variant(args: argparse.Namespace, fault: str, engine: str) -> dict[str, Any]:
    per_ticket = max(1, args.messages // args.tickets)
    size = {"tickets": args.tickets, "per_ticket": per_ticket}
    redeliveries = [0]
    watch = JournalWatch()
    with temp_dir("zb-faults-") as tmp:
        async with (
            _database_for(fault, engine, Path(tmp)) as (database, outage),
            SETUPS[SINK_OF.get(fault, "slack")](args, Path(tmp), database) as sink,
        ):
            driver = sink.driver
            events: list[str] = []
            half = per_ticket * args.tickets  # half of both directions
            helpers, progress = _inject(
                fault,
                sink,
                args,
                half=half,
                events=events,
                outage=outage,
                redeliveries=redeliveries,
                watch=watch,
            )
            # the watch runs to the end: the journal drains after the last send
            watcher = asyncio.create_task(watch.run(sink.bridge)) if outage else None
            try:
                started = time.monotonic()
                async with asyncio.timeout(args.timeout):
                    await driver.run(per_ticket=per_ticket, rate=args.rate, on_progress=progress)
                    if fault in ONE_OFF:
                        await helpers[0]  # the restart has finished
                for task in helpers:
                    task.cancel()
                if isinstance(driver, SlackDriver):
                    driver.fake.script_fraction(None, fraction=0)
                await driver.wait_delivered(
                    per_ticket=per_ticket, timeout=args.timeout, stall=args.stall
                )
                elapsed = time.monotonic() - started
                await asyncio.sleep(1.0)  # late duplicates, if any, show up too
                chat, wa = await driver.counted()
                dead = await _dead_letters(database)
                unpushed = await _never_pushed(database, driver, _missing(wa, **size))
                journal = await _journal_counts(sink.bridge)
            finally:
                if watcher is not None:
                    helpers.append(watcher)
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
    return {
        "bench": "faults",
        "fault": fault,
        "db": engine,
        "frontend": driver.frontend,
        "tickets": args.tickets,
        "messages_each_way": per_ticket * args.tickets,
        "seconds": round(elapsed, 2),
        **{f"to_frontend_{k}": v for k, v in loss_report(chat, **size).items()},
        **{f"to_whatsapp_{k}": v for k, v in loss_report(wa, **size).items()},
        "dead_letters": dead,
        "to_whatsapp_lost_never_pushed": unpushed,
        "customer_resends": driver.resent,
        "attendant_redeliveries": driver.redelivered,
        "slack_redeliveries": redeliveries[0],
        **journal,
        "journal_peak": watch.peak if fault == "db-outage" else None,
        "journal_drained_after_s": _rounded(watch.drained_after),
        "events": "; ".join(events),
    }


def _rounded(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


async def _journal_counts(bridge: BridgeProcess) -> dict[str, float | None]:
    """The bridge's journal counters for WhatsApp events (None when it does not answer)."""
    values = await _metric_values(bridge)
    return {
        "journaled": values.get("zapbridge_inbound_journaled_total"),
        "dropped": values.get("zapbridge_inbound_dropped_total"),
    }


async def _metric_values(bridge: BridgeProcess) -> dict[str, float]:
    """The bridge's metrics labelled ``journal="whatsapp"``, by name; {} if it does not answer."""
    assert bridge.http is not None
    try:
        async with bridge.http.get(f"{bridge.base}/metrics") as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("journal") == "whatsapp"
    }


def _missing(found: dict[int, list[int]], *, tickets: int, per_ticket: int) -> list[str]:
    """The attendant texts that never reached WhatsApp."""
    return [
        f"a{t}n{s}" for t in range(tickets) for s in range(per_ticket) if s not in found.get(t, [])
    ]


async def _never_pushed(database: Any, driver: Driver, lost: list[str]) -> int | None:
    """Of the ``lost`` attendant texts on Matrix, how many the homeserver accepted but
    never pushed to the bridge: the bridge has no record of handling their event
    (``processed_events``). None for other frontends."""
    if not isinstance(driver, MatrixDriver):
        return None
    events = driver.attendant_events()
    db = await database.connect()
    try:
        handled = 0
        for text in lost:
            if text in events:
                handled += bool(
                    await db.fetchval(
                        "SELECT 1 FROM processed_events WHERE source = 'matrix' AND event_id = $1",
                        events[text],
                    )
                )
        return sum(1 for text in lost if text in events) - handled
    finally:
        await db.close()


async def _dead_letters(database: Any) -> int:
    db = await database.connect()
    try:
        return int(await db.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'dead'"))
    finally:
        await db.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="comma list of " + "|".join(FAULTS)
    )
    parser.add_argument("--db", choices=DB_CHOICES, default="sqlite")
    parser.add_argument("--messages", type=int, default=5000, help="each way")
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rate", type=float, default=500, help="messages/s, both ways (0: max)")
    parser.add_argument("--disconnect-every", type=float, default=3.0)
    parser.add_argument("--disconnect-seconds", type=float, default=1.0)
    parser.add_argument(
        "--synapse-down", type=float, default=2.0, help="synapse-restart: s kept stopped"
    )
    parser.add_argument("--db-down", type=float, default=10.0, help="db-outage: s away")
    parser.add_argument(
        "--slack-retry",
        type=float,
        default=3.0,
        help="db-outage: the fake redelivers envelopes unacknowledged for this many s",
    )
    parser.add_argument(
        "--stall", type=float, default=30.0, help="stop waiting after s without an arrival"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per variant")
    args = parser.parse_args(argv)
    if args.smoke:
        args.messages, args.tickets, args.sessions, args.rate = 60, 3, 2, 200
        args.disconnect_every, args.disconnect_seconds, args.timeout = 1.5, 0.5, 60.0
        args.synapse_down, args.stall = 0.5, 10.0
        args.db_down = 6.0  # past SQLite's 5 s busy timeout, so writes are refused
    unknown = set(args.faults.split(",")) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    return args


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    records = []
    for engine in engines(args.db):
        for fault in args.faults.split(","):
            record = await run_variant(args, fault, engine)
            emit(record)
            records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    records = asyncio.run(main_async(args))
    columns = [
        "fault", "db", "frontend", "messages_each_way", "seconds", "to_frontend_lost",
        "to_frontend_duplicated", "to_frontend_out_of_order", "to_whatsapp_lost",
        "to_whatsapp_duplicated", "to_whatsapp_out_of_order", "dead_letters", "journaled",
        "dropped",
    ]  # fmt: skip
    print()
    print(table(records, columns))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
