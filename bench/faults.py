"""Loss under faults: the bridge as a subprocess, 5,000 messages each way, faults.

    python -m bench.faults [--faults kill,disconnect,slack-errors] [--db sqlite|postgres|both]
                           [--messages 5000] [--tickets 20] [--sessions 4] [--rate 500] [--smoke]

The bridge runs as ``python -m bridge run -c <config>`` (``slack.per_channel_per_second``
raised: the fake has no limit) with the sim engine (``auto_pair``) and Slack in
Socket Mode against a ``SlackFake`` in this process. Customers post through
``/sim/.../inbound`` with unique texts and explicit ids; attendants answer in the
ticket threads through the fake's socket. Variants:

- ``kill``: ``kill -9`` of the bridge once half the messages were sent, then a restart;
- ``disconnect``: every ``--disconnect-every`` s each sim session gets a ``disconnect``
  fault (the network refuses it for ``--disconnect-seconds``);
- ``slack-errors``: about 10 % of ``chat.postMessage`` calls answer 429 (Retry-After)
  and another 10 % answer HTTP 503, so 20 % in all.

Afterwards every sink is counted by unique text: lost, duplicated, out of order per
ticket; plus dead letters left in the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import DB_CHOICES, bench_database, emit, engines, table, temp_dir
from bench.drive import SlackDriver, loss_report
from bench.proc import BridgeProcess
from tests.fakes.slack import SlackFake

FAULTS = ("kill", "disconnect", "slack-errors")


async def _kill_midway(
    bridge: BridgeProcess, progress: asyncio.Queue[int], half: int, events: list[str]
) -> None:
    while await progress.get() < half:
        pass
    bridge.kill()
    events.append(f"kill -9 after {half} messages")
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await bridge.start()
    events.append(f"restarted in {time.monotonic() - started:.2f} s")


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


async def run_variant(args: argparse.Namespace, fault: str, engine: str) -> dict[str, Any]:
    per_ticket = max(1, args.messages // args.tickets)
    with temp_dir("zb-faults-") as tmp:
        async with SlackFake() as fake, bench_database(engine, Path(tmp)) as database:
            bridge = BridgeProcess(
                Path(tmp), db_url=database.url, sessions=args.sessions, fake=fake
            )
            driver = SlackDriver(bridge, fake, tickets=args.tickets)
            events: list[str] = []
            helpers: list[asyncio.Task[Any]] = []
            try:
                await bridge.start()
                await driver.open_tickets()
                progress: asyncio.Queue[int] = asyncio.Queue()
                if fault == "kill":
                    half = per_ticket * args.tickets  # half of both directions
                    helpers.append(
                        asyncio.create_task(_kill_midway(bridge, progress, half, events))
                    )
                elif fault == "disconnect":
                    helpers.append(
                        asyncio.create_task(
                            _disconnect_every(
                                bridge, args.disconnect_every, args.disconnect_seconds
                            )
                        )
                    )
                else:
                    fake.script_fraction("chat.postMessage", fraction=0.1, retry_after=1, seed=7)
                    helpers.append(asyncio.create_task(_slack_5xx(fake, every=10)))
                started = time.monotonic()
                async with asyncio.timeout(args.timeout):
                    await driver.run(per_ticket=per_ticket, rate=args.rate, on_progress=progress)
                    if fault == "kill":
                        await helpers[0]  # the restart has finished
                for task in helpers:
                    task.cancel()
                fake.script_fraction(None, fraction=0)
                await driver.wait_delivered(per_ticket=per_ticket, timeout=args.timeout)
                elapsed = time.monotonic() - started
                await asyncio.sleep(1.0)  # late duplicates, if any, show up too
                slack = loss_report(
                    driver.slack_texts(), tickets=args.tickets, per_ticket=per_ticket
                )
                whatsapp = loss_report(
                    await driver.whatsapp_texts(), tickets=args.tickets, per_ticket=per_ticket
                )
                dead = await _dead_letters(database)
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                await bridge.stop()
    return {
        "bench": "faults",
        "fault": fault,
        "db": engine,
        "tickets": args.tickets,
        "messages_each_way": per_ticket * args.tickets,
        "seconds": round(elapsed, 2),
        "to_slack_lost": slack["lost"],
        "to_slack_duplicated": slack["duplicated"],
        "to_slack_out_of_order": slack["out_of_order"],
        "to_whatsapp_lost": whatsapp["lost"],
        "to_whatsapp_duplicated": whatsapp["duplicated"],
        "to_whatsapp_out_of_order": whatsapp["out_of_order"],
        "dead_letters": dead,
        "customer_resends": driver.resent,
        "attendant_redeliveries": driver.redelivered,
        "events": "; ".join(events),
    }


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
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--smoke", action="store_true", help="a few seconds per variant")
    args = parser.parse_args(argv)
    if args.smoke:
        args.messages, args.tickets, args.sessions, args.rate = 60, 3, 2, 200
        args.disconnect_every, args.disconnect_seconds, args.timeout = 1.5, 0.5, 120.0
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
        "fault", "db", "messages_each_way", "seconds", "to_slack_lost", "to_slack_duplicated",
        "to_slack_out_of_order", "to_whatsapp_lost", "to_whatsapp_duplicated",
        "to_whatsapp_out_of_order", "dead_letters",
    ]  # fmt: skip
    print()
    print(table(records, columns))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
