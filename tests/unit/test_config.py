"""bridge.config: typed config, every problem located by line and key path."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.config import (
    CompanyConfig,
    Config,
    ConfigReport,
    SessionConfig,
    check_config,
    load_config,
    parse_config,
)
from bridge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# A valid tail appended after each top-level snippet: Matrix is in use, so the
# homeserver and appservice sections are needed.
BASE = """\
homeserver: {address: "http://127.0.0.1:8008", domain: example.com}
appservice: {as_token: AS-TOKEN, hs_token: HS-TOKEN}
companies:
  - id: acme
    admins: ["@alice:example.com"]
    ops: {matrix: true}
    sessions:
      - name: sales
        matrix: true
"""


def yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def errors_of(text: str, *, env: dict[str, str] | None = None) -> list[str]:
    """The problems of a config text, as printed: 'config.yaml:<line> <key>: <message>'."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path=Path("config.yaml"), env=env)
    return caught.value.problems


def report_of(tmp_path: Path, text: str, *, env: dict[str, str] | None = None) -> ConfigReport:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return check_config(path, env=env or {})


def parse(text: str, *, env: dict[str, str] | None = None, path: Path | None = None) -> Config:
    return parse_config(text, path=path or Path("/srv/zap/config.yaml"), env=env)


# ---------------------------------------------------------------------------
# Problems, one kind per row: (snippet before BASE, exact problem)
# ---------------------------------------------------------------------------

TOP_LEVEL_CASES = [
    ("http: {port: abc}", "config.yaml:1 http.port: expected an integer 1–65535, got 'abc'"),
    ("http: {port: 70000}", "config.yaml:1 http.port: expected an integer 1–65535, got 70000"),
    (
        "whatsapp:\n  engine: whatsapp",
        "config.yaml:2 whatsapp.engine: expected one of whatsmeow, sim, cloud, got 'whatsapp'",
    ),
    (
        "whatsapp: {send_per_minute: true}",
        "config.yaml:1 whatsapp.send_per_minute: expected an integer ≥ 1, got true",
    ),
    (
        "whatsapp:\n  reconnect:\n    initial_seconds: 0",
        "config.yaml:3 whatsapp.reconnect.initial_seconds: expected a number > 0, got 0",
    ),
    (
        "whatsapp:\n  reconnect: {initial_seconds: 400}",
        "config.yaml:2 whatsapp.reconnect.initial_seconds: must not exceed max_seconds (300)",
    ),
    (
        "whatsapp:\n  sim: {auto_pair: 1}",
        "config.yaml:2 whatsapp.sim.auto_pair: expected true or false, got 1",
    ),
    (
        "tickets: {reopen_window_minutes: -5}",
        "config.yaml:1 tickets.reopen_window_minutes: expected an integer ≥ 0, got -5",
    ),
    (
        "database: {url: 'mysql://db/zap'}",
        "config.yaml:1 database.url: expected sqlite:FILE or postgres://user@host/db",
    ),
    (
        "logging: {format: xml}",
        "config.yaml:1 logging.format: expected one of text, json, got 'xml'",
    ),
    (
        "logging: {level: LOUD}",
        "config.yaml:1 logging.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
        "got 'LOUD'",
    ),
    (
        "outbox: {base_delay_seconds: 10, max_delay_seconds: 5}",
        "config.yaml:1 outbox.base_delay_seconds: must not exceed max_delay_seconds (5)",
    ),
    ("media: {max_size_mb: 0}", "config.yaml:1 media.max_size_mb: expected an integer ≥ 1, got 0"),
    (
        "media: {retention_hours: 0.5}",
        "config.yaml:1 media.retention_hours: expected a number ≥ 1, got 0.5",
    ),
    ("data_dir: [a, b]", "config.yaml:1 data_dir: expected a file path, got a list"),
    (
        "shutdown_timeout_seconds: soon",
        "config.yaml:1 shutdown_timeout_seconds: expected a number > 0, got 'soon'",
    ),
    ("slack: on", "config.yaml:1 slack: expected a mapping, got 'on'"),
    (
        "slack:\n  enabled: true\n  mode: websocket\n  bot_token: xoxb-1\n  app_token: xapp-1",
        "config.yaml:3 slack.mode: expected one of socket, http, got 'websocket'",
    ),
    (
        "slack:\n  enabled: true\n  app_token: xapp-1",
        "config.yaml:1 slack.bot_token: required because slack.enabled is true; write it "
        "here, in 'bot_token_file' (a file holding it), or in the environment variable "
        "ZAPBRIDGE_SLACK_BOT_TOKEN",
    ),
    (
        "slack:\n  enabled: true\n  bot_token: xoxp-user-token\n  app_token: xapp-1",
        "config.yaml:3 slack.bot_token: expected a Slack bot token starting with 'xoxb-'",
    ),
    (
        "slack:\n  enabled: true\n  bot_token: xoxb-1\n  app_token: xoxb-2",
        "config.yaml:4 slack.app_token: expected a Slack app-level token starting with 'xapp-'",
    ),
    (
        "slack: {enabled: true, mode: http, bot_token: xoxb-1}",
        "config.yaml:1 slack.signing_secret: required because slack.enabled is true and "
        "slack.mode is http; write it here, in 'signing_secret_file' (a file holding it), "
        "or in the environment variable ZAPBRIDGE_SLACK_SIGNING_SECRET",
    ),
    (
        "slack:\n  enabled: true\n  bot_token: xoxb-1\n  bot_token_file: /x\n  app_token: xapp-1",
        "config.yaml:4 slack.bot_token_file: give either 'bot_token' or 'bot_token_file', not both",
    ),
    (
        "slack: {api_url: 'slack.com/api'}",
        "config.yaml:1 slack.api_url: expected an http(s) URL like http://127.0.0.1:8008, "
        "got 'slack.com/api'",
    ),
    ("databse: {}", "config.yaml:1 databse: unknown key; did you mean 'database'?"),
    ("http:\n  prot: 8080", "config.yaml:2 http.prot: unknown key; did you mean 'port'?"),
    (
        "whatsapp:\n  reconnect: {max_second: 10}",
        "config.yaml:2 whatsapp.reconnect.max_second: unknown key; did you mean 'max_seconds'?",
    ),
    (
        "slack:\n  bot_tokn: xoxb-1",
        "config.yaml:2 slack.bot_tokn: unknown key; did you mean 'bot_token'?",
    ),
]


