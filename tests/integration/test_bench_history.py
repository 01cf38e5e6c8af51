"""The scale benchmark's bulk-written history reads back through the bridge's own
codecs (bench/scale.py), on both engines: its rows cannot drift from the real shapes."""

from __future__ import annotations

from bench.common import NullFrontend
from bench.scale import insert_history, insert_tickets
from bridge.core.operations import Operation, PostMessage, decode, encode
from bridge.core.ordering_keys import OrderingKey, TicketKey, parse_key
from bridge.db import Repositories
from bridge.db.database import Database, to_json
from bridge.model import Text, content_from_dict


async def test_history_rows_decode_with_the_bridge_codecs(
    db: Database, repos: Repositories
) -> None:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "s0000", engine="sim")
    await insert_tickets(db, session_id=session.id, tickets=20, now=1.0)
    await insert_history(db, session_id=session.id, first=1, last=30, tickets=20, now=2.0)

    messages = {
        int(row["id"]): int(row["ticket_id"])
        for row in await db.fetch("SELECT id, ticket_id FROM messages")
    }
    assert len(messages) == 30
    for message_id in messages:
        row = await repos.messages.get(message_id)
        assert row is not None and content_from_dict(row.content) == Text("history")
    posted: dict[Operation, OrderingKey | None] = {}
    for stored in await db.fetch("SELECT id, payload FROM outbox"):
        box = await repos.outbox.get(int(stored["id"]))
        assert box is not None and (box.destination, box.status) == (NullFrontend.name, "done")
        operation = decode(box.payload)
        posted[operation] = parse_key(box.ordering_key)
        assert stored["payload"] == to_json(encode(operation))  # the very text the bridge writes
    assert posted == {
        PostMessage(message_id): TicketKey(ticket_id, NullFrontend.name)
        for message_id, ticket_id in messages.items()
    }
