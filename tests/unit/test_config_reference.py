"""docs/configuration.md, config.example.yaml and the reader agree.

The keys the reader accepts are found by asking it: an unknown key in a mapping is
reported with the list of the keys known there, so each mapping is probed with one.
Every such key must be in the reference and in the example (commented out or not),
every key of either document must be one the reader accepts, and each default the
reference states must be what the reader uses when the key is absent.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge.config import Config, check_config, parse_config
from bridge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "configuration.md"
EXAMPLE = REPO / "config.example.yaml"
PROBE = "zz_probe"
KNOWN = re.compile(r"unknown key; expected one of: (.*)$")

Where = tuple[str | int, ...]


def _problems(data: dict[str, Any]) -> list[str]:
    try:
        parse_config(json.dumps(data, indent=2), path=Path("/srv/zap/config.yaml"))
    except ConfigError as exc:
        return exc.problems
    return []


def _place(where: Where, value: Any) -> Any:
    """``value`` nested at ``where``: a name is a mapping key, 0 a list's entry."""
    for step in reversed(where):
        value = [value] if isinstance(step, int) else {step: value}
    return value


def _dotted(where: Where) -> str:
    text = ""
    for step in where:
        text += "[]" if isinstance(step, int) else f".{step}" if text else step
    return text


def _indexed(where: Where) -> str:
    return _dotted(where).replace("[]", "[0]")


def _known_at(where: Where) -> list[str] | None:
    """The keys of the mapping at ``where``, or None when no mapping is read there."""
    probe = _indexed((*where, PROBE))
    for problem in _problems(_place(where, {PROBE: 1})):
        located, _, message = problem.partition(": ")
        key = located.split(" ", 2)[1]
        match = KNOWN.search(message)
        if key == probe and match:
            return match.group(1).split(", ")
    return None


def reader_keys() -> set[str]:
    keys: set[str] = set()
    pending: list[Where] = [()]
    while pending:
        where = pending.pop()
        known = _known_at(where)
        assert known, f"no keys known at {_dotted(where) or 'the top level'}"
        for key in known:
            path = (*where, key)
            keys.add(_dotted(path))
            if _known_at(path) is not None:
                pending.append(path)
            elif _known_at((*path, 0)) is not None:
                pending.append((*path, 0))
    return keys


def reference_rows() -> dict[str, str]:
    """Key path → the Default cell, from every table row of the reference."""
    rows = {}
    row = re.compile(r"^\| `([^`]+)` \|[^|]*\|([^|]*)\|", re.MULTILINE)
    for key, default in row.findall(REFERENCE.read_text(encoding="utf-8")):
        assert key not in rows, f"{key} is described twice"
        rows[key] = default.strip()
    return rows


COMMENTED_KEY = re.compile(r"^(\s*)# ([a-z_]+:(?:\s.*)?)$", re.MULTILINE)


def example_keys() -> set[str]:
    """Every key path of the example, with the keys commented out as '# key: value'."""
    text = COMMENTED_KEY.sub(r"\1\2", EXAMPLE.read_text(encoding="utf-8"))
    keys: set[str] = set()

    def walk(node: Any, where: Where) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                keys.add(_dotted((*where, str(key))))
                walk(value, (*where, str(key)))
        elif isinstance(node, list):
            for value in node:
                walk(value, (*where, 0))

    walk(YAML(typ="safe").load(text), ())
    return keys


@pytest.fixture(scope="module")
def accepted() -> set[str]:
    return reader_keys()


def test_the_probe_finds_the_keys_of_every_kind_of_place(accepted: set[str]) -> None:
    assert {
        "database.url",
        "database.url_file",
        "whatsapp.reconnect.stable_seconds",
        "companies[].ops.slack_channel",
        "companies[].sessions[].business_hours.hours",
        "slack.file_hosts",
    } <= accepted
    assert "companies[].admins" in accepted
    assert not any(key.startswith("companies[].admins.") for key in accepted)


def _leaves(keys: set[str]) -> set[str]:
    """The keys holding values, not sections (``whatsapp.reconnect``, ``companies``)."""
    return {k for k in keys if not any(o.startswith((f"{k}.", f"{k}[]")) for o in keys)}