@pytest.mark.parametrize(("snippet", "expected"), TOP_LEVEL_CASES)
def test_top_level_problem_is_reported_with_line_and_key_path(snippet: str, expected: str) -> None:
    assert errors_of(snippet + "\n" + BASE) == [expected]


COMPANY_CASES = [
    (
        """
        companies:
          - id: ACME
            ops: {matrix: true}
        """,
        "config.yaml:2 companies[0].id: expected a lowercase id of letters, digits, '_' or "
        "'-' (like acme), got 'ACME'",
    ),
    (
        """
        companies:
          - name: No id
            ops: {matrix: true}
        """,
        "config.yaml:2 companies[0].id: required; expected a lowercase id of letters, "
        "digits, '_' or '-' (like acme)",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
          - id: acme
            ops: {matrix: true}
        """,
        "config.yaml:4 companies[1].id: duplicate company id 'acme', already used by "
        "companies[0] (line 2)",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - {name: sales, matrix: true}
              - {name: support, matrix: true}
              - {name: sales, matrix: true}
        """,
        "config.yaml:7 companies[0].sessions[2].name (sales): duplicate session name 'sales' "
        "in this company, see companies[0].sessions[0] (line 5)",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: Sales Team
                matrix: true
        """,
        "config.yaml:5 companies[0].sessions[0].name: expected a lowercase id of letters, "
        "digits, '_' or '-' (like acme), got 'Sales Team'",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - matrix: true
        """,
        "config.yaml:5 companies[0].sessions[0].name: required; expected a lowercase id of "
        "letters, digits, '_' or '-' (like acme)",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: true
                slack_channel: C0SALES
        """,
        "config.yaml:7 companies[0].sessions[0].slack_channel (sales): Slack is not enabled "
        "(slack.enabled: false); enable it or remove this",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true, slack_channel: C0OPS}
        """,
        "config.yaml:3 companies[0].ops.slack_channel: Slack is not enabled "
        "(slack.enabled: false); enable it or remove this",
    ),
    (
        """
        companies:
          - id: acme
            admins: ["@alice:example.com", alice]
            ops: {matrix: true}
        """,
        "config.yaml:3 companies[0].admins[1]: expected a Matrix user id like "
        "@alice:example.com or a Slack user id like U0123ABC, got 'alice'",
    ),
    (
        """
        companies:
          - id: acme
            admins: ["@alice:example.com"]
            attendants:
              - U0BOB
              - "#support"
            ops: {matrix: true}
        """,
        "config.yaml:6 companies[0].attendants[1]: expected a Matrix user id like "
        "@alice:example.com or a Slack user id like U0123ABC, got '#support'",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: true
                business_hours:
                  timezone: America/Sao_Paolo
                  days: mon-fri
                  hours: "08:00-18:00"
        """,
        "config.yaml:8 companies[0].sessions[0].business_hours.timezone (sales): expected an IANA "
        "time zone like America/Sao_Paulo, got 'America/Sao_Paolo'",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: true
                business_hours: {timezone: UTC, days: monday-friday, hours: "08:00-18:00"}
        """,
        "config.yaml:7 companies[0].sessions[0].business_hours.days (sales): expected days like "
        "mon-fri, mon,wed,fri or mon-fri,sat, got 'monday-friday'",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: true
                business_hours:
                  timezone: UTC
                  days: mon-fri
                  hours: "8h-18h"
        """,
        "config.yaml:10 companies[0].sessions[0].business_hours.hours (sales): expected hours like "
        '"08:00-18:00" (or "08:00-12:00,13:00-18:00"), got \'8h-18h\'',
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: true
                business_hours:
                  timezone: UTC
                  hours: "08:00-18:00"
        """,
        "config.yaml:7 companies[0].sessions[0].business_hours.days (sales): required; "
        "expected days like mon-fri, mon,wed,fri or mon-fri,sat",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: yes
        """,
        "config.yaml:6 companies[0].sessions[0].matrix (sales): expected true or false, got 'yes'",
    ),
    (
        """
        companies:
          - id: acme
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: true
                greting: Hi!
        """,
        "config.yaml:7 companies[0].sessions[0].greting (sales): unknown key; "
        "did you mean 'greeting'?",
    ),
    (
        """
        companies:
          - acme
        """,
        "config.yaml:2 companies[0]: expected a mapping, got 'acme'",
    ),
    (
        """
        companies: []
        """,
        "config.yaml:1 companies: required; expected a list of at least one company",
    ),
    (
        """
        companies: acme
        """,
        "config.yaml:1 companies: expected a list, got 'acme'",
    ),
]


@pytest.mark.parametrize(("text", "expected"), COMPANY_CASES)
def test_company_problem_is_reported_with_line_and_key_path(text: str, expected: str) -> None:
    header = yaml(
        """
        homeserver: {address: "http://hs:8008", domain: example.com}
        appservice: {as_token: AS, hs_token: HS}
        """
    )
    # The header goes last so the line numbers in the table are those of the snippet.
    assert errors_of(yaml(text) + header) == [expected]


SLACK_ON = """\
slack: {enabled: true, bot_token: xoxb-1, app_token: xapp-1}
"""


def test_slack_channel_must_look_like_a_channel_id() -> None:
    text = yaml(
        """
        companies:
          - id: acme
            ops: {slack_channel: C0OPS}
            sessions:
              - name: sales
                slack_channel: "#sales"
        """
    )
    assert errors_of(text + SLACK_ON) == [
        "config.yaml:6 companies[0].sessions[0].slack_channel (sales): expected a Slack channel id "
        "like C0123ABC, got '#sales'"
    ]


def test_a_slack_channel_serves_one_session_or_ops_channel_only() -> None:
    text = yaml(
        """
        companies:
          - id: acme
            ops: {slack_channel: C0SHARED}
            sessions:
              - name: sales
                slack_channel: C0SHARED
        """
    )
    assert errors_of(text + SLACK_ON) == [
        "config.yaml:6 companies[0].sessions[0].slack_channel (sales): Slack channel C0SHARED is "
        "already used by companies[0].ops"
    ]


MATRIX_CASES = [
    (
        """
        companies:
          - id: acme
            sessions: [{name: sales, matrix: true}]
        """,
        [
            "config.yaml:1 homeserver: required because companies[0].sessions[0] (sales) "
            "uses Matrix (matrix: true)",
            "config.yaml:1 appservice.as_token: required because companies[0].sessions[0] "
            "(sales) uses Matrix; write it here (or 'generate'), in 'as_token_file' "
            "(a file holding it), or in the environment variable ZAPBRIDGE_APPSERVICE_AS_TOKEN",
            "config.yaml:1 appservice.hs_token: required because companies[0].sessions[0] "
            "(sales) uses Matrix; write it here (or 'generate'), in 'hs_token_file' "
            "(a file holding it), or in the environment variable ZAPBRIDGE_APPSERVICE_HS_TOKEN",
        ],
    ),
    (
        """
        homeserver:
          address: http://hs:8008
        appservice:
          as_token: AS
          hs_token: AS
        companies:
          - id: acme
            ops: {matrix: true}
        """,
        [
            "config.yaml:1 homeserver.domain: required; expected a server name like "
            "example.com (not a URL)",
            "config.yaml:5 appservice.hs_token: must differ from as_token",
        ],
    ),
    (
        """
        homeserver: {address: http://hs:8008, domain: "https://example.com"}
        appservice: {as_token: AS, hs_token: HS, bot_username: WhatsApp Bot}
        companies:
          - id: acme
            ops: {matrix: true}
        """,
        [
            "config.yaml:1 homeserver.domain: expected a server name like example.com (not a "
            "URL), got 'https://example.com'",
            "config.yaml:2 appservice.bot_username: expected a Matrix localpart of a-z, 0-9, . "
            "_ = - /, got 'WhatsApp Bot'",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), MATRIX_CASES)
def test_matrix_sections_are_checked_when_matrix_is_used(text: str, expected: list[str]) -> None:
    assert errors_of(yaml(text)) == expected


def test_matrix_sections_are_optional_without_matrix(tmp_path: Path) -> None:
    text = yaml(
        """
        slack: {enabled: true, bot_token: xoxb-1, app_token: xapp-1}
        companies:
          - id: acme
            admins: [U0ADMIN]
            ops: {slack_channel: C0OPS}
            sessions: [{name: sales, slack_channel: C0SALES}]
        """
    )
    report = report_of(tmp_path, text)
    assert report.errors == []
    assert report.warnings == []
    assert report.config is not None
    assert report.config.uses_matrix is False
    assert report.config.appservice.as_token == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1, 2\nb: 3\n", "config.yaml:2 (yaml): invalid YAML: expected ',' or ']', but got"),
        ("a: b: c\n", "config.yaml:1 (yaml): invalid YAML: mapping values are not allowed here"),
        (
            "slack:\n  bot_token: xoxb-SECRET1\n  bot_token: xoxb-SECRET2\n",
            "config.yaml:3 (yaml): invalid YAML: duplicate key 'bot_token'",
        ),
        ("- just\n- a list\n", "config.yaml:1 (top level): expected a mapping, got a list"),
    ],
)
def test_malformed_yaml_is_one_problem_with_its_line(text: str, expected: str) -> None:
    (problem,) = errors_of(text)
    assert problem.startswith(expected)
    assert "SECRET" not in problem


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = yaml(
        """
        http: {port: 0}
        whatsapp: {engine: baileys}
        slack: {enabled: true, bot_token: xoxb-1}
        companies:
          - id: acme
            admins: [bob]
            ops: {matrix: true}
            sessions:
              - name: sales
                matrix: true
                slack_channel: sales
                farewel: Bye
        """
    )
    problems = errors_of(text + "homeserver: {address: http://hs, domain: example.com}\n")
    located = [tuple(p.split(": ", 1)[0].split(" ", 1)) for p in problems]
    assert located == [
        ("config.yaml:1", "http.port"),
        ("config.yaml:1", "appservice.as_token"),  # the section is missing: root line
        ("config.yaml:1", "appservice.hs_token"),
        ("config.yaml:2", "whatsapp.engine"),
        ("config.yaml:3", "slack.app_token"),
        ("config.yaml:6", "companies[0].admins[0]"),
        ("config.yaml:11", "companies[0].sessions[0].slack_channel (sales)"),
        ("config.yaml:12", "companies[0].sessions[0].farewel (sales)"),
    ]


def test_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    (problem,) = errors_of("http: {colour: blue}\n" + BASE)
    assert problem == "config.yaml:1 http.colour: unknown key; expected one of: host, port"


def test_config_error_explanation_names_the_count_and_the_first_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("http: {port: x, host: [1]}\n" + BASE, path=Path("config.yaml"))
    assert caught.value.explanation.startswith("config.yaml has 2 problems; first: config.yaml:1")
    assert len(caught.value.problems) == 2


# ---------------------------------------------------------------------------
# Warnings
# ---------------------------------------------------------------------------


def test_a_session_without_frontend_is_valid_but_warned(tmp_path: Path) -> None:
    text = BASE + "      - name: silent\n"
    report = report_of(tmp_path, text)
    assert report.errors == []
    assert report.config is not None
    assert [str(w) for w in report.warnings] == [
        f"{tmp_path / 'config.yaml'}:10 companies[0].sessions[1] (silent): no frontend (neither "
        "matrix: true nor slack_channel): nobody will see its tickets"
    ]
    assert report.warnings[0].severity == "warning"


def test_out_of_hours_without_business_hours_is_warned(tmp_path: Path) -> None:
    text = BASE + "        out_of_hours: We are closed\n"
    report = report_of(tmp_path, text)
    assert [(w.line, w.key) for w in report.warnings] == [
        (10, "companies[0].sessions[0].out_of_hours (sales)")
    ]


def test_unreadable_config_file_is_a_problem(tmp_path: Path) -> None:
    report = check_config(tmp_path / "missing.yaml", env={})
    assert report.config is None
    assert [str(p) for p in report.errors] == [
        f"{tmp_path / 'missing.yaml'}:1 (file): cannot read the config file: "
        "No such file or directory"
    ]
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml", env={})


# ---------------------------------------------------------------------------
# Defaults and typed values
# ---------------------------------------------------------------------------


def test_defaults_match_the_design() -> None:
    config = parse(BASE)
    assert config.database.url == "sqlite:zapbridge.db"
    assert (config.http.host, config.http.port) == ("127.0.0.1", 29320)
    assert config.data_dir == "data"
    assert config.appservice.hostname == "127.0.0.1"
    assert config.appservice.port == 29318
    assert config.appservice.address == "http://127.0.0.1:29318"
    assert config.appservice.id == "whatsapp"
    assert config.appservice.bot_username == "whatsappbot"
    assert config.appservice.user_prefix == "wa_"
    assert config.slack.enabled is False
    assert config.slack.mode == "socket"
    assert config.slack.api_url == "https://slack.com/api/"
    wa = config.whatsapp
    assert (wa.engine, wa.send_per_minute, wa.send_burst, wa.start_stagger_ms) == (
        "whatsmeow",
        20,
        5,
        250,
    )
    assert (wa.reconnect.initial_seconds, wa.reconnect.max_seconds) == (2, 300)
    assert wa.reconnect.stable_seconds == 60
    assert (wa.sim.auto_pair, wa.sim.qr_first_seconds, wa.sim.qr_next_seconds) == (False, 60, 20)
    assert config.tickets.reopen_window_minutes == 120
    assert config.ops.alert_grace_seconds == 60
    assert config.ops.backlog_threshold == 100
    assert config.ops.throttle_seconds == 300
    assert config.media.max_size_mb == 100
    assert config.media.max_size_bytes == 100 * 1024 * 1024
    assert config.media.retention_seconds == 24 * 3600
    assert (config.outbox.max_attempts, config.outbox.base_delay_seconds) == (8, 1.0)
    assert config.outbox.max_delay_seconds == 300
    assert (config.logging.level, config.logging.format) == ("INFO", "text")
    assert config.shutdown_timeout_seconds == 10
    company = config.companies[0]
    assert company.name == "acme"
    assert company.attendants == ()
    assert company.ops.slack_channel is None
    session = company.sessions[0]
    assert session.sign_messages is True
    assert session.groups is False
    assert session.slack_channel is None
    assert (session.greeting, session.farewell, session.out_of_hours) == (None, None, None)
    assert session.business_hours is None


def test_appservice_address_defaults_to_hostname_and_port() -> None:
    config = parse(BASE.replace("hs_token: HS-TOKEN", "hs_token: HS, hostname: 0.0.0.0, port: 9"))
    assert config.appservice.address == "http://0.0.0.0:9"


def test_values_are_typed_and_session_keys_are_exposed() -> None:
    text = yaml(
        """
        logging: {level: debug, format: json}
        whatsapp: {engine: sim, sim: {auto_pair: true}}
        slack: {enabled: true, mode: http, bot_token: xoxb-1, signing_secret: s3,
                api_url: "http://127.0.0.1:9999/api"}
        companies:
          - id: acme
            name: ACME Support
            admins: ["@alice:example.com", U0ADMIN]
            attendants: [W0BOB]
            ops: {slack_channel: C0OPS}
            sessions:
              - {name: sales, slack_channel: C0SALES, greeting: "Olá!", groups: true}
          - id: other
            admins: [U0X]
            ops: {slack_channel: G0OPS2}
            sessions: [{name: sales, slack_channel: C0OTHER}, {name: solo, slack_channel: C0SOLO}]
        """
    )
    config = parse(text)
    assert config.logging.level == "DEBUG"
    assert config.whatsapp.sim.auto_pair is True
    assert config.slack.api_url == "http://127.0.0.1:9999/api/"
    acme = config.companies[0]
    assert acme.name == "ACME Support"
    assert acme.admins == ("@alice:example.com", "U0ADMIN")
    assert acme.sessions[0].greeting == "Olá!"
    assert acme.sessions[0].groups is True
    assert config.find_company("other") is config.companies[1]
    assert config.find_company("nope") is None
    assert config.find_session("other", "sales") is config.companies[1].sessions[0]
    assert config.find_session("acme", "solo") is None
    assert config.session_for_key("acme/sales") is acme.sessions[0]
    assert config.session_for_key("solo") is config.companies[1].sessions[1]
    assert config.session_for_key("sales") is None  # ambiguous
    assert acme.sessions[0].key == "acme/sales"
    assert [s.key for s in config.sessions] == ["acme/sales", "other/sales", "other/solo"]


# ---------------------------------------------------------------------------
# Business hours
# ---------------------------------------------------------------------------


def hours(days: str, spans: str, timezone: str = "America/Sao_Paulo") -> Config:
    text = BASE + (
        f"        business_hours: {{timezone: {timezone}, days: '{days}', hours: '{spans}'}}\n"
        "        out_of_hours: Closed\n"
    )
    return parse(text)


@pytest.mark.parametrize(
    ("days", "weekdays"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon,wed,fri", {0, 2, 4}),
        ("mon-fri,sat", {0, 1, 2, 3, 4, 5}),
        ("fri-mon", {4, 5, 6, 0}),
        ("Sun", {6}),
    ],
)
def test_business_days_are_parsed(days: str, weekdays: set[int]) -> None:
    business = hours(days, "08:00-18:00").companies[0].sessions[0].business_hours
    assert business is not None
    assert business.weekdays == weekdays
    assert business.days == days


@pytest.mark.parametrize(
    ("spans", "utc", "is_open"),
    [
        # 2024-06-03 is a Monday; Sao Paulo is UTC-3.
        ("08:00-18:00", datetime(2024, 6, 3, 11, 0, tzinfo=UTC), True),  # 08:00 local
        ("08:00-18:00", datetime(2024, 6, 3, 10, 59, tzinfo=UTC), False),  # 07:59
        ("08:00-18:00", datetime(2024, 6, 3, 21, 0, tzinfo=UTC), False),  # 18:00
        ("08:00-18:00", datetime(2024, 6, 8, 12, 0, tzinfo=UTC), False),  # Saturday
        ("08:00-12:00,13:00-18:00", datetime(2024, 6, 3, 15, 30, tzinfo=UTC), False),  # lunch
        ("08:00-12:00,13:00-18:00", datetime(2024, 6, 3, 16, 0, tzinfo=UTC), True),
        ("22:00-06:00", datetime(2024, 6, 4, 4, 0, tzinfo=UTC), True),  # Mon 01:00 local
        ("22:00-06:00", datetime(2024, 6, 8, 4, 0, tzinfo=UTC), True),  # Fri night → Sat 01:00
        ("22:00-06:00", datetime(2024, 6, 3, 4, 0, tzinfo=UTC), False),  # Sun night → Mon 01:00
        ("00:00-24:00", datetime(2024, 6, 4, 2, 59, tzinfo=UTC), True),  # Mon 23:59
    ],
)
def test_business_hours_are_time_zone_aware(spans: str, utc: datetime, is_open: bool) -> None:
    session = hours("mon-fri", spans).companies[0].sessions[0]
    assert session.is_open(utc) is is_open


def test_no_business_hours_means_always_open() -> None:
    session = parse(BASE).companies[0].sessions[0]
    assert session.is_open(datetime(2024, 6, 9, 3, 0, tzinfo=UTC)) is True


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:zapbridge.db", "sqlite:/srv/zap/zapbridge.db"),
        ("sqlite:./state/x.db", "sqlite:/srv/zap/state/x.db"),
        ("sqlite:../x.db", "sqlite:/srv/x.db"),
        ("sqlite:/var/lib/zap/x.db", "sqlite:/var/lib/zap/x.db"),
        ("sqlite:///var/lib/zap/x.db", "sqlite:/var/lib/zap/x.db"),
        ("sqlite::memory:", "sqlite::memory:"),
        ("postgres://zap:pw@db:5432/zap", "postgres://zap:pw@db:5432/zap"),
        ("postgresql://zap@db/zap", "postgresql://zap@db/zap"),
    ],
)
def test_database_url_is_resolved_against_the_config_directory(url: str, resolved: str) -> None:
    config = parse(f"database: {{url: '{url}'}}\n" + BASE)
    assert config.database.url == url
    assert config.database.resolved_url == resolved


PG_URL_EXPECTED = "; expected postgres://user@host:port/db"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "postgres://user@[::1/db",
            "the host has a '[' without its ']' (an IPv6 address is written like [::1])",
        ),
        ("postgresql://[zz::1]/db", "the host in [...] is not an IPv6 address"),
        ("postgres://zap@[::1]x/db", "unexpected text after the IPv6 address in [...]"),
        (
            "postgres://zap@::1/db",
            "the host is not host:port (an IPv6 address is written like [::1])",
        ),
        ("postgres://zap@db:99999/zap", "the port is out of range 1-65535"),
        ("postgres://zap@[::1]:0/zap", "the port is out of range 1-65535"),
        ("postgres://zap@db:abc/zap", "the port is not a number"),
        ("postgres://zap@db:/zap", "the port after ':' is empty"),
        ("postgres://zap@db:5432,db2:x/zap", "the port is not a number"),
        ("postgres://zap@db 1/zap", "the host has characters a host name cannot have"),
        (
            "postgres://zap:pa[ss@db/zap",
            "a '[' or ']' in the user name or password must be written %5B or %5D",
        ),
    ],
)
def test_a_malformed_postgres_url_is_a_problem_not_a_traceback_later(
    url: str, problem: str
) -> None:
    for text, env, origin in (
        (f"database: {{url: '{url}'}}\n" + BASE, {}, ""),
        (BASE, {"ZAPBRIDGE_DATABASE_URL": url}, " (value from ZAPBRIDGE_DATABASE_URL)"),
    ):
        assert errors_of(text, env=env) == [
            f"config.yaml:1 database.url: {problem}{PG_URL_EXPECTED}{origin}"
        ]


def test_a_postgres_url_problem_never_shows_the_password() -> None:
    (problem,) = errors_of(BASE, env={"ZAPBRIDGE_DATABASE_URL": "postgres://zap:hunter22/db"})
    assert "hunter22" not in problem and "the port is not a number" in problem


@pytest.mark.parametrize(
    "url",
    [
        "postgres://zap@[::1]:5432/zap",
        "postgres://zap@[fe80::1%25eth0]/zap",
        "postgres://zap@db1:5432,db2:5433/zap",  # several hosts, as asyncpg reads them
        "postgresql:///zap?host=/run/postgresql",  # a Unix socket
        "postgres://zap:p@ss@db/zap",
    ],
)
def test_well_formed_postgres_urls_pass(url: str) -> None:
    assert parse(BASE, env={"ZAPBRIDGE_DATABASE_URL": url}).database.url == url


@pytest.mark.parametrize(
    ("snippet", "key", "problem"),
    [
        (
            "homeserver: {address: 'http://[::1:8008', domain: example.com}",
            "homeserver.address",
            "the host has a '[' without its ']' (an IPv6 address is written like [::1])",
        ),
        (
            "homeserver: {address: 'http://hs:99999', domain: example.com}",
            "homeserver.address",
            "the port '99999' is out of range 1-65535",
        ),
        (
            "appservice: {address: 'http://[zz::1]:29318', as_token: A1234, hs_token: H1234}",
            "appservice.address",
            "the host 'zz::1' in [...] is not an IPv6 address",
        ),
        (
            "slack: {api_url: 'https://slack.com:abc/api/'}",
            "slack.api_url",
            "the port 'abc' is not a number",
        ),
        ("slack: {api_url: 'http://:80/api/'}", "slack.api_url", "the URL names no host"),
    ],
)
def test_http_urls_are_checked_alike(snippet: str, key: str, problem: str) -> None:
    section = snippet.partition(":")[0]
    text = "\n".join(line for line in BASE.splitlines() if not line.startswith(f"{section}:"))
    value = snippet.split("'")[1]
    assert errors_of(snippet + "\n" + text + "\n") == [
        f"config.yaml:1 {key}: {problem}; expected an http(s) URL like "
        f"http://127.0.0.1:8008, got '{value}'"
    ]


def test_an_ipv6_appservice_hostname_makes_a_bracketed_address() -> None:
    text = BASE.replace("appservice: {", "appservice: {hostname: '::1', port: 29400, ")
    assert parse(text).appservice.address == "http://[::1]:29400"


def test_data_dir_and_base_dir_are_absolute() -> None:
    config = parse(BASE, path=Path("/srv/zap/config.yaml"))
    assert config.base_dir == Path("/srv/zap")
    assert config.data_path == Path("/srv/zap/data")
    assert parse("data_dir: /var/zap\n" + BASE).data_path == Path("/var/zap")
    assert parse("data_dir: ./d/../e\n" + BASE).data_path == Path("/srv/zap/e")


def test_relative_config_path_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = parse(BASE, path=Path("config.yaml"))
    assert config.base_dir == tmp_path
    assert config.database.resolved_url == f"sqlite:{tmp_path / 'zapbridge.db'}"


# ---------------------------------------------------------------------------
# Secrets: environment and *_file
# ---------------------------------------------------------------------------

SLACK_COMPANY = yaml(
    """
    companies:
      - id: acme
        admins: [U0ADMIN]
        ops: {slack_channel: C0OPS}
        sessions: [{name: sales, slack_channel: C0SALES}]
    """
)


def test_environment_wins_over_the_file() -> None:
    text = "slack: {enabled: true, bot_token: xoxb-file, app_token: xapp-file}\n" + SLACK_COMPANY
    env = {"ZAPBRIDGE_SLACK_BOT_TOKEN": "xoxb-env", "ZAPBRIDGE_DATABASE_URL": "postgres://db/z"}
    config = parse(text, env=env)
    assert config.slack.bot_token == "xoxb-env"
    assert config.slack.app_token == "xapp-file"
    assert config.database.url == "postgres://db/z"


def test_environment_supplies_missing_secrets() -> None:
    text = BASE.replace("appservice: {as_token: AS-TOKEN, hs_token: HS-TOKEN}\n", "")
    env = {"ZAPBRIDGE_APPSERVICE_AS_TOKEN": "as-env", "ZAPBRIDGE_APPSERVICE_HS_TOKEN": "hs-env"}
    config = parse(text, env=env)
    assert (config.appservice.as_token, config.appservice.hs_token) == ("as-env", "hs-env")


def test_empty_environment_variable_is_ignored() -> None:
    config = parse(BASE, env={"ZAPBRIDGE_APPSERVICE_AS_TOKEN": ""})
    assert config.appservice.as_token == "AS-TOKEN"


def test_invalid_secret_from_environment_names_the_variable_not_the_value() -> None:
    text = "slack: {enabled: true, app_token: xapp-1}\n" + SLACK_COMPANY
    problems = errors_of(text, env={"ZAPBRIDGE_SLACK_BOT_TOKEN": "hunter2"})
    assert problems == [
        "config.yaml:1 slack.bot_token: expected a Slack bot token starting with 'xoxb-' "
        "(value from ZAPBRIDGE_SLACK_BOT_TOKEN)"
    ]


def test_secret_of_wrong_type_is_not_echoed() -> None:
    (problem,) = errors_of(BASE.replace("as_token: AS-TOKEN", "as_token: 918273645"))
    assert problem == "config.yaml:2 appservice.as_token: expected a string"


def test_load_config_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BASE, encoding="utf-8")
    monkeypatch.setenv("ZAPBRIDGE_APPSERVICE_HS_TOKEN", "from-process-env")
    assert load_config(path).appservice.hs_token == "from-process-env"
    assert load_config(path, env={}).appservice.hs_token == "HS-TOKEN"


def test_secret_files_are_read_relative_to_the_config_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bot").write_text("xoxb-from-file\n", encoding="utf-8")
    (tmp_path / "app").write_text("  xapp-from-file  ", encoding="utf-8")
    text = (
        f"slack: {{enabled: true, bot_token_file: secrets/bot, app_token_file: {tmp_path}/app}}\n"
        + SLACK_COMPANY
    )
    report = report_of(tmp_path, text)
    assert report.errors == []
    assert report.config is not None
    assert report.config.slack.bot_token == "xoxb-from-file"
    assert report.config.slack.app_token == "xapp-from-file"


def test_environment_wins_over_a_secret_file(tmp_path: Path) -> None:
    (tmp_path / "bot").write_text("xoxb-from-file", encoding="utf-8")
    text = "slack: {enabled: true, bot_token_file: bot, app_token: xapp-1}\n" + SLACK_COMPANY
    report = report_of(tmp_path, text, env={"ZAPBRIDGE_SLACK_BOT_TOKEN": "xoxb-env"})
    assert report.config is not None
    assert report.config.slack.bot_token == "xoxb-env"


def test_unreadable_or_empty_secret_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    text = yaml(
        """
        slack:
          enabled: true
          bot_token_file: missing
          app_token_file: empty
        """
    )
    report = report_of(tmp_path, text + SLACK_COMPANY)
    assert [str(p) for p in report.errors] == [
        f"{tmp_path / 'config.yaml'}:3 slack.bot_token_file: cannot read secret file "
        f"{tmp_path / 'missing'}: No such file or directory",
        f"{tmp_path / 'config.yaml'}:4 slack.app_token_file: secret file "
        f"{tmp_path / 'empty'} is empty",
    ]


def test_secrets_lists_every_secret_value_for_the_redactor() -> None:
    text = yaml(
        """
        database: {url: "postgres://zap:db-pass@db/zap"}
        homeserver: {address: "http://hs:8008", domain: example.com}
        appservice: {as_token: generate, hs_token: hs-secret}
        slack: {enabled: true, mode: http, bot_token: xoxb-bot, signing_secret: sign-secret}
        """
    )
    config = parse(text + SLACK_COMPANY)
    assert sorted(config.secrets()) == sorted(
        ["hs-secret", "xoxb-bot", "sign-secret", "postgres://zap:db-pass@db/zap", "db-pass"]
    )
    assert config.appservice.needs_generation is True


def test_sqlite_url_is_not_a_secret() -> None:
    assert parse(BASE).secrets() == ["AS-TOKEN", "HS-TOKEN"]


# ---------------------------------------------------------------------------
# The example config
# ---------------------------------------------------------------------------


def test_example_config_is_valid_without_warnings() -> None:
    report = check_config(REPO / "config.example.yaml", env={})
    assert [str(p) for p in report.errors] == []
    assert [str(p) for p in report.warnings] == []
    config = report.config
    assert config is not None
    acme = config.find_company("acme")
    assert acme is not None
    assert [s.name for s in acme.sessions] == ["sales", "support"]
    assert config.appservice.needs_generation is True
    assert config.slack.enabled is False
    sales = acme.sessions[0]
    assert sales.business_hours is not None
    assert sales.business_hours.timezone == "America/Sao_Paulo"


def test_example_config_documents_every_key() -> None:
    """Every key the reader knows appears in the example (uncommented or commented)."""
    text = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    for key in [
        "url:",
        "url_file:",
        "host:",
        "address:",
        "domain:",
        "hostname:",
        "bot_username:",
        "user_prefix:",
        "as_token:",
        "hs_token:",
        "enabled:",
        "mode:",
        "bot_token:",
        "bot_token_file:",
        "app_token:",
        "signing_secret:",
        "api_url:",
        "data_dir:",
        "engine:",
        "send_per_minute:",
        "send_burst:",
        "initial_seconds:",
        "max_seconds:",
        "stable_seconds:",
        "start_stagger_ms:",
        "auto_pair:",
        "qr_first_seconds:",
        "qr_next_seconds:",
        "reopen_window_minutes:",
        "alert_grace_seconds:",
        "backlog_threshold:",
        "throttle_seconds:",
        "max_size_mb:",
        "retention_hours:",
        "max_attempts:",
        "base_delay_seconds:",
        "max_delay_seconds:",
        "level:",
        "format:",
        "shutdown_timeout_seconds:",
        "admins:",
        "attendants:",
        "slack_channel:",
        "greeting:",
        "farewell:",
        "sign_messages:",
        "timezone:",
        "days:",
        "hours:",
        "out_of_hours:",
        "groups:",
    ]:
        assert key in text, key


def test_slack_channel_pacing_is_configurable() -> None:
    default = parse(BASE).slack
    assert (default.per_channel_per_second, default.per_channel_burst) == (1.0, 4)
    slack = parse(
        "slack:\n  enabled: true\n  bot_token: xoxb-1\n  app_token: xapp-1\n"
        "  per_channel_per_second: 20\n  per_channel_burst: 50\n" + BASE
    ).slack
    assert (slack.per_channel_per_second, slack.per_channel_burst) == (20.0, 50)
    # the frontend paces by them: tests/integration/test_slack_frontend.py,
    # test_channel_pacing_follows_the_configuration


def test_company_finds_sessions_by_name_after_replace_and_compares_by_fields() -> None:
    """The lookup index (10,000 sessions, bench/README.md "Scale") follows the
    sessions a company is built with, and stays out of equality and repr."""
    first = SessionConfig(name="a", company_id="acme")
    second = SessionConfig(name="b", company_id="acme")
    company = CompanyConfig(id="acme", sessions=(first,))
    assert company.find_session("a") is first and company.find_session("b") is None
    grown = dataclasses.replace(company, sessions=(first, second))
    assert grown.find_session("b") is second
    assert grown == CompanyConfig(id="acme", sessions=(first, second))
    assert "_by_name" not in repr(grown)
    twice = CompanyConfig(id="acme", sessions=(first, SessionConfig(name="a", company_id="x")))
    assert twice.find_session("a") is first  # the first of a name, as before
