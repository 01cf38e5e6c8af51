"""Slack payloads read by type, at the edge where they enter the bridge.

Two checks, both raising :class:`~bridge.errors.InvalidInput` with the path of the
field at fault (``event.channel: expected a Slack id``):

- :func:`check_envelope` runs before slack-bolt sees a payload: bolt reads a few
  fields of every request on its own (to build its context, to route to a listener)
  and assumes their shapes, so a payload of the wrong shape would crash inside bolt
  instead of being refused;
- :class:`Fields` is how the listeners (``bridge.slack.events``) read what they use:
  each getter checks the type (and, for ids and timestamps, the form) of one field;
  :class:`SharedFile` and :class:`Click` are the objects read from a file share and
  a button click, all their fields checked before any work starts.

Past these, code trusts what it got. A refused payload is answered 400 in HTTP mode
and acknowledged in Socket Mode (``bridge.slack.failures``): Slack would only send
it again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import InvalidInput
from bridge.http_input import json_kind

__all__ = ["MAX_TEXT", "Click", "Fields", "SharedFile", "check_envelope"]

MAX_TEXT = 40_000  # Slack truncates a message's text at 40,000 characters
MAX_FILES = 100  # Slack attaches at most 10 files to a message; far above it is not Slack
MAX_URL = 4096
_MAX_NAME = 1000  # file names, mimetypes, subtypes, action ids

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")  # U0BOB, C0SALES, trigger ids, event ids
_TS = re.compile(r"\d{1,12}(\.\d{1,9})?")  # 1700000000.000100


class Fields:
    """One JSON object of a Slack payload; ``path`` names it in refusals."""

    __slots__ = ("data", "path")

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise InvalidInput(
                f"{path or 'the payload'}: expected an object, got {json_kind(value)}"
            )
        self.data: dict[str, Any] = value
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str) -> Any:
        return self.data.get(key)

    # --- strings ---------------------------------------------------------------------

    def optional_text(self, key: str, *, limit: int = MAX_TEXT) -> str | None:
        """A string (None when absent or null), at most ``limit`` characters."""
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidInput(f"{self._where(key)}: expected a string, got {json_kind(value)}")
        if len(value) > limit:
            raise InvalidInput(f"{self._where(key)}: longer than {limit} characters")
        if "\x00" in value:  # no database stores it in text (PostgreSQL refuses it)
            raise InvalidInput(f"{self._where(key)}: holds a NUL character")
        return value

    def text(self, key: str, *, limit: int = MAX_TEXT) -> str:
        value = self.optional_text(key, limit=limit)
        if value is None:
            raise InvalidInput(f"{self._where(key)}: missing")
        return value

    def optional_ident(self, key: str) -> str | None:
        """A Slack id (user, channel, team, bot, trigger, event): letters and digits."""
        return self._match(key, _ID, "a Slack id")

    def ident(self, key: str) -> str:
        return self._required(key, self.optional_ident(key))

    def optional_ts(self, key: str) -> str | None:
        """A message timestamp like ``1700000000.000100``."""
        return self._match(key, _TS, "a Slack timestamp like 1700000000.000100")

    def ts(self, key: str) -> str:
        return self._required(key, self.optional_ts(key))

    def _match(self, key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self._get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidInput(f"{self._where(key)}: expected {what}")
        return value

    def _required(self, key: str, value: str | None) -> str:
        if value is None:
            raise InvalidInput(f"{self._where(key)}: missing")
        return value

    # --- numbers -----------------------------------------------------------------------

    def optional_size(self, key: str) -> int | None:
        """A byte count (a non-negative integer), None when absent."""
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{self._where(key)}: expected a byte count")
        return value

    # --- objects -----------------------------------------------------------------------

    def optional_obj(self, key: str) -> Fields | None:
        value = self._get(key)
        return None if value is None else Fields(value, self._where(key))

    def obj_or_empty(self, key: str) -> Fields:
        """The object at ``key``, or an empty one when absent or null."""
        found = self.optional_obj(key)
        return found if found is not None else Fields({}, self._where(key))

    def obj(self, key: str) -> Fields:
        found = self.optional_obj(key)
        if found is None:
            raise InvalidInput(f"{self._where(key)}: missing")
        return found

    def objects(self, key: str, *, limit: int = MAX_FILES) -> list[Fields]:
        """A list of objects (empty when absent or null)."""
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidInput(f"{self._where(key)}: expected a list, got {json_kind(value)}")
        if len(value) > limit:
            raise InvalidInput(f"{self._where(key)}: more than {limit} entries")
        return [Fields(item, f"{self._where(key)}[{n}]") for n, item in enumerate(value)]


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
        actions = payload.objects("actions")
        if not actions:
            raise InvalidInput("actions: expected at least one action")
        action = actions[0]
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
    body = Fields(payload, "").data
    _check_level(body, "", 0)
    event = body.get("event")
    if event is not None and not isinstance(event.get("type", ""), str):
        raise InvalidInput("event.type: expected a string")
    urls = body.get("response_urls")
    if isinstance(urls, list) and len(urls) > 1:  # bolt logs through a logger it lacks yet
        raise InvalidInput("response_urls: more than one (the bridge opens no modals)")
    if body.get("type") == "block_actions":
        actions = Fields(body, "").objects("actions")
        if not actions:
            raise InvalidInput("actions: expected at least one action")
        actions[0].text("action_id", limit=255)
    return body


def _check_level(obj: Mapping[str, Any], path: str, depth: int) -> None:
    def where(key: str) -> str:
        return f"{path}.{key}" if path else key

    for key in _ID_HOLDERS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str | dict):
            raise InvalidInput(f"{where(key)}: expected a string or an object")
    for key in _NESTED:
        if key not in obj or (obj[key] is None and key != "event"):
            continue
        nested = obj[key]
        if not isinstance(nested, dict):
            raise InvalidInput(f"{where(key)}: expected an object, got {json_kind(nested)}")
        if depth + 1 < _DEPTH:
            _check_level(nested, where(key), depth + 1)
    for key in _OBJECT_LISTS:
        if key not in obj:
            continue
        value = obj[key]
        if not isinstance(value, list):
            raise InvalidInput(f"{where(key)}: expected a list, got {json_kind(value)}")
        if value:
            first = value[0]
            if not isinstance(first, dict):
                raise InvalidInput(f"{where(key)}[0]: expected an object, got {json_kind(first)}")
            if depth + 1 < _DEPTH:
                _check_level(first, f"{where(key)}[0]", depth + 1)
