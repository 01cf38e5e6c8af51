"""Typed reads of JSON objects the bridge did not write: the one reader behind the
edges where such data enters.

Four edges read it: Matrix events (:mod:`bridge.matrix.fields`), Slack payloads
(:mod:`bridge.slack.payload`), ``/sim`` request bodies
(:mod:`bridge.whatsapp.sim_bodies`), and engine events read back from the journal,
written by an older version perhaps (:mod:`bridge.whatsapp.event_codec`). Each reads
through its own subclass of :class:`JsonFields`, which checks one field at a time:

- a field that is missing or ``null`` is absent: an ``optional_*`` read returns
  None, the others refuse it;
- a field of another JSON type is refused; so is a string too long, or empty or
  holding NUL where the read forbids it, a number outside its bounds, a list longer
  than its limit;
- a refusal is the edge's own error (:class:`~bridge.errors.InvalidInput`, the Matrix
  ``MalformedEvent``, ``ValueError`` for the journal, the codec convention), its
  message naming the field's path (``content.m.relates_to``, ``files[2]``) in the
  edge's :class:`Wording`.

The wordings differ because the edges' readers do: a Matrix refusal is kept with the
event set aside (``x is a list, not an object``), a Slack one answers the request
(``x: expected an object, got a list``), a ``/sim`` one tells the person who wrote
the request (``x must be an object``). What only one edge reads (Slack ids and
timestamps, Matrix's loose reads, the sim's choices) stays in its subclass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeGuard, TypeVar

from bridge.http_input import json_kind

__all__ = ["JsonFields", "Wording", "is_integer", "is_number"]

T = TypeVar("T")
Bounds = tuple[float, float]  # inclusive: (low, high)


@dataclass(frozen=True)
class Wording:
    """How one edge words its refusals, and the error it raises.

    Each template is a :meth:`str.format` string over ``field`` (the field's path)
    and, where they apply, ``expected`` (``a string``), ``got`` (the JSON kind found,
    never the value: ``a list``) and ``limit``. The defaults are the ``/sim``
    wording."""

    error: Callable[[str], Exception]
    wrong_type: str = "{field} must be {expected}"  # a value of another JSON type
    missing: str = "{field} is required"  # a required field absent or null
    unfit: str = "{field} must be {expected}"  # the right type, not the right form
    too_long: str = "{field} is longer than {limit} characters"
    empty: str = "{field} must not be empty"
    nul: str = "{field} holds a NUL character"
    too_many: str = "{field} has more than {limit} entries"
    whole: str = "the object"  # the object itself, when its path is empty
    boolean: str = "a boolean"  # what a boolean field is said to be

    def refusal(self, template: str, field: str, **parts: object) -> Exception:
        return self.error(template.format(field=field, **parts))


def is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number: an int or a float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: object, bounds: Bounds = (-math.inf, math.inf)) -> TypeGuard[int]:
    """A JSON integer (not a bool) within ``bounds``."""
    low, high = bounds
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _shown(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


class JsonFields:
    """The fields of one JSON object, read by type. ``path`` names the object in
    refusals (``event.files[0]``; empty for the object at the top). Each edge
    subclasses it and sets :attr:`wording`."""

    wording: ClassVar[Wording]
    refuse_nul: ClassVar[bool] = False  # whether a string may not hold NUL (U+0000)
    __slots__ = ("data", "path")

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path

    @classmethod
    def of(cls, value: object, path: str = "") -> Self:
        """``value`` as an object; refused when it is not one."""
        return cls(cls.as_object(value, path), path)

    @classmethod
    def as_object(cls, value: object, path: str) -> dict[str, Any]:
        """``value`` if it is an object, else the refusal naming ``path`` (or, when
        it is empty, the wording's name of the whole)."""
        if isinstance(value, dict):
            return value
        field = path or cls.wording.whole
        got = json_kind(value)
        raise cls.wording.refusal(cls.wording.wrong_type, field, expected="an object", got=got)

    def where(self, key: str) -> str:
        """The path of the field ``key``: ``content.body``."""
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        """Whether ``key`` is there and not null."""
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        """The value as parsed, for a caller that checks it itself."""
        return self.data.get(key, default)

    # --- refusals ----------------------------------------------------------------------

    def refusal(self, template: str, key: str, **parts: object) -> Exception:
        """The edge's error about the field ``key``, worded by one of the wording's
        templates."""
        return self.wording.refusal(template, self.where(key), **parts)

    def wrong_type(self, key: str, value: object, expected: str) -> Exception:
        return self.refusal(self.wording.wrong_type, key, expected=expected, got=json_kind(value))

    def unfit(self, key: str, expected: str) -> Exception:
        return self.refusal(self.wording.unfit, key, expected=expected)

    def present(self, key: str, value: T | None, expected: str) -> T:
        """``value``, read from ``key`` by an optional read; refused when absent."""
        if value is None:
            raise self.refusal(self.wording.missing, key, expected=expected)
        return value

    # --- strings -----------------------------------------------------------------------

    def optional_string(
        self, key: str, *, limit: float = math.inf, allow_empty: bool = True
    ) -> str | None:
        """A string of at most ``limit`` characters, None when absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.wrong_type(key, value, "a string")
        if not value and not allow_empty:
            raise self.refusal(self.wording.empty, key)
        if len(value) > limit:
            raise self.refusal(self.wording.too_long, key, limit=limit)
        if self.refuse_nul and "\x00" in value:
            raise self.refusal(self.wording.nul, key)
        return value

    def string(self, key: str, *, limit: float = math.inf, allow_empty: bool = True) -> str:
        value = self.optional_string(key, limit=limit, allow_empty=allow_empty)
        return self.present(key, value, "a string")

    # --- numbers and booleans ----------------------------------------------------------

    def optional_number(self, key: str, *, bounds: Bounds | None = None) -> float | None:
        """A number (as a float) within ``bounds`` when given, None when absent."""
        value = self.data.get(key)
        return None if value is None else self.checked_number(key, value, bounds=bounds)

    def number(self, key: str, *, bounds: Bounds | None = None) -> float:
        return self.present(key, self.optional_number(key, bounds=bounds), "a number")

    def checked_number(self, key: str, value: object, *, bounds: Bounds | None = None) -> float:
        """``value``, given for ``key``, checked as :meth:`number` checks a field
        (null is of the wrong type here)."""
        if not is_number(value):
            raise self.wrong_type(key, value, "a number")
        if bounds is not None:
            low, high = bounds
            # a comparison, not float(): a huge JSON integer must not overflow a float
            if not low <= value <= high:  # NaN fails it too
                raise self.unfit(key, f"a number from {_shown(low)} to {_shown(high)}")
        return float(value)

    def optional_integer(
        self, key: str, *, bounds: Bounds, expected: str | None = None
    ) -> int | None:
        """An integer within ``bounds``, None when absent. Anything else is refused
        as not ``expected`` (by default ``an integer from <low> to <high>``)."""
        value = self.data.get(key)
        if value is None:
            return None
        if not is_integer(value, bounds):
            low, high = bounds
            raise self.unfit(key, expected or f"an integer from {_shown(low)} to {_shown(high)}")
        return value

    def optional_boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self.wrong_type(key, value, self.wording.boolean)

    def boolean(self, key: str) -> bool:
        return self.present(key, self.optional_boolean(key), self.wording.boolean)

    # --- objects and lists -------------------------------------------------------------

    def optional_mapping(self, key: str) -> Self | None:
        """The object at ``key``, read like this one; None when absent."""
        value = self.data.get(key)
        return None if value is None else self.of(value, self.where(key))

    def mapping(self, key: str) -> Self:
        return self.present(key, self.optional_mapping(key), "an object")

    def mapping_or_empty(self, key: str) -> Self:
        """The object at ``key``; an empty one when absent."""
        found = self.optional_mapping(key)
        return found if found is not None else type(self)({}, self.where(key))

    def objects(self, key: str, *, limit: int) -> list[Self]:
        """A list of at most ``limit`` objects (``files[0]``, …); empty when absent."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.wrong_type(key, value, "a list")
        if len(value) > limit:
            raise self.refusal(self.wording.too_many, key, limit=limit)
        return [self.of(item, f"{self.where(key)}[{n}]") for n, item in enumerate(value)]
