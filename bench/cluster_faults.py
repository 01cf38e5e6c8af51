"""Loss and takeover under faults of a cluster: several bridges on one PostgreSQL.

    python -m bench.cluster_faults [--faults cluster-kill,cluster-rolling,cluster-db-cut]
                                   [--instances 3] [--sessions 20] [--tickets 40]
                                   [--messages 5000] [--rate 500] [--lease-seconds 15]
                                   [--cut-seconds 20] [--smoke]

``--instances`` bridges (``python -m bridge run``, ``cluster.enabled``, sim engine,
``bench.cluster``) share one fresh PostgreSQL schema, each logged in as a role of its
own, and the Slack fake (one Socket Mode connection per instance; each envelope goes
to one of them). Customers post to ``/sim/.../inbound`` of the running instances in
turn, with explicit ids, resending until answered 200 (the next post goes to the next
instance); attendants answer in the ticket threads through the fake, which redelivers
an envelope unacknowledged for ``--slack-retry`` s to another connection. Variants,
each starting once half the messages were sent (``cluster-rolling``: a fifth):

- ``cluster-kill``: ``kill -9`` of the instance running the most sessions; not
  restarted.
- ``cluster-rolling``: each instance in turn is stopped (SIGTERM), its sessions taken
  over, started again, and the sessions spread again before the next one.
- ``cluster-db-cut``: the database refuses the connections of the leader (the
  ``zapbridge_cluster_leader`` gauge) for ``--cut-seconds`` (its role ``NOLOGIN`` and its backends
  terminated), then takes them again. It must stop running its sessions within the
  lease (``stopped_running_after_s``, from its ``/health``), send nothing after *cut
  + lease_seconds* for a session it has not been given again since
  (``late_sends``: sim outbound entries name the sending ``instance``), and come
  back as a follower (``leaders_before`` / ``leaders_after``; the sessions it runs
  again were handed to it to spread them, ``sessions_given_back``).

Takeover, per session the faulty instance ran: from the fault (the kill, the
SIGTERM, the cut) until the session is seen ``CONNECTED`` in the ``owned`` list of
another instance's ``/health`` (polled every 0.1 s): ``takeover_min_s`` /
``_median_s`` / ``_max_s``, and ``never_taken_over``. Counting is by unique text as in
``bench.faults``: lost, duplicated, out of order each way, and dead letters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.cluster import BridgeCluster, InstanceRoles, Member, cluster_sink
from bench.common import BenchDatabase, bench_database, emit, table, temp_dir
from bench.drive import loss_report
from bench.faults import _dead_letters, _slack_retries

FAULTS = ("cluster-kill", "cluster-rolling", "cluster-db-cut")


class Takeovers:
    """Per fault: the sessions the faulty instance ran and how long each took to move."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}  # "<fault#>:<session>" → s
        self.missing: list[str] = []
        self.events: list[str] = []
        self.origin = time.monotonic()  # the run's start (set by run_variant)

    async def measure(
        self, cluster: BridgeCluster, victim: Member, sessions: frozenset[str], since: float
    ) -> None:
        timeout = cluster.lease_seconds * 3 + 60
        watch = cluster.watch
        with contextlib.suppress(TimeoutError):
            await watch.wait(
                lambda: (
                    len(watch.taken_over(sessions, since=since, lost_by=victim.name))
                    == len(sessions)
                ),
                timeout,
            )
        found = watch.taken_over(sessions, since=since, lost_by=victim.name)
        tag = len(self.events)
        self.times |= {f"{tag}:{s}": t for s, t in found.items()}
        self.missing += sorted(set(sessions) - set(found))
        slowest = max(found.values(), default=0.0)
        self.events.append(
            f"{victim.name} at {since - self.origin:.2f} s: {len(found)}/{len(sessions)} moved,"
            f" max {slowest:.2f} s"
        )


@contextlib.contextmanager
def _run_dir(keep: str | None, fault: str) -> Iterator[str]:
    """A temporary directory, or with ``--keep DIR`` one kept under DIR (logs, configs)."""
    if keep is None:
        with temp_dir("zb-cluster-faults-") as tmp:
            yield tmp
        return
    path = Path(keep) / f"{fault}-{time.strftime('%H%M%S')}"
    path.mkdir(parents=True)
    yield str(path)


