"""Scale: relay latency over a large history, and many sim sessions in one process.

    python -m bench.scale [--db sqlite|postgres|both] [--levels 1000,100000,1000000]
                          [--tickets 10000] [--sessions-count 1000] [--stagger-ms 0]
                          [--idle-seconds 10] [--sessions-only] [--statements FILE]
                          [--smoke]

History: contacts and ``--tickets`` tickets (one in ten open, each with its thread),
then messages spread over them, each with its message ref and its ``done`` outbox
row (a worst case: the bridge prunes done rows an hour after delivery), inserted
with ``INSERT … SELECT`` over ``generate_series`` / a recursive CTE in one
transaction, then ``ANALYZE`` (and a ``CHECKPOINT`` on PostgreSQL, so the probe does
not share the disk with the writing of gigabytes of new pages). At each level, new
messages both ways on open tickets, paced, through the null frontend; p50/p95/p99
should stay flat. With
``--statements FILE``, each level's slowest statements and their plans go to FILE
(bench/statement_times.py).

Sessions: a child process per database starts a bridge with ``--sessions-count``
auto-paired sim sessions and no frontend, staggered by ``--stagger-ms``; it reports
the time until all are ``CONNECTED`` and until every status is persisted and
announced, resident memory (``VmRSS``) before and after, and then the process's CPU
while idle for ``--idle-seconds`` (% of one core) and how many asyncio tasks live;
then it stops and starts the same data again (already paired: a restart), timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    DB_CHOICES,
    NullFrontend,
    bench_database,
    bridge_config,
    emit,
    engines,
    percentiles,
    rss_mb,
    table,
    temp_dir,
)
from bench.relay import NullRun
from bench.statement_times import StatementTimer
from bridge.app import Bridge
from bridge.clock import SystemClock
from bridge.config import parse_config
from bridge.core.frontend import ChatAddress
from bridge.core.operations import PostMessage, encode
from bridge.core.ordering_keys import ticket_key
from bridge.db.database import Database, to_json
from bridge.model import Text, content_to_dict
from tests.harness.core import free_port

ROOM = "!acme-s0000"


def _series(dialect: str) -> str:
    """Rows ``n`` from $1 to $2."""
    if dialect == "postgres":
        return "SELECT n FROM generate_series($1::bigint, $2::bigint) AS n"
    return (
        "WITH RECURSIVE seq(n) AS (SELECT $1 UNION ALL SELECT n + 1 FROM seq WHERE n < $2) "
        "SELECT n FROM seq"
    )


def _phone(dialect: str) -> str:
    if dialect == "postgres":
        return "'+55119' || lpad(n::text, 8, '0')"
    return "'+55119' || substr('00000000' || n, -8)"


async def insert_tickets(db: Database, *, session_id: int, tickets: int, now: float) -> int:
    """``tickets`` contacts with one ticket each (every tenth open) and their threads;
    returns the first ticket id."""
    series, phone = _series(db.dialect), _phone(db.dialect)
    async with db.transaction():
        await db.execute(
            "INSERT INTO contacts (session_id, phone, push_name, created_at, updated_at) "
            f"SELECT $3, {phone}, 'Cust' || n, $4, $4 FROM ({series}) AS s",
            1,
            tickets,
            session_id,
            now,
        )
        await db.execute(
            "INSERT INTO tickets (session_id, contact_id, status, created_at, updated_at, "
            "first_response_at, closed_at) "
            "SELECT $1, id, CASE WHEN id % 10 = 0 THEN 'open' ELSE 'closed' END, $2, $2, $2, $2 "
            "FROM contacts WHERE session_id = $1",
            session_id,
            now,
        )
        await db.execute("UPDATE tickets SET closed_at = NULL WHERE status = 'open'")
        await db.execute(
            "INSERT INTO thread_refs (ticket_id, frontend, room_id, thread_root) "
            "SELECT id, 'null', $1, 'root-' || id FROM tickets",
            ROOM,
        )
    return int(await db.fetchval("SELECT MIN(id) FROM tickets"))


# Stands for a row's id in the stored shapes below, which the codecs build and SQL
# fills in row by row (up to a million rows: no round trip per row).
_ID = 987654321


def _around_id(stored: str) -> tuple[str, str]:
    """``stored`` (made with ``_ID``) split into what stands before and after the id."""
    before, found, after = stored.partition(str(_ID))
    if not found:
        raise ValueError(f"{stored!r} does not hold the id placeholder")
    return before, after


async def insert_history(
    db: Database, *, session_id: int, first: int, last: int, tickets: int, now: float
) -> None:
    """Messages ``first``..``last`` spread over the tickets, with refs and done outbox rows."""
    series = _series(db.dialect)
    body = to_json(content_to_dict(Text("history")))
    key_before, key_after = _around_id(ticket_key(_ID, NullFrontend.name))
    post_before, post_after = _around_id(to_json(encode(PostMessage(_ID))))
    async with db.transaction():
        start = int(await db.fetchval("SELECT COALESCE(MAX(id), 0) FROM messages"))
        await db.execute(
            "INSERT INTO messages (ticket_id, session_id, direction, kind, wa_id, sender, "
            "content, timestamp, created_at) "
            "SELECT t.id, $3, CASE WHEN n % 2 = 0 THEN 'in' ELSE 'out' END, 'text', 'H' || n, "
            "'+5511900000000', $4, $5, $5 "
            f"FROM ({series}) AS s JOIN tickets t ON t.id = (SELECT MIN(id) FROM tickets) "
            f"+ n % {tickets}",
            first,
            last,
            session_id,
            body,
            now,
        )
        await db.execute(
            "INSERT INTO message_refs (message_id, frontend, room_id, event_id) "
            "SELECT id, $3, $2, 'ev' || id FROM messages WHERE id > $1",
            start,
            ROOM,
            NullFrontend.name,
        )
        await db.execute(
            "INSERT INTO outbox (destination, ordering_key, payload, status, next_attempt_at, "
            "created_at, updated_at) "
            "SELECT $3, CAST($4 AS TEXT) || ticket_id || CAST($5 AS TEXT), "
            "CAST($6 AS TEXT) || id || CAST($7 AS TEXT), 'done', $2, $2, $2 "
            "FROM messages WHERE id > $1",
            start,
            now,
            NullFrontend.name,
            key_before,
            key_after,
            post_before,
            post_after,
        )
    if db.dialect == "postgres":  # the bench's tables only: a bare ANALYZE walks every
        # schema of the database and its locks hold up whoever drops one meanwhile
        await db.execute("ANALYZE contacts, tickets, thread_refs, messages, message_refs, outbox")
    else:
        await db.execute("ANALYZE")  # the run's own file


async def all_connected(bridge: Bridge, *, timeout: float) -> None:  # noqa: ASYNC109
    """Until every session of ``bridge`` is CONNECTED."""
    async with asyncio.timeout(timeout):
        while any(str(s) != "CONNECTED" for s in bridge.sessions.statuses().values()):  # noqa: ASYNC110 - polling
            await asyncio.sleep(0.02)


async def run_history(args: argparse.Namespace, engine: str) -> list[dict[str, Any]]:
    records = []
    with temp_dir("zb-scale-") as tmp:
        async with bench_database(engine, Path(tmp)) as database:
            db = await database.connect()
            text = bridge_config(db_url="sqlite::memory:", port=free_port(), sessions=1)
            config = parse_config(text, path=Path(tmp) / "config.yaml")
            null = NullFrontend()
            bridge = Bridge(config, clock=SystemClock(), frontends=[null], database=db)
            try:
                await bridge.start()
                await all_connected(bridge, timeout=30)
                session_id = bridge.session_ids["acme/s0000"]
                t0 = time.monotonic()
                first_ticket = await insert_tickets(
                    db, session_id=session_id, tickets=args.tickets, now=time.time()
                )
                rows = await db.fetch(
                    "SELECT id FROM tickets WHERE status = 'open' AND id >= $1 "
                    "ORDER BY id LIMIT $2",
                    first_ticket,
                    args.probe,
                )
                open_ids = [int(row["id"]) for row in rows]
                timer = StatementTimer()
                if args.statements:
                    timer.attach(db)
                stored = 0
                for level in args.levels:
                    t0 = time.monotonic()
                    await insert_history(
                        db,
                        session_id=session_id,
                        first=stored + 1,
                        last=level,
                        tickets=args.tickets,
                        now=time.time(),
                    )
                    insert_s = time.monotonic() - t0
                    stored = level
                    t0 = time.monotonic()
                    if db.dialect == "postgres":  # the bulk insert's dirty pages written
                        await db.execute("CHECKPOINT")  # now, not during the probe
                    checkpoint_s = time.monotonic() - t0
                    timer.reset()
                    records.append(
                        await _probe(args, engine, bridge, null, open_ids, level, insert_s)
                        | {"checkpoint_seconds": round(checkpoint_s, 2)}
                    )
                    emit(records[-1])
                    if args.statements:
                        title = f"{engine}, {level:,} stored messages"
                        report = await timer.report(db, title=title)
                        await asyncio.to_thread(_append, Path(args.statements), report)
            finally:
                await bridge.stop()
                await db.close()
    return records


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(text)


async def _probe(
    args: argparse.Namespace,
    engine: str,
    bridge: Bridge,
    null: NullFrontend,
    open_ids: list[int],
    level: int,
    insert_s: float,
) -> dict[str, Any]:
    run = NullRun(bridge, null, tickets=0)
    db = bridge.db_required
    for number, ticket_id in enumerate(open_ids):
        phone = await db.fetchval(
            "SELECT c.phone FROM tickets t JOIN contacts c ON c.id = t.contact_id WHERE t.id = $1",
            ticket_id,
        )
        run.tickets.append((number, "acme/s0000", phone))
        run.places[number] = ChatAddress(ROOM, f"root-{ticket_id}")
    figures = await run.phase(offset=level, per_ticket=args.per_ticket, rate=args.rate)
    return {
        "bench": "scale",
        "what": "history",
        "db": engine,
        "stored_messages": level,
        "tickets": args.tickets,
        "insert_seconds": round(insert_s, 2),
        "probe_messages": figures["delivered"],
        "rate": args.rate,
        **percentiles(figures["to_chat"] + figures["to_whatsapp"]),
        "cpu_ms_per_msg": round(figures["cpu"] * 1000 / max(figures["delivered"], 1), 3),
    }


# --- many sessions in one process ------------------------------------------------------


async def _start(bridge: Bridge, *, within: float) -> tuple[float, float, float]:
    """Start ``bridge``; seconds until ``start`` returned, every session was
    CONNECTED, and every status change was persisted and announced."""
    t0 = time.monotonic()
    await bridge.start()
    returned = time.monotonic() - t0
    await all_connected(bridge, timeout=within)
    connected = time.monotonic() - t0
    await bridge.sessions.flush()
    return returned, connected, time.monotonic() - t0


async def sessions_child(args: argparse.Namespace) -> dict[str, Any]:
    """A first start (the sim pairs every session: a device file each), idle, stop;
    then a restart of the same data (what a real deployment does), timed only."""
    count, stagger_ms, engine = args.sessions_child, args.stagger_ms, args.sessions_db
    within = count * stagger_ms / 1000 + 120
    with temp_dir("zb-sessions-") as tmp:
        async with bench_database(engine, Path(tmp)) as database:
            rss_before = rss_mb()
            text = bridge_config(
                db_url=database.url, port=free_port(), sessions=count, stagger_ms=stagger_ms
            )
            config = parse_config(text, path=Path(tmp) / "config.yaml")
            bridge = Bridge(config, clock=SystemClock(), frontends=[])
            try:
                first = await _start(bridge, within=within)
                rss_connected = rss_mb()
                tasks = len(asyncio.all_tasks())
                cpu0, wall0 = time.process_time(), time.monotonic()
                await asyncio.sleep(args.idle_seconds)
                idle_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
                rss_idle = rss_mb()
            finally:
                await bridge.stop()
            again = Bridge(config, clock=SystemClock(), frontends=[])
            try:
                restart = await _start(again, within=within)
            finally:
                await again.stop()
    return {
        "bench": "scale",
        "what": "sessions",
        "db": engine,
        "sessions": count,
        "stagger_ms": stagger_ms,
        "start_returned_seconds": round(first[0], 2),
        "startup_seconds": round(first[1], 2),
        "settled_seconds": round(first[2], 2),
        "restart_returned_seconds": round(restart[0], 2),
        "restart_seconds": round(restart[1], 2),
        "restart_settled_seconds": round(restart[2], 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_connected_mb": round(rss_connected, 1),
        "rss_idle_mb": round(rss_idle, 1),
        "mb_per_session": round((rss_idle - rss_before) / count, 3),
        "idle_seconds": args.idle_seconds,
        "idle_cpu_percent": round(idle_cpu * 100, 2),
        "tasks_idle": tasks,
    }


def run_sessions(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """In a fresh process, so the history run's heap does not count."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale",
            "--sessions-child",
            str(args.sessions_count),
            "--sessions-db",
            engine,
            "--stagger-ms",
            str(args.stagger_ms),
            "--idle-seconds",
            str(args.idle_seconds),
        ],
        capture_output=True,
        text=True,
        timeout=args.sessions_count * args.stagger_ms / 1000 + args.idle_seconds + 300,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", choices=DB_CHOICES, default="both")
    parser.add_argument("--levels", default="1000,100000,1000000")
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--probe", type=int, default=50, help="open tickets the probe writes on")
    parser.add_argument("--per-ticket", type=int, default=10, help="probe messages per side")
    parser.add_argument("--rate", type=float, default=200, help="probe messages/s")
    parser.add_argument(
        "--statements",
        help="append each level's slowest statements (time, plan) to this file",
    )
    parser.add_argument("--sessions-count", type=int, default=1000)
    parser.add_argument(
        "--stagger-ms", type=int, default=0, help="start_stagger_ms (the sim needs none)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=10, help="CPU is measured this long once settled"
    )
    parser.add_argument("--sessions-only", action="store_true", help="no history levels")
    parser.add_argument("--sessions-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--sessions-db", choices=DB_CHOICES[:2], default="sqlite", help=argparse.SUPPRESS
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.levels, args.tickets, args.probe, args.per_ticket = "1000", 200, 10, 5
        args.sessions_count, args.idle_seconds = 50, 1
    args.levels = [int(v) for v in str(args.levels).split(",")]
    return args


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    records = []
    for engine in engines(args.db):
        records += await run_history(args, engine)
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sessions_child:
        emit(asyncio.run(sessions_child(args)))
        return 0
    history = [] if args.sessions_only else asyncio.run(main_async(args))
    sessions = []
    for engine in engines(args.db):
        sessions.append(run_sessions(args, engine))
        emit(sessions[-1])
    if history:
        print()
        print(
            table(
                history,
                [
                    "db",
                    "stored_messages",
                    "tickets",
                    "insert_seconds",
                    "probe_messages",
                    "p50_ms",
                    "p95_ms",
                    "p99_ms",
                    "cpu_ms_per_msg",
                ],
            )
        )
    print()
    print(
        table(
            sessions,
            [
                "db",
                "sessions",
                "stagger_ms",
                "startup_seconds",
                "settled_seconds",
                "restart_seconds",
                "restart_settled_seconds",
                "rss_before_mb",
                "rss_idle_mb",
                "mb_per_session",
                "idle_cpu_percent",
                "tasks_idle",
            ],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
