"""What a key may hold: each kind is a description for messages and a converter.

A converter takes the YAML value and returns the typed one, or raises
:class:`Invalid`; the reader then reports ``expected <description>, got <value>``
(docs/configuration.md lists the kind of every key).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.config.problems import is_bool
from bridge.config.urls import authority_problem, plain_http_problem


class Invalid(ValueError):
    """A converter rejected a value; the kind's ``expected`` text explains why, after
    the reason given as the exception's argument, if any."""


@dataclass(frozen=True, slots=True)
class Kind:
    """What a key holds: a description for messages and a converter."""

    expected: str
    convert: Callable[[Any], Any]
    secret: bool = False
    """Never echo the value in a message."""


def text_kind(expected: str, pattern: str | None = None, *, secret: bool = False) -> Kind:
    """A non-empty string, matching ``pattern`` when one is given."""
    compiled = re.compile(pattern) if pattern else None

    def convert(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid
        text = str(value)
        if compiled and not compiled.fullmatch(text):
            raise Invalid
        return text

    return Kind(expected, convert, secret)


def int_kind(minimum: int, maximum: int | None = None) -> Kind:
    expected = f"an integer ≥ {minimum}" if maximum is None else f"an integer {minimum}–{maximum}"

    def convert(value: Any) -> int:
        if is_bool(value) or not isinstance(value, int):
            raise Invalid
        if value < minimum or (maximum is not None and value > maximum):
            raise Invalid
        return int(value)

    return Kind(expected, convert)


def number_kind(minimum: float, *, positive: bool = False) -> Kind:
    """A number (an integer is read as a float) ≥ ``minimum``, or > 0 if ``positive``."""
    expected = "a number > 0" if positive else f"a number ≥ {minimum:g}"

    def convert(value: Any) -> float:
        if is_bool(value) or not isinstance(value, int | float):
            raise Invalid
        if value < minimum or (positive and value <= 0):
            raise Invalid
        return float(value)

    return Kind(expected, convert)


def choice_kind(*choices: str, fold_case: bool = False) -> Kind:
    expected = "one of " + ", ".join(choices)

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid
        text = str(value).upper() if fold_case else str(value)
        if text not in choices:
            raise Invalid
        return text

    return Kind(expected, convert)


def _convert_bool(value: Any) -> bool:
    if not is_bool(value):
        raise Invalid
    return bool(value)


def _convert_timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid from exc
    return str(value)


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _convert_days(value: Any) -> frozenset[int]:
    if not isinstance(value, str):
        raise Invalid
    days: set[int] = set()
    for part in str(value).lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise Invalid
        start = DAY_NAMES.index(first)
        end = DAY_NAMES.index(last) if last else start
        days.update((start + i) % 7 for i in range((end - start) % 7 + 1))
    return frozenset(days)


_HOURS_RE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


def _convert_hours(value: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, str):
        raise Invalid
    intervals = []
    for part in str(value).replace(" ", "").split(","):
        match = _HOURS_RE.fullmatch(part)
        if not match:
            raise Invalid
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2) or (h1, m1) == (h2, m2):
            raise Invalid
        intervals.append((h1 * 60 + m1, h2 * 60 + m2))
    return tuple(intervals)


_HTTP_URL = re.compile(r"https?://[^\s/]+(/\S*)?")


def _convert_http_url(value: Any) -> str:
    if not isinstance(value, str) or not _HTTP_URL.fullmatch(value):
        raise Invalid
    problem = authority_problem(str(value), several_hosts=False, need_host=True)
    if problem:
        raise Invalid(problem)
    return str(value)


def _convert_secure_url(value: Any) -> str:
    """An http(s) URL, ``http`` only for localhost, without its trailing ``/``."""
    url = _convert_http_url(value)
    problem = plain_http_problem(url)
    if problem:
        raise Invalid(problem)
    return url.rstrip("/")


def _convert_digits(value: Any) -> str:
    """Digits, written as a string or (unquoted in YAML) as a number."""
    if isinstance(value, int) and not is_bool(value) and value > 0:
        return str(int(value))
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise Invalid
    return str(value)


_ORIGIN_RE = re.compile(r"https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?")


def _convert_file_host(value: Any) -> str:
    """``files.slack.com`` (https) or an origin like ``http://127.0.0.1:8080`` →
    ``scheme://host[:port]``, lower case."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid
    text = value.strip() if "://" in value else f"https://{value.strip()}"
    if not _ORIGIN_RE.fullmatch(text):
        raise Invalid
    return text.lower()


TEXT = text_kind("a non-empty string")
SECRET_TEXT = text_kind("a string", secret=True)
PATH = text_kind("a file path")
SLUG = text_kind("a lowercase id of letters, digits, '_' or '-' (like acme)", r"[a-z0-9_-]+")
APPSERVICE_ID = text_kind("an appservice id of letters, digits, '_' or '-'", r"[A-Za-z0-9_.-]+")
SLACK_CHANNEL = text_kind("a Slack channel id like C0123ABC", r"[CG][A-Z0-9]{2,}")
USER_ID = text_kind(
    "a Matrix user id like @alice:example.com or a Slack user id like U0123ABC",
    r"@[^:\s]+:\S+|[UW][A-Z0-9]{2,}",
)
NOTE_PREFIX = text_kind("a prefix without spaces, like //", r"\S+")
TEMPLATE_NAME = text_kind(
    "a template name of lowercase letters, digits and '_' (like order_update)", r"[a-z0-9_]{1,512}"
)
TEMPLATE_LANGUAGE = text_kind(
    "a template language code like en_US, pt_BR or es", r"[a-z]{2,3}(_[A-Za-z]{2,4})?"
)
CLOUD_API_VERSION = text_kind("a Graph API version like v21.0", r"v[0-9]+\.[0-9]+")
SHORTCUT = text_kind("a shortcut of letters, digits, '_' or '-' (like price)", r"[A-Za-z0-9_-]+")
INSTANCE_ID = text_kind(
    "an instance id of letters, digits, '_', '.' or '-' (at most 64), or auto",
    r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
)
HOST = text_kind("a host name or IP address", r"[^\s/]+")
SERVER_NAME = text_kind("a server name like example.com (not a URL)", r"[A-Za-z0-9.\-\[\]:]+")
LOCALPART = text_kind("a Matrix localpart of a-z, 0-9, . _ = - /", r"[a-z0-9._=/+-]+")
PORT = int_kind(1, 65535)
COUNT = int_kind(1)
"""A whole number of at least one (a rate, a burst, a threshold)."""
POSITIVE = number_kind(0, positive=True)
NOT_NEGATIVE = number_kind(0)
BOOL = Kind("true or false", _convert_bool)
URL = Kind("an http(s) URL like http://127.0.0.1:8008", _convert_http_url)
CLOUD_BASE_URL = Kind(
    "an https URL like https://graph.facebook.com (http only for localhost)", _convert_secure_url
)
PHONE_NUMBER_ID = Kind("a phone number id of digits like 106540352242922", _convert_digits)
TIMEZONE = Kind("an IANA time zone like America/Sao_Paulo", _convert_timezone)
DAYS = Kind("days like mon-fri, mon,wed,fri or mon-fri,sat", _convert_days)
HOURS = Kind('hours like "08:00-18:00" (or "08:00-12:00,13:00-18:00")', _convert_hours)
FILE_HOST = Kind(
    "a host like files.slack.com, or an origin like https://files.example.com:8443 (no path)",
    _convert_file_host,
)
