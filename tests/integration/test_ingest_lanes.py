"""The group-commit lane of an attendant's event (bridge/core/ingest_lanes.py): the
session its room serves, read once per room; none for a room serving no session
or several."""

from __future__ import annotations

from bridge.core.frontend import Attendant, ChatAddress, ThreadEvent
from bridge.core.ingest_lanes import IngestLanes
from bridge.db import Repositories


def typed_in(room: str) -> ThreadEvent:
    return ThreadEvent(
        frontend="slack",
        place=ChatAddress(room, thread_root="1.0"),
        event_id="e1",
        attendant=Attendant("U0BOB", "Bob"),
    )


async def test_an_attendants_event_joins_its_rooms_session(repos: Repositories) -> None:
    await repos.companies.upsert("acme", "ACME")
    sales = await repos.sessions.upsert("acme", "sales", engine="sim")
    support = await repos.sessions.upsert("acme", "support", engine="sim")
    for session, room in ((sales, "C0SALES"), (support, "C0SUPPORT")):
        await repos.rooms.put(
            frontend="slack", kind="control", company_id="acme", session_id=session.id, room_id=room
        )
    await repos.rooms.put(frontend="slack", kind="ops", company_id="acme", room_id="C0OPS")
    ids = {"acme/sales": sales.id, "acme/support": support.id}
    lanes = IngestLanes(repos, ids)
    assert await lanes.of_attendant(typed_in("C0SALES")) == "acme/sales"
    assert await lanes.of_attendant(typed_in("C0SUPPORT")) == "acme/support"
    assert await lanes.of_attendant(typed_in("C0OPS")) is None  # no session
    assert await lanes.of_attendant(typed_in("C0ELSEWHERE")) is None
    await repos.db.execute("DELETE FROM rooms")
    assert await lanes.of_attendant(typed_in("C0SALES")) == "acme/sales"  # read once
