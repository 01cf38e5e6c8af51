"""DatabaseStatusStore.save_statuses: several sessions' statuses in one transaction,
the same rows as one save each (bridge/core/status_store.py), on both engines."""

from __future__ import annotations

from bridge.core.status_store import DatabaseStatusStore
from bridge.db import Repositories
from bridge.whatsapp.status import SessionStatus
from bridge.whatsapp.status_announcer import StatusRecord


def record(
    key: str,
    status: SessionStatus,
    *,
    phone: str | None = None,
    error: str | None = None,
    connected_at: float | None = None,
) -> StatusRecord:
    return StatusRecord(
        key=key, status=status, phone=phone, error=error, connected_at=connected_at, change=None
    )


async def test_save_statuses_writes_every_record_in_order(repos: Repositories) -> None:
    await repos.companies.upsert("acme", "ACME")
    ids = {}
    for name in ("a", "b"):
        ids[f"acme/{name}"] = (await repos.sessions.upsert("acme", name, engine="sim")).id
    store = DatabaseStatusStore(repos.sessions, ids)
    await store.save_statuses(
        [
            record("acme/a", SessionStatus.DISCONNECTED, error="network down"),
            record("acme/b", SessionStatus.OPENING),
            record("acme/a", SessionStatus.CONNECTED, phone="+5511900000001", connected_at=5.0),
        ]
    )
    a = await repos.sessions.get("acme", "a")
    b = await repos.sessions.get("acme", "b")
    assert a is not None and b is not None
    assert (a.status, a.phone, a.last_error, a.last_connected_at) == (
        "CONNECTED",
        "+5511900000001",
        "network down",
        5.0,
    )
    assert b.status == "OPENING"
