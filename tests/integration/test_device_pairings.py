"""Device stores in the database (docs/cluster.md, "Device stores"): the repositories
of migration 0010 on both databases, and the whatsmeow engine keeping the pairing
record of a PostgreSQL device store in the database, on the recording fake neonize
client (tests/fakes/neonize_client.py; never a real, unconnected neonize client)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from neonize.proto import Neonize_pb2 as neonize

from bridge.db import Database
from bridge.db.devices import DevicePairingRepository, DevicePairingRow
from bridge.db.sim_network import SimNetworkRepository
from bridge.whatsapp import jid as jids
from bridge.whatsapp.device_files import DeviceFiles, Pairing
from bridge.whatsapp.engine import ConnectedEvent, PairSuccessEvent
from tests.fakes.neonize_client import OWN_DEVICE, EngineHarness

KEY = "acme/sales"
PG = "postgresql://bridge@db.example/zapbridge"  # what neonize would get; the client is fake


# --- repositories, on SQLite and PostgreSQL ---------------------------------------------


async def test_pairing_records_round_trip(db: Database) -> None:
    repo = DevicePairingRepository(db)
    assert await repo.get(KEY) is None
    await repo.put(KEY, jid=OWN_DEVICE, lid=None, now=100.0)
    await repo.put(KEY, jid=OWN_DEVICE, lid="99000001", now=200.0)  # the LID learned later
    assert await repo.get(KEY) == DevicePairingRow(KEY, "whatsmeow", OWN_DEVICE, "99000001", 100.0)
    await repo.put(KEY, jid="5511900000002:3@s.whatsapp.net", lid=None, now=300.0)  # new login
    row = await repo.get(KEY)
    assert row is not None and (row.jid, row.lid, row.paired_at) == (
        "5511900000002:3@s.whatsapp.net",
        None,
        300.0,
    )
    assert not await repo.add_missing(KEY, jid="x", lid=None, engine="whatsmeow", now=1.0)
    assert await repo.add_missing(
        "acme/b", jid="y@s.whatsapp.net", lid="7", engine="whatsmeow", now=1.0
    )
    assert [r.session_key for r in await repo.all()] == ["acme/b", KEY]
    await repo.delete(KEY)
    assert await repo.get(KEY) is None


async def test_sim_network_round_trip(db: Database) -> None:
    net = SimNetworkRepository(db)
    assert await net.device(KEY) is None
    first = await net.pair(KEY, phone="+5511900000001", paired_at=1.0, auto=True, replace=False)
    assert (first.phone, first.paired_at, first.auto) == ("+5511900000001", 1.0, True)
    kept = await net.pair(KEY, phone="+5511900000009", paired_at=2.0, auto=True, replace=False)
    assert kept.phone == "+5511900000001", "an auto-pairing race keeps the first device"
    scanned = await net.pair(KEY, phone="+5511900000042", paired_at=3.0, auto=False, replace=True)
    assert (scanned.phone, scanned.auto) == ("+5511900000042", False)
    assert await net.paired_phones() == {"+5511900000042"}
    await net.log_outbound(KEY, {"id": "3EB01", "to": "+55", "kind": "text", "text": "olá 😀"})
    await net.log_outbound(KEY, {"id": "3EB02", "to": "+55", "kind": "text", "text": "2"})
    assert [e["text"] for e in await net.outbound(KEY)] == ["olá 😀", "2"]
    assert await net.outbound("acme/other") == []
    await net.link_lid(KEY, lid="123", phone="+5511987654321")
    await net.link_lid(KEY, lid="123", phone="+5511987654321")  # twice: one link
    assert await net.lids(KEY) == {"123": "+5511987654321"}
    for n in range(3):
        await net.hold(KEY, wa_id=f"ID{n}", body={"kind": "text", "text": str(n)}, posted_at=n)
    held = await net.held(KEY, limit=2)
    assert [(h.wa_id, h.body["text"], h.posted_at) for h in held] == [
        ("ID0", "0", 0),
        ("ID1", "1", 1),
    ]
    assert await net.sessions_with_held() == {KEY}
    assert await net.take(held[0].seq) and not await net.take(held[0].seq)
    assert [h.wa_id for h in await net.held(KEY)] == ["ID1", "ID2"]
    await net.unpair(KEY)
    assert await net.device(KEY) is None


# --- the whatsmeow engine's pairing record in the database ---------------------------------


@pytest.fixture
async def pairings(db: Database) -> DevicePairingRepository:
    return DevicePairingRepository(db)


@pytest.fixture
async def instances(
    tmp_path: Path, pairings: DevicePairingRepository
) -> AsyncIterator[tuple[EngineHarness, EngineHarness]]:
    """Two instances on two machines: their own data_dir, one database."""
    a = EngineHarness(tmp_path / "a" / "devices", database_url=PG, pairings=pairings)
    b = EngineHarness(tmp_path / "b" / "devices", database_url=PG, pairings=pairings)
    yield a, b
    await a.engine.close()
    await b.engine.close()


async def test_a_login_on_one_instance_is_paired_on_the_other(
    instances: tuple[EngineHarness, EngineHarness], pairings: DevicePairingRepository
) -> None:
    a, b = instances
    assert not await b.engine.is_paired(b.spec)
    await a.engine.login(a.spec)
    await a.client.deliver_qr("2@first,key1,key2,adv")
    device = neonize.JID(User="5511900000001", Server="s.whatsapp.net", Device=9)
    await a.client.deliver(neonize.PairStatus(ID=device, Status=neonize.PairStatus.SUCCESS))
    assert a.events[-1] == PairSuccessEvent(session=KEY, phone="+5511900000001")
    row = await pairings.get(KEY)
    assert row is not None and row.jid == "5511900000001:9@s.whatsapp.net"
    assert not DeviceFiles(a.spec).record.exists(), "no record file beside a PostgreSQL store"
    # the session moves: B (another machine, nothing in its data_dir) runs it, no QR
    await a.engine.disconnect(KEY)
    b.stored_devices.append("5511900000001:9@s.whatsapp.net")  # whatsmeow's tables have it
    assert await b.engine.is_paired(b.spec)
    await b.engine.connect(b.spec)
    assert b.client.name == PG and not b.client.new_device
    assert b.client.jid is not None
    assert jids.jid_to_str(b.client.jid) == "5511900000001:9@s.whatsapp.net"
    await b.client.deliver(neonize.Connected(status=True))
    assert b.events[-1] == ConnectedEvent(session=KEY, phone="+5511900000001")


async def test_the_lid_learned_on_connect_is_recorded(
    instances: tuple[EngineHarness, EngineHarness], pairings: DevicePairingRepository
) -> None:
    a, _ = instances
    await pairings.put(KEY, jid=OWN_DEVICE, lid=None)
    a.stored_devices.append(OWN_DEVICE)
    await a.engine.connect(a.spec)
    a.client.me = neonize.Device(
        JID=neonize.JID(User="5511900000001", Server="s.whatsapp.net", Device=7),
        LID=neonize.JID(User="99000001", Server="lid"),
    )
    await a.client.deliver(neonize.Connected(status=True))

    async def learned() -> bool:
        row = await pairings.get(KEY)
        return row is not None and row.lid == "99000001"

    for _ in range(500):
        if await learned():
            break
        await a.settle()
    assert await learned()


async def test_a_logout_forgets_the_pairing_for_every_instance(
    instances: tuple[EngineHarness, EngineHarness], pairings: DevicePairingRepository
) -> None:
    a, b = instances
    await pairings.put(KEY, jid=OWN_DEVICE, lid=None)
    a.stored_devices.append(OWN_DEVICE)
    await a.engine.connect(a.spec)
    await a.client.deliver(neonize.Connected(status=True))
    await a.engine.logout(KEY)
    assert await pairings.get(KEY) is None
    assert not await b.engine.is_paired(b.spec)


async def test_a_record_file_of_an_earlier_version_moves_into_the_database(
    instances: tuple[EngineHarness, EngineHarness], pairings: DevicePairingRepository
) -> None:
    a, b = instances
    a.pair()  # the .whatsmeow.json file a bridge before 0010 wrote
    assert DeviceFiles(a.spec).record.exists() and not await b.engine.is_paired(b.spec)
    assert await a.engine.is_paired(a.spec)
    row = await pairings.get(KEY)
    assert row is not None and row.jid == OWN_DEVICE
    assert not DeviceFiles(a.spec).record.exists(), "moved, so a later logout cannot revive it"
    assert await b.engine.is_paired(b.spec)


async def test_a_sqlite_store_keeps_its_record_file(
    tmp_path: Path, pairings: DevicePairingRepository
) -> None:
    h = EngineHarness(tmp_path / "devices", pairings=pairings)  # no PostgreSQL URL
    try:
        h.pair()
        assert await h.engine.is_paired(h.spec)
        assert await pairings.get(KEY) is None
        assert DeviceFiles(h.spec).read() == Pairing(jid=OWN_DEVICE)
    finally:
        await h.engine.close()
