"""The generic part of the reader: a section's keys read as its dataclass says.

:func:`read_fields` walks the fields of a section class in order and reads each key
by the spec in its metadata (keys.py), with the field's own default; a section
reader passes ``readers`` for the keys that need context and ``then`` for checks
that must run right after a key is read (a Slack channel already used). Unknown keys
are reported when the section is done.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bridge.config.keys import KEY, Items, ReadBySection, Scalar, Secret, Section
from bridge.config.kinds import Invalid, Kind
from bridge.config.mapping import REQUIRED, MappingReader
from bridge.config.problems import shown
from bridge.config.secret_sources import SecretValue, read_secret

T = TypeVar("T")

Reader = Callable[[Mapping[str, Any]], Any]
"""Reads one field, given the values read before it."""

_NO_READERS: Mapping[str, Reader] = {}
_NO_CHECKS: Mapping[str, Callable[[Any], Any]] = {}


@dataclass(slots=True)
class Fields:
    """What :func:`read_fields` read: values by field name, and each secret's origin."""

    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, SecretValue] = field(default_factory=dict)


def read_fields(
    m: MappingReader,
    section: type[Any],
    *,
    readers: Mapping[str, Reader] = _NO_READERS,
    then: Mapping[str, Callable[[Any], Any]] = _NO_CHECKS,
    required: bool = False,
    env_section: str | None = None,
) -> Fields:
    """Every key of ``section`` from ``m``, in field order; then unknown keys are
    reported. ``readers`` read a field instead (a field that is no key included), given
    the values read before it;
    ``then`` maps a key's value right after it is read; ``required`` ignores the
    scalar keys' defaults; ``env_section`` names the secrets' environment variables
    (secret_sources.py; default: the mapping's path)."""
    result = Fields()
    for spec in dataclasses.fields(section):
        if spec.name in readers:
            value = readers[spec.name](result.values)
        elif KEY in spec.metadata:
            value = _read_field(m, spec, result, required=required, env_section=env_section)
        else:
            continue
        result.values[spec.name] = then[spec.name](value) if spec.name in then else value
    m.finish()
    return result


def read_section(
    m: MappingReader,
    section: type[T],
    *,
    readers: Mapping[str, Reader] = _NO_READERS,
    required: bool = False,
) -> T:
    """``section`` built from :func:`read_fields`."""
    values = read_fields(m, section, readers=readers, required=required).values
    return section(**values)


def read_key(m: MappingReader, name: str, *, section: type[Any]) -> Any:
    """One key of ``section``, for a mapping read key by key (the top level)."""
    spec = next(f for f in dataclasses.fields(section) if f.name == name)
    return _read_field(m, spec, Fields(), required=False, env_section=None)


def default_of(spec: dataclasses.Field[Any]) -> Any:
    """The field's default (a fresh one from a factory), or :data:`REQUIRED`."""
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return REQUIRED


def _read_field(
    m: MappingReader,
    spec: dataclasses.Field[Any],
    result: Fields,
    *,
    required: bool,
    env_section: str | None,
) -> Any:
    name, default = spec.name, default_of(spec)
    match spec.metadata[KEY]:
        case Scalar(kind):
            return m.get(name, kind, default=REQUIRED if required else default)
        case Secret():
            secret = read_secret(m, name, env_section=env_section)
            result.secrets[name] = secret
            return secret.value or default
        case Items(kind):
            return _read_items(m, name, kind, default)
        case Section():
            return read_section(m.child(name), type(default))
        case ReadBySection():
            raise TypeError(f"the key {m.key_path(name)} needs its section's reader")
    raise TypeError(f"{spec.metadata[KEY]!r} is no key spec")


def _read_items(m: MappingReader, name: str, kind: Kind, default: tuple[Any, ...]) -> Any:
    if not m.has(name):
        m.raw(name)  # known, so not reported as unknown
        return default
    values = []
    for raw, path, line in m.items(name):
        try:
            values.append(kind.convert(raw))
        except Invalid:
            m.ctx.problems.error(line, path, f"expected {kind.expected}, got {shown(raw)}")
    return tuple(dict.fromkeys(values))
