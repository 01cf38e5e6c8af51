"""The cluster fault harness stays working: ``bench.cluster_faults --smoke`` (2
instances on PostgreSQL, 4 sessions, 200 messages each way, ``lease_seconds`` 3).

``cluster-kill``: the instance running the most sessions is killed (``kill -9``) half
way; every message arrives once and in order, and each of its sessions is seen
running on the survivor. No timing is asserted (the takeover times are printed).
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
    assert record["sessions_moved"] >= 1 and record["never_taken_over"] == 0, record
    assert len(record["takeover_s"]) == record["sessions_moved"]
