"""Reading a config file: the entry points behind ``check-config`` and start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bridge.config.mapping import MappingReader, ReadContext
from bridge.config.problems import ConfigReport, Problem, Problems, reason, yaml_line, yaml_message
from bridge.config.schema import Config
from bridge.config.sections import read_config
from bridge.errors import ConfigError


def load_config(path: Path | str, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` listing every problem.

    ``env`` defaults to ``os.environ`` (for ``ZAPBRIDGE_*`` secrets)."""
    return _raise_on_errors(check_config(path, env=env))


def check_config(path: Path | str, *, env: Mapping[str, str] | None = None) -> ConfigReport:
    """Validate ``path``, returning every error and warning (never raises for them)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem(str(path), 1, "(file)", f"cannot read the config file: {reason(exc)}")
        return ConfigReport(None, [problem], [])
    return _check_text(text, path=path, env=os.environ if env is None else env)


def parse_config(text: str, *, path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Validate YAML ``text`` as if read from ``path`` (relative paths resolve against
    its directory). ``env`` defaults to none at all, which keeps tests hermetic."""
    return _raise_on_errors(_check_text(text, path=Path(path), env=env or {}))


def _raise_on_errors(report: ConfigReport) -> Config:
    if report.config is None:
        count = len(report.errors)
        first = report.errors[0]
        noun = "problem" if count == 1 else "problems"
        raise ConfigError(
            f"{first.file} has {count} {noun}; first: {first}", [str(p) for p in report.errors]
        )
    return report.config


def _check_text(text: str, *, path: Path, env: Mapping[str, str]) -> ConfigReport:
    problems = Problems(str(path))
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        problems.error(yaml_line(exc), "(yaml)", yaml_message(exc))
        return problems.report(None)
    except YAMLError as exc:
        problems.error(1, "(yaml)", f"invalid YAML: {exc}")
        return problems.report(None)
    absolute = Path(os.path.normpath(path.absolute()))
    ctx = ReadContext(problems=problems, env=env, base_dir=absolute.parent)
    root = MappingReader(ctx, {} if data is None else data, path="", line=1)
    return problems.report(read_config(root, absolute))
