"""``python -m bridge migrate-devices`` (docs/cluster.md, "Device stores").

The whatsmeow stores here are real: whatsmeow itself creates their schema (v15 with
neonize 0.5.2) through neonize's static ``GetAllDevices``, in a child process (a Go
panic there cannot take the test run down; no neonize client is ever built). The
device in the SQLite store is synthetic: rows that satisfy whatsmeow's schema and
checks (key lengths, foreign keys), not a real WhatsApp account. After the copy,
whatsmeow is asked again, in a child process, to list the devices of the PostgreSQL
store: it must find the copied one."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.__main__ import move_devices
from bridge.config import Config, parse_config
from bridge.db import Database, migrate
from bridge.db.devices import DevicePairingRepository
from bridge.db.sim_network import SimNetworkRepository
from bridge.errors import BridgeError
from bridge.whatsapp.device_files import DeviceFiles, Pairing
from bridge.whatsapp.engine import SessionSpec
from bridge.whatsapp.sim_store import SimDevice, SimSessionStore
from tests.conftest import PG_TEST_URL, open_test_database

DEVICE = "5511900000001:7@s.whatsapp.net"
CONFIG = """\
database: {url: "sqlite:bridge.db"}
data_dir: data
whatsapp: {engine: whatsmeow}
companies:
  - id: acme
    name: ACME
    admins: ["@alice:localhost"]
    sessions:
      - name: sales
      - name: demo
        engine: sim
"""


def whatsmeow(database: str) -> list[str]:
    """The device JIDs whatsmeow finds in ``database`` (creating its tables first)."""
    code = (
        "import json, sys\n"
        "from bridge.whatsapp.device_files import stored_devices\n"
        "print(json.dumps(stored_devices(sys.argv[1])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, database], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def config_in(tmp_path: Path) -> Config:
    (tmp_path / "config.yaml").write_text(CONFIG)
    return parse_config(CONFIG, path=tmp_path / "config.yaml")


def sales_files(config: Config) -> DeviceFiles:
    spec = SessionSpec(
        key="acme/sales",
        company="acme",
        name="sales",
        device_dir=config.data_path / "devices" / "acme" / "sales",
    )
    return DeviceFiles(spec)


def fill_store(path: Path) -> None:
    """A synthetic paired device in a whatsmeow-made SQLite store."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(
            "INSERT INTO whatsmeow_device (jid, lid, registration_id, noise_key, identity_key, "
            "signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, "
            "adv_account_sig, adv_account_sig_key, adv_device_sig, platform, push_name) "
            "VALUES (?, ?, 4242, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, 'android', 'ACME')",
            (
                DEVICE,
                "99000001:7@lid",
                *(b"n" * 32, b"i" * 32, b"s" * 32, b"g" * 64, b"adv-key", b"adv-details"),
                *(b"a" * 64, b"k" * 32, b"d" * 64),
            ),
        )
        conn.executemany(
            "INSERT INTO whatsmeow_pre_keys (jid, key_id, key, uploaded) VALUES (?, ?, ?, ?)",
            [(DEVICE, n, bytes([n]) * 32, n % 2) for n in range(1, 6)],
        )
        conn.execute(
            "INSERT INTO whatsmeow_identity_keys (our_jid, their_id, identity) VALUES (?, ?, ?)",
            (DEVICE, "5511987654321.0:0", b"t" * 32),
        )
        conn.execute(
            "INSERT INTO whatsmeow_sessions (our_jid, their_id, session) VALUES (?, ?, ?)",
            (DEVICE, "5511987654321.0:0", b"signal-session"),
        )
        conn.execute(
            "INSERT INTO whatsmeow_app_state_version (jid, name, version, hash) "
            "VALUES (?, ?, ?, ?)",
            (DEVICE, "regular", 3, b"h" * 128),
        )
        conn.execute(
            "INSERT INTO whatsmeow_app_state_mutation_macs (jid, name, version, index_mac, "
            "value_mac) VALUES (?, 'regular', 3, ?, ?)",
            (DEVICE, b"x" * 32, b"v" * 32),
        )
        conn.execute(
            "INSERT INTO whatsmeow_chat_settings (our_jid, chat_jid, pinned, archived) "
            "VALUES (?, ?, 1, 0)",
            (DEVICE, "5511987654321@s.whatsapp.net"),
        )
        conn.execute("INSERT INTO whatsmeow_lid_map (lid, pn) VALUES ('123456', '5511987654321')")


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_test_database("postgres", tmp_path) as db:
        await migrate(db)
        yield db


async def pg_url(db: Database) -> str:
    """The test schema's URL as whatsmeow takes it."""
    schema = await db.fetchval("SELECT current_schema()")
    return f"{PG_TEST_URL}?search_path={schema}&sslmode=disable"