def repeated(found: dict[int, list[int]], side: str) -> list[str]:
    """The texts that arrived more than once (a few, for the record)."""
    return [
        f"{side}{t}n{s}"
        for t, seqs in sorted(found.items())
        for s in sorted(set(seqs))
        if seqs.count(s) > 1
    ][:10]


def duplicate_posts(fake: Any, texts: list[str], since: float) -> dict[str, list[str]]:
    """For each text posted twice to Slack: each ``chat.postMessage`` call's delivery
    (its metadata's txn id and part) and when (s after ``since``)."""
    posts: dict[str, list[str]] = {}
    for call in fake.calls_of("chat.postMessage"):
        text = str(call.args.get("text", ""))
        for wanted in texts:
            if (
                wanted.startswith("c")
                and text.endswith(wanted)
                and call.response
                and call.response.get("ok")
            ):
                payload = (call.args.get("metadata") or {}).get("event_payload") or {}
                posts.setdefault(wanted, []).append(
                    f"{payload.get('txn_id')}/{payload.get('part')} at {call.at - since:.2f} s"
                )
    return posts


def missing_texts(
    found: dict[int, list[int]], side: str, tickets: int, per_ticket: int
) -> list[str]:
    return [
        f"{side}{t}n{s}"
        for t in range(tickets)
        for s in range(per_ticket)
        if s not in found.get(t, [])
    ]


async def explain_lost(database: BenchDatabase, texts: list[str]) -> dict[str, str]:
    """Where each lost customer text stopped: still held by the sim network, stored
    as a message (and its outbox rows' states), or nowhere."""
    db = await database.connect()
    try:
        found = {}
        for text in texts[:10]:
            ticket, seq = text[1:].split("n")
            wa_id = f"BENCH{ticket}N{seq}"
            held = await db.fetchval("SELECT COUNT(*) FROM sim_inbound WHERE wa_id = $1", wa_id)
            message = await db.fetchval("SELECT id FROM messages WHERE wa_id = $1", wa_id)
            rows = await db.fetch(
                "SELECT id, destination, status, attempts, last_error FROM outbox"
                " WHERE payload LIKE $1",
                f"%{text}%",
            )
            found[text] = f"held={held} message={message} outbox=" + ",".join(
                f"{r['id']}:{r['destination']}:{r['status']}:{r['attempts']}:{r['last_error']}"
                for r in rows
            )
        return found
    finally:
        await db.close()


def busiest(cluster: BridgeCluster) -> tuple[Member, frozenset[str]]:
    victim = max(cluster.live(), key=lambda m: len(cluster.watch.current.get(m.name, ())))
    return victim, cluster.watch.current.get(victim.name, frozenset())


async def _at(progress: asyncio.Queue[int], mark: int) -> None:
    while await progress.get() < mark:
        pass


async def cluster_kill(cluster: BridgeCluster, takeovers: Takeovers) -> dict[str, Any]:
    victim, sessions = busiest(cluster)
    since = time.monotonic()
    victim.kill()
    await takeovers.measure(cluster, victim, sessions, since)
    return {"victim": victim.name}


async def cluster_rolling(cluster: BridgeCluster, takeovers: Takeovers) -> dict[str, Any]:
    rebalanced = []
    for member in cluster.members:
        sessions = cluster.watch.current.get(member.name, frozenset())
        since = time.monotonic()
        stopping = asyncio.create_task(member.stop())
        await takeovers.measure(cluster, member, sessions, since)
        await stopping
        await member.start()
        rebalanced.append(round(await cluster.wait_balanced(), 2))
    return {"rebalanced_after_s": rebalanced}


