"""sessions[].cloud: a number on the WhatsApp Business Cloud API (docs/cloud.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import CloudConfig, CloudTemplate, ConfigReport, check_config, parse_config
from bridge.errors import ConfigError

HEAD = """\
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
"""The session is on line 8; a key of it written after HEAD is on line 10."""

CLOUD = """\
        engine: cloud
        cloud:
          phone_number_id: "106540352242922"
          access_token: EAAG-token
          app_secret: app-secret
          verify_token: verify-token
"""
"""A complete cloud section for the session of HEAD (lines 10–15)."""

SECOND = """\
      - name: support
        matrix: true
        engine: cloud
        cloud:
          phone_number_id: "106540352242923"
          access_token: EAAG-other
          app_secret: other-secret
          verify_token: other-verify
"""


def errors_of(text: str, *, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path=Path("config.yaml"), env=env)
    return caught.value.problems


def checked(tmp_path: Path, text: str, *, env: dict[str, str] | None = None) -> ConfigReport:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return check_config(path, env=env or {})


def warnings_of(tmp_path: Path, text: str) -> list[str]:
    report = checked(tmp_path, text)
    assert [str(p) for p in report.errors] == []
    prefix = f"{tmp_path / 'config.yaml'}:"
    return [str(w).removeprefix(prefix) for w in report.warnings]


def cloud_of(text: str, *, env: dict[str, str] | None = None) -> CloudConfig | None:
    config = parse_config(text, path=Path("/srv/zap/config.yaml"), env=env)
    return config.sessions[0].cloud


# ---------------------------------------------------------------------------
# What is read
# ---------------------------------------------------------------------------


def test_a_cloud_session_reads_its_section_with_the_defaults() -> None:
    assert cloud_of(HEAD + CLOUD) == CloudConfig(
        phone_number_id="106540352242922",
        access_token="EAAG-token",
        app_secret="app-secret",
        verify_token="verify-token",
        api_version="v21.0",
        base_url="https://graph.facebook.com",
        templates=(),
    )


def test_every_key_is_read_as_written() -> None:
    text = (
        HEAD
        + CLOUD.replace('"106540352242922"', "106540352242922")  # a YAML number is fine
        + "          api_version: v22.0\n"
        + '          base_url: "http://127.0.0.1:8089/"\n'
        + "          templates:\n"
        + "            - {name: ticket_followup, language: pt_BR, params: 2}\n"
        + "            - name: hello_world\n"
    )
    cloud = cloud_of(text)
    assert cloud is not None
    assert cloud.phone_number_id == "106540352242922"
    assert (cloud.api_version, cloud.base_url) == ("v22.0", "http://127.0.0.1:8089")
    assert cloud.templates == (
        CloudTemplate("ticket_followup", "pt_BR", 2),
        CloudTemplate("hello_world", "en_US", 0),
    )
    assert cloud.template("hello_world") == CloudTemplate("hello_world")


def test_whatsapp_engine_cloud_makes_every_session_a_cloud_session() -> None:
    text = "whatsapp: {engine: cloud}\n" + HEAD + CLOUD.replace("        engine: cloud\n", "")
    config = parse_config(text, path=Path("/srv/zap/config.yaml"))
    (session,) = config.sessions
    assert session.engine is None
    assert config.engine_of(session) == "cloud"
    assert session.cloud is not None
    assert session.cloud.phone_number_id == "106540352242922"


def test_the_cloud_secrets_are_given_to_the_log_redactor() -> None:
    config = parse_config(HEAD + CLOUD + SECOND, path=Path("/srv/zap/config.yaml"))
    assert {
        "EAAG-token",
        "app-secret",
        "verify-token",
        "EAAG-other",
        "other-secret",
        "other-verify",
    } <= set(config.secrets())
    assert "106540352242922" not in config.secrets()  # an id, not a secret


# ---------------------------------------------------------------------------
# Secrets from a file or the environment
# ---------------------------------------------------------------------------


def test_secrets_may_come_from_files_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("EAAG-from-file\n", encoding="utf-8")
    (tmp_path / "secret").write_text("  app-from-file ", encoding="utf-8")
    text = HEAD + CLOUD.replace("access_token: EAAG-token", "access_token_file: token").replace(
        "app_secret: app-secret", f"app_secret_file: {tmp_path}/secret"
    )
    report = checked(tmp_path, text)
    assert [str(p) for p in report.errors] == []
    assert report.config is not None
    cloud = report.config.sessions[0].cloud
    assert cloud is not None
    assert (cloud.access_token, cloud.app_secret) == ("EAAG-from-file", "app-from-file")
    assert "EAAG-from-file" in report.config.secrets()


