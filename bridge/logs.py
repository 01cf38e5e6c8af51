"""Logging setup: text or JSON lines, hierarchical names under ``bridge``, and a
redactor that keeps secrets out of every line — messages, arguments, exception
texts and tracebacks alike."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

REDACTED = "***"

# Secrets that have a recognisable shape, even when the config does not know them.
_PATTERNS = (
    # user:password@ in URLs (postgres://zap:secret@db/zap → postgres://zap:***@db/zap)
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)"), r"\g<keep>***"),
    # Slack tokens
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), REDACTED),
    # Matrix access tokens (syt_…) and bearer headers
    (re.compile(r"\bsyt_[A-Za-z0-9_]+"), REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    # access_token=… in query strings
    (re.compile(r"(?i)(access_token=)[^&\s]+"), r"\1***"),
    # password=… in DSNs and query strings
    (re.compile(r"(?i)(password=)[^&\s]+"), r"\1***"),
)


class Redactor:
    """Replaces known secret values and secret-shaped strings with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is fully hidden.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted(
            set(self._secrets) | {s for s in secrets if s and len(s) >= 4}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class _RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor(super().format(record))


class _JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redactor(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self._redactor(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(
    *, level: str = "INFO", fmt: str = "text", redactor: Redactor, stream: TextIO | None = None
) -> logging.Handler:
    """Route every ``bridge.*`` (and library) log line through one redacting handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(redactor))
    else:
        handler.setFormatter(_RedactingFormatter(redactor, TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_zapbridge", False):
            root.removeHandler(old)
    handler._zapbridge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Chatty libraries stay at WARNING unless we debug.
    if level.upper() != "DEBUG":
        for name in ("aiohttp.access", "asyncio", "mau", "slack_bolt", "slack_sdk"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return handler
