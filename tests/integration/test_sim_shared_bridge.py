"""The whole bridge on the sim network in its database (``whatsapp.sim.network:
database``, docs/sim.md "Shared network"): messages go through the held queue, the
log and the device live in the database, and a restart keeps all of it, including a
message another instance posted while this one was down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.db import Database
from bridge.db.sim_network import SimNetworkRepository
from bridge.errors import DatabaseError
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CONFIG, CUSTOMER, CoreHarness, until

SHARED_CONFIG = CONFIG.replace(
    "sim: {{auto_pair: {auto_pair}}}", "sim: {{auto_pair: {auto_pair}, network: database}}"
)


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    assert "network: database" in SHARED_CONFIG
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")], config=SHARED_CONFIG)
    await harness.start()
    yield harness
    await harness.stop()


async def test_the_bridge_runs_on_the_shared_network_and_keeps_it_across_a_restart(
    core: CoreHarness, tmp_path: Path
) -> None:
    assert core.sim.shared
    phone = core.sim.phone_of("acme/sales")
    first = await core.customer(text="oi")  # held, taken by this instance, stored
    log = await core.sim.outbound_log("acme/sales")
    assert [e["text"] for e in log] == ["Olá! Um atendente já vai falar com você."]
    assert not (tmp_path / "data" / "sim").exists(), "nothing of the network in data_dir"

    await core.stop()
    # meanwhile another instance of the config takes a customer message
    network = SimNetworkRepository(core.db)
    body = {"from": CUSTOMER, "push_name": "Maria", "kind": "text", "text": "ainda aí?"}
    await network.hold("acme/sales", wa_id="3EB0AAAAAAAAAAAAAAAAAA", body=body, posted_at=5.0)
    core.bridge = core._new_bridge()
    await core.start()
    assert core.sim.phone_of("acme/sales") == phone, "the same device, no new pairing"
    session_id = core.bridge.session_ids["acme/sales"]
    await until(
        lambda: core.bridge.repos.messages.find_by_wa_id(session_id, "3EB0AAAAAAAAAAAAAAAAAA"),
        what="the message held while the bridge was down",
    )
    assert await core.bridge.repos.messages.find_by_wa_id(session_id, first) is not None
    assert await network.held("acme/sales") == []
    assert len(await core.sim.outbound_log("acme/sales")) == 1  # no second greeting


async def test_a_message_delivered_again_after_a_lost_ack_is_stored_once(
    core: CoreHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bridge persisted the message, then deleting it from the network failed (the
    instance died there): the network delivers it again and the relay drops it."""
    real_take = SimNetworkRepository.take
    lost: list[int] = []

    async def take_after_a_crash(self: SimNetworkRepository, seq: int) -> bool:
        if not lost:
            lost.append(seq)
            raise DatabaseError("connection lost")
        return await real_take(self, seq)

    monkeypatch.setattr(SimNetworkRepository, "take", take_after_a_crash)
    wa_id = await core.customer(text="uma vez")
    network = SimNetworkRepository(core.db)
    await until(lambda: _none_held(network), what="the message taken at last")
    assert lost, "the first ack was lost"
    session_id = core.bridge.session_ids["acme/sales"]
    count = await core.db.fetchval(
        "SELECT COUNT(*) FROM messages WHERE session_id = $1 AND wa_id = $2", session_id, wa_id
    )
    assert count == 1


async def _none_held(network: SimNetworkRepository) -> bool:
    return await network.held("acme/sales") == []
