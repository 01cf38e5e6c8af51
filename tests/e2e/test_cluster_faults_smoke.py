"""The cluster benchmarks stay working: ``bench.cluster_faults --smoke`` (2
instances on PostgreSQL, 4 sessions, 200 messages each way, ``lease_seconds`` 3).

``cluster-kill``: the instance running the most sessions is killed (``kill -9``) half
way; every message arrives, in order, once (a Slack post its holder made just before
the kill is found by the survivor, docs/cluster.md "A key that moved"), and each of
its sessions is seen running on the survivor.
No timing is asserted (the takeover times are printed).
And ``bench.relay --instances 1,2 --smoke``.
"""

from __future__ import annotations

import pytest

from tests.e2e.test_bench_smoke import run_bench

pytestmark = pytest.mark.postgres

COUNTS = (
    "to_frontend_lost", "to_frontend_duplicated", "to_frontend_out_of_order",
    "to_whatsapp_lost", "to_whatsapp_duplicated", "to_whatsapp_out_of_order", "dead_letters",
)  # fmt: skip


def test_cluster_kill_smoke_loses_and_duplicates_nothing() -> None:
    (record,) = run_bench("bench.cluster_faults", "--faults", "cluster-kill", timeout=120)
    assert record["instances"] == 2 and record["lease_seconds"] == 3
    assert record["messages_each_way"] == 200
    assert {key: record[key] for key in COUNTS} == dict.fromkeys(COUNTS, 0), record
    assert record["duplicate_posts"] == {}, record
    assert record["sessions_moved"] >= 1 and record["never_taken_over"] == 0, record
    assert len(record["takeover_s"]) == record["sessions_moved"]


def test_relay_through_instances_smoke_prints_each_count() -> None:
    """``bench.relay --instances 1,2``: every message delivered, CPU per instance."""
    records = run_bench("bench.relay", "--instances", "1,2", timeout=120)
    assert [(r["instances"], r["phase"].split("@")[0]) for r in records] == [
        (1, "max"), (1, "paced"), (2, "max"), (2, "paced"),
    ]  # fmt: skip
    for record in records:
        assert record["delivered"] == record["messages"]
        assert len(record["instance_cpu_ms_per_msg"]) == record["instances"]
        assert record["postgres_cpu_ms_per_msg"] > 0
