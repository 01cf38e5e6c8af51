"""Logging setup: text or JSON lines, hierarchical names under ``bridge``, and what
every line goes through before it is written (docs/operations.md, "Logs"):

- **Bounded.** A message is cut at :data:`MESSAGE_LIMIT` characters and a traceback
  at :data:`TRACEBACK_LIMIT` (its innermost frames and the exception line are kept),
  with a marker saying how much was cut. The cut comes *before* any other work, so a
  256 KB request body in a library's log call costs what 4 KB costs.
- **Redacted, in linear time.** Known secrets (the config's tokens, the database
  URL and its password) are hidden by value, and secret-shaped strings (Slack and
  Matrix tokens, bearer headers, ``password=``, URL passwords) by pattern. Every
  pattern starts with a plain literal, so the regex engine's fast literal scan finds
  the candidates; none has nested repetition. A secret cut in half by the limit is
  still hidden: a tail that starts a known secret, or an unfinished URL password,
  becomes ``***`` too.
- **One record, one line.** In the text format, control characters, ANSI escapes,
  Unicode line separators and bidi overrides in a message are escaped (``\\n``,
  ``\\x1b``, ``\\u2028``), so user text cannot start a forged log line; the traceback
  block stays multi-line, but a newline inside it that is not followed by the
  indentation of a frame is escaped too. JSON lines escape the same characters.
- **Levels are the bridge's, not the libraries'.** slack-bolt copies the root
  logger's level onto each logger it creates (``slack_bolt/logger/__init__.py``,
  ``_configure_from_root``), and names some after the app (``frontend.py``), so
  setting levels on logger names cannot reach them. The handler itself drops what is
  below the configured level, and INFO from chatty libraries (by logger name or by
  the package the call comes from) unless the level is DEBUG.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TextIO

__all__ = [
    "MESSAGE_LIMIT",
    "REDACTED",
    "TRACEBACK_LIMIT",
    "Redactor",
    "configure_logging",
    "escape_controls",
]

REDACTED = "***"

MESSAGE_LIMIT = 4096
"""Characters of a log message kept. A person reads the start of a message; a
request body or a customer text logged whole is a bug, never information. With
:data:`TRACEBACK_LIMIT` a record stays under 16 KB, one entry for Docker's log
driver (which splits lines at 16 KB) and well under journald's 48 KB line limit."""

TRACEBACK_LIMIT = 8192
"""Characters of a traceback kept: about 40 frames, the first ones and the last."""

_ENTRY_LIMIT = 2048
"""Characters of one traceback entry (a frame, or the exception's own line)."""

_MIN_SECRET = 4
"""Known secrets shorter than this are not hidden by value (they would hide words)."""


def _cut_marker(dropped: int) -> str:
    return f" … [{dropped} more characters cut]"


def _recut(text: str, limit: int) -> str:
    """``text``, already redacted and escaped, cut at twice ``limit``: escaping
    writes a control character as up to six, and a ``***`` may stand for less."""
    if len(text) <= 2 * limit:
        return text
    return text[: 2 * limit] + _cut_marker(len(text) - 2 * limit)


# --- redaction --------------------------------------------------------------------

# Secret shapes, each (pattern, replacement). The replacement is a constant (group
# references are expanded in Python on 3.11, ~2 µs a match), so the match covers
# exactly what is replaced plus a literal the replacement repeats. Each pattern
# starts with a literal, and its checks of the letter before that literal are
# lookbehinds placed after it, so the literal scan still applies.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack tokens (xoxb-, xoxp-, xoxa-, xoxo-, xoxs-, xoxr-, xoxe-) and app tokens
    (re.compile(r"xox[abposre]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"xapp-[A-Za-z0-9-]+"), REDACTED),
    # Matrix access tokens
    (re.compile(r"syt_[A-Za-z0-9_]+"), REDACTED),
    # Authorization: Bearer …
    (re.compile(r"earer(?<=[Bb]earer)\s{1,8}[A-Za-z0-9._~+/=-]+"), "earer " + REDACTED),
    (re.compile(r"EARER(?<=BEARER)\s{1,8}[A-Za-z0-9._~+/=-]+"), "EARER " + REDACTED),
    # access_token=… in query strings, password=… in DSNs and query strings
    (re.compile(r"access_token=[^&\s]+"), "access_token=" + REDACTED),
    (re.compile(r"assword=(?<=[Pp]assword=)[^&\s]+"), "assword=" + REDACTED),
    (re.compile(r"ASSWORD=(?<=PASSWORD=)[^&\s]+"), "ASSWORD=" + REDACTED),
)

# user:password@ in URLs (postgres://zap:secret@db/zap → postgres://zap:***@db/zap).
# The user is kept, so the replacement needs the match's group: split() does that in
# C, where sub() with a group template would not. The user stops at ':' and the
# password at '/', which every '://' holds, so each character is looked at a
# bounded number of times however the text repeats.
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@\s/]+(?=@)")
# The same at the very end of a cut text, where the '@' was cut off.
_URL_PASSWORD_TAIL = re.compile(r"://[^/\s:@]*:[^@\s/]+\Z")


