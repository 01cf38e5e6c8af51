"""The Matrix appservice registration, and ``generate`` tokens written back.

``generate-registration`` (CLI) calls :func:`write_registration`: every appservice
token written in the config file as the literal ``generate`` is replaced by a random
one *in place* (only that scalar changes; comments and layout stay byte for byte),
then the registration YAML the homeserver loads is written next to it. Both files
hold tokens, so both are written atomically as 0600 files (a config file that was
readable by others is not any more once it holds generated tokens).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from bridge.config import GENERATE, Config, check_config, parse_config
from bridge.errors import ConfigError
from bridge.files import write_private

__all__ = ["build_registration", "generate_token", "write_registration"]

_TOKEN_KEYS = ("as_token", "hs_token")


def generate_token() -> str:
    """A random url-safe token of 64 characters."""
    return secrets.token_urlsafe(48)


def build_registration(config: Config) -> dict[str, Any]:
    """The registration a homeserver needs to route our namespace to the bridge."""
    appservice, domain = config.appservice, config.homeserver.domain
    if appservice.needs_generation or not (appservice.as_token and appservice.hs_token):
        raise ConfigError(
            "appservice.as_token and appservice.hs_token must be real tokens; write "
            f"'{GENERATE}' for them and run generate-registration"
        )
    ghosts = f"@{re.escape(appservice.user_prefix)}.*:{re.escape(domain)}"
    bot = f"@{re.escape(appservice.bot_username)}:{re.escape(domain)}"
    return {
        "id": appservice.id,
        "url": appservice.address,
        "as_token": appservice.as_token,
        "hs_token": appservice.hs_token,
        "sender_localpart": appservice.bot_username,
        "rate_limited": False,
        "namespaces": {
            "users": [
                {"exclusive": True, "regex": ghosts},
                {"exclusive": True, "regex": bot},
            ],
            "aliases": [],
            "rooms": [],
        },
        "de.sorunome.msc2409.push_ephemeral": True,
        "receive_ephemeral": True,
    }


def write_registration(
    config_path: Path | str, out_path: Path | str, *, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Fill ``generate`` tokens in the config file, then write the registration.

    Raises :class:`ConfigError` when the config is invalid (nothing is written then).
    ``env`` defaults to ``os.environ``; a token from the environment wins over the
    file, so a ``generate`` shadowed by it is left alone. Returns the registration."""
    config_path, env = Path(config_path), os.environ if env is None else env
    report = check_config(config_path, env=env)
    if report.config is None:
        raise ConfigError(
            f"{config_path} is invalid; run check-config", [str(p) for p in report.errors]
        )
    config = report.config
    if config.appservice.needs_generation:
        text = _fill_generated_tokens(config_path.read_text(encoding="utf-8"), config)
        config = parse_config(text, path=config_path, env=env)
        if config.appservice.needs_generation:  # the edit did not land; never write it
            raise ConfigError(f"could not replace the '{GENERATE}' tokens in {config_path}")
        _write(config_path, text)  # it holds tokens now: 0600 (bridge/files.py)
    registration = build_registration(config)
    _write(Path(out_path), _dump(registration))
    return registration


def _write(path: Path, text: str) -> None:
    try:
        write_private(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _fill_generated_tokens(text: str, config: Config) -> str:
    """``text`` with each appservice ``generate`` token replaced where it is written."""
    section = YAML(typ="rt").load(text).get("appservice")
    places = []
    for key in _TOKEN_KEYS:
        if getattr(config.appservice, key) != GENERATE:
            continue
        if section is None or section.get(key) != GENERATE:
            raise ConfigError(
                f"appservice.{key} is '{GENERATE}' but not written in {config.path}; "
                "only a token written in the config file can be generated"
            )
        places.append(section.lc.value(key))
    lines = text.splitlines(keepends=True)
    # Right to left, so an edit never shifts the column of one still to come.
    for line, column in sorted(places, reverse=True):
        lines[line] = _replace_scalar(lines[line], column, generate_token(), line_number=line + 1)
    return "".join(lines)


_GENERATE_SCALAR = re.compile(r"""(["']?)generate\1""")


def _replace_scalar(line: str, column: int, token: str, *, line_number: int) -> str:
    match = _GENERATE_SCALAR.match(line, column)
    if match is None:
        raise ConfigError(f"cannot find the '{GENERATE}' token to replace on line {line_number}")
    quote = match.group(1)
    return f"{line[: match.start()]}{quote}{token}{quote}{line[match.end() :]}"


def _dump(registration: dict[str, Any]) -> str:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = StringIO()
    yaml.dump(registration, out)
    return out.getvalue()
