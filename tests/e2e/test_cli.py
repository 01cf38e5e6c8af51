"""The CLI contract (docs/operations.md, "Command line") as a person uses it: real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bridge(
    *args: str,
    cwd: Path | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    umask: int = -1,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=None if env is None else {**os.environ, **env},
        umask=umask,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sim_config(tmp_path: Path, *, db_url: str = "sqlite:bridge.db", port: int = 0) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""\
database: {{url: "{db_url}"}}
data_dir: data
http: {{host: 127.0.0.1, port: {port or free_port()}}}
whatsapp:
  engine: sim
  sim: {{auto_pair: true}}
companies:
  - id: acme
    name: ACME Support
    admins: ["@alice:localhost"]
    sessions:
      - name: sales
      - name: support
"""
    )
    return path


def test_help_lists_every_command() -> None:
    out = bridge("--help")
    assert out.returncode == 0
    for command in ("run", "migrate", "check-config", "generate-registration"):
        assert command in out.stdout
        assert bridge(command, "--help").returncode == 0


def test_check_config_accepts_the_example() -> None:
    out = bridge("check-config", "-c", "config.example.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "error:" not in out.stdout


def test_check_config_names_the_line_of_a_broken_copy(tmp_path: Path) -> None:
    lines = (ROOT / "config.example.yaml").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "send_per_minute:" in line)
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines[index] = f"{indent}send_per_minute: lots"
    broken = tmp_path / "config.yaml"
    broken.write_text("\n".join(lines) + "\n")
    out = bridge("check-config", "-c", str(broken))
    assert out.returncode == 1
    assert f"config.yaml:{index + 1} whatsapp.send_per_minute:" in out.stdout


def test_check_config_reports_malformed_yaml_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("database:\n  url: [unclosed\nhttp: {port: 1}\n")
    out = bridge("check-config", "-c", str(path))
    assert out.returncode == 1
    assert "config.yaml:" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_migrate_applies_once_then_is_up_to_date(tmp_path: Path) -> None:
    config = sim_config(tmp_path)
    first = bridge("migrate", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert "applied migrations: 1, 2, 3" in first.stdout
    assert (tmp_path / "bridge.db").exists()  # relative to the config file, not the cwd
    second = bridge("migrate", "-c", str(config))
    assert second.returncode == 0 and "up to date" in second.stdout


@pytest.mark.parametrize(
    ("db_url", "expected"),
    [
        ("postgres://zap:hunter22@127.0.0.1:1/zap", "cannot connect to postgres://zap"),
        ("sqlite:/proc/no/such/dir/bridge.db", "cannot open SQLite database /proc/no/such/dir"),
    ],
)
def test_unusable_database_is_one_clear_line(tmp_path: Path, db_url: str, expected: str) -> None:
    out = bridge("run", "-c", str(sim_config(tmp_path, db_url=db_url)))
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert "hunter22" not in out.stderr


@pytest.mark.parametrize(
    ("db_url", "problem"),
    [
        ("postgres://zap:hunter22@[::1/zap", "the host has a '[' without its ']'"),
        ("postgresql://zap:hunter22@[zz::1]/zap", "the host in [...] is not an IPv6 address"),
        ("postgres://zap:hunter22@db:70000/zap", "the port is out of range 1-65535"),
    ],
)
def test_a_malformed_postgres_url_is_one_clear_line_for_every_command(
    tmp_path: Path, db_url: str, problem: str
) -> None:
    config = sim_config(tmp_path)
    env = {"ZAPBRIDGE_DATABASE_URL": db_url}
    check = bridge("check-config", "-c", str(config), env=env)
    assert check.returncode == 1
    assert f"config.yaml:1 database.url: {problem}" in check.stdout
    for command in ("run", "migrate"):
        out = bridge(command, "-c", str(config), env=env)
        assert out.returncode == 1
        (line,) = out.stderr.splitlines()
        assert line.startswith("error: ") and problem in line, out.stderr
        assert line.endswith("(value from ZAPBRIDGE_DATABASE_URL)")
        assert "hunter22" not in out.stdout + out.stderr


def test_a_data_dir_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    config = sim_config(tmp_path)
    (tmp_path / "data").write_text("not a directory")
    out = bridge("run", "-c", str(config))
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot use data_dir {tmp_path / 'data'}: Not a directory"]
    assert "Traceback" not in out.stderr


def test_files_the_cli_writes_are_private_whatever_the_umask(tmp_path: Path) -> None:
    config = sim_config(tmp_path)
    assert bridge("migrate", "-c", str(config), umask=0).returncode == 0
    made = [p for p in tmp_path.iterdir() if p.name.startswith("bridge.db")]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in made} == dict.fromkeys(
        (p.name for p in made), 0o600
    )


def test_generate_registration_says_it_made_the_config_private(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "homeserver: {address: 'http://127.0.0.1:8008', domain: localhost}\n"
        "appservice: {as_token: generate, hs_token: generate}\n"
        "companies: [{id: acme, admins: ['@alice:localhost'], ops: {matrix: true}}]\n"
    )
    config.chmod(0o644)
    out = bridge(
        "generate-registration", "-c", str(config), "-o", str(tmp_path / "reg.yaml"), umask=0
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"wrote generated tokens into {config} (now mode 0600: it holds them)",
        f"wrote {tmp_path / 'reg.yaml'} (mode 0600)",
    ]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "reg.yaml").stat().st_mode) == 0o600
    again = bridge("generate-registration", "-c", str(config), "-o", str(tmp_path / "reg.yaml"))
    assert again.stdout.splitlines() == [f"wrote {tmp_path / 'reg.yaml'} (mode 0600)"]


def _get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def test_run_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = sim_config(tmp_path, port=port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "-c", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        health: dict = {}  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            try:
                health = _get_json(f"http://127.0.0.1:{port}/health")
                if set(health["sessions"].values()) == {"CONNECTED"}:
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        assert health == {
            "status": "ok",
            "sessions": {"acme/sales": "CONNECTED", "acme/support": "CONNECTED"},
        }
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        assert b'zapbridge_session_status{session="acme/sales",status="CONNECTED"} 1.0' in metrics
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 15
        assert "zapbridge stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


FRONTEND_CONFIGS = {
    "matrix": """\
homeserver: {{address: "http://127.0.0.1:{dead}", domain: localhost}}
appservice: {{port: {free}, as_token: as-token-123456, hs_token: hs-token-654321}}
companies:
  - id: acme
    name: ACME Support
    admins: ["@alice:localhost"]
    sessions: [{{name: sales, matrix: true}}]
""",
    "slack": """\
slack:
  enabled: true
  bot_token: xoxb-1-abc
  app_token: xapp-1-abc
  api_url: "http://127.0.0.1:{dead}/api/"
companies:
  - id: acme
    name: ACME Support
    admins: ["U0ALICE"]
    sessions: [{{name: sales, slack_channel: C0SALES}}]
""",
}


@pytest.mark.parametrize(
    ("frontend", "expected"),
    [("matrix", "the homeserver is unreachable"), ("slack", "cannot connect to Slack")],
)
def test_an_unreachable_frontend_is_one_clear_line(
    tmp_path: Path, frontend: str, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f'database: {{url: "sqlite:bridge.db"}}\nhttp: {{port: {free_port()}}}\n'
        "whatsapp: {engine: sim}\n"
        + FRONTEND_CONFIGS[frontend].format(dead=free_port(), free=free_port())
    )
    out = bridge("run", "-c", str(path))
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], out.stderr
    assert "Traceback" not in out.stderr
