"""Emoji between Slack and WhatsApp (issue 12): what attendants type as shortcodes
(``:tada:``, ``:+1::skin-tone-2:``) reaches the customer as emoji, in texts, edits,
captions and reactions; customers' emoji reactions become Slack reaction names with
their skin tones; custom workspace emoji and code stay as typed; a customer's literal
``:tada:`` is shown on Slack as typed. Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.db.database import Database
from tests.fakes.slack import SlackFake
from tests.harness.slack import BOB, SALES, SlackHarness

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    async with SlackFake() as slack:
        yield slack


@pytest.fixture
async def bridge(tmp_path: Path, db: Database, fake: SlackFake) -> AsyncIterator[SlackHarness]:
    harness = SlackHarness(tmp_path, db, fake)
    await harness.start()
    await harness.customer(text="Oi")
    yield harness
    await harness.stop()


async def attendant_says(h: SlackHarness, text: str, **kw: Any) -> dict[str, Any]:
    event = h.fake.user_message(SALES, BOB, text, thread_ts=h.thread_root(), **kw)
    await h.event(event)
    return event


def last_text(h: SlackHarness) -> str:
    return str(h.outbound()[-1]["text"]).removeprefix("*Bob Silva:*\n")


@pytest.mark.parametrize(
    ("typed", "received"),
    [
        (":tada: Pedido enviado :+1:", "🎉 Pedido enviado 👍"),
        ("Valeu :thumbsup::skin-tone-2: :wave::skin-tone-6:", "Valeu 👍🏻 👋🏿"),
        (":heart: :heart_on_fire: :technologist::skin-tone-4:", "❤️ ❤️‍🔥 🧑🏽‍💻"),
        (":flag-br: :hash: :100:", "🇧🇷 #️⃣ 💯"),
        ("*Pronto* :white_check_mark:", "*Pronto* ✅"),
        (":partyparrot: fica como está", ":partyparrot: fica como está"),  # custom emoji
        ("código `:tada:` e ```:tada:```", "código `:tada:` e `:tada:`"),  # code stays
        ("```\n:tada:\n```", "```\n:tada:\n```"),
        ("às 10:30:45 e Status:ok:done", "às 10:30:45 e Status:ok:done"),
        ("<https://x.org/:tada:|site :tada:>", "site 🎉 (https://x.org/:tada:)"),
    ],
)
async def test_shortcodes_typed_in_slack_reach_whatsapp_as_emoji(
    bridge: SlackHarness, typed: str, received: str
) -> None:
    await attendant_says(bridge, typed)
    assert last_text(bridge) == received


async def test_edits_and_captions_are_converted_too(bridge: SlackHarness) -> None:
    reply = await attendant_says(bridge, "Enviado :package:")
    assert last_text(bridge) == "Enviado 📦"
    sent_id = bridge.outbound()[-1]["id"]
    message = {k: reply[k] for k in ("type", "user", "text", "ts", "thread_ts")}
    await bridge.event(
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": SALES,
            "hidden": True,
            "ts": "1800000000.000100",
            "message": {**message, "text": "Enviado :package: :rocket:"},
            "previous_message": message,
        }
    )
    edit = bridge.outbound()[-1]
    assert (edit["kind"], edit["target"], edit["text"]) == ("edit", sent_id, "Enviado 📦 🚀")

    file = bridge.fake.host_file("nota.png", PNG, "image/png")
    await attendant_says(bridge, "Sua nota :receipt:", files=[file])
    sent = bridge.outbound()[-1]
    assert sent["kind"] == "image" and sent["media"]["caption"].endswith("Sua nota 🧾")


@pytest.mark.parametrize(
    ("name", "emoji"),
    [
        ("+1::skin-tone-2", "👍🏻"),
        ("thumbsup::skin-tone-5", "👍🏾"),
        ("heart_on_fire", "❤️‍🔥"),
        ("flamingo", "🦩"),
        ("people_holding_hands::skin-tone-3", "🧑🏼‍🤝‍🧑🏼"),
    ],
)
async def test_slack_reactions_reach_whatsapp_with_their_skin_tone(
    bridge: SlackHarness, name: str, emoji: str
) -> None:
    customer_ts = bridge.customer_posts()[0]["ts"]
    first = bridge.outbound()  # the greeting
    reaction = {"type": "reaction_added", "user": BOB, "reaction": name}
    reaction["item"] = {"type": "message", "channel": SALES, "ts": customer_ts}
    await bridge.event(reaction)
    sent = bridge.outbound()[-1]
    assert len(bridge.outbound()) == len(first) + 1
    assert (sent["kind"], sent["emoji"]) == ("reaction", emoji)


async def test_a_custom_emoji_reaction_is_not_relayed(bridge: SlackHarness) -> None:
    before = len(bridge.outbound())
    reaction = {"type": "reaction_added", "user": BOB, "reaction": "partyparrot"}
    reaction["item"] = {"type": "message", "channel": SALES, "ts": bridge.customer_posts()[0]["ts"]}
    await bridge.event(reaction)
    assert len(bridge.outbound()) == before


@pytest.mark.parametrize(
    ("emoji", "name"),
    [
        ("👍🏽", "+1::skin-tone-4"),
        ("🙏🏿", "pray::skin-tone-6"),
        ("❤", "heart"),  # without its variation selector, as some phones send it
        ("❤️‍🔥", "heart_on_fire"),
        ("🧑🏽‍💻", "technologist::skin-tone-4"),
        ("🦩", "flamingo"),
    ],
)
async def test_customer_reactions_become_slack_reaction_names(
    bridge: SlackHarness, emoji: str, name: str
) -> None:
    first = await bridge.customer(text="olha")
    customer_ts = bridge.customer_posts()[-1]["ts"]
    await bridge.customer("reaction", target=first, emoji=emoji)
    assert bridge.fake.reactions(SALES, customer_ts) == [name]
    assert not await bridge.db.fetch("SELECT id FROM outbox WHERE attempts > 0")


async def test_a_customers_literal_shortcode_is_shown_as_typed(bridge: SlackHarness) -> None:
    await bridge.customer(text="escrevi :tada: e mandei 🎉")
    post = bridge.customer_posts()[-1]["text"]
    assert post == "escrevi :\u2060tada: e mandei 🎉"  # a word joiner keeps Slack from 🎉
    # an attendant quoting it back sends what the customer wrote
    await attendant_says(bridge, f"Você disse: {post}")
    assert last_text(bridge) == "Você disse: escrevi :tada: e mandei 🎉"
