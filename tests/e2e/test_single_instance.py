"""Two real ``python -m bridge run`` processes on one SQLite file: the second exits 1
with one line naming the first; after ``kill -9`` of the first, a new one starts
(docs/cluster.md, "One instance on SQLite")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bench.proc import BridgeProcess

ROOT = Path(__file__).resolve().parents[2]


def second_run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


async def test_a_second_bridge_on_one_sqlite_file_exits_with_one_line_until_the_first_dies(
    tmp_path: Path,
) -> None:
    first = BridgeProcess(tmp_path, db_url="sqlite:bridge.db", sessions=1)
    try:
        await first.start()
        # the same config: one database file (its HTTP port is taken too, but the
        # database is refused first, before anything listens)
        out = second_run(first.config_path)
        assert out.returncode == 1
        assert out.stdout == ""
        (line,) = out.stderr.splitlines()
        assert re.fullmatch(
            rf"error: another zapbridge instance uses sqlite:{re.escape(str(tmp_path))}/"
            rf"bridge\.db: pid {first.pid} on \S+, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC; "
            r"stop it, or use PostgreSQL with cluster\.enabled to run several instances",
            line,
        ), line
        assert first.proc is not None and first.proc.poll() is None  # untouched

        first.kill()  # kill -9: no clean-up; the kernel lets the lock go
        lock = tmp_path / "bridge.db.lock"
        assert f'"pid":{first.pid}' in lock.read_text()  # the dead holder's words remain
        assert oct(os.stat(lock).st_mode & 0o777) == oct(0o600)
        await first.start()  # a new process on the same file starts
        assert f'"pid":{first.pid}' in lock.read_text()  # and names itself
    finally:
        await first.stop()
