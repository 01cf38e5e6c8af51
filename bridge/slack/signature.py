"""Slack's request signatures (``X-Slack-Signature``, ``X-Slack-Request-Timestamp``).

Slack signs every HTTP request with the app's signing secret: the header carries
``v0=`` and the hex HMAC-SHA256 of ``v0:<timestamp>:<raw body>``. A request whose
timestamp is more than five minutes away from the bridge's clock is refused, so a
captured request cannot be replayed later (within the window, the database dedupes
what would run twice: ``bridge.core.relay``).

The headers are checked before the body is read (:meth:`SignatureCheck.timestamp`),
the signature over the exact bytes before anything parses them
(:meth:`SignatureCheck.verify`). Every refusal is a :class:`RequestRefused` with a
short reason that never echoes what the sender wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from bridge.errors import RequestRefused

__all__ = ["MAX_SKEW_SECONDS", "SignatureCheck"]

MAX_SKEW_SECONDS = 300  # Slack's documented window: five minutes either way
_VERSION = "v0"
_SIGNATURE_LENGTH = len("v0=") + 64  # hex SHA-256
_TIMESTAMP_DIGITS = 12  # Unix seconds have 10 digits until the year 2286


class SignatureCheck:
    def __init__(self, secret: str, *, now: Callable[[], float] = time.time) -> None:
        self._key = secret.encode()
        self._now = now

    def timestamp(self, headers: Mapping[str, str]) -> str:
        """The request's timestamp, if both headers are there and it is recent."""
        stamp = headers.get("X-Slack-Request-Timestamp")
        signature = headers.get("X-Slack-Signature")
        if not stamp or not signature:
            raise RequestRefused(401, "the request is not signed (X-Slack-Signature)")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _TIMESTAMP_DIGITS):
            raise RequestRefused(400, "X-Slack-Request-Timestamp is not a Unix time")
        if abs(self._now() - int(stamp)) > MAX_SKEW_SECONDS:
            raise RequestRefused(401, "the request's timestamp is more than 5 minutes away")
        return stamp

    def verify(self, headers: Mapping[str, str], stamp: str, body: bytes) -> None:
        """Refuse unless ``X-Slack-Signature`` signs ``body`` at ``stamp``."""
        given = headers.get("X-Slack-Signature", "")
        base = f"{_VERSION}:{stamp}:".encode() + body
        expected = f"{_VERSION}=" + hmac.new(self._key, base, hashlib.sha256).hexdigest()
        # compare_digest takes bytes of any content (str only when ASCII)
        candidate = given[: _SIGNATURE_LENGTH + 1].encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode(), candidate):
            raise RequestRefused(401, "the request's signature is wrong")
