"""Engine events through the journal's codec (bridge/whatsapp/event_codec.py): every
journaled kind comes back equal after JSON, and a body that is not one is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.journal.store import dump_body
from bridge.model import (
    AckStatus,
    ContactCard,
    ContactList,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Message,
    Party,
    Quote,
    Reaction,
    Receipt,
    Text,
    Unsupported,
)
from bridge.whatsapp.engine import (
    ContactUpdateEvent,
    EngineErrorEvent,
    EngineEvent,
    LoggedOutEvent,
    MessageEvent,
    QRCodeEvent,
    ReceiptEvent,
    SendFailedEvent,
)
from bridge.whatsapp.event_codec import (
    JOURNALED_EVENTS,
    EventCodec,
    decode_event,
    encode_event,
    event_lane,
)

KEY = "acme/sales"
MARIA = Party(phone="+5511987654321", name="Maria")
GROUP = Party(group="120363025246125486@g.us", name="Suporte")
LID_ONLY = Party(lid="123456789012345")
REF = {
    "message_type": "image",
    "direct_path": "/v/t62.7118-24/123",
    "url": "https://mmg.whatsapp.net/v/t62.7118-24/123",
    "media_key": "a2V5",
    "file_enc_sha256": "ZW5j",
    "file_sha256": "c2hh",
    "file_length": 12345,
    "mimetype": "image/jpeg",
}
CARD = ContactCard("João", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:João\r\nEND:VCARD")


def through_json(event: EngineEvent) -> EngineEvent:
    """Encoded, written as a journal record's JSON, read back and decoded."""
    body = json.loads(dump_body(encode_event(event)))
    return decode_event(body)


def message(content: Any, **fields: Any) -> MessageEvent:
    return MessageEvent(
        KEY,
        message=Message(
            chat=fields.pop("chat", MARIA),
            sender=fields.pop("sender", MARIA),
            content=content,
            wa_id=fields.pop("wa_id", "3EB0AABBCCDDEEFF001122"),
            timestamp=fields.pop("timestamp", 1_700_000_123.25),
            **fields,
        ),
    )


