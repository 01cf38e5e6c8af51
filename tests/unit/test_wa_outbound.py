"""Outbound: neutral content → the calls and protobufs the engine hands neonize.

Every outbound kind goes through a connected :class:`WhatsmeowEngine` on the
recording fake client; the pure builders of ``wa_outbound`` get a few direct checks.
The voice-note and sticker conversions run the real ffmpeg.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from neonize.exc import SendMessageError, SendPresenceError, UploadError
from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, MediaType, ReceiptType

from bridge import vcard
from bridge.errors import EngineError, InvalidInput, SessionNotConnected
from bridge.model import (
    ContactCard,
    ContactList,
    Location,
    Media,
    MediaKind,
    Quote,
    Text,
    Unsupported,
)
from bridge.whatsapp import jid as jids
from bridge.whatsapp import wa_outbound as outbound
from bridge.whatsapp.transcode import MediaConverter
from tests.fakes.neonize_client import EngineHarness, FakeNeonizeClient
from tests.harness.vcards import ANDROID_21

KEY = "acme/sales"
CUSTOMER = "+5511987654321"
CUSTOMER_JID = "5511987654321@s.whatsapp.net"
GROUP = "120363041234567890@g.us"
OWN_JID = "5511900000001@s.whatsapp.net"


def require_ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        pytest.fail(
            "ffmpeg is not installed: the voice-note and sticker conversion tests need it "
            "(apt-get install -y ffmpeg)"
        )
    return path


def ffmpeg_output(*args: str) -> bytes:
    cmd = [require_ffmpeg(), "-hide_banner", "-loglevel", "error", *args, "pipe:1"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def wav() -> bytes:
    return ffmpeg_output("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-f", "wav")


@pytest.fixture(scope="module")
def png() -> bytes:
    return ffmpeg_output(
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=64x48",
        "-frames:v",
        "1",
        "-c:v",
        "png",
        "-f",
        "image2pipe",
    )


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    harness = EngineHarness(tmp_path / "devices")
    harness.factory.setup = lambda c: c.on_whatsapp.update({"+5511987654321": "5511987654321"})
    yield harness
    await harness.engine.close()


@pytest.fixture
async def client(h: EngineHarness) -> FakeNeonizeClient:
    return await h.connected()


def last_sent(client: FakeNeonizeClient) -> tuple[str, wa.Message]:
    to, message = client.sent[-1]
    return jids.jid_to_str(to), message


def upload_of(client: FakeNeonizeClient) -> tuple[bytes, MediaType]:
    [call] = client.calls_to("upload")
    return call.args[0], call.args[1]


# --- text -----------------------------------------------------------------------------


async def test_text_is_a_conversation(h: EngineHarness, client: FakeNeonizeClient) -> None:
    wa_id = await h.engine.send(KEY, CUSTOMER, Text(body="*Ana:*\nOlá!"))
    to, message = last_sent(client)
    assert to == CUSTOMER_JID
    assert message == wa.Message(conversation="*Ana:*\nOlá!")
    assert wa_id == "3EB0000000000000000001"


async def test_quoted_text(h: EngineHarness, client: FakeNeonizeClient) -> None:
    quote = Quote(wa_id="3EB0CUST", sender=CUSTOMER, text="qual o prazo?")
    await h.engine.send(KEY, CUSTOMER, Text(body="3 dias"), quote=quote)
    _, message = last_sent(client)
    ext = message.extendedTextMessage
    assert ext.text == "3 dias"
    assert ext.contextInfo.stanzaID == "3EB0CUST"
    assert ext.contextInfo.participant == CUSTOMER_JID
    assert ext.contextInfo.quotedMessage == wa.Message(conversation="qual o prazo?")


async def test_quoting_our_own_message(h: EngineHarness, client: FakeNeonizeClient) -> None:
    await h.engine.send(KEY, CUSTOMER, Text(body="as I said"), quote=Quote(wa_id="3EB0OURS"))
    _, message = last_sent(client)
    assert message.extendedTextMessage.contextInfo.participant == OWN_JID
    assert not message.extendedTextMessage.contextInfo.HasField("quotedMessage")


async def test_mentions(h: EngineHarness, client: FakeNeonizeClient) -> None:
    text = Text(body="@5511987654321 pode ver?", mentions=(CUSTOMER,))
    await h.engine.send(KEY, GROUP, text)
    to, message = last_sent(client)
    assert to == GROUP
    assert list(message.extendedTextMessage.contextInfo.mentionedJID) == [CUSTOMER_JID]


# --- addresses ------------------------------------------------------------------------


async def test_brazilian_number_goes_to_the_spelling_whatsapp_knows(tmp_path: Path) -> None:
    h = EngineHarness(tmp_path)
    h.factory.setup = lambda c: c.on_whatsapp.update({"+551187654321": "551187654321"})
    client = await h.connected()
    await h.engine.send(KEY, CUSTOMER, Text(body="1"))
    await h.engine.send(KEY, CUSTOMER, Text(body="2"))
    [check] = client.calls_to("is_on_whatsapp")  # asked once, then cached
    assert check.args == ("+5511987654321", "+551187654321")
    assert [jids.jid_to_str(to) for to, _ in client.sent] == ["551187654321@s.whatsapp.net"] * 2
    await h.engine.close()


async def test_spelling_learned_from_an_inbound_message(
    h: EngineHarness, client: FakeNeonizeClient
) -> None:
    old = neonize.JID(User="551187654321", Server="s.whatsapp.net")
    await client.deliver(
        neonize.Message(
            Info=neonize.MessageInfo(
                MessageSource=neonize.MessageSource(Chat=old, Sender=old), ID="3EB0IN", Pushname="M"
            ),
            Message=wa.Message(conversation="oi"),
        )
    )
    await h.engine.send(KEY, CUSTOMER, Text(body="olá"))
    assert not client.calls_to("is_on_whatsapp")
    assert last_sent(client)[0] == "551187654321@s.whatsapp.net"


async def test_number_not_on_whatsapp(h: EngineHarness, client: FakeNeonizeClient) -> None:
    with pytest.raises(EngineError, match=r"\+5521999990000 is not on WhatsApp"):
        await h.engine.send(KEY, "+5521999990000", Text(body="hi"))
    assert not client.sent


async def test_without_is_on_whatsapp_the_number_is_used_as_given(
    h: EngineHarness, client: FakeNeonizeClient
) -> None:
    client.is_on_whatsapp = None  # type: ignore[assignment,method-assign]
    await h.engine.send(KEY, "+5521999990000", Text(body="hi"))
    assert last_sent(client)[0] == "5521999990000@s.whatsapp.net"


@pytest.mark.parametrize("address", [GROUP, "214748364801234@lid"])
async def test_groups_and_lids_pass_through(
    h: EngineHarness, client: FakeNeonizeClient, address: str
) -> None:
    await h.engine.send(KEY, address, Text(body="hi"))
    assert last_sent(client)[0] == address
    assert not client.calls_to("is_on_whatsapp")


# --- media ----------------------------------------------------------------------------


def assert_uploaded_fields(part: object, data: bytes, mimetype: str) -> None:
    assert part.URL == "https://mmg.whatsapp.net/v/t62/upload.enc"  # type: ignore[attr-defined]
    assert part.directPath == "/v/t62/upload.enc"  # type: ignore[attr-defined]
    assert part.mediaKey == b"K" * 32  # type: ignore[attr-defined]
    assert part.fileEncSHA256.startswith(b"E")  # type: ignore[attr-defined]
    assert part.fileSHA256.startswith(b"S")  # type: ignore[attr-defined]
    assert part.fileLength == len(data)  # type: ignore[attr-defined]
    assert part.mimetype == mimetype  # type: ignore[attr-defined]
    assert part.mediaKeyTimestamp == 1_700_000_000  # type: ignore[attr-defined]


async def test_image_with_caption(h: EngineHarness, client: FakeNeonizeClient, png: bytes) -> None:
    media = Media(
        media_kind=MediaKind.IMAGE,
        mimetype="image/png",
        data=png,
        caption="look",
        width=64,
        height=48,
    )
    await h.engine.send(KEY, CUSTOMER, media)
    assert upload_of(client) == (png, MediaType.MediaImage)
    _, message = last_sent(client)
    image = message.imageMessage
    assert_uploaded_fields(image, png, "image/png")
    assert (image.caption, image.width, image.height) == ("look", 64, 48)


async def test_image_reply(h: EngineHarness, client: FakeNeonizeClient) -> None:
    media = Media(media_kind=MediaKind.IMAGE, mimetype="image/jpeg", data=b"\xff\xd8jpeg")
    await h.engine.send(KEY, CUSTOMER, media, quote=Quote(wa_id="3EB0Q", sender=CUSTOMER))
    _, message = last_sent(client)
    assert message.imageMessage.contextInfo.stanzaID == "3EB0Q"
    assert message.imageMessage.contextInfo.participant == CUSTOMER_JID


async def test_video_gif(h: EngineHarness, client: FakeNeonizeClient) -> None:
    media = Media(
        media_kind=MediaKind.VIDEO, mimetype="video/mp4", data=b"mp4", gif=True, duration=4
    )
    await h.engine.send(KEY, CUSTOMER, media)
    assert upload_of(client) == (b"mp4", MediaType.MediaVideo)
    video = last_sent(client)[1].videoMessage
    assert_uploaded_fields(video, b"mp4", "video/mp4")
    assert (video.gifPlayback, video.seconds) == (True, 4)


async def test_document_with_filename(h: EngineHarness, client: FakeNeonizeClient) -> None:
    media = Media(
        media_kind=MediaKind.DOCUMENT,
        mimetype="application/pdf",
        data=b"%PDF-1.7",
        filename="contrato.pdf",
        caption="assine",
    )
    await h.engine.send(KEY, CUSTOMER, media)
    assert upload_of(client) == (b"%PDF-1.7", MediaType.MediaDocument)
    document = last_sent(client)[1].documentMessage
    assert_uploaded_fields(document, b"%PDF-1.7", "application/pdf")
    assert (document.fileName, document.title, document.caption) == (
        "contrato.pdf",
        "contrato.pdf",
        "assine",
    )


async def test_nameless_document_gets_a_name(h: EngineHarness, client: FakeNeonizeClient) -> None:
    media = Media(media_kind=MediaKind.DOCUMENT, mimetype="application/pdf", data=b"%PDF")
    await h.engine.send(KEY, CUSTOMER, media)
    name = last_sent(client)[1].documentMessage.fileName
    assert name.startswith("document-") and name.endswith(".pdf")


async def test_webp_sticker_goes_unchanged(h: EngineHarness, client: FakeNeonizeClient) -> None:
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 "
    media = Media(
        media_kind=MediaKind.STICKER, mimetype="image/webp", data=webp, width=512, height=512
    )
    await h.engine.send(KEY, CUSTOMER, media)
    assert upload_of(client) == (webp, MediaType.MediaImage)
    sticker = last_sent(client)[1].stickerMessage
    assert_uploaded_fields(sticker, webp, "image/webp")
    assert (sticker.width, sticker.height) == (512, 512)


async def test_png_sticker_is_converted_to_webp(
    h: EngineHarness, client: FakeNeonizeClient, png: bytes
) -> None:
    await h.engine.send(
        KEY, CUSTOMER, Media(media_kind=MediaKind.STICKER, mimetype="image/png", data=png)
    )
    data, _ = upload_of(client)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert last_sent(client)[1].stickerMessage.mimetype == "image/webp"


async def test_audio(h: EngineHarness, client: FakeNeonizeClient) -> None:
    media = Media(media_kind=MediaKind.AUDIO, mimetype="audio/mpeg", data=b"ID3mp3", duration=30)
    await h.engine.send(KEY, CUSTOMER, media)
    assert upload_of(client) == (b"ID3mp3", MediaType.MediaAudio)
    audio = last_sent(client)[1].audioMessage
    assert_uploaded_fields(audio, b"ID3mp3", "audio/mpeg")
    assert (audio.PTT, audio.seconds) == (False, 30)


async def test_voice_from_wav_is_converted_to_ogg_opus(
    h: EngineHarness, client: FakeNeonizeClient, wav: bytes
) -> None:
    assert wav[:4] == b"RIFF"
    await h.engine.send(
        KEY, CUSTOMER, Media(media_kind=MediaKind.VOICE, mimetype="audio/wav", data=wav)
    )
    data, media_type = upload_of(client)
    assert media_type == MediaType.MediaAudio
    assert data[:4] == b"OggS" and b"OpusHead" in data[:100]
    audio = last_sent(client)[1].audioMessage
    assert_uploaded_fields(audio, data, "audio/ogg; codecs=opus")
    assert audio.PTT
    assert audio.seconds == 1


async def test_ogg_voice_is_not_converted(h: EngineHarness, client: FakeNeonizeClient) -> None:
    ogg = b"OggS\x00\x02not-really-audio"
    media = Media(media_kind=MediaKind.VOICE, mimetype="audio/ogg", data=ogg, duration=3)
    await h.engine.send(KEY, CUSTOMER, media)
    assert upload_of(client)[0] == ogg
    audio = last_sent(client)[1].audioMessage
    assert (audio.PTT, audio.seconds, audio.mimetype) == (True, 3, "audio/ogg; codecs=opus")


async def test_voice_without_ffmpeg_explains(tmp_path: Path, wav: bytes) -> None:
    h = EngineHarness(tmp_path, converter=MediaConverter(ffmpeg="no-such-ffmpeg-here"))
    h.factory.setup = lambda c: c.on_whatsapp.update({"+5511987654321": "5511987654321"})
    client = await h.connected()
    with pytest.raises(EngineError, match="ffmpeg is not installed") as caught:
        await h.engine.send(
            KEY, CUSTOMER, Media(media_kind=MediaKind.VOICE, mimetype="audio/wav", data=wav)
        )
    assert "voice notes" in caught.value.explanation
    assert not client.calls_to("upload")
    await h.engine.close()


async def test_media_known_only_by_reference_is_fetched_first(
    h: EngineHarness, client: FakeNeonizeClient
) -> None:
    client.downloads.append(b"\xff\xd8jpeg")
    ref = {
        "message_type": "imageMessage",
        "direct_path": "/v/x.enc",
        "media_key": "a2V5",
        "file_enc_sha256": "",
        "file_sha256": "",
        "file_length": 6,
        "mimetype": "image/jpeg",
    }
    await h.engine.send(
        KEY, CUSTOMER, Media(media_kind=MediaKind.IMAGE, mimetype="image/jpeg", ref=ref)
    )
    assert upload_of(client)[0] == b"\xff\xd8jpeg"


# --- location and contacts ------------------------------------------------------------


async def test_location(h: EngineHarness, client: FakeNeonizeClient) -> None:
    place = Location(lat=-23.5505, lon=-46.6333, name="Loja Centro", address="Praça da Sé")
    await h.engine.send(KEY, CUSTOMER, place)
    location = last_sent(client)[1].locationMessage
    assert (location.degreesLatitude, location.degreesLongitude) == (-23.5505, -46.6333)
    assert (location.name, location.address) == ("Loja Centro", "Praça da Sé")


VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:Suporte\nTEL;waid=551140040000:+55 11 4004-0000\nEND:VCARD"


async def test_contact(h: EngineHarness, client: FakeNeonizeClient) -> None:
    await h.engine.send(KEY, CUSTOMER, ContactCard(display_name="Suporte", vcard=VCARD))
    contact = last_sent(client)[1].contactMessage
    assert (contact.displayName, contact.vcard) == ("Suporte", VCARD)


async def test_contacts_array(h: EngineHarness, client: FakeNeonizeClient) -> None:
    cards = (
        ContactCard(display_name="Suporte", vcard=VCARD),
        ContactCard(display_name="Ana", vcard="BEGIN:VCARD\nFN:Ana\nEND:VCARD"),
    )
    await h.engine.send(KEY, CUSTOMER, ContactList(display_name="2 contatos", cards=cards))
    array = last_sent(client)[1].contactsArrayMessage
    assert array.displayName == "2 contatos"
    assert [(c.displayName, c.vcard) for c in array.contacts] == [
        (c.display_name, c.vcard) for c in cards
    ]


async def test_an_attendants_vcf_goes_as_a_contact_card(
    h: EngineHarness, client: FakeNeonizeClient
) -> None:
    """A phone's vCard 2.1 export, as an attendant attaches it: WhatsApp gets a contact
    card with the contact's name and the vCard 3.0 phones write, not a document."""
    vcf = Media(MediaKind.DOCUMENT, "text/x-vcard", data=ANDROID_21.encode(), filename="j.vcf")
    card = vcard.contacts_of_file(vcf)
    assert card is not None
    await h.engine.send(KEY, CUSTOMER, card)
    contact = last_sent(client)[1].contactMessage
    assert contact.displayName == "João Conceição da Silva"
    assert contact.vcard == (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Conceição;João;;;\r\nFN:João Conceição da Silva\r\n"
        "item1.TEL:+5511912345678\r\nitem1.X-ABLabel:Mobile\r\n"
        "item2.TEL:+551122223333\r\nitem2.X-ABLabel:Home\r\nEND:VCARD\r\n"
    )


