"""Queues, the parts that need no database (docs/tickets.md#queues): reading a menu
answer, the menu's text, who works a queue, what !transfer names, and the config's
queues and menu with their problems located by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import Config, MenuConfig, QueueConfig, check_config, parse_config
from bridge.core.queues import (
    answer_of,
    attended_by,
    default_queue,
    find_queue_word,
    parse_option,
    queue_of_option,
    queue_refusal,
    render_menu,
    works_queue,
)
from bridge.errors import ConfigError
from bridge.model import Message, Party, Text

# --- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("2", 2),
        (" 2 ", 2),
        ("2.", 2),
        ("2)", 2),
        ("2 -", 2),
        ("\n12\t", 12),
        ("02", 2),
        ("2️⃣", 2),  # keycap emoji
        ("2⃣", 2),  # keycap without the variation selector
        ("🔟", 10),
        ("٢", 2),  # Arabic-Indic digit
        ("２", 2),  # fullwidth digit
        ("", None),
        ("   ", None),
        ("two", None),
        ("2 please", None),
        ("2,3", None),
        ("123", None),
        ("-2", None),
        ("2.5", None),
        ("+2", None),
        ("²", None),  # a superscript is no decimal digit
        ("1" * 40, None),
    ],
)
def test_parse_option(text: str, option: int | None) -> None:
    assert parse_option(text) == option


@given(st.text(max_size=40))
def test_parse_option_never_raises_and_stays_in_range(text: str) -> None:
    option = parse_option(text)
    assert option is None or 0 <= option <= 99


def _message(content: Text, *, from_me: bool = False) -> Message:
    party = Party(phone="+5511987654321")
    return Message(chat=party, sender=party, content=content, from_me=from_me)


def test_only_a_customer_text_is_an_answer() -> None:
    assert answer_of(_message(Text(" 1 "))) == 1
    assert answer_of(_message(Text("1"), from_me=True)) is None


# --- the menu and the queues of a session ------------------------------------------------------

CONFIG = """\
database: {url: "sqlite::memory:"}
whatsapp: {engine: sim}
companies:
  - id: acme
    admins: ["@alice:localhost"]
    attendants: ["@bob:localhost", "@carol:localhost"]
    ops: {slack_channel: C0OPS}
    sessions:
      - name: sales
        slack_channel: C0SALES