class Redactor:
    """Hides known secret values and secret-shaped strings behind ``***``.

    Linear in the text: one ``str.find`` scan per known secret (faster than one
    alternation regex, and exact when secrets overlap) and one regex scan per
    shape."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= _MIN_SECRET}
        self._secrets = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        return self._redact(text, cut=False)

    def bounded(self, text: str, limit: int) -> str:
        """``text`` cut to ``limit`` characters (then a marker), then redacted. Part
        of a secret left at the cut is hidden as well as a whole one."""
        if len(text) <= limit:
            return self._redact(text, cut=False)
        return self._redact(text[:limit], cut=True) + _cut_marker(len(text) - limit)

    def _redact(self, text: str, *, cut: bool) -> str:
        text = self._hide_known(text, cut=cut)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        text = _hide_url_passwords(text)
        if cut:
            text = _hide_url_password_tail(text)
        return text

    def _hide_known(self, text: str, *, cut: bool) -> str:
        spans = [span for secret in self._secrets for span in _occurrences(text, secret)]
        if cut:
            spans += [span for secret in self._secrets for span in _tail_prefix(text, secret)]
        if not spans:
            return text
        parts, end = [], 0
        for start, stop in _merged(spans):
            parts += [text[end:start], REDACTED]
            end = stop
        parts.append(text[end:])
        return "".join(parts)


def _occurrences(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """Every place ``secret`` occurs, overlapping ones included."""
    index = text.find(secret)
    while index >= 0:
        yield index, index + len(secret)
        index = text.find(secret, index + 1)


def _tail_prefix(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """The longest end of ``text`` that is how ``secret`` begins (a cut secret)."""
    index = text.find(secret[0], max(0, len(text) - len(secret) + 1))
    while index >= 0:
        if secret.startswith(text[index:]):
            yield index, len(text)
            return
        index = text.find(secret[0], index + 1)


def _merged(spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Overlapping or touching spans as one, in order."""
    spans.sort()
    start, stop = spans[0]
    for begin, end in spans[1:]:
        if begin > stop:
            yield start, stop
            start, stop = begin, end
        else:
            stop = max(stop, end)
    yield start, stop


def _hide_url_passwords(text: str) -> str:
    if "://" not in text:
        return text
    parts = _URL_PASSWORD.split(text)
    if len(parts) == 1:
        return text
    parts[1::2] = [kept + REDACTED for kept in parts[1::2]]
    return "".join(parts)


def _hide_url_password_tail(text: str) -> str:
    # A password holds no '/', so only the last '://' can start the one at the end.
    start = text.rfind("://")
    if start < 0 or not _URL_PASSWORD_TAIL.match(text, start):
        return text
    colon = text.index(":", start + 3)
    return text[: colon + 1] + REDACTED


# --- escaping ---------------------------------------------------------------------


def _escape_table(extra: dict[int, str]) -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
    # Line and paragraph separators, and bidi embeddings, overrides and isolates,
    # which reorder what a terminal shows.
    for code in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):
        table[code] = f"\\u{code:04x}"
    table.update(extra)
    return table


