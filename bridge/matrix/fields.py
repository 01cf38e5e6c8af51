"""Typed reads of Matrix JSON: the edge where events (from transactions, from the
catch-up, from the client API) enter the bridge.

Any room member can put any JSON value in any field of an event's content, so
every field the bridge reads goes through :class:`Fields`:

- a field of the wrong type raises :class:`MalformedEvent`, naming the field (the
  appservice then sets the event aside: ``bridge.core.quarantine``); a missing
  field, or ``null``, reads as absent;
- strings come back cleaned of what neither database stores the same way: NUL and
  lone surrogates (JSON escapes can make both) become U+FFFD;
- what the bridge can do without is read loosely (``loose_text``, ``loose_obj``,
  ``metadata_int``): optional numeric metadata (``info.size``, ``info.w``, …) that
  clients disagree about, a display name, events read back from the client API to
  compare with what the bridge sent; a wrong type there reads as absent instead of
  refusing an event that is usable without it.

Past this edge the code trusts what it got.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.errors import InvalidInput
from bridge.http_input import json_kind
from bridge.model import clean_text

__all__ = ["Fields", "MalformedEvent", "page_events"]

_MAX_METADATA = 2**53  # Matrix integers are within ±2**53 (canonical JSON)


class MalformedEvent(InvalidInput):
    """A Matrix event with a field of the wrong type; the explanation names it."""


class Fields:
    """The fields of one JSON object of an event, read by type. ``path`` names the
    object in errors (``content.m.relates_to``; empty for the event itself)."""

    __slots__ = ("_data", "path")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self._data = data
        self.path = path

    @classmethod
    def of(cls, value: Any, path: str = "") -> Fields:
        """``value`` as an object; raises :class:`MalformedEvent` when it is not one."""
        if not isinstance(value, dict):
            raise MalformedEvent(f"{path or 'the event'} is {json_kind(value)}, not an object")
        return cls(value, path)

    def __bool__(self) -> bool:
        return bool(self._data)

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def text(self, key: str) -> str | None:
        """A string field (cleaned), None when absent."""
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, value, "a string")
        return clean_text(value)

    def loose_text(self, key: str) -> str | None:
        """A string field (cleaned), None when absent or not a string: for what the
        bridge can do without (a display name, a value read back to compare)."""
        value = self._data.get(key)
        return clean_text(value) if isinstance(value, str) else None

    def loose_obj(self, key: str) -> Fields:
        """An object field; an empty one when absent or not an object."""
        value = self._data.get(key)
        return Fields(value if isinstance(value, dict) else {}, self._name(key))

    def obj(self, key: str) -> Fields:
        """An object field; an empty one when absent."""
        value = self._data.get(key)
        if value is None:
            return Fields({}, self._name(key))
        if not isinstance(value, dict):
            raise self._wrong(key, value, "an object")
        return Fields(value, self._name(key))

    def flag(self, key: str, *, default: bool) -> bool:
        """A boolean field, ``default`` when absent."""
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, value, "a boolean")
        return value

    def metadata_int(self, key: str) -> int | None:
        """Optional numeric metadata: a non-negative integer, else None (loose)."""
        value = self._data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value if 0 <= value < _MAX_METADATA else None

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _wrong(self, key: str, value: Any, expected: str) -> MalformedEvent:
        return MalformedEvent(f"{self._name(key)} is {json_kind(value)}, not {expected}")


def page_events(data: Any) -> list[Fields]:
    """The events of a client API page (its ``chunk``), each an object; what is not
    one is skipped."""
    chunk = data.get("chunk") if isinstance(data, dict) else None
    return [Fields(e) for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