@pytest.mark.postgres
async def test_a_sqlite_whatsmeow_store_moves_into_postgres(tmp_path: Path, pg: Database) -> None:
    config = config_in(tmp_path)
    files = sales_files(config)
    files.prepare()
    assert whatsmeow(str(files.sqlite)) == []  # whatsmeow made the store: its schema
    fill_store(files.sqlite)
    assert whatsmeow(str(files.sqlite)) == [DEVICE]  # whatsmeow reads the synthetic device
    files.write(Pairing(jid="5511900000001:7@s.whatsapp.net", lid="99000001"))
    url = await pg_url(pg)

    lines = await move_devices(config, pg, open_whatsmeow=lambda: whatsmeow(url) and None)
    assert lines[0].startswith("acme/sales: whatsmeow device ")
    assert "copied (12 rows in 8 tables)" in lines[0]
    assert lines[1] == "acme/sales: pairing record 5511900000001:7@s.whatsapp.net stored"
    pairing = await DevicePairingRepository(pg).get("acme/sales")
    assert pairing is not None and pairing.lid == "99000001"
    assert not files.record.exists() and files.sqlite.exists()  # the store stays as a backup
    assert await pg.fetchval("SELECT COUNT(*) FROM whatsmeow_pre_keys") == 5
    assert await pg.fetchval("SELECT pinned AND NOT archived FROM whatsmeow_chat_settings"), (
        "SQLite's 0/1 became PostgreSQL booleans"
    )
    assert bytes(await pg.fetchval("SELECT hash FROM whatsmeow_app_state_version")) == b"h" * 128
    # whatsmeow itself reads the copied device from PostgreSQL
    assert whatsmeow(url) == [DEVICE]

    again = await move_devices(config, pg, open_whatsmeow=lambda: None)
    assert again[0].endswith("already in the database")
    assert len(again) == 1 or "(sim)" in again[1]
    assert await pg.fetchval("SELECT COUNT(*) FROM whatsmeow_pre_keys") == 5


@pytest.mark.postgres
async def test_a_corrupt_store_is_refused(tmp_path: Path, pg: Database) -> None:
    config = config_in(tmp_path)
    files = sales_files(config)
    files.prepare()
    files.sqlite.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(BridgeError, match=r"corrupt|not a whatsmeow"):
        await move_devices(config, pg, open_whatsmeow=lambda: None)
    assert await pg.fetchval("SELECT COUNT(*) FROM device_pairings") == 0


async def test_a_sqlite_target_refuses_whatsmeow_stores(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    files = sales_files(config)
    files.prepare()
    async with open_test_database("sqlite", tmp_path) as db:
        await migrate(db)
        with pytest.raises(BridgeError, match="database is SQLite"):
            await move_devices(config, db, open_whatsmeow=lambda: None)


async def test_sim_files_move_into_the_database_once(db: Database, tmp_path: Path) -> None:
    config = config_in(tmp_path)
    store = SimSessionStore(config.data_path / "sim" / "acme" / "demo")
    store.save_device(SimDevice(phone="+5511900000042", paired_at=5.0))
    for n in range(2):
        store.append_outbound(
            {"id": f"3EB0{n}", "to": "+5511987654321", "kind": "text", "text": f"t{n}"}
        )
    store.append_lid("123", "+5511987654321")

    lines = await move_devices(config, db, open_whatsmeow=lambda: None)
    assert lines == [
        "acme/demo (sim): copied device +5511900000042, 2 of 2 outbound entries, 1 of 1 LID links",
        "set whatsapp.sim.network: database to use the copied sim network",
    ]
    network = SimNetworkRepository(db)
    assert [e["text"] for e in await network.outbound("acme/demo")] == ["t0", "t1"]
    assert await network.lids("acme/demo") == {"123": "+5511987654321"}
    again = await move_devices(config, db, open_whatsmeow=lambda: None)
    assert again[0] == (
        "acme/demo (sim): copied device +5511900000042 (there already), "
        "0 of 2 outbound entries, 0 of 1 LID links"
    )
    assert len(await network.outbound("acme/demo")) == 2


async def test_a_corrupt_sim_file_is_refused(db: Database, tmp_path: Path) -> None:
    config = config_in(tmp_path)
    store = SimSessionStore(config.data_path / "sim" / "acme" / "demo")
    store.save_device(SimDevice(phone="+5511900000042", paired_at=5.0))
    store.outbound_path.write_text('{"id": "3EB01"\n')
    with pytest.raises(BridgeError, match="corrupt"):
        await move_devices(config, db, open_whatsmeow=lambda: None)


async def test_nothing_to_move(db: Database, tmp_path: Path) -> None:
    assert await move_devices(config_in(tmp_path), db, open_whatsmeow=lambda: None) == [
        "nothing to move: no SQLite whatsmeow stores or sim files in data_dir"
    ]
