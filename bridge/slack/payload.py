"""Slack payloads read by type, at the edge where they enter the bridge.

Two checks, both raising :class:`~bridge.errors.InvalidInput` with the path of the
field at fault (``event.channel: expected a Slack id``):

- :func:`check_envelope` runs before slack-bolt sees a payload: bolt reads a few
  fields of every request on its own (to build its context, to route to a listener)
  and assumes their shapes, so a payload of the wrong shape would crash inside bolt
  instead of being refused;
- :class:`Fields` (a :class:`~bridge.json_fields.JsonFields` in Slack's wording) is
  how the listeners (``bridge.slack.events``) read what they use: each getter checks
  the type (and, for ids and timestamps, the form) of one field;
  :class:`SharedFile` and :class:`Click` are the objects read from a file share and
  a button click, all their fields checked before any work starts.

Past these, code trusts what it got. A refused payload is answered 400 in HTTP mode
and acknowledged in Socket Mode (``bridge.slack.failures``): Slack would only send
it again.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from bridge.errors import InvalidInput
from bridge.json_fields import JsonFields, Wording

__all__ = ["MAX_TEXT", "Click", "Fields", "SharedFile", "check_envelope"]

MAX_TEXT = 40_000  # Slack truncates a message's text at 40,000 characters
MAX_FILES = 100  # Slack attaches at most 10 files to a message; far above it is not Slack
MAX_URL = 4096
_MAX_NAME = 1000  # file names, mimetypes, subtypes, action ids

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")  # U0BOB, C0SALES, trigger ids, event ids
_TS = re.compile(r"\d{1,12}(\.\d{1,9})?")  # 1700000000.000100


class Fields(JsonFields):
    """One JSON object of a Slack payload; ``path`` names it in refusals. Made from a
    value that is not an object, it refuses it."""

    __slots__ = ()
    wording = Wording(
        error=InvalidInput,
        wrong_type="{field}: expected {expected}, got {got}",
        missing="{field}: missing",
        unfit="{field}: expected {expected}",
        too_long="{field}: longer than {limit} characters",
        nul="{field}: holds a NUL character",
        too_many="{field}: more than {limit} entries",
        whole="the payload",
    )
    refuse_nul = True  # no database stores it in text (PostgreSQL refuses it)

    def __init__(self, value: object, path: str) -> None:
        super().__init__(self.as_object(value, path), path)

    # --- strings ---------------------------------------------------------------------

    def optional_text(self, key: str, *, limit: int = MAX_TEXT) -> str | None:
        """A string (None when absent or null), at most ``limit`` characters."""
        return self.optional_string(key, limit=limit)

    def text(self, key: str, *, limit: int = MAX_TEXT) -> str:
        return self.string(key, limit=limit)

    def optional_ident(self, key: str) -> str | None:
        """A Slack id (user, channel, team, bot, trigger, event): letters and digits."""
        return self._match(key, _ID, "a Slack id")

    def ident(self, key: str) -> str:
        return self.present(key, self.optional_ident(key), "a Slack id")

    def optional_ts(self, key: str) -> str | None:
        """A message timestamp like ``1700000000.000100``."""
        return self._match(key, _TS, "a Slack timestamp like 1700000000.000100")

    def ts(self, key: str) -> str:
        return self.present(key, self.optional_ts(key), "a Slack timestamp")

    def _match(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        """``key`` matching ``pattern``; None when absent or empty (as Slack leaves
        out an id)."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.unfit(key, what)
        return value

    # --- numbers, objects, lists -------------------------------------------------------

    def optional_size(self, key: str) -> int | None:
        """A byte count (a non-negative integer), None when absent."""
        return self.optional_integer(key, bounds=(0, math.inf), expected="a byte count")

    def optional_obj(self, key: str) -> Fields | None:
        return self.optional_mapping(key)

    def obj_or_empty(self, key: str) -> Fields:
        """The object at ``key``, or an empty one when absent or null."""
        return self.mapping_or_empty(key)

    def obj(self, key: str) -> Fields:
        return self.mapping(key)

    def objects(self, key: str, *, limit: int = MAX_FILES) -> list[Fields]:
        """A list of objects (empty when absent or null)."""
        return super().objects(key, limit=limit)


# --- the objects listeners read ------------------------------------------------------