def test_every_key_the_reader_accepts_is_in_the_reference_and_no_other(
    accepted: set[str],
) -> None:
    """The reference has a row per key holding a value; sections are its headings."""
    documented = set(reference_rows())
    missing = _leaves(accepted) - documented
    assert sorted(missing) == [], "accepted but not in docs/configuration.md"
    assert sorted(documented - accepted) == [], "in docs/configuration.md but not accepted"


def test_every_key_the_reader_accepts_is_in_the_example_and_no_other(
    accepted: set[str],
) -> None:
    # a list's key is accepted, and its entries' keys when they are mappings
    written = example_keys()
    assert sorted(accepted - written) == [], "accepted but not in config.example.yaml"
    assert sorted(written - accepted) == [], "in config.example.yaml but not accepted"


MINIMAL: dict[str, Any] = {"companies": [{"id": "acme", "sessions": [{"name": "sales"}]}]}
CLOUD_SESSION: dict[str, Any] = {
    "name": "sales",
    "engine": "cloud",
    "cloud": {
        "phone_number_id": "106540352242922",
        "access_token": "EAAG-token",
        "app_secret": "app-secret",
        "verify_token": "verify-token",
        "templates": [{"name": "ticket_followup"}],
    },
}
MINIMAL_CLOUD: dict[str, Any] = {"companies": [{"id": "acme", "sessions": [CLOUD_SESSION]}]}
"""The smallest config where a cloud section, and a template in it, are used."""


def _minimal_for(key: str) -> dict[str, Any]:
    return MINIMAL_CLOUD if ".cloud." in key else MINIMAL


def _with(where: Where, value: Any, *, base: dict[str, Any] = MINIMAL) -> dict[str, Any]:
    """``base`` with ``value`` written at ``where``."""
    data = json.loads(json.dumps(base))
    node: Any = data
    for step, after in zip(where, (*where[1:], None), strict=True):
        if after is None:
            node[step] = value
        elif isinstance(step, int):
            node = node[step]
        else:
            node = node.setdefault(step, [{}] if isinstance(after, int) else {})
    return data


def _parsed(data: dict[str, Any]) -> Config:
    return parse_config(json.dumps(data, indent=2), path=Path("/srv/zap/config.yaml"))


def _where(key: str) -> Where:
    steps: list[str | int] = []
    for part in key.split("."):
        name, lists = part.removesuffix("[]" * part.count("[]")), part.count("[]")
        steps += [name] + [0] * lists
    return tuple(steps)


def test_each_default_the_reference_states_is_the_one_the_reader_uses() -> None:
    """Writing a key with its documented default gives the config the absent key
    gives (defaults in `code`; "none", "required" and the derived ones are words). A
    key of a Cloud API session is compared on a config where its section is used."""
    checked = []
    for key, cell in reference_rows().items():
        literal = re.fullmatch(r"`([^`]*)`", cell)
        if literal is None:
            continue
        value = YAML(typ="safe").load(io.StringIO(literal.group(1)))
        base = _minimal_for(key)
        baseline = _parsed(base)
        written = _parsed(_with(_where(key), value, base=base))
        assert written == baseline, f"{key}: the reference says {cell}"
        checked.append(key)
    assert len(checked) >= 40, checked


def test_a_wrong_default_in_the_reference_would_be_caught() -> None:
    """The comparison above can fail: a value that is not the default changes the
    config."""
    baseline = _parsed(MINIMAL)
    assert _parsed(_with(_where("whatsapp.reconnect.max_seconds"), 301)) != baseline
    assert _parsed(_with(_where("companies[].sessions[].sign_messages"), False)) != baseline
    language = _where("companies[].sessions[].cloud.templates[].language")
    cloud_baseline = _parsed(MINIMAL_CLOUD)
    assert _parsed(_with(language, "pt_BR", base=MINIMAL_CLOUD)) != cloud_baseline
    api_version = _where("companies[].sessions[].cloud.api_version")
    assert _parsed(_with(api_version, "v22.0", base=MINIMAL_CLOUD)) != cloud_baseline


def test_the_example_passes_check_config() -> None:
    report = check_config(EXAMPLE, env={})
    assert [str(p) for p in report.errors] == []
    assert report.config is not None
