"""The transcript's text (bridge/core/transcript.py): a pure function of the ticket
and its stored messages, table-tested."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.config import BusinessHours, SessionConfig
from bridge.core.senders import BOT, PHONE
from bridge.core.tickets import TicketView
from bridge.core.transcript import (
    transcript_file,
    transcript_filename,
    transcript_text,
    transcript_zone,
)
from bridge.db.messages import NOTE_KIND, MessageRow
from bridge.model import (
    AnyContent,
    ContactCard,
    ContactList,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Reaction,
    StoredBytes,
    Text,
    Unsupported,
    content_to_dict,
)

CUSTOMER = "+5511987654321"
AT = datetime(2026, 12, 5, 14, 3, 7, tzinfo=UTC).timestamp()
STORED = StoredBytes(sha256="ab" * 32, size=3)


def ticket(*, group: bool = False) -> TicketView:
    return TicketView(
        id=12,
        session_key="acme/sales",
        company_id="acme",
        contact_id=1,
        contact_name="Família" if group else "Maria",
        phone=None if group else CUSTOMER,
        is_group=group,
        status="open",
        assignee=None,
        created_at=AT,
        first_response_at=None,
        closed_at=None,
    )


def row(
    content: AnyContent | dict[str, Any],
    *,
    id: int = 1,
    direction: str = "in",
    sender: str = CUSTOMER,
    sender_name: str | None = None,
    wa_id: str | None = None,
    at: float = AT,
) -> MessageRow:
    stored = content if isinstance(content, dict) else content_to_dict(content)
    return MessageRow(
        id=id,
        ticket_id=12,
        session_id=1,
        direction=direction,
        kind=str(stored.get("type", "text")),
        wa_id=wa_id,
        sender=sender,
        content=stored,
        quote_wa_id=None,
        timestamp=at,
        ack=None,
        created_at=at,
        sender_name=sender_name,
    )


def entries(text: str) -> list[str]:
    """The transcript's lines after its header."""
    return text.split("\n")[3:-1]


def image(**fields: Any) -> Media:
    return Media(media_kind=MediaKind.IMAGE, mimetype="image/jpeg", stored=STORED, **fields)


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (row(Text("Oi")), "[2026-12-05 14:03:07] Maria: Oi"),
        (row(Text("Oi"), sender_name="Maria S."), "[2026-12-05 14:03:07] Maria S.: Oi"),
        (
            row(Text("Posso ajudar?"), direction="out", sender="@bob:x", sender_name="Bob"),
            "[2026-12-05 14:03:07] Bob: Posso ajudar?",
        ),
        (row(Text("x"), direction="out", sender="U0BOB"), "[2026-12-05 14:03:07] U0BOB: x"),
        (row(Text("Olá!"), direction="out", sender=BOT), "[2026-12-05 14:03:07] zapbridge: Olá!"),
        (
            row(Text("do celular"), direction="out", sender=PHONE),
            "[2026-12-05 14:03:07] WhatsApp phone: do celular",
        ),
        (row(image(), id=41), "[2026-12-05 14:03:07] Maria: [image: image-41.jpg]"),
        (
            row(image(filename="foto.jpg", caption="a etiqueta")),
            "[2026-12-05 14:03:07] Maria: [image: foto.jpg] a etiqueta",
        ),
        (
            row(Media(media_kind=MediaKind.VOICE, mimetype="audio/ogg", stored=STORED), id=7),
            "[2026-12-05 14:03:07] Maria: [voice: voice-7.ogg]",
        ),
        (
            row(Location(-23.5, -46.6, name="Loja", address="Rua A, 1")),
            "[2026-12-05 14:03:07] Maria: [location: -23.5, -46.6 (Loja, Rua A, 1)]",
        ),
        (
            row(Location(-23.5, -46.6, live=True)),
            "[2026-12-05 14:03:07] Maria: [live location: -23.5, -46.6]",
        ),
        (
            row(ContactCard("João", "BEGIN:VCARD\nEND:VCARD")),
            "[2026-12-05 14:03:07] Maria: [contact: João]",
        ),
        (
            row(ContactList("2 contacts", (ContactCard("A", "v"), ContactCard("B", "v")))),
            "[2026-12-05 14:03:07] Maria: [contacts: A, B]",
        ),
        (
            row(Unsupported("poll")),
            "[2026-12-05 14:03:07] Maria: [unsupported message: poll]",
        ),
        (
            row(Reaction("$event", "👍"), direction="out", sender="@bob:x", sender_name="Bob"),
            "[2026-12-05 14:03:07] Bob: [reacted 👍 to a message]",
        ),
        (
            row(Reaction("W9", "")),
            "[2026-12-05 14:03:07] Maria: [removed a reaction from a message]",
        ),
        (row(Deletion("W9")), "[2026-12-05 14:03:07] Maria: [deleted a message]"),
        (
            row({"type": "hologram"}),
            "[2026-12-05 14:03:07] Maria: [a hologram message that cannot be read]",
        ),
    ],
)
def test_each_message_is_one_entry(message: MessageRow, line: str) -> None:
    assert entries(transcript_text(ticket(), [message], tz=UTC)) == [line]