@dataclass(frozen=True)
class SharedFile:
    """A file in a message event, read from its file object (``files[n]``)."""

    id: str | None
    name: str | None
    url: str | None  # url_private_download, else url_private
    mimetype: str
    subtype: str | None
    size: int | None  # as Slack announces it

    @classmethod
    def read(cls, file: Fields) -> SharedFile:
        url = file.optional_text("url_private_download", limit=MAX_URL)
        return cls(
            id=file.optional_ident("id"),
            name=file.optional_text("name", limit=_MAX_NAME) or None,
            url=url or file.optional_text("url_private", limit=MAX_URL) or None,
            mimetype=file.optional_text("mimetype", limit=_MAX_NAME) or "application/octet-stream",
            subtype=file.optional_text("subtype", limit=_MAX_NAME),
            size=file.optional_size("size"),
        )

    @property
    def shown_name(self) -> str:
        return self.name or self.id or "a file"


@dataclass(frozen=True)
class Click:
    """A click on a message button (a ``block_actions`` payload)."""

    action_id: str
    action_ts: str
    user: str
    channel: str
    root: str  # the ts of the message the button is on

    @classmethod
    def read(cls, payload: Fields) -> Click:
        action = _first_action(payload)
        channel, container = payload.obj_or_empty("channel"), payload.obj_or_empty("container")
        message = payload.obj_or_empty("message")
        channel_id = channel.optional_ident("id") or container.optional_ident("channel_id")
        root = message.optional_ts("ts") or container.optional_ts("message_ts")
        if channel_id is None or root is None:
            raise InvalidInput("the click names no channel and message (channel, container)")
        return cls(
            action_id=action.text("action_id", limit=_MAX_NAME),
            action_ts=action.ts("action_ts"),
            user=payload.obj("user").ident("id"),
            channel=channel_id,
            root=root,
        )


# --- what slack-bolt reads before a listener runs ----------------------------------------

# Read from the payload, from its ``event``, and from the objects nested in those
# (slack_bolt.request.internals.build_context, the listener matchers, the
# ignoring-self-events middleware).
_ID_HOLDERS = ("enterprise", "team", "user", "channel")  # a string id, or an object with one
_NESTED = (
    "event",
    "message",
    "previous_message",
    "item",
    "assistant_thread",
    "view",
    "function_data",
)
_OBJECT_LISTS = ("authorizations", "response_urls")
_DEPTH = 3  # payload → event → message: bolt looks no deeper


def check_envelope(payload: object) -> dict[str, Any]:
    """``payload`` if slack-bolt can read it without crashing, else InvalidInput.

    Cost: a few dictionary lookups per nested object, at most ``_DEPTH`` levels and
    the first entries of two lists; never a walk over the whole payload."""
    body = Fields(payload, "")
    _check_level(body, 0)
    event = body.raw("event")
    if event is not None and not isinstance(event.get("type", ""), str):
        raise body.mapping("event").unfit("type", "a string")
    urls = body.raw("response_urls")
    if isinstance(urls, list) and len(urls) > 1:  # bolt logs through a logger it lacks yet
        raise InvalidInput("response_urls: more than one (the bridge opens no modals)")
    if body.raw("type") == "block_actions":
        _first_action(body).text("action_id", limit=255)
    return body.data


def _first_action(payload: Fields) -> Fields:
    actions = payload.objects("actions")
    if not actions:
        raise payload.unfit("actions", "at least one action")
    return actions[0]


def _check_level(level: Fields, depth: int) -> None:
    for key in _ID_HOLDERS:
        value = level.raw(key)
        if value is not None and not isinstance(value, str | dict):
            raise level.unfit(key, "a string or an object")
    for key in _NESTED:
        if key not in level.data or (level.data[key] is None and key != "event"):
            continue
        nested = Fields(level.data[key], level.where(key))
        if depth + 1 < _DEPTH:
            _check_level(nested, depth + 1)
    for key in _OBJECT_LISTS:
        if key not in level.data:
            continue
        value = level.data[key]
        if not isinstance(value, list):
            raise level.wrong_type(key, value, "a list")
        if value:
            first = Fields(value[0], f"{level.where(key)}[0]")
            if depth + 1 < _DEPTH:
                _check_level(first, depth + 1)
