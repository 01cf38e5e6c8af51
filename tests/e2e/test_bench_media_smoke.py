"""``bench/media_delivery.py`` runs in its ``--smoke`` size on both databases and
prints its figures (no timing is asserted), so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEYS = {"bench", "db", "file_mb", "attempts"} | {
    "cpu_ms_per_attempt_median",
    "cpu_ms_per_attempt_mean",
}


def test_media_delivery_smoke_prints_attempts_on_both_databases() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "media_delivery.py"), "--smoke"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["db"] for r in records] == ["sqlite", "postgres"]
    for record in records:
        assert set(record) == KEYS
        assert record["attempts"] == 4  # the harness's retry budget, every attempt timed