def test_secrets_may_come_from_the_environment_named_by_company_and_session() -> None:
    text = (
        HEAD.replace("id: acme", "id: acme-br").replace("name: sales", "name: sales_2")
        + "        engine: cloud\n"
        + "        cloud:\n"
        + "          phone_number_id: '1'\n"
        + "          access_token: EAAG-written\n"
    )
    env = {
        "ZAPBRIDGE_CLOUD_ACME_BR_SALES_2_ACCESS_TOKEN": "EAAG-env",
        "ZAPBRIDGE_CLOUD_ACME_BR_SALES_2_APP_SECRET": "app-env",
        "ZAPBRIDGE_CLOUD_ACME_BR_SALES_2_VERIFY_TOKEN": "verify-env",
    }
    cloud = cloud_of(text, env=env)
    assert cloud is not None
    assert (cloud.access_token, cloud.app_secret, cloud.verify_token) == (
        "EAAG-env",
        "app-env",
        "verify-env",
    )


def test_a_secret_and_its_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("EAAG-from-file", encoding="utf-8")
    text = HEAD + CLOUD + "          access_token_file: token\n"
    assert [str(p).split(":", 1)[1] for p in checked(tmp_path, text).errors] == [
        "16 companies[0].sessions[0].cloud.access_token_file (sales): "
        "give either 'access_token' or 'access_token_file', not both"
    ]


def test_an_unreadable_secret_file_is_a_problem(tmp_path: Path) -> None:
    text = HEAD + CLOUD.replace("verify_token: verify-token", "verify_token_file: missing")
    assert [str(p) for p in checked(tmp_path, text).errors] == [
        f"{tmp_path / 'config.yaml'}:15 companies[0].sessions[0].cloud.verify_token_file (sales): "
        f"cannot read secret file {tmp_path / 'missing'}: No such file or directory"
    ]


def test_a_secret_of_the_wrong_type_is_not_echoed() -> None:
    text = HEAD + CLOUD.replace("app_secret: app-secret", "app_secret: 123456789")
    assert errors_of(text) == [
        "config.yaml:14 companies[0].sessions[0].cloud.app_secret (sales): expected a string"
    ]


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


def test_engine_cloud_requires_the_cloud_section() -> None:
    assert errors_of(HEAD + "        engine: cloud\n") == [
        "config.yaml:8 companies[0].sessions[0].cloud (sales): required because engine is "
        "cloud: the number's phone_number_id, access_token, app_secret and verify_token "
        "(docs/cloud.md)"
    ]


def test_whatsapp_engine_cloud_requires_it_of_every_session() -> None:
    text = "whatsapp: {engine: cloud}\n" + HEAD + CLOUD.replace("        engine: cloud\n", "")
    text += "      - name: support\n        matrix: true\n"
    assert errors_of(text) == [
        "config.yaml:16 companies[0].sessions[1].cloud (support): required because "
        "whatsapp.engine is cloud: the number's phone_number_id, access_token, app_secret "
        "and verify_token (docs/cloud.md)"
    ]


def test_a_session_of_another_engine_keeps_whatsapp_engine_cloud_away() -> None:
    text = "whatsapp: {engine: cloud}\n" + HEAD + "        engine: whatsmeow\n"
    config = parse_config(text, path=Path("/srv/zap/config.yaml"))
    assert config.sessions[0].cloud is None
    assert config.engine_of(config.sessions[0]) == "whatsmeow"


def test_each_required_key_is_named_with_its_three_places() -> None:
    text = HEAD + "        engine: cloud\n        cloud:\n          api_version: v21.0\n"
    path = "companies[0].sessions[0].cloud"
    variable = "ZAPBRIDGE_CLOUD_ACME_SALES"
    assert errors_of(text) == [
        f"config.yaml:11 {path}.phone_number_id (sales): required; expected a phone number id "
        "of digits like 106540352242922",
        f"config.yaml:11 {path}.access_token (sales): required because engine is cloud; write "
        f"it here, in 'access_token_file' (a file holding it), or in the environment variable "
        f"{variable}_ACCESS_TOKEN",
        f"config.yaml:11 {path}.app_secret (sales): required because engine is cloud; write "
        f"it here, in 'app_secret_file' (a file holding it), or in the environment variable "
        f"{variable}_APP_SECRET",
        f"config.yaml:11 {path}.verify_token (sales): required because engine is cloud; write "
        f"it here, in 'verify_token_file' (a file holding it), or in the environment variable "
        f"{variable}_VERIFY_TOKEN",
    ]


def test_a_number_serves_one_session_even_across_companies() -> None:
    other_company = (
        "  - id: globex\n"
        "    admins: ['@bob:example.com']\n"
        "    ops: {matrix: true}\n"
        "    sessions:\n" + SECOND.replace("106540352242923", "106540352242922")
    )
    assert errors_of(HEAD + CLOUD + other_company) == [
        "config.yaml:24 companies[1].sessions[0].cloud.phone_number_id (support): phone number "
        "id 106540352242922 is already used by companies[0].sessions[0].cloud (line 12)"
    ]


