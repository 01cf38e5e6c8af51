"""neonize protobufs → neutral events (bridge.whatsapp.wa_inbound), one case per kind.

Events are built from neonize's own protobuf classes, as neonize hands them over.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass
from hypothesis import given, settings
from hypothesis import strategies as st
from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa
from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as hs
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from bridge.errors import InvalidInput
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
    Text,
    Unsupported,
    content_from_dict,
    content_to_dict,
)
from bridge.whatsapp import wa_inbound as inbound
from bridge.whatsapp import wa_inbound_content as inbound_content
from bridge.whatsapp.engine import (
    ClientOutdatedEvent,
    ConnectedEvent,
    ContactUpdateEvent,
    DisconnectedEvent,
    EngineErrorEvent,
    EngineEvent,
    LoggedOutEvent,
    MessageEvent,
    OfflineSyncCompletedEvent,
    PairSuccessEvent,
    ReceiptEvent,
    StreamReplacedEvent,
    TemporaryBanEvent,
)
from tests.harness.vcards import ANDROID_21, IOS

S = "acme/sales"
CUSTOMER = "5511987654321"  # +55 11 98765-4321
OLD_SPELLING = "551187654321"  # the same number as older WhatsApp accounts spell it
OTHER = "5511912345678"
ME = inbound.Identity(phone_user="5511900000001", lid_user="99000001")
GROUP = "120363041234567890@g.us"


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> neonize.JID:
    return neonize.JID(User=user, Server=server, Device=device, IsEmpty=False)


def event(
    msg: wa.Message,
    *,
    chat: neonize.JID | None = None,
    sender: neonize.JID | None = None,
    sender_alt: neonize.JID | None = None,
    recipient_alt: neonize.JID | None = None,
    from_me: bool = False,
    ident: str = "3EB0AAA",
    push: str = "Maria",
    timestamp: int = 1_700_000_000_000,
) -> neonize.Message:
    chat = chat if chat is not None else jid(CUSTOMER)
    sender = sender if sender is not None else chat
    return neonize.Message(
        Info=neonize.MessageInfo(
            MessageSource=neonize.MessageSource(
                Chat=chat,
                Sender=sender,
                SenderAlt=sender_alt or neonize.JID(IsEmpty=True),
                RecipientAlt=recipient_alt or neonize.JID(IsEmpty=True),
                IsFromMe=from_me,
                IsGroup=chat.Server == "g.us",
            ),
            ID=ident,
            Pushname=push,
            Timestamp=timestamp,
        ),
        Message=msg,
    )


def only_message(events: list[EngineEvent]) -> Message:
    messages = [e for e in events if isinstance(e, MessageEvent)]
    assert len(messages) == 1, events
    assert not [e for e in events if isinstance(e, EngineErrorEvent)], events
    return messages[0].message


def content_of(msg: wa.Message, **kw: Any) -> Any:
    return only_message(inbound.translate_message(S, event(msg, **kw), me=ME)).content


MEDIA = {
    "URL": "https://mmg.whatsapp.net/v/t62.7118-24/f.enc?ccb=11-4",
    "directPath": "/v/t62.7118-24/f.enc?ccb=11-4",
    "mediaKey": b"k" * 32,
    "fileEncSHA256": b"e" * 32,
    "fileSHA256": b"\x01" * 32,
    "fileLength": 2048,
}


def ref(message_type: str, mimetype: str) -> dict[str, Any]:
    return {
        "message_type": message_type,
        "direct_path": MEDIA["directPath"],
        "url": MEDIA["URL"],
        "media_key": base64.b64encode(b"k" * 32).decode(),
        "file_enc_sha256": base64.b64encode(b"e" * 32).decode(),
        "file_sha256": base64.b64encode(b"\x01" * 32).decode(),
        "file_length": 2048,
        "mimetype": mimetype,
    }


VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:João\nTEL;waid=5511912345678:+55 11 91234-5678\nEND:VCARD"
VCARD_2 = "BEGIN:VCARD\nVERSION:3.0\nFN:Ana\nTEL:+55 21 99999-0000\nEND:VCARD"

# --- one case per message kind --------------------------------------------------------

CONTENT_CASES: list[tuple[str, wa.Message, Any]] = [
    ("text", wa.Message(conversation="olá *mundo*"), Text(body="olá *mundo*")),
    (
        "image",
        wa.Message(
            imageMessage=wa.ImageMessage(
                mimetype="image/jpeg", caption="the receipt", width=800, height=600, **MEDIA
            )
        ),
        Media(
            media_kind=MediaKind.IMAGE,
            mimetype="image/jpeg",
            ref=ref("imageMessage", "image/jpeg"),
            caption="the receipt",
            size=2048,
            sha256="01" * 32,
            width=800,
            height=600,
        ),
    ),
    (
        "video gif",
        wa.Message(
            videoMessage=wa.VideoMessage(mimetype="video/mp4", gifPlayback=True, seconds=3, **MEDIA)
        ),
        Media(
            media_kind=MediaKind.VIDEO,
            mimetype="video/mp4",
            ref=ref("videoMessage", "video/mp4"),
            size=2048,
            sha256="01" * 32,
            duration=3,
            gif=True,
        ),
    ),
    (
        "audio",
        wa.Message(audioMessage=wa.AudioMessage(mimetype="audio/mpeg", seconds=42, **MEDIA)),
        Media(
            media_kind=MediaKind.AUDIO,
            mimetype="audio/mpeg",
            ref=ref("audioMessage", "audio/mpeg"),
            size=2048,
            sha256="01" * 32,
            duration=42,
        ),
    ),
    (
        "ptt voice",
        wa.Message(
            audioMessage=wa.AudioMessage(
                mimetype="audio/ogg; codecs=opus", PTT=True, seconds=7, **MEDIA
            )
        ),
        Media(
            media_kind=MediaKind.VOICE,
            mimetype="audio/ogg; codecs=opus",
            ref=ref("audioMessage", "audio/ogg; codecs=opus"),
            size=2048,
            sha256="01" * 32,
            duration=7,
        ),
    ),
    (
        "document",
        wa.Message(
            documentMessage=wa.DocumentMessage(
                mimetype="application/pdf", fileName="boleto.pdf", caption="segue", **MEDIA
            )
        ),
        Media(
            media_kind=MediaKind.DOCUMENT,
            mimetype="application/pdf",
            ref=ref("documentMessage", "application/pdf"),
            filename="boleto.pdf",
            caption="segue",
            size=2048,
            sha256="01" * 32,
        ),
    ),
    (
        "sticker",
        wa.Message(
            stickerMessage=wa.StickerMessage(mimetype="image/webp", width=512, height=512, **MEDIA)
        ),
        Media(
            media_kind=MediaKind.STICKER,
            mimetype="image/webp",
            ref=ref("stickerMessage", "image/webp"),
            size=2048,
            sha256="01" * 32,
            width=512,
            height=512,
        ),
    ),
    (
        "location",
        wa.Message(
            locationMessage=wa.LocationMessage(
                degreesLatitude=-23.5505, degreesLongitude=-46.6333, name="Loja", address="Av. X"
            )
        ),
        Location(lat=-23.5505, lon=-46.6333, name="Loja", address="Av. X"),
    ),
    (
        "live location",
        wa.Message(
            liveLocationMessage=wa.LiveLocationMessage(
                degreesLatitude=-22.9, degreesLongitude=-43.2, caption="a caminho"
            )
        ),
        Location(lat=-22.9, lon=-43.2, name="a caminho", live=True),
    ),
    (
        "contact",
        wa.Message(contactMessage=wa.ContactMessage(displayName="João", vcard=VCARD)),
        ContactCard(display_name="João", vcard=VCARD),
    ),
    (
        "contacts array",
        wa.Message(
            contactsArrayMessage=wa.ContactsArrayMessage(
                displayName="2 contatos",
                contacts=[
                    wa.ContactMessage(displayName="João", vcard=VCARD),
                    wa.ContactMessage(vcard=VCARD_2),
                ],
            )
        ),
        ContactList(
            display_name="2 contatos",
            cards=(
                ContactCard(display_name="João", vcard=VCARD),
                ContactCard(display_name="Ana", vcard=VCARD_2),
            ),
        ),
    ),
    (
        "contact without a name: its vCard's, grouped as iOS writes it",
        wa.Message(contactMessage=wa.ContactMessage(vcard=IOS)),
        ContactCard(display_name="Maria Souza", vcard=IOS),
    ),
    (
        "contact without a name: its vCard's, in quoted-printable (vCard 2.1)",
        wa.Message(contactMessage=wa.ContactMessage(vcard=ANDROID_21)),
        ContactCard(display_name="João Conceição da Silva", vcard=ANDROID_21),
    ),
    (
        "contact without a name, its vCard unreadable",
        wa.Message(contactMessage=wa.ContactMessage(vcard="BEGIN:VCARD\nFN:Ana")),
        ContactCard(display_name="contact", vcard="BEGIN:VCARD\nFN:Ana"),
    ),
    (
        "reaction",
        wa.Message(
            reactionMessage=wa.ReactionMessage(
                key=MessageKey(remoteJID=f"{CUSTOMER}@s.whatsapp.net", fromMe=True, ID="3EB0OURS"),
                text="👍",
            )
        ),
        Reaction(target="3EB0OURS", emoji="👍"),
    ),
    (
        "edit",
        wa.Message(
            protocolMessage=wa.ProtocolMessage(
                key=MessageKey(ID="3EB0OLD"),
                type=wa.ProtocolMessage.MESSAGE_EDIT,
                editedMessage=wa.Message(conversation="corrigido"),
            )
        ),
        Edit(target="3EB0OLD", new=Text(body="corrigido")),
    ),
    (
        "edit in its editedMessage wrapper",
        wa.Message(
            editedMessage=wa.FutureProofMessage(
                message=wa.Message(
                    protocolMessage=wa.ProtocolMessage(
                        key=MessageKey(ID="3EB0OLD"),
                        type=wa.ProtocolMessage.MESSAGE_EDIT,
                        editedMessage=wa.Message(
                            extendedTextMessage=wa.ExtendedTextMessage(text="novo")
                        ),
                    )
                )
            )
        ),
        Edit(target="3EB0OLD", new=Text(body="novo")),
    ),
    (
        "revoke",
        wa.Message(
            protocolMessage=wa.ProtocolMessage(
                key=MessageKey(ID="3EB0GONE"), type=wa.ProtocolMessage.REVOKE
            )
        ),
        Deletion(target="3EB0GONE"),
    ),
    (
        "ephemeral unwrapped",
        wa.Message(ephemeralMessage=wa.FutureProofMessage(message=wa.Message(conversation="some"))),
        Text(body="some"),
    ),
    (
        "view once v2 unwrapped",
        wa.Message(
            viewOnceMessageV2=wa.FutureProofMessage(
                message=wa.Message(
                    imageMessage=wa.ImageMessage(mimetype="image/jpeg", viewOnce=True, **MEDIA)
                )
            )
        ),
        Media(
            media_kind=MediaKind.IMAGE,
            mimetype="image/jpeg",
            ref=ref("imageMessage", "image/jpeg"),
            size=2048,
            sha256="01" * 32,
        ),
    ),
    (
        "document with caption unwrapped",
        wa.Message(
            documentWithCaptionMessage=wa.FutureProofMessage(
                message=wa.Message(
                    documentMessage=wa.DocumentMessage(
                        mimetype="text/plain", title="notes.txt", caption="leia", **MEDIA
                    )
                )
            )
        ),
        Media(
            media_kind=MediaKind.DOCUMENT,
            mimetype="text/plain",
            ref=ref("documentMessage", "text/plain"),
            filename="notes.txt",
            caption="leia",
            size=2048,
            sha256="01" * 32,
        ),
    ),
    (
        "device sent message unwrapped",
        wa.Message(
            deviceSentMessage=wa.DeviceSentMessage(
                destinationJID=f"{CUSTOMER}@s.whatsapp.net",
                message=wa.Message(conversation="from my phone"),
            )
        ),
        Text(body="from my phone"),
    ),
    (
        "unsupported poll",
        wa.Message(pollCreationMessage=wa.PollCreationMessage(name="Pizza?")),
        Unsupported(type_name="poll"),
    ),
    (
        "disappearing messages switched on",
        wa.Message(
            protocolMessage=wa.ProtocolMessage(
                type=wa.ProtocolMessage.EPHEMERAL_SETTING, ephemeralExpiration=86400
            )
        ),
        Unsupported(type_name="protocolMessage"),
    ),
]


@pytest.mark.parametrize(
    ("msg", "expected"), [c[1:] for c in CONTENT_CASES], ids=[c[0] for c in CONTENT_CASES]
)
def test_message_kinds(msg: wa.Message, expected: Any) -> None:
    assert content_of(msg) == expected


def test_envelope_of_a_direct_message() -> None:
    [update, message_event] = inbound.translate_message(S, event(wa.Message(conversation="oi")))
    assert isinstance(message_event, MessageEvent)
    message = message_event.message
    customer = Party(phone="+5511987654321", name="Maria")
    assert message == Message(
        chat=customer,
        sender=customer,
        content=Text(body="oi"),
        wa_id="3EB0AAA",
        timestamp=1_700_000_000.0,
        extra={
            "chat_jid": f"{CUSTOMER}@s.whatsapp.net",
            "sender_jid": f"{CUSTOMER}@s.whatsapp.net",
        },
    )
    assert update == ContactUpdateEvent(session=S, party=customer)
    assert not message_event.history


def test_old_brazilian_spelling_normalises_to_the_ninth_digit() -> None:
    message = only_message(
        inbound.translate_message(S, event(wa.Message(conversation="oi"), chat=jid(OLD_SPELLING)))
    )
    assert message.sender.phone == "+5511987654321"


def test_extended_text_with_quote_and_mentions() -> None:
    msg = wa.Message(
        extendedTextMessage=wa.ExtendedTextMessage(
            text="@5511912345678 veja acima",
            contextInfo=wa.ContextInfo(
                stanzaID="3EB0QUOTED",
                participant=f"{OTHER}@s.whatsapp.net",
                quotedMessage=wa.Message(conversation="mensagem antiga"),
                mentionedJID=[f"{OTHER}@s.whatsapp.net", "12345@lid"],
                isForwarded=True,
            ),
        )
    )
    message = only_message(inbound.translate_message(S, event(msg), me=ME))
    assert message.content == Text(body="@5511912345678 veja acima", mentions=("+5511912345678",))
    assert message.quote == Quote(
        wa_id="3EB0QUOTED", sender="+5511912345678", text="mensagem antiga"
    )
    assert message.forwarded


@pytest.mark.parametrize("participant", [f"{ME.phone_user}@s.whatsapp.net", f"{ME.lid_user}@lid"])
def test_a_quote_of_our_own_message_has_no_sender(participant: str) -> None:
    msg = wa.Message(
        extendedTextMessage=wa.ExtendedTextMessage(
            text="this one",
            contextInfo=wa.ContextInfo(
                stanzaID="3EB0OURS",
                participant=participant,
                quotedMessage=wa.Message(imageMessage=wa.ImageMessage(caption="our photo")),
            ),
        )
    )
    message = only_message(inbound.translate_message(S, event(msg), me=ME))
    assert message.quote == Quote(wa_id="3EB0OURS", sender=None, text="our photo")


def test_media_reply_carries_its_quote() -> None:
    msg = wa.Message(
        imageMessage=wa.ImageMessage(
            mimetype="image/png",
            contextInfo=wa.ContextInfo(stanzaID="3EB0Q", participant=f"{OTHER}@s.whatsapp.net"),
            **MEDIA,
        )
    )
    message = only_message(inbound.translate_message(S, event(msg), me=ME))
    assert message.quote == Quote(wa_id="3EB0Q", sender="+5511912345678")


def test_from_me() -> None:
    ev = event(
        wa.Message(conversation="answered from the phone"),
        chat=jid(CUSTOMER),
        sender=jid(ME.phone_user or "", device=0),
        from_me=True,
        push="Loja",
    )
    events = inbound.translate_message(S, ev, me=ME)
    message = only_message(events)
    assert message.from_me
    assert message.chat == Party(phone="+5511987654321")
    assert message.sender.phone == "+5511900000001"
    assert not [e for e in events if isinstance(e, ContactUpdateEvent)]


def test_group_with_sender() -> None:
    ev = event(
        wa.Message(conversation="bom dia, grupo"),
        chat=jid("120363041234567890", "g.us"),
        sender=jid(CUSTOMER, device=3),
    )
    message = only_message(inbound.translate_message(S, ev))
    assert message.chat == Party(group=GROUP)
    assert message.chat.address == GROUP
    assert message.sender == Party(phone="+5511987654321", name="Maria")


def test_lid_sender_with_its_phone() -> None:
    ev = event(
        wa.Message(conversation="oi"),
        chat=jid("214748364801234", "lid"),
        sender_alt=jid(CUSTOMER),
    )
    events = inbound.translate_message(S, ev)
    message = only_message(events)
    both = Party(phone="+5511987654321", lid="214748364801234", name="Maria")
    assert message.sender == both
    assert message.chat == both
    assert message.chat.address == "+5511987654321"
    assert ContactUpdateEvent(session=S, party=both) in events


def test_lid_sender_without_phone() -> None:
    ev = event(wa.Message(conversation="oi"), chat=jid("214748364801234", "lid"), push="")
    message = only_message(inbound.translate_message(S, ev))
    assert message.sender == Party(lid="214748364801234")
    assert message.chat.address == "214748364801234@lid"


def test_lid_sender_in_a_group() -> None:
    ev = event(
        wa.Message(conversation="oi"),
        chat=jid("120363041234567890", "g.us"),
        sender=jid("214748364801234", "lid", device=2),
        sender_alt=jid(CUSTOMER),
    )
    message = only_message(inbound.translate_message(S, ev))
    assert message.sender == Party(phone="+5511987654321", lid="214748364801234", name="Maria")
    assert message.chat == Party(group=GROUP)


def test_malformed_media_becomes_a_placeholder_and_an_error() -> None:
    no_key = {k: v for k, v in MEDIA.items() if k != "mediaKey"}
    msg = wa.Message(imageMessage=wa.ImageMessage(mimetype="image/jpeg", **no_key))
    events = inbound.translate_message(S, event(msg))
    [message] = [e.message for e in events if isinstance(e, MessageEvent)]
    [error] = [e for e in events if isinstance(e, EngineErrorEvent)]
    assert message.content == Unsupported(type_name="image")
    assert "media key" in error.explanation and "3EB0AAA" in error.explanation


def test_out_of_range_location_is_a_placeholder() -> None:
    msg = wa.Message(locationMessage=wa.LocationMessage(degreesLatitude=123.0, degreesLongitude=0))
    events = inbound.translate_message(S, event(msg))
    assert [type(e) for e in events] == [ContactUpdateEvent, MessageEvent, EngineErrorEvent]


def test_unreadable_envelope_is_only_an_error() -> None:
    ev = neonize.Message(
        Info=neonize.MessageInfo(ID="3EB0X", MessageSource=neonize.MessageSource()),
        Message=wa.Message(conversation="lost"),
    )
    [error] = inbound.translate_message(S, ev)
    assert isinstance(error, EngineErrorEvent)
    assert "3EB0X" in error.explanation


def test_empty_message_is_a_placeholder() -> None:
    events = inbound.translate_message(S, event(wa.Message()))
    assert only_message_or_placeholder(events).content == Unsupported(type_name="empty")


def only_message_or_placeholder(events: list[EngineEvent]) -> Message:
    [message] = [e.message for e in events if isinstance(e, MessageEvent)]
    return message


def test_not_yet_available_message_is_skipped() -> None:
    ev = event(wa.Message())
    ev.UnavailableRequestID = "req-1"
    assert inbound.translate_message(S, ev) == []


@pytest.mark.parametrize(
    "chat",
    [jid("status", "broadcast"), jid("120363000000000000", "newsletter")],
    ids=["status", "newsletter"],
)
def test_statuses_and_newsletters_are_not_bridged(chat: neonize.JID) -> None:
    ev = event(wa.Message(conversation="my status"), chat=chat, sender=jid(CUSTOMER))
    assert inbound.translate_message(S, ev) == []


@pytest.mark.parametrize(
    "kind",
    [
        wa.ProtocolMessage.APP_STATE_SYNC_KEY_SHARE,
        wa.ProtocolMessage.HISTORY_SYNC_NOTIFICATION,
        wa.ProtocolMessage.PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE,
    ],
)
def test_device_plumbing_is_not_bridged(kind: int) -> None:
    msg = wa.Message(protocolMessage=wa.ProtocolMessage(type=kind))  # type: ignore[arg-type]
    assert (
        inbound.translate_message(S, event(msg, from_me=True, sender=jid(ME.phone_user or "")))
        == []
    )


def test_sender_key_distribution_alone_is_not_bridged() -> None:
    msg = wa.Message(senderKeyDistributionMessage=wa.SenderKeyDistributionMessage(groupID=GROUP))
    assert inbound.translate_message(S, event(msg)) == []


@pytest.mark.parametrize(
    ("raw", "seconds"), [(1_700_000_000_123, 1_700_000_000.123), (1_700_000_000, 1_700_000_000.0)]
)
def test_timestamps_in_milliseconds_or_seconds(raw: int, seconds: float) -> None:
    message = only_message(
        inbound.translate_message(S, event(wa.Message(conversation="t"), timestamp=raw))
    )
    assert math.isclose(message.timestamp, seconds)


# --- media references -----------------------------------------------------------------


def test_media_ref_survives_json_and_rebuilds_the_download_message() -> None:
    media = content_of(wa.Message(videoMessage=wa.VideoMessage(mimetype="video/mp4", **MEDIA)))
    restored = content_from_dict(json.loads(json.dumps(content_to_dict(media))))
    assert restored == media
    assert isinstance(restored, Media) and restored.ref is not None
    rebuilt = inbound_content.download_message(restored.ref)
    assert rebuilt.videoMessage.directPath == MEDIA["directPath"]
    assert rebuilt.videoMessage.mediaKey == MEDIA["mediaKey"]
    assert rebuilt.videoMessage.fileEncSHA256 == MEDIA["fileEncSHA256"]
    assert rebuilt.videoMessage.fileSHA256 == MEDIA["fileSHA256"]
    assert rebuilt.videoMessage.fileLength == 2048
    assert rebuilt.videoMessage.mimetype == "video/mp4"


def test_video_note_downloads_as_a_video() -> None:
    media = content_of(wa.Message(ptvMessage=wa.VideoMessage(mimetype="video/mp4", **MEDIA)))
    assert media.media_kind is MediaKind.VIDEO
    assert inbound_content.download_message(media.ref).HasField("videoMessage")


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"message_type": "pollCreationMessage"},
        {"message_type": "imageMessage", "media_key": "%%%"},
    ],
)
def test_foreign_refs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        inbound_content.download_message(bad)


# --- receipts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (neonize.Receipt.DELIVERED, AckStatus.DELIVERED),
        (neonize.Receipt.READ, AckStatus.READ),
        (neonize.Receipt.PLAYED, AckStatus.READ),
        (neonize.Receipt.SENDER, None),
        (neonize.Receipt.READ_SELF, None),
        (neonize.Receipt.RETRY, None),
    ],
)
def test_receipts(kind: int, status: AckStatus | None) -> None:
    ev = neonize.Receipt(
        MessageSource=neonize.MessageSource(Chat=jid(CUSTOMER), Sender=jid(CUSTOMER, device=1)),
        MessageIDs=["3EB0A", "3EB0B"],
        Timestamp=1_700_000_100,
        Type=kind,  # type: ignore[arg-type]
    )
    expected = (
        ReceiptEvent(
            session=S,
            chat=Party(phone="+5511987654321"),
            ids=("3EB0A", "3EB0B"),
            status=status,
            timestamp=1_700_000_100.0,
        )
        if status
        else None
    )
    assert inbound.translate_receipt(S, ev) == expected


# --- history sync ---------------------------------------------------------------------


def test_history_sync_surfaces_messages_and_contacts() -> None:
    chat = f"{CUSTOMER}@s.whatsapp.net"
    data = hs.HistorySync(
        syncType=hs.HistorySync.RECENT,
        conversations=[
            hs.Conversation(
                ID=chat,
                messages=[
                    hs.HistorySyncMsg(
                        message=WebMessageInfo(
                            key=MessageKey(remoteJID=chat, fromMe=False, ID="3EB0H1"),
                            message=wa.Message(conversation="old question"),
                            messageTimestamp=1_690_000_000,
                            pushName="Maria",
                        )
                    ),
                    hs.HistorySyncMsg(
                        message=WebMessageInfo(
                            key=MessageKey(remoteJID=chat, fromMe=True, ID="3EB0H2"),
                            message=wa.Message(conversation="old answer"),
                            messageTimestamp=1_690_000_060,
                        )
                    ),
                    hs.HistorySyncMsg(
                        message=WebMessageInfo(key=MessageKey(remoteJID=chat, ID="STUB"))
                    ),
                ],
            ),
            hs.Conversation(
                ID=GROUP,
                messages=[
                    hs.HistorySyncMsg(
                        message=WebMessageInfo(
                            key=MessageKey(remoteJID=GROUP, ID="3EB0G"),
                            participant=f"{OTHER}@s.whatsapp.net",
                            message=wa.Message(conversation="group history"),
                            messageTimestamp=1_690_000_100,
                        )
                    )
                ],
            ),
        ],
        pushnames=[hs.Pushname(ID=f"{OTHER}@s.whatsapp.net", pushname="João")],
        phoneNumberToLidMappings=[
            hs.PhoneNumberToLIDMapping(pnJID=chat, lidJID="214748364801234@lid")
        ],
    )
    events = inbound.translate_history(S, neonize.HistorySync(Data=data), me=ME)
    messages = [e for e in events if isinstance(e, MessageEvent)]
    assert all(e.history for e in messages)
    assert [(m.message.wa_id, m.message.from_me, m.message.timestamp) for m in messages] == [
        ("3EB0H1", False, 1_690_000_000.0),
        ("3EB0H2", True, 1_690_000_060.0),
        ("3EB0G", False, 1_690_000_100.0),
    ]
    assert messages[1].message.sender.phone == "+5511900000001"
    assert messages[2].message.chat == Party(group=GROUP)
    assert messages[2].message.sender.phone == "+5511912345678"
    updates = [e.party for e in events if isinstance(e, ContactUpdateEvent)]
    assert Party(phone="+5511987654321", lid="214748364801234") in updates
    assert Party(phone="+5511912345678", name="João") in updates


def test_history_skips_our_own_messages_when_we_do_not_know_who_we_are() -> None:
    chat = f"{CUSTOMER}@s.whatsapp.net"
    web = WebMessageInfo(
        key=MessageKey(remoteJID=chat, fromMe=True, ID="3EB0H2"),
        message=wa.Message(conversation="old answer"),
    )
    data = hs.HistorySync(
        conversations=[hs.Conversation(ID=chat, messages=[hs.HistorySyncMsg(message=web)])]
    )
    assert inbound.translate_history(S, neonize.HistorySync(Data=data)) == []


# --- connection events ----------------------------------------------------------------

CONNECTION_CASES: list[tuple[str, Any, EngineEvent | None]] = [
    (
        "connected",
        neonize.Connected(status=True),
        ConnectedEvent(session=S, phone="+5511900000001"),
    ),
    (
        "disconnected",
        neonize.Disconnected(status=True),
        DisconnectedEvent(session=S, reason="the connection to WhatsApp was lost", transient=True),
    ),
    (
        "logged out",
        neonize.LoggedOut(OnConnect=False, Reason=neonize.LOGGED_OUT),
        LoggedOutEvent(session=S, reason="the device was unlinked from the phone"),
    ),
    (
        "logged out, main device gone",
        neonize.LoggedOut(OnConnect=True, Reason=neonize.MAIN_DEVICE_GONE),
        LoggedOutEvent(
            session=S, reason="the phone's WhatsApp account is gone (re-registered or deleted)"
        ),
    ),
    (
        "temporary ban",
        neonize.TemporaryBan(Code=neonize.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=3600),
        TemporaryBanEvent(session=S, code="SENT_TOO_MANY_SAME_MESSAGE", expires_in=3600.0),
    ),
    (
        "temporary ban without expiry",
        neonize.TemporaryBan(Code=neonize.TemporaryBan.BLOCKED_BY_USERS),
        TemporaryBanEvent(session=S, code="BLOCKED_BY_USERS", expires_in=None),
    ),
    ("client outdated", neonize.ClientOutdated(), ClientOutdatedEvent(session=S)),
    ("stream replaced", neonize.StreamReplaced(), StreamReplacedEvent(session=S)),
    (
        "connect failure",
        neonize.ConnectFailure(Reason=neonize.SERVICE_UNAVAILABLE, Message="try later"),
        DisconnectedEvent(
            session=S, reason="WhatsApp refused the connection (SERVICE_UNAVAILABLE: try later)"
        ),
    ),
    # whatsmeow reports these failures as LoggedOut / TemporaryBan / ClientOutdated too
    ("connect failure, logged out", neonize.ConnectFailure(Reason=neonize.LOGGED_OUT), None),
    ("connect failure, banned", neonize.ConnectFailure(Reason=neonize.TEMP_BANNED), None),
    (
        "offline sync completed",
        neonize.OfflineSyncCompleted(Count=12),
        OfflineSyncCompletedEvent(session=S, count=12),
    ),
    (
        "pair success",
        neonize.PairStatus(ID=jid("5511900000001", device=12), Status=neonize.PairStatus.SUCCESS),
        PairSuccessEvent(session=S, phone="+5511900000001"),
    ),
    (
        "pair error",
        neonize.PairStatus(Status=neonize.PairStatus.ERROR, Error="bad signature"),
        EngineErrorEvent(session=S, explanation="pairing with the phone failed: bad signature"),
    ),
    ("keepalive timeout", neonize.KeepAliveTimeout(ErrorCount=2), None),
]


@pytest.mark.parametrize(
    ("ev", "expected"), [c[1:] for c in CONNECTION_CASES], ids=[c[0] for c in CONNECTION_CASES]
)
def test_connection_events(ev: Any, expected: EngineEvent | None) -> None:
    assert inbound.translate_connection(S, ev, me=ME) == expected


# --- odd fields: checked by type and range -------------------------------------------

HUGE = "9" * 10_000


def translated(msg: wa.Message, **kw: Any) -> list[EngineEvent]:
    return inbound.translate_message(S, event(msg, **kw), me=ME)


def only_error(events: list[EngineEvent]) -> str:
    assert len(events) == 1 and isinstance(events[0], EngineErrorEvent), events
    return events[0].explanation


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"ident": ""}, "the message has no id"),
        ({"ident": "3EB0" + "A" * 200}, "the message id has 204 characters"),
        ({"chat": jid(HUGE)}, "the chat is not a WhatsApp JID (too long)"),
        ({"chat": jid(CUSTOMER, "x" * 100)}, "the chat is not a WhatsApp JID (too long)"),
        ({"sender": jid(HUGE)}, "the sender is not a WhatsApp JID (too long)"),
        ({"sender_alt": jid(HUGE, "lid")}, "the sender is not a WhatsApp JID (too long)"),
        ({"chat": jid("", "")}, "the message names no chat"),
        ({"chat": jid("abc")}, "not a phone number"),
    ],
)
def test_an_unusable_envelope_is_an_error_event(kw: dict[str, Any], reason: str) -> None:
    explanation = only_error(translated(wa.Message(conversation="oi"), **kw))
    assert reason in explanation
    assert len(explanation) < 400


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1_700_000_000_000, 1_700_000_000.0),  # milliseconds
        (1_700_000_000, 1_700_000_000.0),  # seconds
        (0, 0.0),  # missing: the relay stamps it on arrival
        (-5, 0.0),
        (1, 0.0),  # 1970
        (2**63 - 1, 0.0),
        (5_000_000_000, 0.0),  # year 2128
    ],
)
def test_a_missing_or_implausible_timestamp_is_unknown(timestamp: int, expected: float) -> None:
    message = only_message(translated(wa.Message(conversation="oi"), timestamp=timestamp))
    assert message.timestamp == expected


def test_a_huge_push_name_is_cut() -> None:
    events = translated(wa.Message(conversation="oi"), push="M" * 100_000)
    message = only_message(events)
    assert message.sender.name is not None and len(message.sender.name) == 256
    [update] = [e for e in events if isinstance(e, ContactUpdateEvent)]
    assert update.party.name == message.sender.name


CONTACT_300 = wa.ContactsArrayMessage(
    contacts=[wa.ContactMessage(displayName="A", vcard=VCARD)] * 300
)
ODD_PARTS: list[tuple[str, wa.Message, str, str]] = [
    ("huge text", wa.Message(conversation="x" * 65_537), "text", "its body has 65537"),
    (
        "huge extended text",
        wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text="x" * 70_000)),
        "text",
        "its body has 70000",
    ),
    (
        "huge caption",
        wa.Message(imageMessage=wa.ImageMessage(caption="c" * 70_000, **MEDIA)),
        "image",
        "its caption has 70000",
    ),
    (
        "huge file name",
        wa.Message(documentMessage=wa.DocumentMessage(fileName="f" * 5_000, **MEDIA)),
        "document",
        "its filename has 5000",
    ),
    (
        "huge mimetype",
        wa.Message(audioMessage=wa.AudioMessage(mimetype="a/" + "b" * 5_000, **MEDIA)),
        "audio",
        "its mimetype has 5002",
    ),
    (
        "huge download path",
        wa.Message(stickerMessage=wa.StickerMessage(**{**MEDIA, "directPath": "/" * 5_000})),
        "sticker",
        "download path or key is too long",
    ),
    (
        "huge vcard",
        wa.Message(contactMessage=wa.ContactMessage(displayName="J", vcard="V" * 300_000)),
        "contact",
        "its vcard has 300000",
    ),
    ("300 contacts", wa.Message(contactsArrayMessage=CONTACT_300), "contactsArray", "300 contacts"),
    (
        "huge location name",
        wa.Message(locationMessage=wa.LocationMessage(degreesLatitude=1, name="n" * 5_000)),
        "location",
        "its name has 5000",
    ),
    (
        "infinite latitude",
        wa.Message(locationMessage=wa.LocationMessage(degreesLatitude=math.inf)),
        "location",
        "location out of range",
    ),
    (
        "reaction to a huge id",
        wa.Message(reactionMessage=wa.ReactionMessage(key=MessageKey(ID="R" * 200), text="👍")),
        "reaction",
        "a message id of 200 characters",
    ),
    (
        "revoke of a huge id",
        wa.Message(
            protocolMessage=wa.ProtocolMessage(
                type=wa.ProtocolMessage.REVOKE, key=MessageKey(ID="R" * 129)
            )
        ),
        "protocol",
        "a message id of 129 characters",
    ),
]


@pytest.mark.parametrize(
    ("msg", "placeholder", "problem"), [c[1:] for c in ODD_PARTS], ids=[c[0] for c in ODD_PARTS]
)
def test_an_oversized_or_impossible_part_is_a_placeholder_and_an_error(
    msg: wa.Message, placeholder: str, problem: str
) -> None:
    events = translated(msg)
    [message] = [e.message for e in events if isinstance(e, MessageEvent)]
    assert message.content == Unsupported(type_name=placeholder)
    [error] = [e for e in events if isinstance(e, EngineErrorEvent)]
    assert problem in error.explanation
    assert "is shown as a placeholder" in error.explanation


def test_a_huge_file_size_is_capped_to_what_json_keeps_exactly() -> None:
    media = content_of(
        wa.Message(imageMessage=wa.ImageMessage(**{**MEDIA, "fileLength": 2**64 - 1}))
    )
    assert media.size == 2**53 - 1


def test_mentions_are_read_up_to_a_limit() -> None:
    mentions = [f"55119{n:08d}@s.whatsapp.net" for n in range(5_000)]
    text = wa.ExtendedTextMessage(text="oi", contextInfo=wa.ContextInfo(mentionedJID=mentions))
    content = content_of(wa.Message(extendedTextMessage=text))
    assert len(content.mentions) == 256


def test_an_oversized_quote_id_drops_the_quote_and_a_long_quoted_text_is_cut() -> None:
    quoted = wa.Message(conversation="q" * 5_000)
    for stanza, expected in (("S" * 129, None), ("3EB0Q", "q" * 1_023 + "…")):
        context = wa.ContextInfo(stanzaID=stanza, quotedMessage=quoted, participant=HUGE + "@x")
        msg = wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text="oi", contextInfo=context))
        message = only_message(translated(msg))
        if expected is None:
            assert message.quote is None
        else:
            assert message.quote == Quote(wa_id="3EB0Q", sender=None, text=expected)


def test_an_odd_receipt_keeps_only_usable_ids() -> None:
    ids = ["", "I" * 200, "3EB0A", *(f"3EB0{n}" for n in range(2_000))]
    ev = neonize.Receipt(
        MessageSource=neonize.MessageSource(Chat=jid(CUSTOMER), Sender=jid(CUSTOMER)),
        MessageIDs=ids,
        Timestamp=2**63 - 1,
        Type=neonize.Receipt.READ,
    )
    receipt = inbound.translate_receipt(S, ev)
    assert receipt is not None
    assert receipt.ids[0] == "3EB0A" and len(receipt.ids) == 1_024 - 2
    assert all(0 < len(i) <= 128 for i in receipt.ids)
    assert receipt.timestamp == 0.0


@pytest.mark.parametrize(
    "ev",
    [
        neonize.Receipt(MessageIDs=["3EB0A"], Type=neonize.Receipt.READ),  # no chat
        neonize.Receipt(
            MessageSource=neonize.MessageSource(Chat=jid(HUGE)),
            MessageIDs=["3EB0A"],
            Type=neonize.Receipt.READ,
        ),
        neonize.Receipt(
            MessageSource=neonize.MessageSource(Chat=jid(CUSTOMER)),
            MessageIDs=["I" * 200],
            Type=neonize.Receipt.READ,
        ),
    ],
)
def test_an_unusable_receipt_is_ignored(ev: neonize.Receipt) -> None:
    assert inbound.translate_receipt(S, ev) is None


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        (
            neonize.TemporaryBan(Code=neonize.TemporaryBan.BLOCKED_BY_USERS, Expire=2**63 - 1),
            TemporaryBanEvent(session=S, code="BLOCKED_BY_USERS", expires_in=None),
        ),
        (
            neonize.TemporaryBan(Expire=-60),
            TemporaryBanEvent(session=S, code="SEND_TO_TOO_MANY_PEOPLE", expires_in=None),
        ),
        (
            neonize.ConnectFailure(Reason=neonize.SERVICE_UNAVAILABLE, Message="m" * 10_000),
            DisconnectedEvent(
                session=S,
                reason=(
                    "WhatsApp refused the connection (SERVICE_UNAVAILABLE: " + "m" * 199 + "…)"
                ),
            ),
        ),
        (
            neonize.PairStatus(Status=neonize.PairStatus.ERROR, Error="e" * 10_000),
            EngineErrorEvent(
                session=S, explanation="pairing with the phone failed: " + "e" * 199 + "…"
            ),
        ),
        (
            neonize.PairStatus(ID=jid("abc"), Status=neonize.PairStatus.SUCCESS),
            EngineErrorEvent(
                session=S,
                explanation="paired, but not a phone number: 'abc' ('a' (U+0061) is not part "
                "of a phone number)",
            ),
        ),
        (neonize.OfflineSyncCompleted(Count=-3), OfflineSyncCompletedEvent(session=S, count=0)),
    ],
)
def test_odd_connection_events(ev: Any, expected: EngineEvent) -> None:
    assert inbound.translate_connection(S, ev, me=ME) == expected


def test_unknown_enum_values_are_named_by_number() -> None:
    failure = neonize.ConnectFailure()
    failure.MergeFromString(b"\x08\xe7\x07")  # Reason = 999, unknown to this neonize
    event = inbound.translate_connection(S, failure, me=ME)
    assert isinstance(event, DisconnectedEvent) and event.transient
    assert inbound_content.enum_name(neonize.TemporaryBan.TempBanReason, 999) == "999"


def test_history_with_an_implausible_timestamp_keeps_the_message() -> None:
    chat = f"{CUSTOMER}@s.whatsapp.net"
    web = WebMessageInfo(
        key=MessageKey(remoteJID=chat, ID="3EB0OLD"),
        message=wa.Message(conversation="ontem"),
        messageTimestamp=2**64 - 1,
        pushName="P" * 1_000,
    )
    data = hs.HistorySync(
        conversations=[hs.Conversation(ID=chat, messages=[hs.HistorySyncMsg(message=web)])],
        pushnames=[hs.Pushname(ID=chat, pushname="N" * 1_000)],
    )
    events = inbound.translate_history(S, neonize.HistorySync(Data=data), me=ME)
    [message] = [e.message for e in events if isinstance(e, MessageEvent)]
    assert message.content == Text("ontem") and message.timestamp == 0.0
    names = [e.party.name for e in events if isinstance(e, ContactUpdateEvent)]
    assert names and all(n is not None and len(n) == 256 for n in names)


# --- fuzz: nothing raises -------------------------------------------------------------

_texts = st.text(max_size=40)
_jids = st.builds(
    lambda user, server, device: neonize.JID(User=user, Server=server, Device=device),
    st.one_of(st.sampled_from([CUSTOMER, "0", "", "214748364801234"]), st.text(max_size=12)),
    st.sampled_from(["s.whatsapp.net", "lid", "g.us", "broadcast", "", "newsletter", "c.us"]),
    st.integers(0, 99),
)
_floats = st.floats(allow_nan=True, allow_infinity=True)
_contexts = st.builds(
    lambda stanza, participant, mentions: wa.ContextInfo(
        stanzaID=stanza, participant=participant, mentionedJID=mentions
    ),
    _texts,
    _texts,
    st.lists(_texts, max_size=3),
)
_messages = st.one_of(
    st.builds(lambda t: wa.Message(conversation=t), _texts),
    st.builds(
        lambda t, c: wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text=t, contextInfo=c)),
        _texts,
        _contexts,
    ),
    st.builds(
        lambda key, path, mime: wa.Message(
            imageMessage=wa.ImageMessage(mediaKey=key, directPath=path, mimetype=mime)
        ),
        st.binary(max_size=8),
        _texts,
        _texts,
    ),
    st.builds(
        lambda lat, lon: wa.Message(
            locationMessage=wa.LocationMessage(degreesLatitude=lat, degreesLongitude=lon)
        ),
        _floats,
        _floats,
    ),
    st.builds(
        lambda name, vcard: wa.Message(
            contactMessage=wa.ContactMessage(displayName=name, vcard=vcard)
        ),
        _texts,
        _texts,
    ),
    st.builds(
        lambda kind, ident: wa.Message(
            protocolMessage=wa.ProtocolMessage(type=kind, key=MessageKey(ID=ident))
        ),
        st.sampled_from([v for _, v in wa.ProtocolMessage.Type.items()]),
        _texts,
    ),
    st.binary(max_size=64).map(lambda raw: _lenient_parse(raw)),
)


def _lenient_parse(raw: bytes) -> wa.Message:
    msg = wa.Message()
    try:
        msg.MergeFromString(raw)
    except DecodeError:  # random bytes are mostly not a protobuf
        return wa.Message()
    return msg


@settings(max_examples=300, deadline=None)
@given(msg=_messages, chat=_jids, sender=_jids, alt=_jids, from_me=st.booleans(), ident=_texts)
def test_translation_never_raises(
    msg: wa.Message,
    chat: neonize.JID,
    sender: neonize.JID,
    alt: neonize.JID,
    from_me: bool,
    ident: str,
) -> None:
    ev = event(msg, chat=chat, sender=sender, sender_alt=alt, from_me=from_me, ident=ident)
    events = inbound.translate_message(S, ev, me=ME)
    assert all(isinstance(e, EngineEvent) for e in events)
    for e in events:
        if isinstance(e, MessageEvent):
            json.dumps(content_to_dict(e.message.content))


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("pollCreationMessage", "poll"),
        ("pollCreationMessageV3", "poll"),
        ("eventMessage", "event"),
        ("groupInviteMessage", "group invite"),
        ("productMessage", "product"),
        ("imageMessage", "image"),
    ],
)
def test_placeholders_name_types_as_people_know_them(field: str, name: str) -> None:
    # the sim engine's "unsupported" kind uses the same names ({"type": "poll"})
    assert inbound_content.type_name(field) == name


# --- fuzz: any protobuf of each event type ---------------------------------------------

_ODD_STRINGS = st.sampled_from(
    [
        "",
        HUGE,
        "\x00",
        "\ud800",
        f"{CUSTOMER}@s.whatsapp.net",
        "99000001@lid",
        GROUP,
        "3EB0AAA",
        "a" * 70_000,
    ]
)
_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_INT_KINDS = {
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "int32",
    FieldDescriptor.TYPE_SFIXED32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_SINT64: "int64",
    FieldDescriptor.TYPE_SFIXED64: "int64",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_FIXED32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_FIXED64: "uint64",
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=12) | _ODD_STRINGS.filter(lambda t: "\ud800" not in t)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    low, high = _INT_RANGES[_INT_KINDS[field.type]]
    return st.sampled_from([low, high, 0, 1]) | st.integers(low, high)


@st.composite
def _proto(draw: st.DrawFn, cls: Any, depth: int = 0) -> Any:
    """A protobuf of ``cls`` with a few fields set to anything their type allows."""
    msg = cls()
    fields = [
        f
        for f in cls.DESCRIPTOR.fields
        if f.type != FieldDescriptor.TYPE_GROUP
        and not (f.message_type is not None and f.message_type.GetOptions().map_entry)
        and (f.type != FieldDescriptor.TYPE_MESSAGE or depth < 3)
    ]
    if not fields:
        return msg
    chosen = draw(st.lists(st.sampled_from(fields), max_size=4, unique_by=lambda f: f.name))
    for field in chosen:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = _proto(_message_class(field), depth + 1)
            values = draw(st.lists(sub, max_size=2)) if field.is_repeated else [draw(sub)]
            target = getattr(msg, field.name)
            for value in values:
                (target.add() if field.is_repeated else target).MergeFrom(value)
        elif field.is_repeated:
            getattr(msg, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(msg, field.name, draw(_scalar(field)))
    return msg


def _message_class(field: FieldDescriptor) -> Any:
    return GetMessageClass(field.message_type)


def _envelope_of(message: wa.Message, chat: neonize.JID, sender: neonize.JID) -> Any:
    return event(message, chat=chat, sender=sender)


_WHATSAPP_EVENTS = st.one_of(
    st.builds(_envelope_of, _proto(wa.Message), _jids, _jids),
    _proto(neonize.Message),
    _proto(neonize.Receipt),
    _proto(neonize.HistorySync),
    *(
        _proto(cls)
        for cls in (
            neonize.TemporaryBan,
            neonize.ConnectFailure,
            neonize.LoggedOut,
            neonize.PairStatus,
            neonize.OfflineSyncCompleted,
            neonize.Connected,
            neonize.Disconnected,
            neonize.StreamReplaced,
            neonize.ClientOutdated,
        )
    ),
)


def _translate_any(ev: Any) -> list[EngineEvent]:
    """What the whatsmeow engine's dispatch does with one neonize event."""
    if isinstance(ev, neonize.Message):
        return inbound.translate_message(S, ev, me=ME)
    if isinstance(ev, neonize.Receipt):
        receipt = inbound.translate_receipt(S, ev)
        return [receipt] if receipt else []
    if isinstance(ev, neonize.HistorySync):
        return inbound.translate_history(S, ev, me=ME)
    connection = inbound.translate_connection(S, ev, me=ME)
    return [connection] if connection else []


@settings(max_examples=400, deadline=None)
@given(ev=_WHATSAPP_EVENTS)
def test_any_protobuf_of_any_event_type_translates_without_raising(ev: Any) -> None:
    for out in _translate_any(ev):
        assert isinstance(out, EngineEvent)
        if isinstance(out, MessageEvent):
            message = out.message
            json.dumps(content_to_dict(message.content))
            assert message.wa_id and len(message.wa_id) <= inbound_content.MAX_ID_CHARS
            stamp = message.timestamp
            assert stamp == 0.0 or inbound.EARLIEST_TIMESTAMP <= stamp < inbound.LATEST_TIMESTAMP
            assert message.sender.name is None or len(message.sender.name) <= 256
            if isinstance(message.content, Media) and message.content.size is not None:
                assert message.content.size <= 2**53 - 1
        elif isinstance(out, ReceiptEvent):
            assert all(0 < len(i) <= inbound_content.MAX_ID_CHARS for i in out.ids)
        elif isinstance(out, TemporaryBanEvent):
            assert out.expires_in is None or 0 < out.expires_in <= inbound.MAX_BAN_SECONDS
        elif isinstance(out, EngineErrorEvent):
            assert len(out.explanation) < 1_000
