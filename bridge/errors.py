"""The one error tree of the bridge.

Every error the bridge raises on purpose derives from :class:`BridgeError`. Each
carries an ``explanation``: one line a human can act on, safe to show in a chat
room or on the command line (it never contains secrets).

    BridgeError
    ├── ConfigError              the configuration is invalid (carries every problem)
    ├── DatabaseError            the database cannot be reached or used
    │   ├── MigrationError       a migration failed or the schema is newer than the code
    │   ├── UniqueViolation      (db/database.py) a unique index refused a row
    │   └── InstanceLocked       (db/instance_lock.py) another bridge holds the database
    ├── NotAuthorized            the sender may not do this (commands: membership, role)
    ├── DeliveryError            a delivery to a frontend or an engine failed; retried
    │   ├── PermanentDeliveryError   retrying cannot help (bad target, …): dead letter
    │   │   ├── FileTooLarge     (media_limits.py) a file over its size limit
    │   │   └── WindowClosed     the Cloud API's 24-hour window is closed: templates only
    │   ├── RateLimited          the far side said "too many requests"; ``retry_after``
    │   └── SlackCallError       (slack/ratelimit.py) a Slack Web API call failed
    ├── EngineError              a WhatsApp engine failed
    │   ├── SessionNotConnected
    │   │   └── NotOwner         another instance holds the session's lease: nothing sent
    │   └── TokenRejected        (whatsapp/cloud/graph.py) Meta refused the access token
    ├── InvalidInput             malformed input from outside (events, requests, commands)
    │   ├── RequestRefused       an HTTP request refused, with the status to answer
    │   ├── MalformedEvent       (matrix/fields.py) a Matrix event field of the wrong type
    │   ├── UsageError           (core/command_model.py) a command typed the wrong way
    │   └── AvatarError          a contact's picture could not be fetched as an image
    └── SynapseError             (matrix/local_synapse.py) the demo's Synapse did not start

Classes named with a module live there, beside the code that raises them; the rest
live here. Two kinds of failure are deliberately not in the tree: decoders of stored
data (outbox operations, journal records, engine events) raise ``ValueError``, the
codec convention the journal relies on; and a module's private signal that never
leaves it (the config reader's ``_Invalid``) is caught where it is raised.
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


class WindowClosed(PermanentDeliveryError):
    """The Cloud API refuses a free-form message: the customer's 24-hour
    customer-service window is closed; only an approved template may be sent."""


class RateLimited(DeliveryError):
    """The far side answered "too many requests" (Slack's 429 / ``ratelimited``): the
    paced call waits ``retry_after`` seconds and tries again, or hands the outbox a
    retry no sooner than that."""

    retry_after: float  # always known here

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:g} s", retry_after=retry_after)


class EngineError(BridgeError):
    """A WhatsApp engine call failed."""


class SessionNotConnected(EngineError):
    """The session is not connected to WhatsApp."""


class NotOwner(SessionNotConnected):
    """This instance no longer holds the session's lease (docs/cluster.md): nothing
    was sent; the delivery stays pending for the session's owner."""

    def __init__(self, session_key: str) -> None:
        super().__init__(f"session {session_key} is owned by another instance now")


class InvalidInput(BridgeError):
    """Input from outside is malformed; the explanation says how."""


class AvatarError(InvalidInput):
    """A contact's picture could not be fetched as an image (HTTP error, not an
    image, too large, empty); the ghost keeps its old avatar."""


class RequestRefused(InvalidInput):
    """An HTTP request the bridge refuses: ``status`` is the 4xx to answer (400 bad
    body, 408 too slow, 413 too large), the explanation its short reason."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(explanation)
        self.status = status