%s
slack: {enabled: true, bot_token: xoxb-1, app_token: xapp-1}
"""

QUEUES = """\
        queues:
          - {name: billing, option: 2, label: Financeiro, attendants: ["@carol:localhost"]}
          - name: tech
            option: 1
            business_hours: {timezone: UTC, days: mon-fri, hours: "09:00-17:00"}
            out_of_hours: Fechado.
        menu: {text: "Escolha:", default_queue: tech}"""


def config_with(section: str) -> Config:
    return parse_config(CONFIG % section, path=Path("/srv/config.yaml"))


def problems_of(section: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG % section, path=Path("config.yaml"))
    return caught.value.problems


def warnings_of(tmp_path: Path, section: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG % section, encoding="utf-8")
    report = check_config(path, env={})
    assert report.errors == []
    return [f"{w.key}: {w.message}" for w in report.warnings]


def test_the_menu_lists_the_queues_by_option() -> None:
    session = config_with(QUEUES).sessions[0]
    assert session.menu is not None
    assert render_menu(session.menu, session.queues) == "Escolha:\n*1* - tech\n*2* - Financeiro"
    assert queue_of_option(session, 2) == session.queues[0]
    assert queue_of_option(session, 3) is None
    assert default_queue(session).name == "tech"


def test_a_queue_with_hours_has_them_and_one_without_has_the_sessions() -> None:
    session = config_with(QUEUES).sessions[0]
    assert attended_by(session, "tech") is session.queues[1]
    assert attended_by(session, "billing") is session
    assert attended_by(session, None) is session


def test_menu_defaults_with_queues_and_none_without() -> None:
    only = config_with("        queues: [{name: help, option: 1}, {name: sales, option: 2}]")
    session = only.sessions[0]
    assert session.menu == MenuConfig(default_queue="help")
    assert session.menu.timeout_seconds == 300 and session.menu.max_invalid == 2
    assert config_with("").sessions[0].menu is None


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            "        queues: [{name: a, option: 1}, {name: a, option: 2}]",
            "config.yaml:11 companies[0].sessions[0].queues[1].name (sales): queue name 'a' "
            "is already used by companies[0].sessions[0].queues[0] (line 11)",
        ),
        (
            "        queues:\n          - {name: a, option: 1}\n          - {name: b, option: 1}",
            "config.yaml:13 companies[0].sessions[0].queues[1].option (sales): option 1 is "
            "already used by companies[0].sessions[0].queues[0] (line 12)",
        ),
        (
            "        queues: [{name: a, option: 1}]\n        menu: {default_queue: b}",
            "config.yaml:12 companies[0].sessions[0].menu.default_queue (sales): no queue "
            "named 'b' here (a)",
        ),
        (
            '        queues: [{name: a, option: 1, attendants: ["@zed:localhost"]}]',
            "config.yaml:11 companies[0].sessions[0].queues[0].attendants (sales): "
            "@zed:localhost is not an admin or attendant of this company; add them there first",
        ),
        (
            "        queues: [{name: open, option: 1}]",
            "config.yaml:11 companies[0].sessions[0].queues[0].name (sales): 'open' is a word "
            "of !tickets and !transfer; name the queue otherwise",
        ),
        (
            "        queues: [{name: a, option: 100}]",
            "config.yaml:11 companies[0].sessions[0].queues[0].option (sales): expected an "
            "integer 1–99, got 100",
        ),
        (
            "        queues: [{option: 1}]",
            "config.yaml:11 companies[0].sessions[0].queues[0].name (sales): required; "
            "expected a lowercase id of letters, digits, '_' or '-' (like acme)",
        ),
        (
            "        queues: [{name: a, option: 1, colour: red}]",
            "config.yaml:11 companies[0].sessions[0].queues[0].colour (sales): unknown key; "
            "expected one of: name, option, label, attendants, greeting, business_hours, "
            "out_of_hours",
        ),
        (
            "        queues: [{name: a, option: 1}]\n        menu: {max_invalid: -1}",
            "config.yaml:12 companies[0].sessions[0].menu.max_invalid (sales): expected an "
            "integer ≥ 0, got -1",
        ),
    ],
)
def test_queue_problems_are_located(section: str, problem: str) -> None:
    assert problem in problems_of(section)


def test_warnings_for_what_queues_make_unused(tmp_path: Path) -> None:
    greeting = '        greeting: "Oi"\n        queues: [{name: a, option: 1}]'
    assert warnings_of(tmp_path, greeting) == [
        "companies[0].sessions[0].greeting (sales): not sent: with queues the menu is the "
        "first reply (docs/tickets.md)"
    ]
    assert warnings_of(tmp_path, "        menu: {text: Hi}") == [
        "companies[0].sessions[0].menu (sales): ignored: this session has no queues"
    ]
    hours = "        queues: [{name: a, option: 1, out_of_hours: Fechado}]"
    assert warnings_of(tmp_path, hours) == [
        "companies[0].sessions[0].queues[0].out_of_hours (sales): never sent: this queue "
        "has no business_hours"
    ]


# --- who works a queue --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "queue", "works"),
    [
        ("@alice:localhost", "billing", True),  # an admin works every queue
        ("@carol:localhost", "billing", True),  # listed
        ("@bob:localhost", "billing", False),  # not listed
        ("@bob:localhost", "tech", True),  # a queue without attendants is everyone's
        ("@bob:localhost", None, True),  # still choosing
        ("@bob:localhost", "gone", True),  # a queue since removed from the config
        ("@mallory:localhost", "tech", False),  # no member
        ("@mallory:localhost", None, False),
    ],
)
def test_works_queue(user: str, queue: str | None, works: bool) -> None:
    config = config_with(QUEUES)
    assert works_queue(config.companies[0], config.sessions[0], queue, user) is works


class _Ticket:
    id = 12
    company_id = "acme"
    session_key = "acme/sales"

    def __init__(self, queue: str | None) -> None:
        self.queue = queue


def test_queue_refusal_names_the_queue_and_leaves_outsiders_to_the_registry() -> None:
    config = config_with(QUEUES)
    assert queue_refusal(config, _Ticket("billing"), "@bob:localhost") == (
        "Ticket #12 is in queue billing, which you do not work: ask an admin or one of its "
        "attendants"
    )
    assert queue_refusal(config, _Ticket("billing"), "@carol:localhost") is None
    assert queue_refusal(config, _Ticket("billing"), "@mallory:localhost") is None


@pytest.mark.parametrize(
    ("word", "queue"),
    [
        ("billing", "billing"),
        ("Billing", "billing"),
        ("tech", "tech"),
        ("sales", None),  # a session's name, not a queue's
        ("acme/billing", None),  # company/session always names a session
        ("@billing:localhost", None),
        ("<@U0BILLING>", None),
        ("me", None),
    ],
)
def test_find_queue_word(word: str, queue: str | None) -> None:
    session = config_with(QUEUES).sessions[0]
    found = find_queue_word(session, word)
    assert (found.name if found else None) == queue
    assert find_queue_word(None, word) is None


def test_a_queue_is_shown_by_its_label_or_name() -> None:
    assert QueueConfig(name="a", option=1).shown_as == "a"
    assert QueueConfig(name="a", option=1, label="Vendas").shown_as == "Vendas"
