"""Files holding secrets are 0600 in 0700 directories, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import files
from bridge.db.database import Database
from bridge.whatsapp.device_files import DeviceFiles, Pairing
from bridge.whatsapp.engine import SessionSpec
from bridge.whatsapp.sim_store import SimDevice, SimSessionStore


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def modes_of(directory: Path, prefix: str) -> dict[str, int]:
    return {p.name: mode(p) for p in directory.iterdir() if p.name.startswith(prefix)}


def test_private_dir_makes_every_missing_level_0700(tmp_path: Path, umask: int) -> None:
    tmp_path.chmod(0o755)
    leaf = files.private_dir(tmp_path / "data" / "devices" / "acme")
    assert [mode(p) for p in (leaf, leaf.parent, leaf.parent.parent)] == [0o700] * 3
    assert mode(tmp_path) == 0o755  # not the bridge's: left alone
    assert files.private_dir(leaf) == leaf  # existing: fine


def test_private_dir_refuses_a_file_in_its_way(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    with pytest.raises(NotADirectoryError):
        files.private_dir(tmp_path / "data")


@pytest.mark.parametrize("durable", [True, False])
def test_write_private_replaces_atomically_with_0600(
    tmp_path: Path, umask: int, durable: bool
) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    target.chmod(0o644)
    files.write_private(target, '{"new": true}', durable=durable)
    assert target.read_text() == '{"new": true}'
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_append_private_creates_0600_and_tightens_an_old_file(tmp_path: Path, umask: int) -> None:
    log = tmp_path / "outbound.jsonl"
    files.append_private(log, "one\n")
    assert mode(log) == 0o600
    log.chmod(0o644)
    files.append_private(log, "two\n")
    assert (log.read_text(), mode(log)) == ("one\ntwo\n", 0o600)


def test_create_private_makes_an_empty_0600_file_once(tmp_path: Path, umask: int) -> None:
    store = tmp_path / "store.db"
    assert files.create_private(store)
    assert (store.read_bytes(), mode(store)) == (b"", 0o600)
    store.write_bytes(b"kept")
    assert not files.create_private(store)
    assert store.read_bytes() == b"kept"


def test_tighten_tree_fixes_what_others_could_read_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "devices" / "acme").mkdir(parents=True)
    for directory in (data, data / "devices", data / "devices" / "acme"):
        directory.chmod(0o755)
    (data / "devices" / "acme" / "store.db").write_text("keys")
    (data / "devices" / "acme" / "store.db").chmod(0o644)
    (data / "owner-only").write_text("x")
    (data / "owner-only").chmod(0o400)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)
    caplog.set_level(logging.INFO, logger="bridge.files")

    changed = files.tighten_tree(data)

    assert len(changed) == 4
    assert all(mode(p) == 0o700 for p in (data, data / "devices", data / "devices" / "acme"))
    assert mode(data / "devices" / "acme" / "store.db") == 0o600
    assert mode(data / "owner-only") == 0o400  # already private: not touched
    assert mode(outside) == 0o644  # a link is never followed
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.files"]
    assert len(lines) == 1 and lines[0].startswith(f"made 4 path(s) under {data} private")
    caplog.clear()
    assert files.tighten_tree(data) == []
    assert not [r for r in caplog.records if r.name == "bridge.files"]


def test_tighten_tree_creates_a_missing_data_dir(tmp_path: Path, umask: int) -> None:
    assert files.tighten_tree(tmp_path / "fresh" / "data") == []
    assert mode(tmp_path / "fresh") == mode(tmp_path / "fresh" / "data") == 0o700


async def test_sqlite_files_are_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "bridge.db"
    db = await Database.connect(f"sqlite:{path}")
    try:
        await db.execute("CREATE TABLE t (x TEXT)")
        await db.execute("INSERT INTO t VALUES ('secret')")
        made = modes_of(tmp_path, "bridge.db")
        assert made.keys() >= {"bridge.db", "bridge.db-wal", "bridge.db-shm"}
        assert made == dict.fromkeys(made, 0o600)
    finally:
        await db.close()


async def test_an_existing_sqlite_file_is_tightened_at_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bridge.db"
    db = await Database.connect(f"sqlite:{path}")
    await db.close()
    path.chmod(0o644)
    caplog.set_level(logging.INFO, logger="bridge.files")
    db = await Database.connect(f"sqlite:{path}")
    await db.close()
    assert mode(path) == 0o600
    assert [r.getMessage() for r in caplog.records if r.name == "bridge.files"] == [
        f"made 1 path(s) private (files 0600, directories 0700; group or others had access): {path}"
    ]


def test_whatsmeow_device_files_are_private(tmp_path: Path, umask: int) -> None:
    spec = SessionSpec(
        key="acme/sales", company="acme", name="sales", device_dir=tmp_path / "d" / "acme"
    )
    device = DeviceFiles(spec)
    device.prepare()
    device.write(Pairing(jid="5511900000001:1@s.whatsapp.net", lid=None))
    assert mode(tmp_path / "d") == mode(spec.device_dir) == 0o700
    assert mode(device.sqlite) == mode(device.record) == 0o600
    assert device.is_paired()


def test_whatsmeow_on_postgres_keeps_no_store_file(tmp_path: Path) -> None:
    spec = SessionSpec(
        key="acme/sales",
        company="acme",
        name="sales",
        device_dir=tmp_path / "acme",
        database_url="postgres://zap@db/zap",
    )
    DeviceFiles(spec).prepare()
    assert list(spec.device_dir.iterdir()) == []


def test_sim_pairing_and_outbound_files_are_private(tmp_path: Path, umask: int) -> None:
    store = SimSessionStore(tmp_path / "sim" / "acme" / "sales")
    store.save_device(SimDevice(phone="+5511900000001", paired_at=1.0))
    store.append_outbound({"id": "x", "kind": "text", "text": "Olá"})
    assert mode(tmp_path / "sim") == mode(store.directory) == 0o700
    assert mode(store.device_path) == mode(store.outbound_path) == 0o600
    assert store.load_device() == SimDevice(phone="+5511900000001", paired_at=1.0)
    assert store.load_outbound() == [{"id": "x", "kind": "text", "text": "Olá"}]
