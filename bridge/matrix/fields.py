"""Typed reads of Matrix JSON: the edge where events (from transactions, from the
catch-up, from the client API) enter the bridge.

Any room member can put any JSON value in any field of an event's content, so
every field the bridge reads goes through :class:`Fields` (a
:class:`~bridge.json_fields.JsonFields`):

- a field of the wrong type raises :class:`MalformedEvent`, naming the field (the
  appservice then sets the event aside: ``bridge.core.quarantine``); a missing
  field, or ``null``, reads as absent;
- strings come back cleaned of what neither database stores the same way
  (:func:`bridge.model.clean_text`): control characters such as NUL are removed,
  lone surrogates (JSON escapes can make both) become U+FFFD;
- what the bridge can do without is read loosely (``loose_text``, ``loose_obj``,
  ``metadata_int``): optional numeric metadata (``info.size``, ``info.w``, …) that
  clients disagree about, a display name, events read back from the client API to
  compare with what the bridge sent; a wrong type there reads as absent instead of
  refusing an event that is usable without it.

Past this edge the code trusts what it got.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import InvalidInput
from bridge.json_fields import JsonFields, Wording, is_integer
from bridge.model import clean_text

__all__ = ["Fields", "MalformedEvent", "page_events"]

_MAX_METADATA = 2**53 - 1  # Matrix integers are within ±2**53 (canonical JSON)


class MalformedEvent(InvalidInput):
    """A Matrix event with a field of the wrong type; the explanation names it."""


class Fields(JsonFields):
    """The fields of one JSON object of an event, read by type. ``path`` names the
    object in errors (``content.m.relates_to``; empty for the event itself)."""

    __slots__ = ()
    wording = Wording(
        error=MalformedEvent, wrong_type="{field} is {got}, not {expected}", whole="the event"
    )

    def __bool__(self) -> bool:
        return bool(self.data)

    def text(self, key: str) -> str | None:
        """A string field (cleaned), None when absent."""
        value = self.optional_string(key)
        return None if value is None else clean_text(value)

    def loose_text(self, key: str) -> str | None:
        """A string field (cleaned), None when absent or not a string: for what the
        bridge can do without (a display name, a value read back to compare)."""
        value = self.data.get(key)
        return clean_text(value) if isinstance(value, str) else None

    def loose_obj(self, key: str) -> Fields:
        """An object field; an empty one when absent or not an object."""
        value = self.data.get(key)
        return Fields(value if isinstance(value, dict) else {}, self.where(key))

    def obj(self, key: str) -> Fields:
        """An object field; an empty one when absent."""
        return self.mapping_or_empty(key)

    def flag(self, key: str, *, default: bool) -> bool:
        """A boolean field, ``default`` when absent."""
        value = self.optional_boolean(key)
        return default if value is None else value

    def metadata_int(self, key: str) -> int | None:
        """Optional numeric metadata: a non-negative integer, else None (loose)."""
        value = self.data.get(key)
        return value if is_integer(value, (0, _MAX_METADATA)) else None


def page_events(data: Any) -> list[Fields]:
    """The events of a client API page (its ``chunk``), each an object; what is not
    one is skipped."""
    chunk = data.get("chunk") if isinstance(data, dict) else None
    return [Fields(e) for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
