"""What the rest of the bridge asks of session ownership (docs/cluster.md#ownership-and-fencing).

The core and the session manager see only :class:`OwnershipView`: which sessions
this instance owns, whether it leads, and ``confirm`` — the fencing check made
before every WhatsApp send and every status write. :class:`SoleOwnership` is the
view of a bridge running alone (``cluster.enabled: false``): it owns everything and
always leads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class OwnershipView(Protocol):
    instance_id: str

    def owns(self, session_key: str) -> bool:
        """Whether this instance believes it owns ``session_key`` now."""
        ...

    def owned(self) -> frozenset[str]: ...

    def token(self, session_key: str) -> int | None:
        """The fencing token of an owned session, else None."""
        ...

    def is_leader(self) -> bool: ...

    def wake(self) -> None:
        """Look at the leases now (another instance stopped, a session was added)."""
        ...

    async def confirm(self, session_key: str) -> bool:
        """The fencing check: whether the database still gives ``session_key`` to this
        instance with its token. When not, the session is released here at once."""
        ...


class SoleOwnership:
    """A bridge running alone: every session is its own, and it always leads."""

    def __init__(self, session_keys: Iterable[str], *, instance_id: str = "") -> None:
        self.instance_id = instance_id
        self._keys = frozenset(session_keys)

    def owns(self, session_key: str) -> bool:
        return True

    def owned(self) -> frozenset[str]:
        return self._keys

    def token(self, session_key: str) -> int | None:
        return 0

    def is_leader(self) -> bool:
        return True

    def wake(self) -> None:
        return None

    async def confirm(self, session_key: str) -> bool:
        return True
