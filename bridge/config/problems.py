"""What a config check finds: problems located by file, line and key path.

Reading never stops at the first mistake (docs/configuration.md): every problem is
collected here, then reported in line order, so one ``check-config`` run shows them
all. A value is described in messages by :func:`shown`, never echoed whole, and a
YAML syntax error never echoes a value either (a duplicate key's may be a secret).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

if TYPE_CHECKING:
    from bridge.config.schema import Config


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about the config, located by file, line and key path."""

    file: str
    line: int
    key: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """The outcome of :func:`check_config`: the config when valid, and all findings."""

    config: Config | None
    errors: list[Problem]
    warnings: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.errors


class Problems:
    """The findings of one read of one file, collected as they are found."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, line: int, key: str, message: str) -> None:
        self.errors.append(Problem(self.file, line, key, message, "error"))

    def warn(self, line: int, key: str, message: str) -> None:
        self.warnings.append(Problem(self.file, line, key, message, "warning"))

    def report(self, config: Config | None) -> ConfigReport:
        """Every finding in line order; no config when there is any error."""
        errors = sorted(self.errors, key=lambda p: p.line)
        warnings = sorted(self.warnings, key=lambda p: p.line)
        return ConfigReport(None if errors else config, errors, warnings)


@dataclass(slots=True)
class Seen:
    """Names already used, to report duplicates with the first use's place."""

    places: dict[str, str] = field(default_factory=dict)

    def claim(self, name: str, place: str) -> str | None:
        """Record ``name``; return the earlier place when it was already taken."""
        earlier = self.places.get(name)
        if earlier is None:
            self.places[name] = place
        return earlier


def is_bool(value: Any) -> bool:
    return isinstance(value, bool | ScalarBoolean)


def shown(value: Any) -> str:
    """A short, human description of a YAML value for 'got …' messages."""
    if is_bool(value):
        return "true" if value else "false"
    if isinstance(value, str):
        text = str(value)
        return repr(text if len(text) <= 40 else text[:37] + "...")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def reason(exc: BaseException) -> str:
    """Why a file could not be read, without the exception's class name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def yaml_line(exc: MarkedYAMLError) -> int:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else 1


_DUPLICATE_RE = re.compile(r'found duplicate key "([^"]*)"')


def yaml_message(exc: MarkedYAMLError) -> str:
    """ruamel's message, without echoing values (a duplicate key's may be a secret)."""
    problem = exc.problem or "malformed"
    duplicate = _DUPLICATE_RE.search(problem)
    if duplicate:
        return f"invalid YAML: duplicate key '{duplicate.group(1)}'"
    context = f" {exc.context}" if exc.context else ""
    return f"invalid YAML: {problem}{context}"
