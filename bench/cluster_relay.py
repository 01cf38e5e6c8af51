"""Relay throughput of a cluster: ``python -m bench.relay --instances 1,2,3``.

For each instance count, that many bridges (``cluster.enabled``, ``bench.cluster``)
share a fresh PostgreSQL schema and the Slack fake; customers post to the instances'
``/sim/.../inbound`` in turn, attendants answer through the fake (each envelope
reaches one instance's socket). The same two phases as the ``slack`` sink of
``bench.relay``: ``max`` and ``paced@RATE``. Latency as there (driver → the fake's
``chat.postMessage`` / the sim's outbound timestamp).

CPU per phase, all from ``/proc``: each bridge's utime + stime (``cpu_ms_per_msg`` is
their sum over the messages delivered; ``instance_cpu_ms_per_msg`` each one's), the
PostgreSQL backends serving the bridges (``postgres_cpu_ms_per_msg``: each instance
logs in as a role of its own, so ``pg_stat_activity`` names them; the server's
background writers are not counted), and the whole
machine's busy share of its cores (``machine_busy``, from ``/proc/stat``; 1.0 = every
core busy). Whatever is left of ``machine_busy`` is the driver, the fake and anything
else running.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from bench.cluster import BridgeCluster, InstanceRoles, cluster_sink
from bench.common import bench_database, cpu_seconds, temp_dir
from bench.drive import SlackDriver

PACED = 1_000_000  # sequence numbers of the paced phase start here (as bench.relay)
DELIVERY_TIMEOUT = 300


def _machine_times() -> tuple[float, float]:
    """(busy, total) jiffies of every core, from the first line of ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return float(sum(fields) - idle), float(sum(fields))


def _cpu_of(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except OSError:  # ended meanwhile
            continue
    return found


async def _phase(
    cluster: BridgeCluster,
    driver: SlackDriver,
    roles: InstanceRoles,
    *,
    offset: int,
    per_ticket: int,
    rate: float,
) -> dict[str, Any]:
    pids = [m.bridge.pid for m in cluster.members]
    cpu0 = [cpu_seconds(pid) for pid in pids]
    backends = await roles.backends()
    pg0, (busy0, total0) = _cpu_of(backends), _machine_times()
    t0 = time.time()
    sent = await driver.run(per_ticket=per_ticket, rate=rate, offset=offset)
    async with asyncio.timeout(DELIVERY_TIMEOUT):
        while True:
            chat = await driver.frontend_arrivals()
            wa = await driver.whatsapp_arrivals()
            if all(t in chat or t in wa for t in sent.wall):
                break
            await asyncio.sleep(driver.poll_seconds)
    cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu0, strict=True)]
    pg1, (busy1, total1) = _cpu_of(backends), _machine_times()
    ends = {t: chat[t] if t.startswith("c") else wa[t] for t in sent.wall}
    return {
        "count": len(sent.wall),
        "delivered": len(ends),
        "elapsed": max(ends.values()) - t0,
        "cpu": cpu,
        "postgres_cpu": sum(pg1[pid] - pg0[pid] for pid in pg1.keys() & pg0.keys()),
        "machine_busy": (busy1 - busy0) / max(total1 - total0, 1.0),
        "to_chat": [ends[t] - sent.wall[t] for t in sent.wall if t.startswith("c")],
        "to_whatsapp": [ends[t] - sent.wall[t] for t in sent.wall if t.startswith("a")],
    }


async def run_instances(args: argparse.Namespace, count: int) -> list[dict[str, Any]]:
    """The ``max`` and ``paced`` phases with ``count`` instances on PostgreSQL."""
    from bench.relay import _record  # bench.relay imports this module

    records = []
    per_ticket = max(1, args.messages // args.tickets)
    with temp_dir(f"zb-relay-x{count}-") as tmp:
        async with (
            bench_database("postgres", Path(tmp)) as database,
            cluster_sink(
                Path(tmp),
                database,
                instances=count,
                sessions=args.sessions,
                tickets=args.tickets,
                lease_seconds=15,
                roles=True,
            ) as (cluster, driver, roles),
        ):
            assert roles is not None
            for ticket in driver.tickets:
                await driver.attendant(ticket, f"welcome{ticket.number}")
            for phase, offset, rate in (
                ("max", 0, 0.0),
                (f"paced@{args.rate:g}", PACED, args.rate),
            ):
                figures = await _phase(
                    cluster, driver, roles, offset=offset, per_ticket=per_ticket, rate=rate
                )
                cpu, delivered = figures.pop("cpu"), max(figures["delivered"], 1)
                postgres, busy = figures.pop("postgres_cpu"), figures.pop("machine_busy")
                record = _record(
                    sink="slack",
                    engine="postgres",
                    phase=phase,
                    direct_rate=None,
                    cpu=sum(cpu),
                    **figures,
                )
                record |= {
                    "instances": count,
                    "instance_cpu_ms_per_msg": [round(c * 1000 / delivered, 3) for c in cpu],
                    "instance_cores": [round(c / figures["elapsed"], 2) for c in cpu],
                    "postgres_cpu_ms_per_msg": round(postgres * 1000 / delivered, 3),
                    "machine_busy": round(busy, 3),
                }
                records.append(record)
    return records
