"""Two real ``python -m bridge run`` processes on one database: the second exits 1
with one line naming the first; after ``kill -9`` of the first, a new one starts
(docs/cluster.md, "One instance on SQLite"). On SQLite always; on PostgreSQL
without ``cluster.enabled``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.proc import BridgeProcess
from tests.conftest import ENGINES, PG_TEST_URL
from tests.harness.outage import throwaway_database

ROOT = Path(__file__).resolve().parents[2]
SINCE = r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


@pytest.fixture(params=ENGINES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield "sqlite:bridge.db"
        return
    async with throwaway_database(PG_TEST_URL, prefix="zapbridge_single") as url:
        yield url


def second_run(config: Path, command: str = "run") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", command, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def refusal(db_url: str, tmp_path: Path, pid: int) -> str:
    """The one line the second bridge prints."""
    holder = rf"pid {pid} on \S+ \(instance \S+-{pid}\), {SINCE}"  # the auto id: host-pid
    if db_url.startswith("sqlite:"):
        where = re.escape(f"sqlite:{tmp_path / 'bridge.db'}")
        advice = r"stop it, or use PostgreSQL with cluster\.enabled to run several instances"
    else:
        where = re.escape(f"{db_url} (schema public)")
        advice = r"stop it, or set cluster\.enabled on every instance to run several"
    return rf"error: another zapbridge instance uses {where}: {holder}; {advice}"


async def test_a_second_bridge_on_one_database_exits_with_one_line_until_the_first_dies(
    tmp_path: Path, database: str
) -> None:
    first = BridgeProcess(tmp_path, db_url=database, sessions=1)
    try:
        await first.start()
        # the same config: one database (its HTTP port is taken too, but the
        # database is refused first, before anything listens)
        out = second_run(first.config_path)
        assert out.returncode == 1
        assert out.stdout == ""
        (line,) = out.stderr.splitlines()
        assert re.fullmatch(refusal(database, tmp_path, first.pid), line), line
        assert first.proc is not None and first.proc.poll() is None  # untouched
        for command in ("migrate", "check-config"):  # these take no lock
            other = second_run(first.config_path, command)
            assert other.returncode == 0, other.stderr

        first.kill()  # kill -9: no clean-up; the kernel (or the server) lets the lock go
        if database.startswith("sqlite:"):
            lock = tmp_path / "bridge.db.lock"
            assert f'"pid":{first.pid}' in lock.read_text()  # the dead holder's words stay
            assert lock.stat().st_mode & 0o777 == 0o600
        await first.start()  # a new process on the same database starts
        out = second_run(first.config_path)
        (line,) = out.stderr.splitlines()
        assert re.fullmatch(refusal(database, tmp_path, first.pid), line), line  # names it
    finally:
        await first.stop()
