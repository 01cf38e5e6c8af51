"""The one error tree of the bridge.

Every error the bridge raises on purpose derives from :class:`BridgeError`. Each
carries an ``explanation``: one line a human can act on, safe to show in a chat
room or on the command line (it never contains secrets).

    BridgeError
    ├── ConfigError          the configuration is invalid (carries every problem)
    ├── DatabaseError        the database cannot be reached or used
    │   └── MigrationError   a migration failed or the schema is newer than the code
    ├── NotAuthorized        the sender may not do this (commands, tokens)
    ├── DeliveryError        a delivery to a frontend or an engine failed
    │   └── PermanentDeliveryError   retrying cannot help (bad target, too big, …)
    ├── EngineError          a WhatsApp engine failed
    │   └── SessionNotConnected
    └── InvalidInput         malformed input from outside (events, requests)
        └── RequestRefused   an HTTP request refused, with the status to answer
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every deliberate bridge error."""

    def __init__(self, explanation: str) -> None:
        super().__init__(explanation)
        self.explanation = explanation


class ConfigError(BridgeError):
    """The configuration is invalid. ``problems`` lists every finding."""

    def __init__(self, explanation: str, problems: list[str] | None = None) -> None:
        super().__init__(explanation)
        self.problems = problems or [explanation]


class DatabaseError(BridgeError):
    """The database cannot be reached or used."""


class MigrationError(DatabaseError):
    """A migration failed (rolled back) or the schema is newer than the code."""


class NotAuthorized(BridgeError):
    """The sender lacks the role, or the request lacks a valid token."""


class DeliveryError(BridgeError):
    """A delivery failed; the outbox may retry it, no sooner than ``retry_after`` seconds
    when the far side said so (Slack's ``Retry-After``, Matrix's ``retry_after_ms``)."""

    def __init__(self, explanation: str, *, retry_after: float | None = None) -> None:
        super().__init__(explanation)
        self.retry_after = retry_after

    @property
    def ambiguous(self) -> bool:
        """Whether the failed call may have taken effect all the same (a timeout, a
        dropped connection, a 5xx): not a refusal, not a rate limit (a 429 did nothing)."""
        return not isinstance(self, PermanentDeliveryError) and self.retry_after is None


class PermanentDeliveryError(DeliveryError):
    """A delivery failed in a way retrying cannot fix."""


class EngineError(BridgeError):
    """A WhatsApp engine call failed."""


class SessionNotConnected(EngineError):
    """The session is not connected to WhatsApp."""


class InvalidInput(BridgeError):
    """Input from outside is malformed; the explanation says how."""


class RequestRefused(InvalidInput):
    """An HTTP request the bridge refuses: ``status`` is the 4xx to answer (400 bad
    body, 408 too slow, 413 too large), the explanation its short reason."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(explanation)
        self.status = status
