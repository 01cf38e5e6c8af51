"""CPU per delivery attempt of an attendant's file to WhatsApp (issue 12, item 7).

An attendant posts a file (10 MB by default) into a ticket thread; every send to
WhatsApp fails, so the outbox retries it until its retry budget (4 attempts in the
core test harness's config) is spent. Each attempt is timed with
``time.process_time()`` around the WhatsApp executor (the process's CPU, database
threads included): it loads the message row and the file's bytes, then fails at the
send. Nothing else differs between the attempts, so the figure is what loading a
file costs per attempt: base64 inside ``messages.content`` before the media store,
a file read (and its sha256 checked) after.

Runs against whichever tree is first on PYTHONPATH (it uses only what both have):

    PYTHONPATH=/work/main python bench/media_delivery.py      # before
    PYTHONPATH=. python bench/media_delivery.py               # after

Prints one JSON line per database, then a table. ``--smoke`` uses a 1 MB file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.db import migrate
from bridge.db.outbox import OutboxRow
from bridge.errors import DeliveryError
from bridge.model import Media, MediaKind
from tests.conftest import open_test_database
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CoreHarness


async def measure(engine: str, *, size: int, files: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_test_database(engine, Path(tmp)) as db:
            await migrate(db)
            core = CoreHarness(Path(tmp), db, frontends=[FakeFrontend("matrix")])
            await core.start()
            try:
                return await _attempts(core, engine, size=size, files=files)
            finally:
                await core.stop()


async def _attempts(core: CoreHarness, engine: str, *, size: int, files: int) -> dict[str, Any]:
    bridge = core.bridge
    cpu_ms: list[float] = []

    async def refuse(*args: Any, **kwargs: Any) -> str:
        raise DeliveryError("the bench refuses every send")

    # The executor the composition root registered (private: a bench may look).
    executor = bridge.outbox._executors["whatsapp"]

    async def timed(row: OutboxRow) -> None:
        start = time.process_time()
        try:
            await executor(row)
        finally:
            cpu_ms.append((time.process_time() - start) * 1000)

    await core.customer(text="Oi")  # a ticket, its thread and the greeting sent
    bridge.outbox.register("whatsapp", timed)
    place = next(c for c in core.frontends["matrix"].of("thread")).place
    bridge.sessions.send = refuse  # type: ignore[method-assign]
    for _ in range(files):
        data = os.urandom(size)
        media = Media(MediaKind.DOCUMENT, "application/pdf", data=data, filename="a.pdf")
        await core.frontends["matrix"].attendant(place, "@bob:localhost", media, name="Bob")
        for _step in range(40):  # past every retry of this row
            await core.clock.advance(10)
            await core.settle()
    return {
        "bench": "media_delivery",
        "db": engine,
        "file_mb": size / 2**20,
        "attempts": len(cpu_ms),
        "cpu_ms_per_attempt_median": round(statistics.median(cpu_ms), 1),
        "cpu_ms_per_attempt_mean": round(statistics.fmean(cpu_ms), 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    size = int((1.0 if args.smoke else args.mb) * 2**20)
    engines = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = [await measure(e, size=size, files=1 if args.smoke else args.files) for e in engines]
    for result in results:
        print(json.dumps(result))
    print(f"{'db':10} {'file':>6} {'attempts':>9} {'median ms':>10} {'mean ms':>8}")
    for r in results:
        print(
            f"{r['db']:10} {r['file_mb']:>4.0f}MB {r['attempts']:>9} "
            f"{r['cpu_ms_per_attempt_median']:>10} {r['cpu_ms_per_attempt_mean']:>8}"
        )


if __name__ == "__main__":
    asyncio.run(main())