async def cluster_db_cut(
    cluster: BridgeCluster, takeovers: Takeovers, roles: InstanceRoles, seconds: float
) -> dict[str, Any]:
    leaders_before = await cluster.leaders()
    victim, sessions = busiest(cluster)
    if leaders_before:  # the leader: it must come back as a follower of everything
        victim = next(m for m in cluster.members if m.name == leaders_before[0])
        sessions = cluster.watch.current.get(victim.name, frozenset())
    since, wall = time.monotonic(), time.time()
    terminated = await roles.cut(victim.index)
    measuring = asyncio.create_task(takeovers.measure(cluster, victim, sessions, since))
    await asyncio.sleep(seconds)
    await roles.restore(victim.index)
    back = time.monotonic()
    await measuring
    with contextlib.suppress(TimeoutError):
        await cluster.wait_balanced()
    stopped = next(
        (
            t - since
            for t, name, n in cluster.watch.sizes
            if name == victim.name and t >= since and n == 0
        ),
        None,
    )
    regained = cluster.watch.regained(victim.name, since=back)
    return {
        "victim": victim.name,
        "connections_terminated": terminated,
        "stopped_running_after_s": round(stopped, 2) if stopped is not None else None,
        "sessions_given_back": len(regained),
        "leaders_before": leaders_before,
        "leaders_after": await cluster.leaders(),
        "_cut_wall": wall,
        "_back": back,
        "_regained": regained,
    }


async def late_sends(
    cluster: BridgeCluster,
    database: BenchDatabase,
    victim: str,
    *,
    cut_wall: float,
    regained: dict[str, float],
) -> list[dict[str, Any]]:
    """Entries the cut instance sent after cut + lease for a session it had not been
    given again by then: given again is its lease's ``acquired_at`` (the database's
    clock) when it holds the session now, else the watch's first sighting."""
    mono_to_wall = time.time() - time.monotonic()
    db = await database.connect()
    try:
        rows = await db.fetch("SELECT name, holder, acquired_at FROM leases")
    finally:
        await db.close()
    again = {key: at + mono_to_wall for key, at in regained.items()}
    for row in rows:
        key = str(row["name"]).removeprefix("session:")
        if row["holder"] == victim and float(row["acquired_at"]) > cut_wall:
            again[key] = min(again.get(key, float("inf")), float(row["acquired_at"]))
    late = []
    for session, key in zip(cluster.sessions, cluster.keys, strict=True):
        for entry in await cluster.outbound(session):
            at = float(entry["timestamp"])
            if (
                entry.get("instance") == victim
                and at > cut_wall + cluster.lease_seconds
                and at < again.get(key, float("inf"))
            ):
                late.append(
                    {
                        "session": key,
                        "text": entry.get("text"),
                        "after_cut_s": round(at - cut_wall, 3),
                        "given_again_after_cut_s": round(
                            again.get(key, float("nan")) - cut_wall, 3
                        ),
                    }
                )
    return late


