"""Messages and message refs repositories, on both engines."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.db import Repositories
from bridge.db.messages import MessageRefRow, MessageRow, NewMessage
from bridge.db.tickets import TicketRow

PHONE = "+5511987654321"


async def _ticket(repos: Repositories) -> TicketRow:
    await repos.companies.upsert("acme", "ACME")
    session = await repos.sessions.upsert("acme", "sales", engine="sim")
    contact = (await repos.contacts.resolve(session.id, phone=PHONE)).contact
    ticket, _ = await repos.tickets.open_or_get(session.id, contact.id)
    return ticket


async def test_inbound_roundtrip_and_dedupe(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    content = {"kind": "text", "text": "Olá, *tudo bem*?", "nested": {"n": [1, 2]}}
    message = await repos.messages.insert_inbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=ticket.session_id,
            kind="text",
            sender=PHONE,
            content=content,
            quote_wa_id="3EB0A0",
            timestamp=1700000000.5,
        ),
        wa_id="3EB0A1",
        now=1700000001.0,
    )
    assert message == MessageRow(
        id=message.id if message else 0,
        ticket_id=ticket.id,
        session_id=ticket.session_id,
        direction="in",
        kind="text",
        wa_id="3EB0A1",
        sender=PHONE,
        content=content,
        quote_wa_id="3EB0A0",
        timestamp=1700000000.5,
        ack=None,
        created_at=1700000001.0,
    )
    duplicate = await repos.messages.insert_inbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=ticket.session_id,
            kind="text",
            sender=PHONE,
            content={"text": "again"},
            timestamp=1.0,
        ),
        wa_id="3EB0A1",
    )
    assert duplicate is None
    assert await repos.messages.find_by_wa_id(ticket.session_id, "3EB0A1") == message
    assert await repos.messages.get(message.id) == message  # type: ignore[union-attr]
    assert await repos.messages.list_by_ticket(ticket.id) == [message]


async def test_outbound_send_and_acks(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    message = await repos.messages.insert_outbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=ticket.session_id,
            kind="text",
            sender="@bob:localhost",
            content={"text": "Bom dia"},
            timestamp=10.0,
        ),
    )
    assert (message.direction, message.wa_id, message.ack) == ("out", None, None)
    assert await repos.messages.set_wa_id(message.id, "BAE5F1")
    sent = await repos.messages.find_by_wa_id(ticket.session_id, "BAE5F1")
    assert sent is not None and (sent.id, sent.ack) == (message.id, "sent")

    async def ack(value: str) -> bool:
        return await repos.messages.set_ack_by_wa_id(ticket.session_id, wa_id="BAE5F1", ack=value)

    assert await ack("read")
    assert not await ack("delivered")  # late receipt: never moves backwards
    assert not await ack("read")
    assert (await repos.messages.get(message.id)).ack == "read"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown ack"):
        await repos.messages.set_ack(message.id, "seen")


async def test_failed_then_delivered(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    message = await repos.messages.insert_outbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=ticket.session_id,
            kind="image",
            sender="@bob:localhost",
            content={"caption": "x"},
            timestamp=10.0,
        ),
    )
    assert await repos.messages.set_ack(message.id, "failed")
    assert not await repos.messages.set_ack(message.id, "sent")
    assert await repos.messages.set_ack(message.id, "delivered")


async def test_message_refs_roundtrip(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    message = await repos.messages.insert_outbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=ticket.session_id,
            kind="contact",
            sender=PHONE,
            content={"display_name": "Ana"},
            timestamp=1.0,
        ),
    )
    main = await repos.message_refs.put(
        message.id, frontend="matrix", room_id="!room:hs", event_id="$text"
    )
    assert main == MessageRefRow(message.id, "matrix", 0, "!room:hs", "$text")
    vcf = await repos.message_refs.put(
        message.id, frontend="matrix", room_id="!room:hs", event_id="$vcf", part=1
    )
    slack = await repos.message_refs.put(
        message.id, frontend="slack", room_id="C0SALES", event_id="1700000000.000100"
    )
    assert await repos.message_refs.get(message.id, "matrix") == main
    assert await repos.message_refs.list_for_message(message.id) == [main, vcf, slack]
    assert await repos.message_refs.list_for_message(message.id, frontend="slack") == [slack]
    for frontend, room_id, event_id in [
        ("matrix", "!room:hs", "$vcf"),
        ("slack", "C0SALES", "1700000000.000100"),
    ]:
        found = await repos.messages.find_by_ref(frontend, room_id=room_id, event_id=event_id)
        assert found == message
    assert await repos.messages.find_by_ref("slack", room_id="C0OTHER", event_id="1") is None
    moved = await repos.message_refs.put(
        message.id, frontend="matrix", room_id="!room:hs", event_id="$edited"
    )
    assert await repos.message_refs.get(message.id, "matrix") == moved


async def test_sender_name_and_counts_by_direction(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    common = NewMessage(
        ticket_id=ticket.id,
        session_id=ticket.session_id,
        kind="text",
        sender="",
        content={},
        timestamp=0.0,
    )
    inbound = await repos.messages.insert_inbound(
        replace(common, sender=PHONE, sender_name="Maria", timestamp=1.0), wa_id="W1"
    )
    outbound = await repos.messages.insert_outbound(
        replace(common, sender="@bob:localhost", sender_name="Bob", timestamp=2.0)
    )
    await repos.messages.insert_outbound(replace(common, sender="bot", timestamp=3.0))
    assert inbound is not None and inbound.sender_name == "Maria"
    assert (await repos.messages.get(outbound.id)).sender_name == "Bob"  # type: ignore[union-attr]
    assert await repos.messages.count_by_direction(ticket.session_id) == {"in": 1, "out": 2}


async def test_last_inbound_at_is_the_customers_newest_message(repos: Repositories) -> None:
    ticket = await _ticket(repos)
    assert await repos.messages.last_inbound_at(ticket.id) is None

    def new(timestamp: float, sender: str = PHONE) -> NewMessage:
        return NewMessage(
            ticket_id=ticket.id,
            session_id=ticket.session_id,
            kind="text",
            sender=sender,
            content={"text": "x"},
            timestamp=timestamp,
        )

    await repos.messages.insert_outbound(new(50.0, "@bob:localhost"))
    assert await repos.messages.last_inbound_at(ticket.id) is None  # only ours so far
    await repos.messages.insert_inbound(new(30.5), wa_id="W1")
    await repos.messages.insert_inbound(new(20.0), wa_id="W2")  # arrived late, older
    await repos.messages.insert_outbound(new(90.0, "@bob:localhost"))
    assert await repos.messages.last_inbound_at(ticket.id) == 30.5
    assert await repos.messages.last_inbound_at(ticket.id + 1) is None


async def test_customer_messages_marked_read_on_whatsapp(repos: Repositories) -> None:
    """docs/presence.md: what a read mark sends, what it records, once."""
    ticket = await _ticket(repos)

    async def inbound(kind: str, wa_id: str) -> MessageRow:
        row = await repos.messages.insert_inbound(
            NewMessage(
                ticket_id=ticket.id,
                session_id=ticket.session_id,
                kind=kind,
                sender=PHONE,
                content={"text": wa_id},
                timestamp=1.0,
            ),
            wa_id=wa_id,
        )
        assert row is not None
        return row

    first = await inbound("text", "A")
    await inbound("reaction", "R")  # an action on a message: not read
    reply = await repos.messages.insert_outbound(
        NewMessage(
            ticket_id=ticket.id,
            session_id=ticket.session_id,
            kind="text",
            sender="@bob:localhost",
            content={"text": "Oi"},
            timestamp=2.0,
        )
    )
    second = await inbound("image", "B")
    later = await inbound("text", "C")

    unmarked = await repos.messages.unmarked_inbound(ticket.id, up_to=second.id)
    assert [m.wa_id for m in unmarked] == ["A", "B"]
    assert [
        m.wa_id for m in await repos.messages.unmarked_inbound(ticket.id, up_to=second.id, limit=1)
    ] == ["A"]
    assert await repos.messages.mark_inbound_read(ticket.id, up_to=first.id) == 1
    assert [m.wa_id for m in await repos.messages.unmarked_inbound(ticket.id, up_to=later.id)] == [
        "B",
        "C",
    ]
    assert await repos.messages.mark_inbound_read(ticket.id, up_to=later.id) == 2
    assert await repos.messages.mark_inbound_read(ticket.id, up_to=later.id) == 0
    assert (await repos.messages.get(reply.id)).ack is None  # type: ignore[union-attr]

    assert await repos.messages.latest_shown(ticket.id, "matrix") is None
    await repos.message_refs.put(second.id, frontend="matrix", room_id="!r", event_id="$b")
    await repos.message_refs.put(first.id, frontend="matrix", room_id="!r", event_id="$a")
    await repos.message_refs.put(later.id, frontend="slack", room_id="C1", event_id="1.2")
    assert await repos.messages.latest_shown(ticket.id, "matrix") == second.id