# --- actions --------------------------------------------------------------------------


async def test_reaction_to_the_customer(h: EngineHarness, client: FakeNeonizeClient) -> None:
    wa_id = await h.engine.react(
        KEY, CUSTOMER, target="3EB0CUST", target_sender=CUSTOMER, emoji="❤️"
    )
    to, message = last_sent(client)
    assert to == CUSTOMER_JID and wa_id
    reaction = message.reactionMessage
    assert reaction.text == "❤️"
    assert reaction.senderTimestampMS == 1_700_000_000_000
    assert (reaction.key.remoteJID, reaction.key.fromMe, reaction.key.ID) == (
        CUSTOMER_JID,
        False,
        "3EB0CUST",
    )
    assert not reaction.key.HasField("participant"), "no participant in a direct chat"


async def test_reaction_to_our_own_message_in_a_group(
    h: EngineHarness, client: FakeNeonizeClient
) -> None:
    await h.engine.react(KEY, GROUP, target="3EB0OURS", target_sender=None, emoji="👍")
    key = last_sent(client)[1].reactionMessage.key
    assert (key.remoteJID, key.fromMe, key.ID) == (GROUP, True, "3EB0OURS")
    assert not key.HasField("participant")


async def test_reaction_to_someone_in_a_group_names_them(
    h: EngineHarness, client: FakeNeonizeClient
) -> None:
    await h.engine.react(KEY, GROUP, target="3EB0THEIRS", target_sender=CUSTOMER, emoji="")
    reaction = last_sent(client)[1].reactionMessage
    assert (reaction.key.fromMe, reaction.key.participant, reaction.text) == (
        False,
        CUSTOMER_JID,
        "",
    )


