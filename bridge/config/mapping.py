"""One YAML mapping being read, with the lines of its keys.

A :class:`MappingReader` remembers the keys asked for, so that :meth:`finish
<MappingReader.finish>` reports every other key as unknown, with a "did you mean"
suggestion or the list of known keys. Problems name the key path
(``companies[0].sessions[1].greeting``) and the key's own line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.config.kinds import Invalid, Kind
from bridge.config.problems import Problems, shown

REQUIRED: Any = object()
"""A default meaning: the key must be written."""
MISSING: Any = object()
"""What :meth:`MappingReader.raw` returns for an absent (or null) key."""


@dataclass(slots=True)
class ReadContext:
    """What every mapping of one read shares."""

    problems: Problems
    env: Mapping[str, str]
    base_dir: Path
    """The config file's directory: relative paths resolve against it."""


class MappingReader:
    """One YAML mapping being read; see the module docstring."""

    def __init__(
        self, ctx: ReadContext, node: Any, *, path: str, line: int, label: str | None = None
    ) -> None:
        self.ctx = ctx
        self.path = path
        self.line = line
        self.label = label
        """A name shown after key paths in problems (a session's name), once known."""
        self.known: list[str] = []
        self.broken = node is not None and not isinstance(node, Mapping)
        """Not a mapping (reported once); its keys are then neither required nor warned."""
        if self.broken:
            ctx.problems.error(
                line, path or "(top level)", f"expected a mapping, got {shown(node)}"
            )
        self.node: Mapping[Any, Any] = {} if node is None or self.broken else node

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def shown(self, key_path: str) -> str:
        """``key_path`` as a problem names it: ``companies[0].sessions[1].greeting
        (support)`` under a labelled mapping."""
        return f"{key_path} ({self.label})" if self.label else key_path

    def line_of(self, key: str) -> int:
        """The key's own line, or this mapping's line when the key is absent."""
        try:
            return int(self.node.lc.key(key)[0]) + 1  # type: ignore[attr-defined]
        except (AttributeError, KeyError, TypeError):
            return self.line

    def has(self, key: str) -> bool:
        return key in self.node and self.node[key] is not None

    def raw(self, key: str) -> Any:
        """The value as written (:data:`MISSING` when absent); ``key`` becomes known."""
        if key not in self.known:
            self.known.append(key)
        value = self.node.get(key, MISSING)
        return MISSING if value is None else value

    def error(self, key: str, message: str) -> None:
        self.ctx.problems.error(self.line_of(key), self.shown(self.key_path(key)), message)

    def warn(self, key: str, message: str) -> None:
        if not self.broken:
            self.ctx.problems.warn(self.line_of(key), self.shown(self.key_path(key)), message)

    def warn_here(self, message: str) -> None:
        """A warning about this whole mapping (a session, a company)."""
        if not self.broken:
            self.ctx.problems.warn(self.line, self.shown(self.path), message)

    def get(self, key: str, kind: Kind, *, default: Any = REQUIRED) -> Any:
        """The converted value of ``key``; ``default`` when absent (or invalid)."""
        raw = self.raw(key)
        if raw is MISSING:
            if default is REQUIRED:
                if not self.broken:
                    self.error(key, f"required; expected {kind.expected}")
                return None
            return default
        return self.convert(key, raw, kind=kind, default=default)

    def convert(self, key: str, raw: Any, *, kind: Kind, default: Any) -> Any:
        try:
            return kind.convert(raw)
        except Invalid as exc:
            got = "" if kind.secret else f", got {shown(raw)}"
            reason = f"{exc.args[0]}; " if exc.args else ""
            self.error(key, f"{reason}expected {kind.expected}{got}")
            return None if default is REQUIRED else default

    def child(self, key: str) -> MappingReader:
        raw = self.raw(key)
        return MappingReader(
            self.ctx,
            None if raw is MISSING else raw,
            path=self.key_path(key),
            line=self.line_of(key),
            label=self.label,
        )

    def items(self, key: str) -> Iterator[tuple[Any, str, int]]:
        """``(value, key path, line)`` of each entry of a list (none when absent)."""
        raw = self.raw(key)
        if raw is MISSING:
            return
        if not isinstance(raw, list):
            self.error(key, f"expected a list, got {shown(raw)}")
            return
        for index, value in enumerate(raw):
            try:
                line = int(raw.lc.item(index)[0]) + 1  # type: ignore[attr-defined]
            except (AttributeError, KeyError, TypeError):
                line = self.line_of(key)
            yield value, f"{self.key_path(key)}[{index}]", line

    def finish(self) -> None:
        """Report every key that nobody asked for."""
        for key in self.node:
            if str(key) in self.known:
                continue
            close = difflib.get_close_matches(str(key), self.known, n=1, cutoff=0.6)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else "expected one of: " + ", ".join(self.known)
            )
            self.ctx.problems.error(
                self.line_of(key), self.shown(self.key_path(str(key))), f"unknown key; {hint}"
            )
