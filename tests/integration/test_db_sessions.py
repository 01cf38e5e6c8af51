"""Companies and sessions repositories, on both engines."""

from __future__ import annotations

from bridge.db import Repositories
from bridge.db.sessions import SessionRow


async def test_company_roundtrip(repos: Repositories) -> None:
    created = await repos.companies.upsert("acme", "ACME")
    assert (created.id, created.name) == ("acme", "ACME")
    renamed = await repos.companies.upsert("acme", "ACME Support")
    await repos.companies.upsert("beta", "Beta")
    assert await repos.companies.get("acme") == renamed
    assert renamed.name == "ACME Support"
    assert await repos.companies.get("nobody") is None
    assert [c.id for c in await repos.companies.list_all()] == ["acme", "beta"]


async def test_session_roundtrip(repos: Repositories) -> None:
    await repos.companies.upsert("acme", "ACME")
    sales = await repos.sessions.upsert("acme", "sales", engine="sim", now=100.0)
    assert sales == SessionRow(
        id=sales.id,
        company_id="acme",
        name="sales",
        engine="sim",
        status="LOGGED_OUT",
        phone=None,
        last_connected_at=None,
        last_error=None,
        last_error_at=None,
        updated_at=100.0,
    )
    again = await repos.sessions.upsert("acme", "sales", engine="whatsmeow", now=200.0)
    assert (again.id, again.engine) == (sales.id, "whatsmeow")
    support = await repos.sessions.upsert("acme", "support", engine="sim")
    assert await repos.sessions.get("acme", "sales") == again
    assert await repos.sessions.get_by_id(support.id) == support
    assert await repos.sessions.get("acme", "nope") is None
    assert [s.name for s in await repos.sessions.list_all()] == ["sales", "support"]
    assert [s.name for s in await repos.sessions.list_by_company("acme")] == ["sales", "support"]


async def test_session_status_changes(repos: Repositories) -> None:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim", now=1.0)
    connected = await repos.sessions.set_status(
        session.id, "CONNECTED", phone="+5511900000001", connected=True, now=10.0
    )
    assert connected is not None
    assert (connected.status, connected.phone, connected.last_connected_at) == (
        "CONNECTED",
        "+5511900000001",
        10.0,
    )
    lost = await repos.sessions.set_status(
        session.id, "DISCONNECTED", error="stream error", now=20.0
    )
    assert lost is not None
    assert (lost.status, lost.phone, lost.last_connected_at) == (
        "DISCONNECTED",
        "+5511900000001",
        10.0,
    )
    assert (lost.last_error, lost.last_error_at, lost.updated_at) == ("stream error", 20.0, 20.0)
    back = await repos.sessions.set_status(session.id, "CONNECTED", connected=True, now=30.0)
    assert back is not None
    assert (back.last_connected_at, back.last_error, back.last_error_at) == (
        30.0,
        "stream error",
        20.0,
    )
    assert await repos.sessions.set_status(9999, "CONNECTED") is None