async def test_edit(h: EngineHarness, client: FakeNeonizeClient) -> None:
    await h.engine.edit(KEY, CUSTOMER, target="3EB0OURS", text="corrigido")
    protocol = last_sent(client)[1].editedMessage.message.protocolMessage
    assert protocol.type == wa.ProtocolMessage.MESSAGE_EDIT
    assert (protocol.key.remoteJID, protocol.key.fromMe, protocol.key.ID) == (
        CUSTOMER_JID,
        True,
        "3EB0OURS",
    )
    assert protocol.editedMessage == wa.Message(conversation="corrigido")
    assert protocol.timestampMS == 1_700_000_000_000


async def test_revoke(h: EngineHarness, client: FakeNeonizeClient) -> None:
    await h.engine.revoke(KEY, CUSTOMER, target="3EB0OURS")
    protocol = last_sent(client)[1].protocolMessage
    assert protocol.type == wa.ProtocolMessage.REVOKE
    assert (protocol.key.remoteJID, protocol.key.fromMe, protocol.key.ID) == (
        CUSTOMER_JID,
        True,
        "3EB0OURS",
    )


async def test_mark_read(h: EngineHarness, client: FakeNeonizeClient) -> None:
    await h.engine.mark_read(KEY, GROUP, ids=["3EB0A", "3EB0B"], sender=CUSTOMER)
    [call] = client.calls_to("mark_read")
    assert call.args == ("3EB0A", "3EB0B")
    assert jids.jid_to_str(call.kwargs["chat"]) == GROUP
    assert jids.jid_to_str(call.kwargs["sender"]) == CUSTOMER_JID
    assert call.kwargs["receipt"] is ReceiptType.READ
    assert call.kwargs["timestamp"] == 1_700_000_000


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        ("composing", ChatPresence.CHAT_PRESENCE_COMPOSING),
        ("paused", ChatPresence.CHAT_PRESENCE_PAUSED),
    ],
)
async def test_chat_presence(
    h: EngineHarness, client: FakeNeonizeClient, state: str, shown: ChatPresence
) -> None:
    assert await h.engine.chat_presence(KEY, CUSTOMER, state=state) is True
    [call] = client.calls_to("send_chat_presence")
    assert jids.jid_to_str(call.args[0]) == CUSTOMER_JID
    assert call.args[1:] == (shown, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)


