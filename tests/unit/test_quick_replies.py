"""Quick replies: the config (companies[].quick_replies), the placeholders, the
content sent, and the commands' answers (the sending itself is in
tests/integration/test_quick_replies.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import Config, QuickReply, parse_config
from bridge.core.command_model import CommandContext, CommandReply, RoomKind
from bridge.core.commands import CommandRegistry
from bridge.core.quick_replies import fill, quick_reply_content
from bridge.errors import BridgeError, ConfigError
from bridge.model import Media, MediaKind, Text

HEAD = """\
homeserver: {address: "http://127.0.0.1:8008", domain: example.com}
appservice: {as_token: AS-TOKEN, hs_token: HS-TOKEN}
media: {max_size_mb: 1}
companies:
  - id: acme
    admins: ["@alice:example.com"]
    attendants: ["@bob:example.com"]
    sessions:
      - {name: sales, matrix: true}
    quick_replies:
"""
"""A quick reply written after HEAD starts on line 11."""


def config_of(tmp_path: Path, replies: str) -> Config:
    return parse_config(HEAD + replies, path=tmp_path / "config.yaml")


def errors_of(tmp_path: Path, replies: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_of(tmp_path, replies)
    return caught.value.problems


def test_replies_are_read_with_their_file_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "replies").mkdir()
    (tmp_path / "replies" / "menu.png").write_bytes(b"png")
    config = config_of(
        tmp_path,
        "      - {shortcut: hi, text: 'Hi {name}'}\n"
        "      - {shortcut: menu, text: Menu, file: replies/menu.png}\n",
    )
    [company] = config.companies
    assert company.quick_replies == (
        QuickReply("hi", "Hi {name}"),
        QuickReply("menu", "Menu", file=str(tmp_path / "replies" / "menu.png")),
    )
    assert company.quick_reply("MENU") is company.quick_replies[1]
    assert company.quick_reply("nope") is None


@pytest.mark.parametrize(
    ("replies", "problem"),
    [
        (
            "      - {shortcut: hi, text: a}\n      - {shortcut: HI, text: b}\n",
            "config.yaml:12 companies[0].quick_replies[1].shortcut: shortcut 'HI' is already "
            "used by companies[0].quick_replies[0] (line 11)",
        ),
        (
            "      - {shortcut: doc, text: a, file: missing.pdf}\n",
            "config.yaml:11 companies[0].quick_replies[0].file: {dir}/missing.pdf is not a file",
        ),
        (
            "      - {shortcut: doc, text: a, file: big.bin}\n",
            "config.yaml:11 companies[0].quick_replies[0].file: {dir}/big.bin has 1048577 bytes, "
            "more than media.max_size_mb (1 MB)",
        ),
        (
            "      - {shortcut: doc, text: a, file: .}\n",
            "config.yaml:11 companies[0].quick_replies[0].file: {dir} is not a file",
        ),
        (
            "      - {shortcut: 'two words', text: a}\n",
            "config.yaml:11 companies[0].quick_replies[0].shortcut: expected a shortcut of "
            "letters, digits, '_' or '-' (like price), got 'two words'",
        ),
        (
            "      - {shortcut: hi}\n",
            "config.yaml:11 companies[0].quick_replies[0].text: required; "
            "expected a non-empty string",
        ),
    ],
)
def test_config_problems_name_the_line(tmp_path: Path, replies: str, problem: str) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * (1024 * 1024 + 1))
    expected = problem.format(dir=tmp_path)
    problems = errors_of(tmp_path, replies)
    assert [p.removeprefix(f"{tmp_path}/") for p in problems] == [expected]


@pytest.mark.parametrize(
    ("text", "filled"),
    [
        ("Hi {name}", "Hi Maria"),
        ("#{ticket} by {attendant}", "#12 by Bob"),
        ("{name}{name}", "MariaMaria"),
        ("{other} and {0} stay; {ticket", "{other} and {0} stay; {ticket"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_fill(text: str, filled: str) -> None:
    assert fill(text, name="Maria", ticket=12, attendant="Bob") == filled


async def test_content_of_a_text_reply() -> None:
    reply = QuickReply("hi", "Hi {name}, {attendant} on #{ticket}")
    content = await quick_reply_content(reply, name="Ana", ticket=3, attendant="Bob")
    assert content == Text("Hi Ana, Bob on #3")


@pytest.mark.parametrize(
    ("name", "kind", "mimetype"),
    [
        ("menu.png", MediaKind.IMAGE, "image/png"),
        ("intro.mp4", MediaKind.VIDEO, "video/mp4"),
        ("prices.pdf", MediaKind.DOCUMENT, "application/pdf"),
        ("notes", MediaKind.DOCUMENT, "application/octet-stream"),
    ],
)
async def test_content_of_a_reply_with_a_file(
    tmp_path: Path, name: str, kind: MediaKind, mimetype: str
) -> None:
    (tmp_path / name).write_bytes(b"bytes")
    reply = QuickReply("f", "For {name}", file=str(tmp_path / name))
    content = await quick_reply_content(reply, name="Ana", ticket=3, attendant="Bob")
    assert isinstance(content, Media)
    assert (content.media_kind, content.mimetype, content.filename) == (kind, mimetype, name)
    assert (content.data, content.caption, content.size) == (b"bytes", "For Ana", 5)


async def test_a_file_gone_since_start_is_a_bridge_error(tmp_path: Path) -> None:
    reply = QuickReply("f", "x", file=str(tmp_path / "gone.pdf"))
    with pytest.raises(BridgeError, match="cannot read the quick reply's file"):
        await quick_reply_content(reply, name="Ana", ticket=3, attendant="Bob")


# --- the commands ---------------------------------------------------------------------


class _Unused:
    """The registry's collaborators: quick reply commands use none of them."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"quick reply commands do not use {name}")