_TEXT_ESCAPES = _escape_table({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_BLOCK_ESCAPES = {code: escape for code, escape in _TEXT_ESCAPES.items() if code != ord("\n")}
# json.dumps escapes C0 itself; these it leaves as they are with ensure_ascii=False.
_JSON_ESCAPES = {
    code: f"\\u{code:04x}" for code in _TEXT_ESCAPES if code >= 0x7F and code != ord("\n")
}
_LOOSE_NEWLINE = re.compile(r"\n(?! )")


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters, ANSI escapes, line separators and
    bidi controls written as escapes (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return text.translate(_TEXT_ESCAPES)


def _escape_block_entry(entry: str) -> str:
    """One traceback entry: control characters escaped, and every inner newline
    not followed by a frame's indentation too, so no line of it can pass for a
    record of its own. The entry's final newline stays."""
    body, newline = (entry[:-1], "\n") if entry.endswith("\n") else (entry, "")
    return _LOOSE_NEWLINE.sub(r"\\n", body.translate(_BLOCK_ESCAPES)) + newline


# --- tracebacks -------------------------------------------------------------------

_FRAMES_PER_EXCEPTION = 64
_CHAIN_LINES = frozenset(
    (
        "\nThe above exception was the direct cause of the following exception:\n\n",
        "\nDuring handling of the above exception, another exception occurred:\n\n",
    )
)

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _traceback_entries(exc_info: _ExcInfo) -> list[str]:
    """The traceback as Python prints it, one entry (a frame, an exception line) per
    item; only the innermost frames of each exception in the chain are taken."""
    exc_type, value, tb = exc_info
    summary = traceback.TracebackException(
        exc_type, value, tb, limit=-_FRAMES_PER_EXCEPTION, compact=True
    )
    return list(summary.format(chain=True))


def _bounded_traceback(entries: list[str], redactor: Redactor) -> str:
    """At most :data:`TRACEBACK_LIMIT` characters: each entry cut, redacted and
    escaped, then the first entries and as many of the last as fit."""
    done = [e if e in _CHAIN_LINES else _bounded_entry(e, redactor) for e in entries]
    if sum(map(len, done)) <= TRACEBACK_LIMIT:
        return "".join(done).rstrip("\n")
    head: list[str] = []
    used = 0
    for entry in done:
        if used + len(entry) > TRACEBACK_LIMIT // 4:
            break
        head.append(entry)
        used += len(entry)
    tail: list[str] = []
    for entry in reversed(done[len(head) :]):
        if used + len(entry) > TRACEBACK_LIMIT:
            break
        tail.append(entry)
        used += len(entry)
    dropped = len(done) - len(head) - len(tail)
    marker = [f"  [… {dropped} traceback entries cut …]\n"] if dropped else []
    return "".join(head + marker + tail[::-1]).rstrip("\n")


def _bounded_entry(entry: str, redactor: Redactor) -> str:
    body = redactor.bounded(entry.removesuffix("\n"), _ENTRY_LIMIT)
    return _recut(_escape_block_entry(body), _ENTRY_LIMIT) + "\n"


def _bounded_block(text: str, redactor: Redactor) -> str:
    """A preformatted block (a stack, a traceback text without its exception)."""
    body = redactor.bounded(text.rstrip("\n"), TRACEBACK_LIMIT)
    return _recut(_escape_block_entry(body), TRACEBACK_LIMIT)


# --- formatters -------------------------------------------------------------------


class _RecordText:
    """The bounded, redacted parts of a record, shared by both formats."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def message(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string in whatever called the logger
            message = f"{record.msg!s} (unformattable arguments: {type(exc).__name__})"
        return self.redactor.bounded(message, MESSAGE_LIMIT)

    def details(self, record: logging.LogRecord) -> str:
        """The traceback and the stack, if any, as one bounded block."""
        blocks = []
        if record.exc_info and record.exc_info[1] is not None:
            exc_info = (type(record.exc_info[1]), record.exc_info[1], record.exc_info[2])
            blocks.append(_bounded_traceback(_traceback_entries(exc_info), self.redactor))
        elif record.exc_text:
            blocks.append(_bounded_block(record.exc_text, self.redactor))
        if record.stack_info:
            blocks.append(_bounded_block(record.stack_info, self.redactor))
        return "\n".join(blocks)


class _TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor, fmt: str) -> None:
        super().__init__(fmt)
        self._parts = _RecordText(redactor)

    def format(self, record: logging.LogRecord) -> str:
        record.message = _recut(escape_controls(self._parts.message(record)), MESSAGE_LIMIT)
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        details = self._parts.details(record)
        return f"{line}\n{details}" if details else line


class _JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._parts = _RecordText(redactor)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._parts.message(record),
        }
        details = self._parts.details(record)
        if details:
            entry["exception"] = details
        return json.dumps(entry, ensure_ascii=False).translate(_JSON_ESCAPES)


# --- levels -----------------------------------------------------------------------

QUIET_LOGGERS = ("aiohttp.access", "asyncio", "mau", "slack_bolt", "slack_sdk")
"""Libraries whose INFO is noise (or request bodies): WARNING and up unless DEBUG."""
QUIET_PACKAGES = ("slack_bolt", "slack_sdk")
"""Packages whose log calls are quiet whatever their logger is named (bolt names
some after the app's file), unless the bridge named the logger (``bridge.*``)."""


def _package_dirs(names: Iterable[str]) -> tuple[str, ...]:
    dirs: list[str] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs += [location.rstrip("/") + "/" for location in spec.submodule_search_locations]
    return tuple(dirs)


class _LevelPolicy(logging.Filter):
    """The configured level for every record, and WARNING for quiet libraries,
    decided at the handler: loggers a library creates later, with levels of its
    own, pass through here too."""

    def __init__(
        self, level: int, quiet_names: tuple[str, ...], quiet_dirs: tuple[str, ...]
    ) -> None:
        super().__init__()
        self.level = level
        self._names = quiet_names
        self._prefixes = tuple(f"{name}." for name in quiet_names)
        self._dirs = quiet_dirs

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        if record.levelno >= logging.WARNING or self.level <= logging.DEBUG:
            return True
        return not self._is_quiet(record)

    def _is_quiet(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name in self._names or name.startswith(self._prefixes):
            return True
        return not name.startswith("bridge.") and record.pathname.startswith(self._dirs)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(
    *, level: str = "INFO", fmt: str = "text", redactor: Redactor, stream: TextIO | None = None
) -> logging.Handler:
    """Route every ``bridge.*`` (and library) log line through one bounded,
    redacting handler that enforces ``level`` (see the module docstring)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(redactor))
    else:
        handler.setFormatter(_TextFormatter(redactor, TEXT_FORMAT))
    numeric = logging.getLevelName(level.upper())
    handler.addFilter(_LevelPolicy(numeric, QUIET_LOGGERS, _package_dirs(QUIET_PACKAGES)))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_zapbridge", False):
            root.removeHandler(old)
    handler._zapbridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    # The handler decides; these levels only spare building records nobody keeps.
    quiet = logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    return handler
