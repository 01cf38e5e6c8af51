"""The ``cluster`` section (docs/configuration.md#cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cluster.identity import instance_id
from bridge.config import parse_config
from bridge.config.schema import ClusterConfig
from bridge.errors import ConfigError

PG = "database: {url: 'postgresql://bridge@db/zap'}\n"
BASE = """\
companies:
  - id: acme
    sessions:
      - name: sales
        slack_channel: C0SALES
slack: {enabled: true, bot_token: xoxb-1, app_token: xapp-1}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text + BASE, path=Path("config.yaml"))
    return caught.value.problems


def test_defaults() -> None:
    config = parse_config(BASE, path=Path("/srv/config.yaml"))
    assert config.cluster == ClusterConfig(enabled=False, instance_id="auto", lease_seconds=15)


def test_enabled_on_postgres_is_read() -> None:
    text = PG + "cluster: {enabled: true, instance_id: zap-1, lease_seconds: 6}\n"
    config = parse_config(text + BASE, path=Path("/srv/config.yaml"))
    assert config.cluster == ClusterConfig(enabled=True, instance_id="zap-1", lease_seconds=6)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "cluster:\n  enabled: true\n",
            "config.yaml:2 cluster.enabled: needs a PostgreSQL database.url"
            " (SQLite allows one instance)",
        ),
        (
            PG + "cluster: {lease_seconds: 2}\n",
            "config.yaml:2 cluster.lease_seconds: expected an integer 3–300, got 2",
        ),
        (
            PG + "cluster: {lease_seconds: 301}\n",
            "config.yaml:2 cluster.lease_seconds: expected an integer 3–300, got 301",
        ),
        (
            PG + "cluster:\n  instance_id: 'a b'\n",
            "config.yaml:3 cluster.instance_id: expected an instance id of letters, digits,"
            " '_', '.' or '-' (at most 64), or auto, got 'a b'",
        ),
    ],
)
def test_problems_name_the_line_and_key(snippet: str, expected: str) -> None:
    assert problems(snippet) == [expected]


def test_auto_instance_id_is_the_host_and_the_pid() -> None:
    auto = ClusterConfig()
    assert instance_id(auto, host="web-3.example.com", pid=42) == "web-3-42"
    assert instance_id(auto, host="!!", pid=7) == "host-7"
    assert instance_id(ClusterConfig(instance_id="zap-1"), host="x", pid=1) == "zap-1"