EVENTS = [
    message(Text("Olá *mundo* 🎉\nlinha 2", mentions=("+5511900000001",))),
    message(
        Media(MediaKind.IMAGE, "image/jpeg", ref=REF, caption="foto", size=12345, width=640),
        extra={"chat_jid": "5511987654321@s.whatsapp.net", "sender_jid": "x@s.whatsapp.net"},
    ),
    message(Media(MediaKind.VOICE, "audio/ogg; codecs=opus", data=b"\x00OggS\xff", duration=3)),
    message(Location(-23.55, -46.63, name="Sé", address="Praça da Sé")),
    message(CARD, quote=Quote("3EB0QUOTED", sender="+5511987654321", text="antes")),
    message(ContactList("2 contacts", (CARD, ContactCard("Ana", "BEGIN:VCARD\nEND:VCARD")))),
    message(Unsupported("poll"), forwarded=True),
    message(Reaction("3EB0TARGET", "👍")),
    message(Edit("3EB0TARGET", Text("corrigido"))),
    message(Deletion("3EB0TARGET")),
    message(Text("no grupo"), chat=GROUP, sender=MARIA),
    message(Text("só LID"), chat=LID_ONLY, sender=LID_ONLY, quote=Quote("3EB0Q")),
    message(Text("do telefone"), from_me=True, wa_id=None, timestamp=0.0),
    MessageEvent(KEY, message=message(Text("histórico")).message, history=True),
    ReceiptEvent(KEY, chat=MARIA, ids=("3EB0A", "3EB0B"), status=AckStatus.READ, timestamp=17.5),
    ReceiptEvent(
        KEY,
        chat=MARIA,
        ids=("wamid.HBgN",),
        status=AckStatus.SENT,
        timestamp=17.0,
        reference="zb1:41:3EB0AABBCCDDEEFF001122",
    ),
    SendFailedEvent(
        KEY,
        chat=MARIA,
        message_id="wamid.HBgN",
        reason="Message undeliverable",
        code=131026,
        reference="zb1:41:3EB0AABBCCDDEEFF001122",
    ),
    SendFailedEvent(KEY, chat=MARIA, message_id="wamid.X", reason="no reason given"),
    ContactUpdateEvent(KEY, party=Party(phone="+5511987654321", lid="12345", name="Maria")),
    ContactUpdateEvent(KEY, party=MARIA, avatar_url="https://pps.whatsapp.net/v/avatar.jpg"),
    EngineErrorEvent(KEY, explanation="a WhatsApp Message event was set aside: bad", event_id="X"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_journaled_event_comes_back_equal(event: EngineEvent) -> None:
    assert through_json(event) == event


def test_media_keeps_the_download_reference_not_bytes() -> None:
    body = encode_event(EVENTS[1])
    content = body["message"]["content"]
    assert content["ref"] == REF and content["data"] is None


def test_receipt_content_round_trips_too() -> None:
    event = message(Receipt(("3EB0A",), AckStatus.DELIVERED))
    assert through_json(event) == event


def test_every_journaled_kind_is_in_the_examples() -> None:
    assert {type(e) for e in EVENTS} == set(JOURNALED_EVENTS)


# --- records written by earlier versions are read back the same ------------------------------

RECEIPT_BEFORE_REFERENCES = {  # as written before receipts carried a reference
    "v": 1,
    "session": KEY,
    "type": "receipt",
    "chat": {"phone": "+5511987654321", "lid": None, "group": None, "name": "Maria"},
    "ids": ["3EB0A", "3EB0B"],
    "status": "read",
    "timestamp": 17.5,
}
RECEIPT = {**RECEIPT_BEFORE_REFERENCES, "ids": ["wamid.HBgN"], "reference": "zb1:41:3EB0AB"}
SEND_FAILED = {
    "v": 1,
    "session": KEY,
    "type": "send_failed",
    "chat": {"phone": "+5511987654321", "lid": None, "group": None, "name": "Maria"},
    "message_id": "wamid.HBgN",
    "reason": "Message undeliverable",
    "code": 131026,
    "reference": "zb1:41:3EB0AB",
}


def test_a_receipt_kept_before_references_is_read_back() -> None:
    event = decode_event(RECEIPT_BEFORE_REFERENCES)
    assert event == EVENTS[14]
    assert isinstance(event, ReceiptEvent) and event.reference is None


@pytest.mark.parametrize("body", [RECEIPT, SEND_FAILED], ids=["receipt", "send_failed"])
def test_the_record_shapes_stay_as_written(body: dict[str, Any]) -> None:
    assert encode_event(decode_event(body)) == body


def test_a_failed_send_keeps_its_fields() -> None:
    event = decode_event(SEND_FAILED)
    assert event == SendFailedEvent(
        KEY,
        chat=MARIA,
        message_id="wamid.HBgN",
        reason="Message undeliverable",
        code=131026,
        reference="zb1:41:3EB0AB",
    )


def test_events_that_are_not_journaled_are_refused() -> None:
    with pytest.raises(TypeError, match="QRCodeEvent is not journaled"):
        encode_event(QRCodeEvent(KEY, code="2@abc", expires_in=60))


def test_a_logout_is_a_status_and_never_journaled() -> None:
    """The session manager applies it at once: no journal record holds one, so its
    ``action`` changes no stored format."""
    with pytest.raises(TypeError, match="LoggedOutEvent is not journaled"):
        encode_event(LoggedOutEvent(KEY, reason="token refused", action="Replace the token."))


def test_the_codec_object_is_the_pair_of_functions() -> None:
    codec = EventCodec()
    assert codec.decode(codec.encode(EVENTS[0])) == EVENTS[0]


def broken(change: dict[str, Any], *, path: tuple[str, ...] = ()) -> dict[str, Any]:
    body = json.loads(dump_body(encode_event(EVENTS[4])))
    target = body
    for key in path:
        target = target[key]
    target.update(change)
    return body


RECEIPT_BAD_STATUS = {
    "v": 1,
    "session": KEY,
    "type": "receipt",
    "chat": {"phone": "+1"},
    "ids": ["a"],
    "status": "seen",
    "timestamp": 1,
}


@pytest.mark.parametrize(
    "body",
    [
        broken({"v": 2}),
        broken({"type": "poll"}),
        broken({"session": 7}),
        broken({"history": "yes"}),
        broken({"message": None}),
        broken({"timestamp": "now"}, path=("message",)),
        broken({"timestamp": True}, path=("message",)),
        broken({"quote": "3EB0"}, path=("message",)),
        broken({"extra": []}, path=("message",)),
        broken({"from_me": 1}, path=("message",)),
        broken({"phone": None, "lid": None, "group": None}, path=("message", "chat")),
        broken({"type": "hologram"}, path=("message", "content")),
        {"v": 1, "session": KEY, "type": "receipt", "chat": {"phone": "+1"}, "ids": [1]},
        RECEIPT_BAD_STATUS,
        {"v": 1, "session": KEY, "type": "error", "explanation": "x"},
        {**RECEIPT_BAD_STATUS, "status": "read", "reference": 41},
        {**SEND_FAILED, "code": "131026"},
        {**SEND_FAILED, "code": -1},
        {**SEND_FAILED, "message_id": None},
        {**SEND_FAILED, "reason": 7},
        {**SEND_FAILED, "chat": None},
    ],
)
def test_a_body_that_is_not_an_event_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        decode_event(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (broken({"session": 7}), "session must be a string"),
        (broken({"history": "yes"}), "history must be true or false"),
        (broken({"message": None}), "message must be an object"),
        (broken({"timestamp": True}, path=("message",)), "timestamp must be a number"),
        (broken({"from_me": None}, path=("message",)), "from_me must be true or false"),
        (broken({"quote": "3EB0"}, path=("message",)), "quote must be an object or null"),
        (broken({"text": 5}, path=("message", "quote")), "text must be a string"),
        (broken({"extra": []}, path=("message",)), "message extra must be an object"),
        (broken({"name": 5}, path=("message", "sender")), "name must be a string"),
        (broken({"chat": [1]}, path=("message",)), "chat must be an object"),
    ],
)
def test_a_refusal_names_the_field_alone(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        decode_event(body)
    assert str(caught.value) == message


def test_media_content_without_data_or_ref_is_refused() -> None:
    body = json.loads(dump_body(encode_event(EVENTS[1])))
    body["message"]["content"]["ref"] = None
    with pytest.raises(ValueError, match="needs data or a download ref"):
        decode_event(body)


# --- any text survives ----------------------------------------------------------------------

TEXTS = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)


@settings(max_examples=100, deadline=None)
@given(
    body=TEXTS,
    name=st.one_of(st.none(), TEXTS),
    quote=st.one_of(st.none(), st.builds(Quote, wa_id=TEXTS, text=TEXTS)),
    timestamp=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    history=st.booleans(),
)
def test_any_text_message_round_trips(
    body: str, name: str | None, quote: Quote | None, timestamp: float, history: bool
) -> None:
    sender = Party(phone="+5511987654321", name=name)
    event = MessageEvent(
        KEY,
        message=Message(
            chat=sender,
            sender=sender,
            content=Text(body),
            wa_id="3EB0X",
            timestamp=timestamp,
            quote=quote,
        ),
        history=history,
    )
    assert through_json(event) == event


def test_a_chat_is_a_replay_lane() -> None:
    receipt = ReceiptEvent(KEY, chat=MARIA, ids=("3EB0A",), status=AckStatus.READ, timestamp=1)
    contact = ContactUpdateEvent(KEY, party=MARIA)
    failed = SendFailedEvent(KEY, chat=MARIA, message_id="wamid.X", reason="gone")
    lanes = {event_lane(e) for e in (EVENTS[0], EVENTS[7], receipt, contact, failed)}
    assert lanes == {"acme/sales +5511987654321"}  # a message, a reaction, a receipt, a failure
    assert event_lane(EVENTS[10]) == "acme/sales 120363025246125486@g.us"
    assert event_lane(EVENTS[11]) == "acme/sales 123456789012345@lid"
    other = MessageEvent("acme/support", message=EVENTS[0].message)  # type: ignore[attr-defined]
    assert event_lane(other) == "acme/support +5511987654321"
    assert event_lane(EVENTS[-1]) == "acme/sales"  # an engine error