def registry(tmp_path: Path, replies: str) -> CommandRegistry:
    unused = _Unused()
    return CommandRegistry(
        config_of(tmp_path, replies),
        tickets=unused,  # type: ignore[arg-type]
        sessions=unused,  # type: ignore[arg-type]
        login_origins=unused,  # type: ignore[arg-type]
    )


def in_thread() -> CommandContext:
    return CommandContext(
        frontend="matrix",
        company_id="acme",
        place=RoomKind.THREAD,
        session_key="acme/sales",
        ticket_id=4,
        user_id="@bob:example.com",
        display_name="Bob",
        room="!room",
        thread_root="$root",
    )


REPLIES = "      - {shortcut: hello, text: 'Hi {name}'}\n      - {shortcut: bye, text: Bye}\n"


async def test_r_answers_with_the_reply_to_send(tmp_path: Path) -> None:
    reply = await registry(tmp_path, REPLIES).handle(in_thread(), "!r Hello")
    assert reply == CommandReply("", quick_reply=QuickReply("hello", "Hi {name}"))


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (
            "!r helo",
            "No quick reply named helo. Did you mean !r hello? Type !replies for the list.",
        ),
        ("!r zzz", "No quick reply named zzz. Type !replies for the list."),
        ("!r", "Usage: !r <shortcut>"),
        ("!r hello bye", "Usage: !r <shortcut>"),
        ("!replies now", "Usage: !replies"),
    ],
)
async def test_r_refusals(tmp_path: Path, text: str, answer: str) -> None:
    reply = await registry(tmp_path, REPLIES).handle(in_thread(), text)
    assert reply == CommandReply(answer, ephemeral=True)


async def test_replies_without_any(tmp_path: Path) -> None:
    config = HEAD.removesuffix("    quick_replies:\n")
    unused = _Unused()
    commands = CommandRegistry(
        parse_config(config, path=tmp_path / "config.yaml"),
        tickets=unused,  # type: ignore[arg-type]
        sessions=unused,  # type: ignore[arg-type]
        login_origins=unused,  # type: ignore[arg-type]
    )
    reply = await commands.handle(in_thread(), "!replies")
    assert reply == CommandReply(
        "acme has no quick replies (companies[].quick_replies in the config)."
    )
