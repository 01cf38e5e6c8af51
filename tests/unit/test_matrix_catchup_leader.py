"""With several instances only the leader catches up after an outage every
instance's pings saw; a restart seen in one instance's pushes is caught up there
(docs/cluster.md#ownership-and-fencing)."""

from __future__ import annotations

from bridge.clock import FakeClock
from bridge.matrix.catchup import HomeserverWatch
from tests.unit.test_matrix_catchup import (  # noqa: F401 (fixtures)
    INTERVAL,
    START,
    RecordedCatchUp,
    ScriptedPing,
    catch_up,
    clock,
    ping,
    watch,
)


async def test_an_outage_is_caught_up_by_the_leader_only(
    watch: HomeserverWatch,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    ping: ScriptedPing,  # noqa: F811
    catch_up: RecordedCatchUp,  # noqa: F811
) -> None:
    leading = False
    watch.recovers = lambda: leading
    ping.then(False, True)
    await clock.advance(5 * INTERVAL)
    assert catch_up.since == []  # not the leader
    leading = True
    ping.then(False, True)
    await clock.advance(5 * INTERVAL)
    assert len(catch_up.since) == 1


async def test_a_restart_seen_in_the_pushes_is_caught_up_on_any_instance(
    watch: HomeserverWatch,  # noqa: F811
    clock: FakeClock,  # noqa: F811
    catch_up: RecordedCatchUp,  # noqa: F811
) -> None:
    watch.recovers = lambda: False
    await watch.note_transaction("42", [{"event_id": "$b"}])
    await watch.note_transaction("1", [{"event_id": "$c"}])
    await clock.settle()
    assert catch_up.since == [START]
