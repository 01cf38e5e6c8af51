"""A real bridge start on SQLite with the sim engine leaves every file holding
secrets 0600 in a 0700 directory, whatever the umask; wider modes left by earlier
runs are tightened at start with one INFO line."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.clock import FakeClock
from bridge.config import parse_config
from bridge.whatsapp.sim import SimEngine
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CUSTOMER, free_port, until

CONFIG = """\
database: {{url: "{db_url}"}}
data_dir: data
http: {{host: 127.0.0.1, port: {port}}}
whatsapp:
  engine: sim
  start_stagger_ms: 0
  sim: {{auto_pair: true}}
companies:
  - id: acme
    name: ACME Support
    admins: ["@alice:localhost"]
    sessions:
      - name: sales
        greeting: "Olá! Um atendente já vai falar com você."
"""


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def modes_under(root: Path) -> dict[str, int]:
    found = {".": mode(root)}
    for directory, subdirs, names in os.walk(root):
        for name in subdirs + names:
            path = Path(directory) / name
            found[str(path.relative_to(root))] = mode(path)
    return found


def database_files(tmp_path: Path, db_url: str) -> list[Path]:
    db = tmp_path / db_url.removeprefix("sqlite:")
    return [p for p in db.parent.iterdir() if p.name.startswith(db.name)]


async def run_bridge_once(tmp_path: Path, db_url: str) -> None:
    """Start, pair (the sim pairs on its own), take one customer message so the
    greeting goes out (the sim's outbound log), and stop."""
    text = CONFIG.format(db_url=db_url, port=free_port())
    (tmp_path / "config.yaml").write_text(text)
    config = parse_config(text, path=tmp_path / "config.yaml")
    bridge = Bridge(config, clock=FakeClock(), frontends=[FakeFrontend("matrix")])
    await bridge.start()
    try:
        await until(
            lambda: str(bridge.sessions.statuses()["acme/sales"]) == "CONNECTED",
            what="session CONNECTED",
        )
        engine = bridge.engine
        assert isinstance(engine, SimEngine)
        await engine.inbound(
            "acme/sales", {"from": CUSTOMER, "push_name": "Maria", "kind": "text", "text": "oi"}
        )
        outbound = tmp_path / "data" / "sim" / "acme" / "sales" / "outbound.jsonl"
        await until(outbound.exists, what="the greeting in the sim's outbound log")
    finally:
        await bridge.stop()


@pytest.mark.parametrize("db_url", ["sqlite:data/bridge.db", "sqlite:bridge.db"])
async def test_a_bridge_start_leaves_only_private_files(
    tmp_path: Path, umask: int, db_url: str
) -> None:
    await run_bridge_once(tmp_path, db_url)
    found = modes_under(tmp_path / "data")
    assert {"sim/acme/sales/device.json", "sim/acme/sales/outbound.jsonl"} <= found.keys()
    for name, found_mode in found.items():
        is_dir = (tmp_path / "data" / name).is_dir()
        assert found_mode == (0o700 if is_dir else 0o600), f"{name}: {found_mode:04o}"
    db_files = database_files(tmp_path, db_url)
    assert len(db_files) >= 1
    assert {p.name: mode(p) for p in db_files} == {p.name: 0o600 for p in db_files}


async def test_wider_modes_from_an_earlier_run_are_tightened_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await run_bridge_once(tmp_path, "sqlite:bridge.db")
    data = tmp_path / "data"
    paths = [data, *data.rglob("*")]
    for path in paths:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (tmp_path / "bridge.db").chmod(0o644)
    caplog.set_level(logging.INFO, logger="bridge.files")

    await run_bridge_once(tmp_path, "sqlite:bridge.db")

    assert set(modes_under(data).values()) <= {0o700, 0o600}
    assert mode(tmp_path / "bridge.db") == 0o600
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.files"]
    assert len(lines) == 2, lines  # one for data_dir, one for the database
    assert lines[0].startswith(f"made {len(paths)} path(s) under {data} private")
    assert lines[1].endswith(f"had access): {tmp_path / 'bridge.db'}")