async def test_chat_presence_refused(h: EngineHarness, client: FakeNeonizeClient) -> None:
    client.failures["send_chat_presence"] = SendPresenceError("not connected")
    with pytest.raises(EngineError, match="typing indicator"):
        await h.engine.chat_presence(KEY, CUSTOMER, state="composing")
    with pytest.raises(InvalidInput, match="recording"):
        await h.engine.chat_presence(KEY, CUSTOMER, state="recording")


# --- failures -------------------------------------------------------------------------


async def test_refused_send(h: EngineHarness, client: FakeNeonizeClient) -> None:
    client.failures["send_message"] = SendMessageError("server returned error 479")
    with pytest.raises(EngineError, match="479"):
        await h.engine.send(KEY, CUSTOMER, Text(body="hi"))


async def test_failed_upload(h: EngineHarness, client: FakeNeonizeClient) -> None:
    client.failures["upload"] = UploadError("media conn refresh failed")
    media = Media(media_kind=MediaKind.IMAGE, mimetype="image/jpeg", data=b"\xff\xd8")
    with pytest.raises(EngineError, match="uploading the image"):
        await h.engine.send(KEY, CUSTOMER, media)
    assert not client.sent


async def test_unsupported_content_is_not_sent(h: EngineHarness, client: FakeNeonizeClient) -> None:
    with pytest.raises(EngineError, match="cannot be sent"):
        await h.engine.send(KEY, CUSTOMER, Unsupported(type_name="poll"))


