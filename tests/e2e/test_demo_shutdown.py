"""However `python -m bridge demo` ends, no process of it stays behind: its Synapse
dies with it. The cases people hit: `demo | tee demo.log` and Ctrl-C (tee dies
first, the demo's prints meet a closed pipe), SIGHUP when the terminal closes, and
SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _synapse_pids(config: Path) -> list[int]:
    """Live (not zombie) processes whose command line names ``config``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(config).encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait(predicate, *, limit: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _start(directory: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", "--data-dir", str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _read_until_transcript(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # a condition with a deadline, not a sleep
        if line.startswith(b"Transcript:"):
            return
        assert time.monotonic() < deadline, "the demo did not start in time"
    raise AssertionError(f"the demo ended early: {proc.stderr.read() if proc.stderr else b''!r}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    ("how", "reader_gone"),
    [("SIGINT", True), ("SIGHUP", False), ("SIGKILL", False)],
    ids=["ctrl-c-with-tee-gone", "terminal-closed", "killed"],
)
def test_no_process_of_the_demo_stays_behind(tmp_path: Path, how: str, reader_gone: bool) -> None:
    directory = tmp_path / "demo"
    config = directory / "synapse" / "homeserver.yaml"
    proc = _start(directory)
    try:
        _read_until_transcript(proc)
        assert _synapse_pids(config), "Synapse should be running while the demo runs"
        if reader_gone:  # `| tee`: the reader dies with the same Ctrl-C, first
            assert proc.stdout is not None
            proc.stdout.close()
        proc.send_signal(getattr(signal, how))
        proc.wait(timeout=60)
        _wait(lambda: not _synapse_pids(config), limit=30, what="Synapse to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _synapse_pids(config):  # never leave one behind, even when failing
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if how != "SIGKILL":
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