def test_a_template_name_is_listed_once_per_session() -> None:
    text = (
        HEAD
        + CLOUD
        + "          templates:\n"
        + "            - {name: hello, language: en_US}\n"
        + "            - {name: hello, language: pt_BR}\n"
    )
    assert errors_of(text) == [
        "config.yaml:18 companies[0].sessions[0].cloud.templates[1].name (sales): template "
        "'hello' is already listed by companies[0].sessions[0].cloud.templates[0] (line 17)"
    ]


def test_two_sessions_may_list_the_same_template() -> None:
    hello = "          templates: [{name: hello}]\n"
    config = parse_config(HEAD + CLOUD + hello + SECOND + hello, path=Path("/srv/zap/c.yaml"))
    assert [s.cloud.templates for s in config.sessions if s.cloud] == [
        (CloudTemplate("hello"),),
        (CloudTemplate("hello"),),
    ]


CLOUD_VALUE_CASES = [
    (
        "phone_number_id: '+55 11 4000'",
        12,
        "phone_number_id",
        "expected a phone number id of digits like 106540352242922, got '+55 11 4000'",
    ),
    (
        "api_version: '21.0'",
        16,
        "api_version",
        "expected a Graph API version like v21.0, got '21.0'",
    ),
    (
        "base_url: http://graph.example.com",
        16,
        "base_url",
        "plain http is only for a server on this machine (localhost); use https; expected an "
        "https URL like https://graph.facebook.com (http only for localhost), "
        "got 'http://graph.example.com'",
    ),
    (
        "base_url: graph.facebook.com",
        16,
        "base_url",
        "expected an https URL like https://graph.facebook.com (http only for localhost), "
        "got 'graph.facebook.com'",
    ),
    (
        "templates: [{name: Hello}]",
        16,
        "templates[0].name",
        "expected a template name of lowercase letters, digits and '_' (like order_update), "
        "got 'Hello'",
    ),
    (
        "templates: [{name: hello, language: english}]",
        16,
        "templates[0].language",
        "expected a template language code like en_US, pt_BR or es, got 'english'",
    ),
    (
        "templates: [{name: hello, params: -1}]",
        16,
        "templates[0].params",
        "expected an integer ≥ 0, got -1",
    ),
    (
        "templates: [{language: en_US}]",
        16,
        "templates[0].name",
        "required; expected a template name of lowercase letters, digits and '_' "
        "(like order_update)",
    ),
    ("acces_token: 1", 16, "acces_token", "unknown key; did you mean 'access_token'?"),
]


@pytest.mark.parametrize(("written", "line", "key", "problem"), CLOUD_VALUE_CASES)
def test_a_wrong_value_is_a_located_problem(
    written: str, line: int, key: str, problem: str
) -> None:
    if written.startswith("phone_number_id"):
        text = HEAD + CLOUD.replace('phone_number_id: "106540352242922"', written)
    else:
        text = HEAD + CLOUD + f"          {written}\n"
    assert errors_of(text) == [
        f"config.yaml:{line} companies[0].sessions[0].cloud.{key} (sales): {problem}"
    ]


@pytest.mark.parametrize(
    "url", ["http://localhost:8089", "http://127.0.0.1:9", "http://[::1]:80/graph", "https://x.io"]
)
def test_plain_http_is_allowed_for_a_server_on_this_machine(url: str) -> None:
    cloud = cloud_of(HEAD + CLOUD + f'          base_url: "{url}"\n')
    assert cloud is not None
    assert cloud.base_url == url


# ---------------------------------------------------------------------------
# Warnings
# ---------------------------------------------------------------------------


def test_a_cloud_section_on_another_engine_is_warned_and_ignored(tmp_path: Path) -> None:
    text = HEAD + "        cloud:\n          phone_number_id: '1'\n"
    assert warnings_of(tmp_path, text) == [
        "10 companies[0].sessions[0].cloud (sales): ignored: this session's engine is "
        "whatsmeow (from whatsapp.engine), not cloud"
    ]
    report = checked(tmp_path, text)
    assert report.config is not None
    assert report.config.sessions[0].cloud is None


def test_an_ignored_cloud_section_still_reports_unknown_keys() -> None:
    text = HEAD + "        engine: sim\n        cloud:\n          phone_number: '1'\n"
    assert errors_of(text) == [
        "config.yaml:12 companies[0].sessions[0].cloud.phone_number (sales): unknown key; "
        "did you mean 'phone_number_id'?"
    ]


def test_an_ignored_cloud_section_does_not_claim_its_number() -> None:
    ignored = "        engine: sim\n        cloud: {phone_number_id: '106540352242923'}\n"
    config = parse_config(HEAD + ignored + SECOND, path=Path("/srv/zap/config.yaml"), env={})
    assert [s.cloud is not None for s in config.sessions] == [False, True]


def test_groups_on_a_cloud_session_are_warned(tmp_path: Path) -> None:
    text = HEAD + "        groups: true\n" + CLOUD
    assert warnings_of(tmp_path, text) == [
        "10 companies[0].sessions[0].groups (sales): ignored: the Cloud API does not bridge "
        "group chats (docs/cloud.md)"
    ]