async def test_sending_needs_a_connection(h: EngineHarness) -> None:
    h.pair()
    await h.engine.connect(h.spec)  # started, but no Connected yet
    with pytest.raises(SessionNotConnected):
        await h.engine.send(KEY, CUSTOMER, Text(body="too early"))
    assert not h.client.calls_to("send_message")


# --- the pure builders ----------------------------------------------------------------


def test_builders_leave_unset_fields_unset() -> None:
    assert outbound.text_message(Text(body="x")) == wa.Message(conversation="x")
    location = outbound.location_message(Location(lat=1.0, lon=2.0)).locationMessage
    assert not location.HasField("name") and not location.HasField("contextInfo")


@pytest.mark.parametrize(
    ("chat", "sender", "from_me", "participant"),
    [
        (CUSTOMER_JID, None, True, None),
        (CUSTOMER_JID, CUSTOMER_JID, False, None),
        (GROUP, None, True, None),
        (GROUP, CUSTOMER_JID, False, CUSTOMER_JID),
    ],
)
def test_message_keys_follow_whatsmeow(
    chat: str, sender: str | None, from_me: bool, participant: str | None
) -> None:
    key = outbound.message_key(chat=chat, target="3EB0", target_sender=sender)
    assert (key.remoteJID, key.fromMe, key.ID) == (chat, from_me, "3EB0")
    assert (key.participant if key.HasField("participant") else None) == participant


def test_every_media_kind_has_an_upload_type() -> None:
    assert {outbound.upload_media_type(kind) for kind in MediaKind} <= set(MediaType)
