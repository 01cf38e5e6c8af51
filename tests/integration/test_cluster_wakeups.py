"""Instances wake each other over LISTEN/NOTIFY (docs/cluster.md): with a fake clock
that never moves, no periodic pass or poll runs, so only a notification can make the
survivor take a stopped instance's sessions, or make the owner of a session receive a
/sim message posted to another instance. PostgreSQL only."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.db.database import Database
from tests.harness.core import until
from tests.integration.test_cluster_app import KEYS, Instance, schema_dbs

__all__ = ["schema_dbs"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.postgres


async def _pair(tmp_path: Path, dbs: tuple[Database, Database]) -> tuple[Instance, Instance]:
    clock = FakeClock()
    a = Instance(tmp_path, dbs[0], "a", clock)
    b = Instance(tmp_path, dbs[1], "b", clock)
    await a.bridge.start()
    await until(lambda: a.connected() == KEYS, what="a runs every session", clock=clock)
    await b.bridge.start()
    # b's start asks a to look at once: a hands over its extra session (clock still)
    await until(lambda: len(b.owned()) == 1, what="b given one session")
    await until(lambda: len(b.connected()) == 1, what="b runs it", clock=clock)
    return a, b


async def test_a_clean_stop_wakes_the_survivor_without_waiting_for_a_pass(
    tmp_path: Path, schema_dbs: tuple[Database, Database]
) -> None:
    a, b = await _pair(tmp_path, schema_dbs)
    try:
        moment = b.clock.now()
        await a.bridge.stop()
        await until(lambda: b.owned() == KEYS, what="b owns every session, the clock still")
        assert b.clock.now() == moment  # no pass came due: the NOTIFY did it
    finally:
        await b.bridge.stop()
        await a.bridge.stop()


async def test_a_sim_message_posted_to_another_instance_reaches_the_owner_at_once(
    tmp_path: Path, schema_dbs: tuple[Database, Database]
) -> None:
    a, b = await _pair(tmp_path, schema_dbs)
    try:
        (key,) = b.owned()
        body = {"from": "+5511987654321", "push_name": "Maria", "kind": "text", "text": "oi"}
        wa_id = await a.sim.inbound(key, body)  # held by the network for b
        stored = await until(
            lambda: b.bridge.repos.messages.find_by_wa_id(b.bridge.session_ids[key], wa_id),
            what="the owner stored it, the clock still",
        )
        assert stored.session_id == b.bridge.session_ids[key]
        assert await a.bridge.repos.messages.find_by_wa_id(a.bridge.session_ids[key], wa_id)
    finally:
        await b.bridge.stop()
        await a.bridge.stop()
