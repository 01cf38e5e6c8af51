"""The bridge as an operator installs it: a wheel into a clean virtual environment
with only its run-time dependencies. Every module imports, and ``python -m bridge
migrate`` works in an empty directory (the SQL migrations ship inside the wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
database: {url: "sqlite:zapbridge.db"}
data_dir: data
whatsapp: {engine: sim}
companies:
  - id: acme
    name: ACME
    admins: ["@alice:localhost"]
    sessions:
      - name: sales
"""
IMPORT_EVERYTHING = """\
import importlib, pkgutil, bridge
names = [m.name for m in pkgutil.walk_packages(bridge.__path__, "bridge.")]
for name in names:
    importlib.import_module(name)
print(len(names), "modules from", bridge.__file__)
"""


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with the bridge's wheel and its run-time dependencies only."""
    base = tmp_path_factory.mktemp("wheel")
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base, ROOT, cwd=base
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = base.glob("zapbridge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "bridge/migrations/0001_init.sql" in archive.namelist()
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    done = _run(python, "-m", "pip", "install", "-q", wheel, cwd=base)
    assert done.returncode == 0, done.stderr
    return python


def test_every_module_imports_with_only_the_runtime_dependencies(
    installed: Path, tmp_path: Path
) -> None:
    out = _run(installed, "-c", IMPORT_EVERYTHING, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "site-packages" in out.stdout  # the installed copy, not this checkout


def test_migrate_works_from_the_wheel_in_an_empty_directory(
    installed: Path, tmp_path: Path
) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    out = _run(installed, "-m", "bridge", "migrate", "-c", "config.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("applied migrations: 1, 2, 3, 4, 5"), out.stdout
    assert (tmp_path / "zapbridge.db").exists()
