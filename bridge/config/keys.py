"""How a field of the schema is read from YAML: the metadata a key field carries.

A field that is a YAML key has one of these specs under :data:`KEY` in its metadata,
and its default is the dataclass default: the schema (schema.py) is the one place
where a key's kind and default are written; the reader (fields.py) follows it, and
docs/configuration.md states the same defaults (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.config.kinds import Kind

KEY = "zapbridge.config.key"


@dataclass(frozen=True, slots=True)
class Scalar:
    """One value of ``kind``."""

    kind: Kind


@dataclass(frozen=True, slots=True)
class Secret:
    """A string from the environment, ``<key>_file`` or ``<key>`` (secret_sources.py);
    ``<key>_file`` is a key too."""


@dataclass(frozen=True, slots=True)
class Items:
    """A list of values of ``kind``; each bad entry is a problem of its own, and a
    value written twice is kept once."""

    kind: Kind


@dataclass(frozen=True, slots=True)
class Section:
    """A nested mapping, read into the field's ``default_factory`` class."""


@dataclass(frozen=True, slots=True)
class ReadBySection:
    """Read by its section's own reader, which knows what it depends on (other
    sections, names already used)."""


KeySpec = Scalar | Secret | Items | Section | ReadBySection


def scalar(kind: Kind) -> dict[str, Any]:
    return {KEY: Scalar(kind)}


def items(kind: Kind) -> dict[str, Any]:
    return {KEY: Items(kind)}


SECRET: dict[str, Any] = {KEY: Secret()}
SECTION: dict[str, Any] = {KEY: Section()}
READ_BY_SECTION: dict[str, Any] = {KEY: ReadBySection()}
