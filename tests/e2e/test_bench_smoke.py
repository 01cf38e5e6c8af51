"""Every benchmark runs in its ``--smoke`` size and prints its figures (issue 7).

No timing is asserted: only that each script exits 0 and prints JSON lines with the
expected keys, on SQLite and PostgreSQL (``ZAPBRIDGE_TEST_PG``; unreachable fails).
The Synapse sink and the ``synapse-restart`` fault start a real local Synapse (from
the ``matrix-synapse`` package) per run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RELAY_KEYS = {
    "sink", "db", "phase", "messages", "delivered", "seconds", "msgs_per_s", "cpu_ms_per_msg",
    "p50_ms", "p95_ms", "p99_ms", "direct_msgs_per_s", "bridge_over_direct",
}  # fmt: skip
HISTORY_KEYS = {"db", "stored_messages", "tickets", "insert_seconds", "p50_ms", "p95_ms", "p99_ms"}
SESSIONS_KEYS = {
    "db", "sessions", "stagger_ms", "startup_seconds", "settled_seconds", "restart_seconds",
    "rss_idle_mb", "mb_per_session", "idle_cpu_percent", "tasks_idle",
}  # fmt: skip
FAULT_KEYS = {
    "fault", "db", "frontend", "messages_each_way", "to_frontend_lost",
    "to_frontend_duplicated", "to_frontend_out_of_order", "to_whatsapp_lost",
    "to_whatsapp_duplicated", "to_whatsapp_out_of_order", "dead_letters",
}  # fmt: skip
SLACK_FAULTS = ("kill", "disconnect", "slack-errors")


def run_bench(*args: str, timeout: float = 240) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", *args, "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr[-4000:]}"
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert records, f"{args} printed no JSON lines:\n{result.stdout}"
    return records


def test_relay_smoke_prints_every_sink_on_both_databases() -> None:
    """``--sink all`` (the default): null, the Slack fake and a real local Synapse."""
    records = run_bench("bench.relay", "--db", "both")
    seen = {(r["sink"], r["db"], r["phase"].split("@")[0]) for r in records}
    assert seen == {
        (sink, db, phase)
        for sink in ("null", "slack", "synapse")
        for db in ("sqlite", "postgres")
        for phase in ("max", "paced")
    }
    for record in records:
        assert RELAY_KEYS <= record.keys()
        assert record["delivered"] == record["messages"]


def test_scale_smoke_prints_history_and_sessions() -> None:
    records = run_bench("bench.scale", "--db", "both")
    history = [r for r in records if r["what"] == "history"]
    assert {r["db"] for r in history} == {"sqlite", "postgres"}
    for record in history:
        assert HISTORY_KEYS <= record.keys()
    sessions = [r for r in records if r["what"] == "sessions"]
    assert {r["db"] for r in sessions} == {"sqlite", "postgres"}
    for record in sessions:
        assert SESSIONS_KEYS <= record.keys()


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_faults_smoke_prints_every_slack_variant(db: str) -> None:
    """kill -9 and restart, the sim disconnecting, Slack answering 429 and 503: each
    prints its figures, and none loses, duplicates or reorders a message either way,
    or leaves a dead letter."""
    records = run_bench("bench.faults", "--db", db, "--faults", ",".join(SLACK_FAULTS))
    assert {r["fault"] for r in records} == set(SLACK_FAULTS)
    for record in records:
        assert FAULT_KEYS <= record.keys()
        assert record["db"] == db and record["frontend"] == "slack"
        for sink in ("to_frontend", "to_whatsapp"):
            for what in ("lost", "duplicated", "out_of_order"):
                assert record[f"{sink}_{what}"] == 0, (record["fault"], sink, what, record)
        assert record["dead_letters"] == 0, record


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_faults_smoke_database_outage_loses_nothing(db: str) -> None:
    """The database away 6 s at half (PostgreSQL terminated and refused, SQLite locked by
    another process): customer messages meanwhile are journaled and replayed, attendant
    messages redelivered by Slack; nothing lost, duplicated or reordered, none dropped."""
    (record,) = run_bench("bench.faults", "--db", db, "--faults", "db-outage")
    assert FAULT_KEYS <= record.keys()
    assert record["db"] == db and record["frontend"] == "slack"
    for sink in ("to_frontend", "to_whatsapp"):
        for what in ("lost", "duplicated", "out_of_order"):
            assert record[f"{sink}_{what}"] == 0, (sink, what, record)
    assert record["dead_letters"] == 0
    assert record["journaled"] > 0 and record["dropped"] == 0
    assert record["slack_redeliveries"] > 0  # attendant messages were refused, then retried


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_faults_smoke_synapse_restart_loses_nothing(db: str) -> None:
    """A real Synapse stopped and started again mid-run: nothing lost toward Matrix,
    order kept, no dead letter. Toward WhatsApp, Synapse itself can drop an attendant
    message it accepted just before stopping: its appservice scheduler holds events
    queued behind an in-flight transaction only in memory, after advancing its stream
    position (element-hq/synapse#11637). The bench counts such messages apart
    (``to_whatsapp_lost_never_pushed``); any other loss toward WhatsApp fails."""
    (record,) = run_bench("bench.faults", "--db", db, "--faults", "synapse-restart")
    assert FAULT_KEYS <= record.keys()
    assert record["frontend"] == "matrix" and record["db"] == db
    assert record["to_frontend_lost"] == 0
    assert record["to_frontend_out_of_order"] == 0 and record["to_whatsapp_out_of_order"] == 0
    assert record["dead_letters"] == 0
    assert record["to_whatsapp_lost"] == record["to_whatsapp_lost_never_pushed"]
    if record["to_whatsapp_lost"]:
        pytest.xfail(f"Synapse never pushed {record['to_whatsapp_lost']} (synapse#11637)")