def test_the_header_and_a_multi_line_message() -> None:
    text = transcript_text(ticket(), [row(Text("Linha 1\nLinha 2"))], tz=UTC)
    assert text == (
        f"Ticket #12 · Maria ({CUSTOMER}) · acme/sales\n"
        "Times in UTC\n"
        "\n"
        "[2026-12-05 14:03:07] Maria: Linha 1\n"
        "    Linha 2\n"
    )


def test_times_in_the_sessions_zone() -> None:
    text = transcript_text(ticket(), [row(Text("Oi"))], tz=ZoneInfo("America/Sao_Paulo"))
    assert text.split("\n")[1] == "Times in America/Sao_Paulo"
    assert entries(text) == ["[2026-12-05 11:03:07] Maria: Oi"]


def test_actions_name_their_message_by_an_excerpt() -> None:
    long = "Vou verificar o seu pedido agora mesmo, Maria, um momento."
    messages = [
        row(Text(long), id=1, direction="out", sender="@bob:x", sender_name="Bob", wa_id="W1"),
        row(Reaction("W1", "👍"), id=2, wa_id="W2"),
        row(Text("Oi"), id=3, wa_id="W3"),
        row(Edit("W3", Text("Olá")), id=4, wa_id="W4"),
        row(Deletion("W3"), id=5, wa_id="W5"),
    ]
    assert entries(transcript_text(ticket(), messages, tz=UTC)) == [
        f"[2026-12-05 14:03:07] Bob: {long}",
        '[2026-12-05 14:03:07] Maria: [reacted 👍 to "Vou verificar o seu pedido agora mesmo,…"]',
        "[2026-12-05 14:03:07] Maria: Oi",
        '[2026-12-05 14:03:07] Maria: [edited "Oi" to:] Olá',
        '[2026-12-05 14:03:07] Maria: [deleted "Oi"]',
    ]


def test_a_group_names_each_member() -> None:
    messages = [
        row(Text("Oi"), sender="+5511900000001", sender_name="Ana"),
        row(Text("Oi!"), sender="+5511900000002"),
    ]
    text = transcript_text(ticket(group=True), messages, tz=UTC)
    assert text.split("\n")[0] == "Ticket #12 · Família · acme/sales"
    assert entries(text) == [
        "[2026-12-05 14:03:07] Ana: Oi",
        "[2026-12-05 14:03:07] +5511900000002: Oi!",
    ]


def test_no_messages_and_a_cut_transcript() -> None:
    assert entries(transcript_text(ticket(), [], tz=UTC)) == ["(no messages)"]
    cut = transcript_text(ticket(), [row(Text("Oi"))], tz=UTC, complete=False)
    assert entries(cut)[-1] == "(the transcript stops at 1 messages)"


def test_a_note_is_marked_as_one() -> None:
    said = row(Text("Olá"), id=1, direction="out", sender="@bob:x", sender_name="Bob")
    note = replace(
        row(Text("só entre nós"), id=2, direction="out", sender="@bob:x", sender_name="Bob"),
        kind=NOTE_KIND,
    )
    assert entries(transcript_text(ticket(), [said, note], tz=UTC)) == [
        "[2026-12-05 14:03:07] Bob: Olá",
        "[2026-12-05 14:03:07] Bob (note): só entre nós",
    ]


def test_the_file_and_the_zone() -> None:
    file = transcript_file(12, "Olá\n")
    assert (file.filename, file.mimetype, file.media_kind) == (
        "ticket-12.txt",
        "text/plain",
        MediaKind.DOCUMENT,
    )
    assert (file.data, file.size) == ("Olá\n".encode(), 5)
    assert transcript_filename(3) == "ticket-3.txt"
    assert transcript_zone(SessionConfig(name="s", company_id="acme")) is UTC
    hours = BusinessHours(
        timezone="America/Sao_Paulo",
        days="mon",
        hours="00:00-01:00",
        weekdays=frozenset({0}),
        intervals=((0, 60),),
    )
    zone = transcript_zone(SessionConfig(name="s", company_id="acme", business_hours=hours))
    assert zone == ZoneInfo("America/Sao_Paulo")