async def run_variant(args: argparse.Namespace, fault: str) -> dict[str, Any]:
    per_ticket = max(1, args.messages // args.tickets)
    size = {"tickets": args.tickets, "per_ticket": per_ticket}
    takeovers = Takeovers()
    redeliveries = [0]
    with _run_dir(args.keep, fault) as tmp:
        async with (
            bench_database("postgres", Path(tmp)) as database,
            cluster_sink(
                Path(tmp),
                database,
                instances=args.instances,
                sessions=args.sessions,
                tickets=args.tickets,
                lease_seconds=args.lease_seconds,
                roles=True,
                log_level=args.log_level,
            ) as (cluster, driver, roles),
        ):
            assert roles is not None
            progress: asyncio.Queue[int] = asyncio.Queue()
            total = 2 * per_ticket * args.tickets
            mark = total // 5 if fault == "cluster-rolling" else total // 2

            async def inject() -> dict[str, Any]:
                await _at(progress, mark)
                if fault == "cluster-kill":
                    return await cluster_kill(cluster, takeovers)
                if fault == "cluster-rolling":
                    return await cluster_rolling(cluster, takeovers)
                return await cluster_db_cut(cluster, takeovers, roles, args.cut_seconds)

            injector = asyncio.create_task(inject())
            retrier = asyncio.create_task(
                _slack_retries(driver.fake, args.slack_retry, redeliveries)
            )
            try:
                started = takeovers.origin = time.monotonic()
                async with asyncio.timeout(args.timeout):
                    await driver.run(per_ticket=per_ticket, rate=args.rate, on_progress=progress)
                    facts = await injector
                await driver.wait_delivered(
                    per_ticket=per_ticket, timeout=args.timeout, stall=args.stall
                )
                elapsed = time.monotonic() - started
                await asyncio.sleep(1.0)  # late duplicates, if any, show up too
                chat, wa = await driver.counted()
                dead = await _dead_letters(database)
                lost_c = missing_texts(chat, "c", args.tickets, per_ticket)
                if lost_c:
                    facts["lost_customer_texts"] = await explain_lost(database, lost_c)
                lost_a = missing_texts(wa, "a", args.tickets, per_ticket)
                if lost_a:
                    facts["lost_attendant_texts"] = lost_a[:10]
                facts["duplicate_posts"] = duplicate_posts(
                    driver.fake, repeated(chat, "c"), started
                )
                if fault == "cluster-db-cut":
                    late = await late_sends(
                        cluster,
                        database,
                        facts["victim"],
                        cut_wall=facts.pop("_cut_wall"),
                        regained=facts.pop("_regained"),
                    )
                    facts["late_sends"], facts["late_send_examples"] = len(late), late[:5]
                    facts.pop("_back")
            finally:
                for task in (injector, retrier):
                    task.cancel()
                await asyncio.gather(injector, retrier, return_exceptions=True)
    times = sorted(takeovers.times.values())
    return {
        "bench": "cluster_faults",
        "fault": fault,
        "instances": args.instances,
        "sessions": args.sessions,
        "tickets": args.tickets,
        "lease_seconds": args.lease_seconds,
        "messages_each_way": per_ticket * args.tickets,
        "seconds": round(elapsed, 2),
        **{f"to_frontend_{k}": v for k, v in loss_report(chat, **size).items()},
        **{f"to_whatsapp_{k}": v for k, v in loss_report(wa, **size).items()},
        "dead_letters": dead,
        "sessions_moved": len(times),
        "never_taken_over": len(takeovers.missing),
        "takeover_min_s": round(times[0], 2) if times else None,
        "takeover_median_s": round(statistics.median(times), 2) if times else None,
        "takeover_max_s": round(times[-1], 2) if times else None,
        "takeover_s": {k: round(v, 2) for k, v in sorted(takeovers.times.items())},
        "duplicated_texts": repeated(chat, "c") + repeated(wa, "a"),
        "customer_resends": driver.resent,
        "attendant_redeliveries": driver.redelivered,
        "slack_redeliveries": redeliveries[0],
        **facts,
        "events": "; ".join(takeovers.events),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_faults", description=__doc__)
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="comma list of " + "|".join(FAULTS)
    )
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--messages", type=int, default=5000, help="each way")
    parser.add_argument("--rate", type=float, default=500, help="messages/s, both ways (0: max)")
    parser.add_argument("--lease-seconds", type=int, default=15, help="cluster.lease_seconds")
    parser.add_argument("--cut-seconds", type=float, default=20.0, help="cluster-db-cut: s cut")
    parser.add_argument(
        "--slack-retry",
        type=float,
        default=3.0,
        help="the fake redelivers envelopes unacked this long",
    )
    parser.add_argument(
        "--stall", type=float, default=60.0, help="stop waiting after s without an arrival"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--log-level", default="WARNING", help="the bridges' logging.level")
    parser.add_argument("--keep", help="keep each run's directory (configs, logs) under KEEP")
    parser.add_argument("--smoke", action="store_true", help="2 instances, 4 sessions, lease 3 s")
    args = parser.parse_args(argv)
    if args.smoke:
        args.instances, args.sessions, args.tickets, args.messages = 2, 4, 4, 200
        args.rate, args.lease_seconds, args.cut_seconds, args.stall = 200, 3, 5.0, 20.0
        args.timeout = 90.0
    unknown = set(args.faults.split(",")) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    return args


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    records = []
    for fault in args.faults.split(","):
        record = await run_variant(args, fault)
        emit(record)
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    records = asyncio.run(main_async(args))
    columns = [
        "fault", "instances", "sessions", "lease_seconds", "messages_each_way", "seconds",
        "to_frontend_lost", "to_frontend_duplicated", "to_frontend_out_of_order",
        "to_whatsapp_lost", "to_whatsapp_duplicated", "to_whatsapp_out_of_order", "dead_letters",
        "sessions_moved", "never_taken_over", "takeover_min_s", "takeover_median_s",
        "takeover_max_s",
    ]  # fmt: skip
    print()
    print(table(records, columns))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
