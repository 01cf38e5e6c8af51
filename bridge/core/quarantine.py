"""The quarantine: inbound events that cannot be handled are set aside.

A source that retries what it was not acknowledged (a homeserver's transaction, a
Slack envelope) would otherwise retry one bad event for ever and hold back every
event behind it. So an event that cannot be handled (malformed, or a bug the bridge
hits on it) is

- recorded in ``quarantined_events`` (source, event id, company, reason, an excerpt
  of the raw event of at most :data:`EXCERPT_LIMIT` bytes),
- reported once in the company's ops channel with its event id (throttled like
  dead letters, see :meth:`bridge.core.ops.OpsNotifier.on_quarantined`),
- counted in ``zapbridge_events_quarantined_total{source}``,
- skipped: the caller then acknowledges its source.

Only a failure to record it (``DatabaseError``) propagates: the source must then
retry, so nothing is skipped unrecorded. A redelivery of an event already set aside
is recognised and not reported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bridge.clock import Clock
from bridge.core.ops import OpsNotifier
from bridge.db.quarantine import QuarantineRepository, SetAsideEvent
from bridge.metrics import Metrics
from bridge.model import clean_text

__all__ = ["EXCERPT_LIMIT", "Quarantine", "excerpt_of"]

log = logging.getLogger("bridge.core.quarantine")

EXCERPT_LIMIT = 2048  # bytes of the raw event kept (ASCII, so characters too)
REASON_LIMIT = 500
EVENT_ID_LIMIT = 255


class Quarantine:
    """Sets events aside: see the module docstring."""

    def __init__(
        self, repo: QuarantineRepository, *, ops: OpsNotifier, metrics: Metrics, clock: Clock
    ) -> None:
        self._repo = repo
        self._ops = ops
        self._metrics = metrics
        self._clock = clock

    async def set_aside(
        self,
        *,
        source: str,
        event_id: str,
        company_id: str | None,
        reason: str,
        excerpt: str,
    ) -> bool:
        """Record the event and, the first time only, report it; True when it is new.
        Raises ``DatabaseError`` when it cannot be recorded (the source retries)."""
        event = SetAsideEvent(
            source=source,
            event_id=_bounded_id(event_id),
            company_id=company_id,
            reason=clean_text(reason)[:REASON_LIMIT],
            excerpt=clean_text(excerpt)[:EXCERPT_LIMIT],
        )
        if not await self._repo.add(event, now=self._clock.now()):
            log.info("%s event %s was set aside before: skipped again", source, event.event_id)
            return False
        self._metrics.events_quarantined.labels(source).inc()
        log.warning(
            "%s event %s set aside (company %s): %s",
            source,
            event.event_id,
            company_id or "-",
            event.reason,
        )
        if company_id is not None:
            await self._ops.on_quarantined(
                company_id=company_id, source=source, event_id=event.event_id, reason=event.reason
            )
        return True


def _bounded_id(event_id: str) -> str:
    """The id as stored: cleaned, and a long one cut with a digest of the whole kept
    (so two long ids sharing a prefix stay two events)."""
    event_id = clean_text(event_id)
    if len(event_id) <= EVENT_ID_LIMIT:
        return event_id
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:16]
    return f"{event_id[: EVENT_ID_LIMIT - 20]}...#{digest}"


# --- the excerpt --------------------------------------------------------------------


def excerpt_of(value: object, *, limit: int = EXCERPT_LIMIT) -> str:
    """``value`` (a raw event: JSON values) as compact ASCII JSON, cut at ``limit``
    characters with ``...``. Its cost is bounded by ``limit``, not by the value: long
    strings are cut before they are encoded, the walk stops once the text is full,
    and nesting is walked without recursion (any depth)."""
    parts: list[str] = []
    size = 0
    for piece in _json_pieces(value, limit):
        parts.append(piece)
        size += len(piece)
        if size > limit:
            return ("".join(parts)[: max(0, limit - 3)] + "...")[:limit]
    return "".join(parts)


@dataclass(slots=True)
class _Frame:
    """An open container: its remaining items and whether one was written yet."""

    items: Iterator[Any]
    closer: str
    is_dict: bool
    started: bool = False


def _json_pieces(value: object, limit: int) -> Iterator[str]:
    """The JSON text of ``value``, piece by piece, without recursion."""
    frames: list[_Frame] = []
    item: object = value
    while True:
        if isinstance(item, dict):
            yield "{"
            frames.append(_Frame(iter(item.items()), "}", is_dict=True))
        elif isinstance(item, list):
            yield "["
            frames.append(_Frame(iter(item), "]", is_dict=False))
        else:
            yield _scalar(item, limit)
        while True:  # the next item of the innermost open container
            if not frames:
                return
            frame = frames[-1]
            entry = next(frame.items, _END)
            if entry is not _END:
                break
            frames.pop()
            yield frame.closer
        if frame.started:
            yield ","
        frame.started = True
        if frame.is_dict:
            pair: tuple[object, object] = entry  # type: ignore[assignment]
            key, item = pair
            yield _scalar(key if isinstance(key, str) else str(key), limit) + ":"
        else:
            item = entry


_END = object()


def _scalar(item: object, limit: int) -> str:
    if isinstance(item, str):
        return json.dumps(item[:limit])  # ensure_ascii: NUL, surrogates become escapes
    if item is None or isinstance(item, bool | float):
        return json.dumps(item)
    if isinstance(item, int):
        return str(item) if item.bit_length() < 1024 else '"<a very large integer>"'
    return json.dumps(f"<{type(item).__name__}>")
