"""bridge.matrix.registration: registration content and ``generate`` write-back."""

from __future__ import annotations

import os
import re
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bridge.config import load_config, parse_config
from bridge.errors import ConfigError
from bridge.matrix.registration import build_registration, generate_token, write_registration

REPO = Path(__file__).resolve().parents[2]

CONFIG = textwrap.dedent(
    """\
    # The bridge config (comments must survive the write-back).
    homeserver:
      address: https://matrix.example.com
      domain: example.com   # the server name

    appservice:
      address: http://bridge.internal:29318
      id: zap
      bot_username: zapbot
      user_prefix: "wa."
      # replaced by generate-registration
      as_token: generate    # keep me
      hs_token: "generate"

    companies:
        -   id: acme
            ops: {matrix: true}
            sessions: [{name: sales, matrix: true}]
    """
)

TOKEN = re.compile(r"[A-Za-z0-9_-]{64}")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_yaml(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def test_registration_content() -> None:
    text = CONFIG.replace("as_token: generate", "as_token: AS1").replace('"generate"', "HS1")
    config = parse_config(text, path=Path("/etc/zap/config.yaml"))
    assert build_registration(config) == {
        "id": "zap",
        "url": "http://bridge.internal:29318",
        "as_token": "AS1",
        "hs_token": "HS1",
        "sender_localpart": "zapbot",
        "rate_limited": False,
        "namespaces": {
            "users": [
                {"exclusive": True, "regex": r"@wa\..*:example\.com"},
                {"exclusive": True, "regex": r"@zapbot:example\.com"},
            ],
            "aliases": [],
            "rooms": [],
        },
        "de.sorunome.msc2409.push_ephemeral": True,
        "receive_ephemeral": True,
    }


def test_user_namespace_matches_ghosts_and_the_bot_only() -> None:
    text = CONFIG.replace("as_token: generate", "as_token: AS1").replace('"generate"', "HS1")
    registration = build_registration(parse_config(text, path=Path("config.yaml")))
    ghosts, bot = (re.compile(n["regex"]) for n in registration["namespaces"]["users"])
    assert ghosts.fullmatch("@wa.5511987654321:example.com")
    assert not ghosts.fullmatch("@wax5511987654321:example.com")
    assert not ghosts.fullmatch("@wa.5511987654321:exampleXcom")
    assert bot.fullmatch("@zapbot:example.com")
    assert not bot.fullmatch("@zapbotx:example.com")


def test_registration_refuses_tokens_still_to_generate() -> None:
    config = parse_config(CONFIG, path=Path("config.yaml"))
    assert config.appservice.needs_generation is True
    with pytest.raises(ConfigError, match="generate-registration"):
        build_registration(config)


def test_generated_token_is_64_url_safe_characters() -> None:
    tokens = {generate_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(TOKEN.fullmatch(t) for t in tokens)


def test_generate_is_replaced_in_place_preserving_comments_and_layout(tmp_path: Path) -> None:
    config_path = write(tmp_path, CONFIG)
    out = tmp_path / "registration.yaml"

    registration = write_registration(config_path, out, env={})

    as_token, hs_token = registration["as_token"], registration["hs_token"]
    assert TOKEN.fullmatch(as_token) and TOKEN.fullmatch(hs_token)
    assert as_token != hs_token
    expected = CONFIG.replace("as_token: generate", f"as_token: {as_token}").replace(
        '"generate"', f'"{hs_token}"'
    )
    assert config_path.read_text(encoding="utf-8") == expected
    assert load_yaml(out) == registration
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    reloaded = load_config(config_path, env={})
    assert (reloaded.appservice.as_token, reloaded.appservice.hs_token) == (as_token, hs_token)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_a_config_holding_generated_tokens_becomes_private(tmp_path: Path, umask: int) -> None:
    config_path = write(tmp_path, CONFIG)
    config_path.chmod(0o644)
    out = tmp_path / "registration.yaml"
    write_registration(config_path, out, env={})
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_config_without_generate_is_left_as_it_is(tmp_path: Path, umask: int) -> None:
    text = CONFIG.replace("as_token: generate", "as_token: AS1").replace('"generate"', "HS1")
    config_path = write(tmp_path, text)
    config_path.chmod(0o640)
    out = tmp_path / "registration.yaml"
    write_registration(config_path, out, env={})
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o640
    assert config_path.read_text(encoding="utf-8") == text
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_a_registration_that_cannot_be_written_is_a_config_error(tmp_path: Path) -> None:
    config_path = write(tmp_path, CONFIG)
    with pytest.raises(ConfigError, match=r"cannot write .*missing/registration.yaml: No such"):
        write_registration(config_path, tmp_path / "missing" / "registration.yaml", env={})


def test_flow_style_generate_tokens_are_replaced(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        homeserver: {address: http://hs:8008, domain: localhost}
        appservice: {as_token: generate, hs_token: 'generate'}  # flow style
        companies: [{id: acme, ops: {matrix: true}}]
        """
    )
    config_path = write(tmp_path, text)
    registration = write_registration(config_path, tmp_path / "reg.yaml", env={})
    written = config_path.read_text(encoding="utf-8")
    assert written == text.replace(
        "as_token: generate", f"as_token: {registration['as_token']}"
    ).replace("'generate'", f"'{registration['hs_token']}'")


def test_real_tokens_are_copied_and_the_config_is_untouched(tmp_path: Path) -> None:
    text = CONFIG.replace("as_token: generate", "as_token: AS1").replace('"generate"', "HS1")
    config_path = write(tmp_path, text)
    out = tmp_path / "registration.yaml"
    write_registration(config_path, out, env={})
    assert config_path.read_text(encoding="utf-8") == text
    assert (load_yaml(out)["as_token"], load_yaml(out)["hs_token"]) == ("AS1", "HS1")


def test_token_from_the_environment_is_used_and_its_generate_left_alone(tmp_path: Path) -> None:
    config_path = write(tmp_path, CONFIG)
    env = {"ZAPBRIDGE_APPSERVICE_AS_TOKEN": "as-from-env"}
    registration = write_registration(config_path, tmp_path / "reg.yaml", env=env)
    assert registration["as_token"] == "as-from-env"
    written = config_path.read_text(encoding="utf-8")
    assert "as_token: generate    # keep me" in written
    assert f'hs_token: "{registration["hs_token"]}"' in written


def test_generate_from_a_secret_file_cannot_be_written_back(tmp_path: Path) -> None:
    (tmp_path / "as").write_text("generate\n", encoding="utf-8")
    config_path = write(tmp_path, CONFIG.replace("as_token: generate", "as_token_file: as"))
    before = config_path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="only a token written in the config file"):
        write_registration(config_path, tmp_path / "reg.yaml", env={})
    assert config_path.read_text(encoding="utf-8") == before
    assert not (tmp_path / "reg.yaml").exists()


def test_invalid_config_writes_nothing(tmp_path: Path) -> None:
    config_path = write(tmp_path, CONFIG.replace("bot_username: zapbot", "bot_username: Zap Bot"))
    before = config_path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        write_registration(config_path, tmp_path / "reg.yaml", env={})
    assert any("appservice.bot_username" in p for p in caught.value.problems)
    assert config_path.read_text(encoding="utf-8") == before
    assert not (tmp_path / "reg.yaml").exists()
    assert list(tmp_path.iterdir()) == [config_path]  # no temporary files left behind


def test_example_config_generates_a_registration(tmp_path: Path) -> None:
    example = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    config_path = write(tmp_path, example)
    registration = write_registration(config_path, tmp_path / "reg.yaml", env={})
    written = config_path.read_text(encoding="utf-8")
    assert written.count("\n") == example.count("\n")
    assert (
        written.replace(registration["as_token"], "generate").replace(
            registration["hs_token"], "generate"
        )
        == example
    )
    assert registration["namespaces"]["users"][0]["regex"] == "@wa_.*:localhost"
