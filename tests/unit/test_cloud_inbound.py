"""Cloud API webhook bodies → engine events (bridge.whatsapp.cloud.inbound).

The payloads have the shapes of Meta's webhook reference for the ``messages`` field:
one per message type and status, then the malformed ones, then the envelope.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import vcard
from bridge.errors import RequestRefused
from bridge.model import (
    AckStatus,
    AnyContent,
    ContactCard,
    ContactList,
    Location,
    Media,
    MediaKind,
    Party,
    Quote,
    Reaction,
    Text,
    Unsupported,
)
from bridge.whatsapp.cloud.inbound import MAX_ITEMS, Change, events_of, read_changes
from bridge.whatsapp.engine import (
    ContactUpdateEvent,
    EngineErrorEvent,
    EngineEvent,
    MessageEvent,
    ReceiptEvent,
    SendFailedEvent,
)

SESSION = "acme/support"
NUMBER_ID = "106540352242922"
BUSINESS = "15550783881"
CUSTOMER = "16505551234"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
OUR_WAMID = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
MEDIA_ID = "1166846181421424"
FILE_HASH = hashlib.sha256(b"the file").digest()
STAMP = "1749416383"


def body(
    *,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    number_id: str = NUMBER_ID,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": number_id},
    }
    for key, items in (
        ("contacts", contacts),
        ("messages", messages),
        ("statuses", statuses),
        ("errors", errors),
    ):
        if items is not None:
            value[key] = items
    change = {"value": value, "field": "messages"}
    return {"object": "whatsapp_business_account", "entry": [{"id": "1023", "changes": [change]}]}


def message(kind: str, part: Any = None, **envelope: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"from": CUSTOMER, "id": WAMID, "timestamp": STAMP, "type": kind}
    if part is not None:
        out[kind] = part
    out.update(envelope)
    return out


def only_change(payload: dict[str, Any]) -> Change:
    changes = read_changes(payload)
    assert len(changes) == 1
    return changes[0]


def events(payload: dict[str, Any]) -> list[EngineEvent]:
    return events_of(SESSION, only_change(payload))


def messages_of(found: list[EngineEvent]) -> list[MessageEvent]:
    return [e for e in found if isinstance(e, MessageEvent)]


def errors_of(found: list[EngineEvent]) -> list[EngineErrorEvent]:
    return [e for e in found if isinstance(e, EngineErrorEvent)]


def content_of(raw: dict[str, Any]) -> AnyContent:
    found = events(body(messages=[raw]))
    assert errors_of(found) == []
    (event,) = messages_of(found)
    return event.message.content


def media(kind: MediaKind, mimetype: str, **more: Any) -> Media:
    return Media(media_kind=kind, mimetype=mimetype, ref={"cloud_media_id": MEDIA_ID}, **more)


# --- every kind of message ------------------------------------------------------------

HASH_B64 = base64.b64encode(FILE_HASH).decode()

KINDS: list[tuple[str, dict[str, Any], AnyContent]] = [
    ("text", message("text", {"body": "Does it come in *blue*?"}), Text("Does it come in *blue*?")),
    (
        "image with caption",
        message(
            "image",
            {"caption": "this one", "mime_type": "image/jpeg", "sha256": HASH_B64, "id": MEDIA_ID},
        ),
        media(MediaKind.IMAGE, "image/jpeg", caption="this one", sha256=FILE_HASH.hex()),
    ),
    (
        "video, hash in hex",
        message("video", {"mime_type": "video/mp4", "sha256": FILE_HASH.hex(), "id": MEDIA_ID}),
        media(MediaKind.VIDEO, "video/mp4", sha256=FILE_HASH.hex()),
    ),
    (
        "audio",
        message("audio", {"mime_type": "audio/mpeg", "id": MEDIA_ID, "voice": False}),
        media(MediaKind.AUDIO, "audio/mpeg"),
    ),
    (
        "voice note",
        message("audio", {"mime_type": "audio/ogg; codecs=opus", "id": MEDIA_ID, "voice": True}),
        media(MediaKind.VOICE, "audio/ogg; codecs=opus"),
    ),
    (
        "document",
        message(
            "document",
            {
                "caption": "the invoice",
                "filename": "invoice-42.pdf",
                "mime_type": "application/pdf",
                "sha256": "not a hash",
                "id": MEDIA_ID,
            },
        ),
        media(
            MediaKind.DOCUMENT, "application/pdf", filename="invoice-42.pdf", caption="the invoice"
        ),
    ),
    (
        "sticker without a mimetype",
        message("sticker", {"id": MEDIA_ID, "animated": False}),
        media(MediaKind.STICKER, "image/webp"),
    ),
    (
        "location",
        message(
            "location",
            {
                "latitude": -23.5613,
                "longitude": -46.6565,
                "name": "MASP",
                "address": "Av. Paulista",
            },
        ),
        Location(lat=-23.5613, lon=-46.6565, name="MASP", address="Av. Paulista"),
    ),
    (
        "location without a name",
        message("location", {"latitude": 0, "longitude": 180}),
        Location(lat=0.0, lon=180.0),
    ),
    (
        "reaction",
        message("reaction", {"message_id": OUR_WAMID, "emoji": "👍"}),
        Reaction(target=OUR_WAMID, emoji="👍"),
    ),
    (
        "reaction removed",
        message("reaction", {"message_id": OUR_WAMID}),
        Reaction(target=OUR_WAMID, emoji=""),
    ),
    (
        "reply button",
        message(
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Yes, please"}},
        ),
        Text("Yes, please"),
    ),
    (
        "list row",
        message(
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": "row-2", "title": "Tomorrow", "description": "9 to 12"},
            },
        ),
        Text("Tomorrow"),
    ),
    (
        "a flow's answer",
        message("interactive", {"type": "nfm_reply", "nfm_reply": {"response_json": "{}"}}),
        Unsupported("interactive nfm_reply"),
    ),
    (
        "template quick reply",
        message("button", {"payload": "STOP", "text": "Stop promotions"}),
        Text("Stop promotions"),
    ),
    (
        "unsupported, named",
        message(
            "unsupported",
            {"type": "edit"},
            errors=[{"code": 131051, "title": "Message type unknown"}],
        ),
        Unsupported("edit"),
    ),
    (
        "unsupported, unnamed",
        message("unsupported", errors=[{"code": 131051, "title": "Message type unknown"}]),
        Unsupported("unsupported"),
    ),
    ("unknown", message("unknown"), Unsupported("unknown")),
    ("order", message("order", {"catalog_id": "1", "product_items": []}), Unsupported("order")),
    (
        "system",
        message("system", {"body": "changed number", "type": "user_changed_number"}),
        Unsupported("system"),
    ),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in KINDS], ids=[c[0] for c in KINDS])
def test_each_kind_becomes_its_neutral_content(raw: dict[str, Any], expected: AnyContent) -> None:
    assert content_of(raw) == expected


def test_unsupported_kinds_read_as_the_placeholder_every_engine_shows() -> None:
    content = content_of(message("poll"))
    assert isinstance(content, Unsupported)
    assert content.placeholder == "unsupported message: poll"


def test_the_envelope_names_the_customer_the_id_and_the_time() -> None:
    (event,) = messages_of(events(body(messages=[message("text", {"body": "hi"})])))
    assert event.session == SESSION
    got = event.message
    assert got.chat == got.sender == Party(phone="+" + CUSTOMER)
    assert (got.wa_id, got.timestamp, got.from_me, got.quote, got.forwarded) == (
        WAMID,
        1749416383.0,
        False,
        None,
        False,
    )


def test_a_brazilian_number_without_the_ninth_digit_is_the_same_contact() -> None:
    raw = message("text", {"body": "oi"}, **{"from": "551187654321"})
    (event,) = messages_of(events(body(messages=[raw])))
    assert event.message.sender.phone == "+5511987654321"


def test_the_profile_name_names_the_sender_and_is_reported_once_per_sender() -> None:
    contacts = [{"profile": {"name": "Sheena Nelson"}, "wa_id": CUSTOMER}]
    first = message("text", {"body": "one"})
    second = message("text", {"body": "two"}, id=WAMID + "2")
    found = events(body(contacts=contacts, messages=[first, second]))
    sheena = Party(phone="+" + CUSTOMER, name="Sheena Nelson")
    assert [type(e) for e in found] == [ContactUpdateEvent, MessageEvent, MessageEvent]
    assert found[0] == ContactUpdateEvent(SESSION, party=sheena)
    assert [e.message.sender for e in messages_of(found)] == [sheena, sheena]


def test_a_sender_without_a_profile_is_not_reported() -> None:
    contacts = [{"profile": {"name": "Someone Else"}, "wa_id": "442071234567"}]
    found = events(body(contacts=contacts, messages=[message("text", {"body": "hi"})]))
    assert [type(e) for e in found] == [MessageEvent]
    assert messages_of(found)[0].message.sender.name is None


@pytest.mark.parametrize(
    ("context", "quote"),
    [
        ({"from": BUSINESS, "id": OUR_WAMID}, Quote(wa_id=OUR_WAMID)),
        ({"id": OUR_WAMID}, Quote(wa_id=OUR_WAMID)),
        ({"from": CUSTOMER, "id": WAMID + "0"}, Quote(wa_id=WAMID + "0", sender="+" + CUSTOMER)),
        ({"forwarded": True}, None),
    ],
)
def test_context_id_is_the_quote(context: dict[str, Any], quote: Quote | None) -> None:
    raw = message("text", {"body": "this"}, context=context)
    found = events(body(messages=[raw]))
    assert errors_of(found) == []
    assert messages_of(found)[0].message.quote == quote


@pytest.mark.parametrize("flag", ["forwarded", "frequently_forwarded"])
def test_forwarded_messages_are_marked(flag: str) -> None:
    raw = message("text", {"body": "fwd"}, context={flag: True})
    assert messages_of(events(body(messages=[raw])))[0].message.forwarded


def test_shared_contact_becomes_a_vcard_that_reads_back() -> None:
    shared = {
        "name": {"formatted_name": "Ana Souza", "first_name": "Ana", "last_name": "Souza"},
        "org": {"company": "Acme"},
        "phones": [
            {"phone": "+55 11 98765-4321", "wa_id": "5511987654321", "type": "CELL"},
            {"phone": "+55 11 3333-4444", "type": "WORK"},
        ],
        "emails": [{"email": "ana@example.com", "type": "WORK"}],
    }
    content = content_of(message("contacts", [shared]))
    assert isinstance(content, ContactCard)
    assert content.display_name == "Ana Souza"
    card = vcard.read(content.vcard)
    assert (card.name, card.organization, card.emails) == (
        "Ana Souza",
        "Acme",
        ("ana@example.com",),
    )
    assert card.structured_name[:2] == ("Souza", "Ana")
    assert [(p.number, p.label, p.waid) for p in card.phones] == [
        ("+55 11 98765-4321", "Cell", "5511987654321"),
        ("+55 11 3333-4444", "Work", None),
    ]
    assert vcard.describe(content).problem is None


def test_several_shared_contacts_become_a_list() -> None:
    one = {"name": {"first_name": "Ana"}, "phones": [{"wa_id": "5511987654321"}]}
    two = {"phones": [{"phone": "+1 650 555 0000"}]}
    content = content_of(message("contacts", [one, two]))
    assert isinstance(content, ContactList)
    assert content.display_name == "2 contacts"
    assert [c.display_name for c in content.cards] == ["Ana", "+1 650 555 0000"]
    assert [p.number for p in vcard.read(content.cards[0].vcard).phones] == ["+5511987654321"]


@pytest.mark.parametrize(
    ("stamp", "seconds"),
    [("1749416383", 1749416383.0), (1749416383, 1749416383.0), ("12", 0.0), ("soon", 0.0)],
)
def test_timestamps_are_epoch_seconds_or_unknown(stamp: object, seconds: float) -> None:
    raw = message("text", {"body": "hi"}, timestamp=stamp)
    assert messages_of(events(body(messages=[raw])))[0].message.timestamp == seconds


# --- statuses --------------------------------------------------------------------------


def status(state: str, **more: Any) -> dict[str, Any]:
    out = {"id": OUR_WAMID, "status": state, "timestamp": STAMP, "recipient_id": CUSTOMER}
    out.update(more)
    return out


@pytest.mark.parametrize("state", ["sent", "delivered", "read"])
def test_statuses_become_receipts(state: str) -> None:
    pricing = {"billable": True, "pricing_model": "CBP", "category": "service"}
    found = events(body(statuses=[status(state, pricing=pricing)]))
    assert found == [
        ReceiptEvent(
            SESSION,
            chat=Party(phone="+" + CUSTOMER),
            ids=(OUR_WAMID,),
            status=AckStatus(state),
            timestamp=1749416383.0,
        )
    ]


@pytest.mark.parametrize(
    ("errors", "reason", "code"),
    [
        (
            [
                {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "error_data": {
                        "details": "Message failed to send because more than 24 hours have "
                        "passed since the customer last replied to this number."
                    },
                }
            ],
            "Re-engagement message: Message failed to send because more than 24 hours have "
            "passed since the customer last replied to this number.",
            131047,
        ),
        (
            [{"code": 131014, "title": "Request for url https://x/y.jpg failed (404)"}],
            "Request for url https://x/y.jpg failed (404)",
            131014,
        ),
        ([], "no reason given", None),
        ([{"title": "x" * 500}], "x" * 199 + "…", None),
    ],
)
def test_a_failed_status_is_a_send_failure_with_metas_words(
    errors: list[dict[str, Any]], reason: str, code: int | None
) -> None:
    found = events(body(statuses=[status("failed", errors=errors)]))
    assert found == [
        SendFailedEvent(
            SESSION,
            chat=Party(phone="+" + CUSTOMER),
            message_id=OUR_WAMID,
            reason=reason,
            code=code,
        )
    ]


def test_statuses_carry_the_reference_of_their_send() -> None:
    reference = "zb1:41:3EB0AABBCCDDEEFF001122"
    sent, failed = events(
        body(
            statuses=[
                status("sent", biz_opaque_callback_data=reference),
                status("failed", biz_opaque_callback_data=reference, errors=[{"code": 131026}]),
            ]
        )
    )
    assert isinstance(sent, ReceiptEvent) and sent.reference == reference
    assert isinstance(failed, SendFailedEvent) and failed.reference == reference
    (plain,) = events(body(statuses=[status("read", biz_opaque_callback_data="")]))
    assert isinstance(plain, ReceiptEvent) and plain.reference is None


@pytest.mark.parametrize("reference", [41, "r" * 513], ids=["a number", "too long"])
def test_a_status_with_an_unreadable_reference_is_set_aside(reference: object) -> None:
    (found,) = events(body(statuses=[status("sent", biz_opaque_callback_data=reference)]))
    assert isinstance(found, EngineErrorEvent)
    assert "biz_opaque_callback_data" in found.explanation and found.event_id == OUR_WAMID


def test_other_statuses_are_left_out() -> None:
    assert events(body(statuses=[status("deleted"), status("warning")])) == []


def test_errors_of_the_change_are_reported() -> None:
    error = {"code": 131000, "title": "Something went wrong", "error_data": {"details": "boom"}}
    (event,) = events(body(errors=[error]))
    assert event == EngineErrorEvent(
        SESSION, explanation="the Cloud API reports error 131000: Something went wrong: boom"
    )


# --- what cannot be read ------------------------------------------------------------------

UNREADABLE: list[tuple[str, dict[str, Any], str, str]] = [
    ("no id", {"from": CUSTOMER, "type": "text", "text": {"body": "x"}}, "", "id is required"),
    ("id with spaces", message("text", {"body": "x"}, id="a b"), "", "id must be printable"),
    ("no sender", message("text", {"body": "x"}, **{"from": None}), WAMID, "from is required"),
    ("sender not a phone", message("text", {"body": "x"}, **{"from": "abc"}), WAMID, "phone"),
    ("type a number", message("text", {"body": "x"}, type=7), WAMID, "type must be a string"),
]


@pytest.mark.parametrize(
    ("raw", "event_id", "words"),
    [c[1:] for c in UNREADABLE],
    ids=[c[0] for c in UNREADABLE],
)
def test_a_message_without_a_readable_envelope_is_an_error_event(
    raw: dict[str, Any], event_id: str, words: str
) -> None:
    (event,) = events(body(messages=[raw]))
    assert isinstance(event, EngineErrorEvent)
    assert event.event_id == event_id
    assert words in event.explanation


PLACEHOLDERS: list[tuple[str, dict[str, Any], str]] = [
    ("text without body", message("text", {}), "text.body is required"),
    ("text body a number", message("text", {"body": 5}), "text.body must be a string"),
    ("image without id", message("image", {"mime_type": "image/jpeg"}), "image.id is required"),
    ("image not an object", message("image", "x"), "image must be an object"),
    ("bad mimetype", message("video", {"id": MEDIA_ID, "mime_type": "mp4"}), "mime_type"),
    ("latitude too big", message("location", {"latitude": 91, "longitude": 0}), "latitude"),
    ("reaction without target", message("reaction", {"emoji": "👍"}), "message_id is required"),
    ("no contacts", message("contacts", []), "contacts must not be empty"),
    ("interactive without type", message("interactive", {}), "interactive.type is required"),
    ("button without text", message("button", {"payload": "x"}), "button.text is required"),
]


@pytest.mark.parametrize(
    ("raw", "words"), [c[1:] for c in PLACEHOLDERS], ids=[c[0] for c in PLACEHOLDERS]
)
def test_unreadable_content_is_a_placeholder_and_an_error_event(
    raw: dict[str, Any], words: str
) -> None:
    found = events(body(messages=[raw]))
    assert [type(e) for e in found] == [MessageEvent, EngineErrorEvent]
    shown, error = found
    assert isinstance(shown, MessageEvent) and isinstance(error, EngineErrorEvent)
    assert shown.message.content == Unsupported(raw["type"])
    assert error.event_id == WAMID
    assert "placeholder" in error.explanation and words in error.explanation


def test_an_unreadable_quote_leaves_the_message_without_it() -> None:
    raw = message("text", {"body": "hi"}, context={"id": "has spaces"})
    shown, error = events(body(messages=[raw]))
    assert isinstance(shown, MessageEvent) and isinstance(error, EngineErrorEvent)
    assert (shown.message.content, shown.message.quote) == (Text("hi"), None)
    assert "quote" in error.explanation and error.event_id == WAMID


def test_one_bad_message_or_status_does_not_hold_back_the_rest() -> None:
    good = message("text", {"body": "first"})
    bad = {"id": WAMID + "B", "type": "text"}
    later = message("text", {"body": "third"}, id=WAMID + "C")
    statuses = [{"id": OUR_WAMID, "status": "read"}, status("delivered")]
    found = events(body(messages=[good, bad, later], statuses=statuses))
    assert [type(e) for e in found] == [
        MessageEvent,
        EngineErrorEvent,
        MessageEvent,
        EngineErrorEvent,
        ReceiptEvent,
    ]
    assert [e.message.content for e in messages_of(found)] == [Text("first"), Text("third")]
    assert [e.event_id for e in errors_of(found)] == [WAMID + "B", OUR_WAMID]


# --- the envelope -----------------------------------------------------------------------


def test_changes_carry_the_number_they_are_for() -> None:
    payload = body(messages=[message("text", {"body": "a"})])
    second = copy.deepcopy(payload["entry"][0])
    second["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    payload["entry"].append(second)
    changes = read_changes(payload)
    assert [(c.phone_number_id, c.business_phone, len(c.messages)) for c in changes] == [
        (NUMBER_ID, BUSINESS, 1),
        ("999", BUSINESS, 1),
    ]


def test_other_objects_and_fields_are_left_out() -> None:
    assert read_changes({"object": "page", "entry": [{"messaging": []}]}) == []
    other_field = body()
    other_field["entry"][0]["changes"][0]["field"] = "message_template_status_update"
    other_field["entry"][0]["changes"][0]["value"] = {"event": "APPROVED"}
    assert read_changes(other_field) == []


def _without_metadata() -> dict[str, Any]:
    payload = body()
    del payload["entry"][0]["changes"][0]["value"]["metadata"]
    return payload


def _messages_not_a_list() -> dict[str, Any]:
    payload = body()
    payload["entry"][0]["changes"][0]["value"]["messages"] = {"id": WAMID}
    return payload


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ([], "the body must be an object"),
        ({"entry": []}, "object is required"),
        ({"object": "whatsapp_business_account", "entry": {}}, "entry must be a list"),
        ({"object": "whatsapp_business_account", "entry": [3]}, "entry[0] must be an object"),
        (
            {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {}}]}]},
            "entry[0].changes[0].field is required",
        ),
        (_without_metadata(), "value.metadata is required"),
        (body(number_id=""), "metadata.phone_number_id must not be empty"),
        (_messages_not_a_list(), "value.messages must be a list"),
    ],
)
def test_an_envelope_of_the_wrong_shape_is_refused_whole(payload: Any, words: str) -> None:
    with pytest.raises(RequestRefused) as caught:
        read_changes(payload)
    assert caught.value.status == 400
    assert words in caught.value.explanation


def test_more_than_the_limit_of_messages_and_statuses_is_refused() -> None:
    half = MAX_ITEMS // 2 + 1
    payload = body(
        messages=[message("text", {"body": "x"})] * half, statuses=[status("read")] * half
    )
    with pytest.raises(RequestRefused) as caught:
        read_changes(payload)
    assert caught.value.status == 413
    at_limit = body(messages=[message("text", {"body": "x"})] * MAX_ITEMS)
    assert len(read_changes(at_limit)[0].messages) == MAX_ITEMS


# --- any content ------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
KNOWN_KINDS = ("text", "image", "audio", "document", "location", "contacts", "reaction")
KIND_NAMES = st.sampled_from(
    [*KNOWN_KINDS, "interactive", "button", "unsupported", "sticker", "video"]
) | st.text(max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    kind=KIND_NAMES,
    part=JSON,
    envelope=st.dictionaries(st.sampled_from(["id", "from", "context", "timestamp"]), JSON),
    state=st.dictionaries(
        st.sampled_from(["id", "status", "recipient_id", "errors", "biz_opaque_callback_data"]),
        JSON,
    ),
    contact=st.dictionaries(st.sampled_from(["wa_id", "profile"]), JSON),
)
def test_any_message_or_status_gives_events_and_never_raises(
    kind: str,
    part: Any,
    envelope: dict[str, Any],
    state: dict[str, Any],
    contact: dict[str, Any],
) -> None:
    raw = message(kind, part)
    raw.update(envelope)
    found = events(body(messages=[raw], statuses=[status("read", **state)], contacts=[contact]))
    assert found, "every message and status gives at least one event"
    for event in found:
        assert event.session == SESSION
        if isinstance(event, MessageEvent):
            assert event.message.wa_id
