"""slack.file_hosts: where the bot token may go when a shared file is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import check_config, parse_config
from bridge.errors import ConfigError

TAIL = """\
companies:
  - id: acme
    admins: ["U0ADMIN"]
    ops: {slack_channel: C0OPS}
    sessions:
      - name: sales
        slack_channel: C0SALES
"""


def slack(extra: str = "") -> str:
    return "slack:\n  enabled: true\n  bot_token: xoxb-1\n  app_token: xapp-1\n" + extra + TAIL


def test_the_default_is_slacks_file_host() -> None:
    config = parse_config(slack(), path=Path("config.yaml"))
    assert config.slack.file_hosts == ("https://files.slack.com",)


def test_hosts_become_origins_https_unless_written_otherwise() -> None:
    extra = '  file_hosts: [FILES.slack-gov.com, "http://127.0.0.1:8080", files.slack.com]\n'
    config = parse_config(slack(extra), path=Path("config.yaml"))
    assert config.slack.file_hosts == (
        "https://files.slack-gov.com",
        "http://127.0.0.1:8080",
        "https://files.slack.com",
    )


@pytest.mark.parametrize(
    "entry",
    ['"https://files.slack.com/files-pri"', '"ftp://files.slack.com"', "5", '"a b"', '""'],
)
def test_a_bad_entry_is_reported_with_its_line_and_path(entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(slack(f"  file_hosts: [files.slack.com, {entry}]\n"), path=Path("c.yaml"))
    (problem,) = caught.value.problems
    assert problem.startswith("c.yaml:5 slack.file_hosts[1]: expected a host like files.slack.com")


def test_no_hosts_at_all_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(slack("  file_hosts: []\n"))
    report = check_config(path, env={})
    assert report.config is not None
    assert report.config.slack.file_hosts == ()
    assert any("slack.file_hosts" in str(w) and "no file hosts" in str(w) for w in report.warnings)
