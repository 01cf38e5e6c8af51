"""The command registry: who may run what where, argument parsing, reply texts,
tenancy isolation, the slash path and the error boundary (fakes for every protocol)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bridge.config import Config, parse_config
from bridge.config.schema import CloudTemplate
from bridge.core import command_texts as texts
from bridge.core.command_model import (
    Command,
    CommandContext,
    CommandReply,
    Invocation,
    Role,
    RoomKind,
    Services,
)
from bridge.core.commands import (
    COMMANDS,
    CommandRegistry,
    is_command,
    note_command_text,
    parse_command,
)
from bridge.errors import EngineError, InvalidInput, NotAuthorized
from tests.harness.cloud import CLOUD, with_cloud

CONFIG = """\
homeserver: {address: "http://127.0.0.1:8008", domain: localhost}
appservice: {as_token: AS-TOKEN, hs_token: HS-TOKEN}
companies:
  - id: acme
    name: ACME Support
    admins: ["@alice:localhost", "U0ADMIN"]
    attendants: ["@bob:localhost", "U0BOB", "@carol:localhost"]
    ops: {matrix: true}
    quick_replies:
      - {shortcut: hello, text: "Hi {name}, {attendant} here about #{ticket}."}
      - {shortcut: bye, text: "Bye {name}!"}
    sessions:
      - {name: sales, matrix: true}
      - {name: support, matrix: true}
  - id: globex
    name: Globex Corp
    admins: ["@gina:localhost"]
    attendants: ["U0GUS"]
    ops: {matrix: true}
    sessions:
      - {name: sales, matrix: true}
      - {name: secret, matrix: true}
"""

ALICE, BOB, CAROL = "@alice:localhost", "@bob:localhost", "@carol:localhost"
MALLORY = "@mallory:localhost"  # in no company
GINA = "@gina:localhost"  # Globex's admin
TICKET = 7

ROLES = {"admin": ALICE, "attendant": BOB, "outsider": MALLORY, "other_admin": GINA}
NOT_A_MEMBER = "Sorry, only ACME Support's admins and attendants can use commands here."


# --- fakes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeTicket:
    id: int
    status: str
    contact_name: str
    phone: str | None = "+5511987654321"
    is_group: bool = False
    assignee: str | None = None
    session_key: str = "acme/sales"
    lid: str | None = None
    queue: str | None = None


@dataclass(frozen=True)
class FakeStats:
    by_status: Mapping[str, int]
    created_today: int
    first_response_median_seconds: float | None
    first_response_mean_seconds: float | None
    messages_in: int
    messages_out: int
    csat_count: int = 0
    csat_average: float | None = None
    active_by_queue: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Journal:
    """Every call any fake received, in order."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)


class FakeTickets:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.by_session: dict[tuple[str, str], list[FakeTicket]] = {}
        self.error: BaseException | None = None

    def _act(self, *call: Any) -> None:
        self.journal.calls.append(call)
        if self.error is not None:
            raise self.error

    async def accept(self, ticket_id: int, *, by: str) -> FakeTicket:
        self._act("accept", ticket_id, by)
        return FakeTicket(ticket_id, "open", "Maria", assignee=by)

    async def assign(self, ticket_id: int, user: str, *, by: str) -> FakeTicket:
        self._act("assign", ticket_id, user, by)
        return FakeTicket(ticket_id, "open", "Maria", assignee=user)

    async def transfer(self, ticket_id: int, target: str, *, by: str) -> FakeTicket:
        self._act("transfer", ticket_id, target, by)
        return FakeTicket(ticket_id, "pending", "Maria")

    async def close(self, ticket_id: int, *, by: str) -> FakeTicket:
        self._act("close", ticket_id, by)
        return FakeTicket(ticket_id, "closed", "Maria")

    async def reopen(self, ticket_id: int, *, by: str) -> FakeTicket:
        self._act("reopen", ticket_id, by)
        return FakeTicket(ticket_id, "open", "Maria")

    async def send_template(
        self,
        ticket_id: int,
        *,
        template: CloudTemplate,
        params: tuple[str, ...],
        by: str,
        by_name: str,
    ) -> FakeTicket:
        self._act("template", ticket_id, template.name, template.language, params, by, by_name)
        return FakeTicket(ticket_id, "open", "Maria", assignee=by)

    async def post_transcript(self, ticket_id: int) -> FakeTicket:
        self._act("transcript", ticket_id)
        return FakeTicket(ticket_id, "open", "Maria")

    async def transfer_to_queue(self, ticket_id: int, queue: str, *, by: str) -> FakeTicket:
        self._act("transfer_to_queue", ticket_id, queue, by)
        return FakeTicket(ticket_id, "pending", "Maria", queue=queue)

    async def list(
        self, session_key: str, *, status: str | None, queue: str | None = None
    ) -> Sequence[FakeTicket]:
        self._act("list", session_key, status)
        assert status is not None
        return self.by_session.get((session_key, status), [])

    async def stats(self, company_id: str, *, queue: str | None = None) -> FakeStats:
        self._act("stats", company_id)
        return FakeStats({"pending": 2, "open": 5, "closed": 9}, 4, 130.0, 185.4, 120, 98)


class FakeSessions:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.statuses = {
            "acme/sales": "CONNECTED",
            "acme/support": "LOGGED_OUT",
            "globex/sales": "CONNECTED",
            "globex/secret": "QRCODE",
        }
        self.phones: dict[str, str | None] = {
            "acme/sales": "+5511900000001",
            "globex/sales": "+5511900000009",
        }
        self.facts: dict[str, dict[str, str]] = {}
        self.facts_error: BaseException | None = None
        self.error: BaseException | None = None

    async def login(self, key: str, *, phone: str | None = None) -> None:
        self.journal.calls.append(("login", key, phone))
        if self.error is not None:
            raise self.error

    async def logout(self, key: str) -> None:
        self.journal.calls.append(("logout", key))
        if self.error is not None:
            raise self.error

    def status(self, key: str) -> str:
        return self.statuses[key]

    def phone(self, key: str) -> str | None:
        return self.phones.get(key)

    async def account_facts(self, key: str) -> dict[str, str]:
        if self.facts_error is not None:
            raise self.facts_error
        return self.facts.get(key, {})


class FakeOrigins:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def remember(
        self, session_key: str, *, frontend: str, room: str, thread_root: str | None
    ) -> None:
        self.journal.calls.append(("remember", session_key, frontend, room, thread_root))


@dataclass
class World:
    registry: CommandRegistry
    journal: Journal
    tickets: FakeTickets
    sessions: FakeSessions

    @property
    def calls(self) -> list[tuple[Any, ...]]:
        return self.journal.calls


@pytest.fixture(scope="module")
def config() -> Config:
    """acme/sales is a Cloud API session (templates ``order_update`` and ``hello``);
    the other sessions are on whatsmeow."""
    return with_cloud(parse_config(CONFIG, path=Path("/srv/zap/config.yaml")), "acme/sales")


def new_world(config: Config) -> World:
    journal = Journal()
    tickets, sessions = FakeTickets(journal), FakeSessions(journal)
    registry = CommandRegistry(
        config, tickets=tickets, sessions=sessions, login_origins=FakeOrigins(journal)
    )
    return World(registry, journal, tickets, sessions)


@pytest.fixture
def world(config: Config) -> World:
    return new_world(config)


@pytest.fixture
def linked_world() -> World:
    """Every session on whatsmeow: ``!login`` links a device by QR or pairing code
    (a Cloud API session's ``!login`` only checks its token: tested apart)."""
    return new_world(parse_config(CONFIG, path=Path("/srv/zap/config.yaml")))


def links_a_device(text: str) -> bool:
    """``!login``/``!logout``: the cases written for whatsmeow's linked devices."""
    return text.strip().lower().startswith(("!login", "!logout"))


def make_ctx(
    place: RoomKind,
    user: str = BOB,
    *,
    company: str = "acme",
    session: str = "acme/sales",
    frontend: str = "matrix",
) -> CommandContext:
    in_session = place in (RoomKind.CONTROL, RoomKind.THREAD)
    return CommandContext(
        frontend=frontend,
        company_id=company,
        place=place,
        session_key=session if in_session else None,
        ticket_id=TICKET if place == RoomKind.THREAD else None,
        user_id=user,
        display_name={ALICE: "Alice", BOB: "Bob"}.get(user, user),
        room="!room:localhost",
        thread_root="$root" if place == RoomKind.THREAD else None,
    )


async def run(world: World, place: RoomKind, text: str, user: str = BOB, **kw: Any) -> CommandReply:
    reply = await world.registry.handle(make_ctx(place, user, **kw), text)
    assert reply is not None
    return reply


# --- every command x place x role -----------------------------------------------------------

C, T, OPS = RoomKind.CONTROL, RoomKind.THREAD, RoomKind.OPS  # short names for the tables

# The contract, written out independently of COMMANDS: (text per place, least role,
# places, the call a successful run makes (None: read-only)).
CONTRACT: dict[str, tuple[dict[RoomKind, str], str, set[RoomKind], tuple[Any, ...] | None]] = {
    "help": ({C: "!help", T: "!help", OPS: "!help"}, "attendant", {C, T, OPS}, None),
    "login": (
        {C: "!login", T: "!login", OPS: "!login sales"},
        "admin",
        {C, OPS},
        ("login", "acme/sales", None),
    ),
    "logout": (
        {C: "!logout", T: "!logout", OPS: "!logout sales"},
        "admin",
        {C, OPS},
        ("logout", "acme/sales"),
    ),
    "status": ({C: "!status", T: "!status", OPS: "!status"}, "attendant", {C, T, OPS}, None),
    "sessions": ({p: "!sessions" for p in RoomKind}, "attendant", {C, T, OPS}, None),
    "tickets": ({p: "!tickets" for p in RoomKind}, "attendant", {C}, None),
    "accept": ({p: "!accept" for p in RoomKind}, "attendant", {T}, ("accept", TICKET, "?")),
    "close": ({p: "!close" for p in RoomKind}, "attendant", {T}, ("close", TICKET, "?")),
    "reopen": ({p: "!reopen" for p in RoomKind}, "attendant", {T}, ("reopen", TICKET, "?")),
    "assign": (
        {p: f"!assign {CAROL}" for p in RoomKind},
        "attendant",
        {T},
        ("assign", TICKET, CAROL, "?"),
    ),
    "transfer": (
        {p: "!transfer support" for p in RoomKind},
        "attendant",
        {T},
        ("transfer", TICKET, "acme/support", "?"),
    ),
    "stats": ({p: "!stats" for p in RoomKind}, "attendant", {C, T, OPS}, None),
    "template": ({p: "!template" for p in RoomKind}, "attendant", {T}, None),
    "r": ({p: "!r hello" for p in RoomKind}, "attendant", {T}, None),  # the relay sends it
    "replies": ({p: "!replies" for p in RoomKind}, "attendant", {C, T, OPS}, None),
    "transcript": ({p: "!transcript" for p in RoomKind}, "attendant", {T}, ("transcript", TICKET)),
    "note": ({p: "!note ligar amanhã" for p in RoomKind}, "attendant", {T}, None),
}

WRONG_PLACE = {
    "login": "!login works in a session's control room or in the ops room "
    "(there, type !login <session> [phone +E164]).",
    "logout": "!logout works in a session's control room or in the ops room "
    "(there, type !logout <session>).",
    "tickets": "!tickets works in a session's control room.",
    **{
        name: f"!{name} works inside a ticket thread."
        for name in (
            "accept",
            "close",
            "reopen",
            "assign",
            "transfer",
            "template",
            "r",
            "transcript",
            "note",
        )
    },
}


def matrix_cases() -> list[Any]:
    cases = []
    for name in CONTRACT:
        for place in RoomKind:
            for role in ROLES:
                cases.append(pytest.param(name, place, role, id=f"{name}-{place}-{role}"))
    return cases


@pytest.mark.parametrize(("name", "place", "role"), matrix_cases())
async def test_every_command_place_and_role(
    world: World, linked_world: World, name: str, place: RoomKind, role: str
):
    by_place, least, places, effect = CONTRACT[name]
    if links_a_device(by_place[place]):
        world = linked_world
    user = ROLES[role]
    reply = await run(world, place, by_place[place], user)

    if role in ("outsider", "other_admin"):
        assert reply == CommandReply(NOT_A_MEMBER, ephemeral=True)
    elif least == "admin" and role == "attendant":
        assert reply == CommandReply(f"Only admins of ACME Support can use !{name}.", True)
    elif place not in places:
        assert reply == CommandReply(WRONG_PLACE[name], ephemeral=True)
    else:
        assert not reply.ephemeral, reply.text
        assert "Could not" not in reply.text and "Usage" not in reply.text
        expected = () if effect is None else (tuple(user if v == "?" else v for v in effect),)
        side_effects = tuple(c for c in world.calls if c[0] not in ("list", "stats", "remember"))
        assert side_effects == expected
        return
    assert world.calls == []  # refused: nothing happened


def test_the_table_matches_the_contract():
    table = {c.name: c for c in COMMANDS}
    assert set(table) == set(CONTRACT)
    for name, (_, least, places, _) in CONTRACT.items():
        assert table[name].role == Role(least)
        assert table[name].places == places
        assert table[name].help.usage.startswith(f"!{name}")


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("!help", ("help", ())),
        ("  !Tickets   Open  ", ("tickets", ("Open",))),
        ("!LOGIN sales\tphone  +5511900000001\n", ("login", ("sales", "phone", "+5511900000001"))),
        ("!assign <@U0BOB>", ("assign", ("<@U0BOB>",))),
        ("hello", None),
        ("", None),
        ("   ", None),
        ("! close", None),
        ("!!", None),
        ("!123", None),
        ("please !close", None),
    ],
)
def test_parse_command(text: str, parsed: tuple[str, tuple[str, ...]] | None):
    assert parse_command(text) == parsed
    assert is_command(text) is (parsed is not None)
    assert CommandRegistry.is_command(text) is (parsed is not None)


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("!note ligar amanhã", "ligar amanhã"),
        ("  !NOTE\t*ligar*\nsegunda linha ", "*ligar*\nsegunda linha"),
        ("!note", ""),
        ("!note   ", ""),
        ("!notes", None),
        ("!notebook x", None),
        ("please !note x", None),
        ("// x", None),  # the prefix is bridge.core.notes' business, not a command's
    ],
)
def test_note_command_text(text: str, note: str | None):
    assert note_command_text(text) == note


async def test_note_in_a_thread_through_the_registry_says_how_to_write_one(world: World):
    reply = await run(world, T, "!note ligar amanhã")
    assert reply == CommandReply(
        "A note is a message typed in the ticket's thread: !note <text>, or the text after "
        "the note prefix. It was not recorded."
    )
    assert world.calls == []


async def test_not_a_command_returns_none(world: World):
    assert await world.registry.handle(make_ctx(T), "Olá, tudo bem?") is None
    assert await world.registry.handle(make_ctx(T, MALLORY), "hello") is None
    assert world.calls == []


async def test_commands_are_case_insensitive_and_tolerate_spaces(world: World):
    reply = await run(world, T, "   !CLOSE   ")
    assert reply.text == "Ticket #7 closed by Bob."
    assert world.calls == [("close", TICKET, BOB)]


# --- arguments ----------------------------------------------------------------------------------

# (place, user, text, exact reply, the calls made: None when nothing may be called)
# fmt: off
REMEMBER_SALES = ("remember", "acme/sales", "matrix", "!room:localhost", None)
REMEMBER_SUPPORT = ("remember", "acme/support", "matrix", "!room:localhost", None)
PAIRING = ("Starting login for acme/sales with +5511987654321: the pairing code will appear "
           "here. On the phone, open WhatsApp → Linked devices → Link with phone number, "
           "and type it.")
QR_SUPPORT = "Starting login for acme/support: the QR code will appear here."
NOT_E164 = ("{} is not a phone number in international format (like +5511987654321). "
            "Usage: !login [phone +E164]")
ARGUMENT_CASES = [
    # !tickets
    (C, BOB, "!tickets maybe", "Usage: !tickets [pending|open|closed] [queue]", None),
    (C, BOB, "!tickets open closed", "Usage: !tickets [pending|open|closed] [queue]", None),
    # !login in a control room
    (C, ALICE, "!login phone 123", NOT_E164.format("123"), None),
    (C, ALICE, "!login phone 5511987654321", NOT_E164.format("5511987654321"), None),
    (C, ALICE, "!login phone", "Usage: !login [phone +E164]", None),
    (C, ALICE, "!login please", "Usage: !login [phone +E164]", None),
    (C, ALICE, "!login sales extra", "Usage: !login [phone +E164]", None),
    (C, ALICE, "!login secret", "Usage: !login [phone +E164]", None),
    (C, ALICE, "!login support",
     "Here !login applies to acme/sales; name another session in the ops room.", None),
    (C, ALICE, "!login phone +55 (11) 98765-4321", PAIRING,
     [REMEMBER_SALES, ("login", "acme/sales", "+5511987654321")]),
    # naming the room's own session is tolerated (the fake's acme/sales is CONNECTED)
    (C, ALICE, "!login Sales", "Reconnecting acme/sales (it was CONNECTED). "
     "If WhatsApp asks to link it again, the QR code will appear here.",
     [REMEMBER_SALES, ("login", "acme/sales", None)]),
    # !login / !logout in the ops room
    (OPS, ALICE, "!login",
     "Which session? Usage: !login <session> [phone +E164] (sessions: sales, support).", None),
    (OPS, ALICE, "!login phone +5511987654321",
     "Which session? Usage: !login <session> [phone +E164] (sessions: sales, support).", None),
    (OPS, ALICE, "!logout",
     "Which session? Usage: !logout <session> (sessions: sales, support).", None),
    (OPS, ALICE, "!logout sales now", "Usage: !logout <session>", None),
    (OPS, ALICE, "!login sales phone +5511987654321", PAIRING,
     [REMEMBER_SALES, ("login", "acme/sales", "+5511987654321")]),
    (OPS, ALICE, "!login SUPPORT", QR_SUPPORT, [REMEMBER_SUPPORT, ("login", "acme/support", None)]),
    (OPS, ALICE, "!login acme/support", QR_SUPPORT,
     [REMEMBER_SUPPORT, ("login", "acme/support", None)]),
    (OPS, ALICE, "!logout support",
     "acme/support is logged out (LOGGED_OUT). Type !login to link it again.",
     [("logout", "acme/support")]),
    # !status, !sessions
    (C, BOB, "!status extra", "Usage: !status", None),
    (OPS, BOB, "!status support", "acme/support LOGGED_OUT", []),
    (T, BOB, "!status", "acme/sales CONNECTED +5511900000001", []),
    (OPS, BOB, "!status", "acme/sales CONNECTED +5511900000001\nacme/support LOGGED_OUT", []),
    (C, BOB, "!sessions", "acme/sales CONNECTED +5511900000001\nacme/support LOGGED_OUT", []),
    (C, BOB, "!sessions all", "Usage: !sessions", None),
    # thread commands
    (T, BOB, "!close now", "Usage: !close", None),
    (T, BOB, "!accept 7", "Usage: !accept", None),
    (T, BOB, "!reopen please", "Usage: !reopen", None),
    (T, BOB, "!assign", "Usage: !assign <user>", None),
    (T, BOB, "!assign a b", "Usage: !assign <user>", None),
    (T, BOB, "!assign carol", "carol is not a user: write a Matrix id like @bob:example.org, "
     "a Slack @mention, or me. Usage: !assign <user>", None),
    (T, BOB, "!assign @mallory:localhost",
     "@mallory:localhost is not an admin or attendant of ACME Support.", None),
    (T, BOB, f"!assign {GINA}", f"{GINA} is not an admin or attendant of ACME Support.", None),
    (T, BOB, "!assign <@U0BOB>", "Ticket #7 assigned to U0BOB by Bob.",
     [("assign", TICKET, "U0BOB", BOB)]),
    (T, BOB, "!assign <@U0BOB|bob>", "Ticket #7 assigned to U0BOB by Bob.",
     [("assign", TICKET, "U0BOB", BOB)]),
    (T, BOB, "!assign U0ADMIN", "Ticket #7 assigned to U0ADMIN by Bob.",
     [("assign", TICKET, "U0ADMIN", BOB)]),
    (T, BOB, "!assign me", "Ticket #7 assigned to @bob:localhost by Bob.",
     [("assign", TICKET, BOB, BOB)]),
    (T, BOB, "!assign https://matrix.to/#/@carol:localhost",
     "Ticket #7 assigned to @carol:localhost by Bob.", [("assign", TICKET, CAROL, BOB)]),
    (T, BOB, "!transfer", "Usage: !transfer <user|queue|session>", None),
    (T, BOB, "!transfer Support", "Ticket #7 transferred to acme/support by Bob.",
     [("transfer", TICKET, "acme/support", BOB)]),
    (T, BOB, "!transfer acme/support", "Ticket #7 transferred to acme/support by Bob.",
     [("transfer", TICKET, "acme/support", BOB)]),
    (T, BOB, "!transfer <@U0BOB>", "Ticket #7 transferred to U0BOB by Bob.",
     [("transfer", TICKET, "U0BOB", BOB)]),
    (T, BOB, "!transfer U0BOB", "Ticket #7 transferred to U0BOB by Bob.",
     [("transfer", TICKET, "U0BOB", BOB)]),
    (T, BOB, f"!transfer {CAROL}", "Ticket #7 transferred to @carol:localhost by Bob.",
     [("transfer", TICKET, CAROL, BOB)]),
    (T, BOB, "!transfer U0NOBODY", "No session or user named U0NOBODY in ACME Support.", None),
    (T, BOB, "!transfer U0GUS", "No session or user named U0GUS in ACME Support.", None),
    (T, BOB, "!transfer globex/secret",
     "No session or user named globex/secret in ACME Support.", None),
    (T, BOB, "!transfer @mallory:localhost",
     "@mallory:localhost is not an admin or attendant of ACME Support.", None),
    # !template (acme/sales is a Cloud API session)
    (T, BOB, "!template", "*Templates of acme/sales* (!template <name> [params…]):\n"
     "order_update (pt_BR, 2 params)\nhello (en_US, 0 params)", []),
    (T, BOB, "!template order_update 1234 Maria",
     "Template order_update is on its way to the customer of ticket #7.",
     [("template", TICKET, "order_update", "pt_BR", ("1234", "Maria"), BOB, "Bob")]),
    (T, BOB, "!template hello", "Template hello is on its way to the customer of ticket #7.",
     [("template", TICKET, "hello", "en_US", (), BOB, "Bob")]),
    (T, BOB, "!template Hello", "No template named Hello (templates: order_update, hello). "
     "Type !template for the list.", None),
    (T, BOB, "!template order_update 1234", "Template order_update takes 2 parameters (one "
     "word each), not 1. Usage: !template order_update <1> <2>", None),
    (T, BOB, "!template hello there", "Template hello takes 0 parameters (one word each), "
     "not 1. Usage: !template hello", None),
    # !stats, !help
    (
        OPS,
        BOB,
        "!stats now",
        "No queue named 'now' in this company (queues: none). Usage: !stats [queue]",
        None,
    ),
    (T, BOB, "!help a b", "Usage: !help [command]", None),
    (T, BOB, "!help xyzzy", "Unknown command !xyzzy. Type !help for the list.", None),
    (T, BOB, "!help tiket",
     "Unknown command !tiket. Did you mean !tickets? Type !help for the list.", None),
    (T, BOB, "!help !Close", "*!close* — close this ticket (the customer gets the farewell)\n"
     "Usage: !close\nWorks inside a ticket thread.", []),
]
# fmt: on


@pytest.mark.parametrize(
    ("place", "user", "text", "expected", "calls"),
    [pytest.param(*case, id=f"{case[0]}:{case[2]}") for case in ARGUMENT_CASES],
)
async def test_arguments(
    world: World,
    linked_world: World,
    place: RoomKind,
    user: str,
    text: str,
    expected: str,
    calls: list[tuple[Any, ...]] | None,
):
    if links_a_device(text):
        world = linked_world
    reply = await run(world, place, text, user)
    assert reply.text == expected
    if calls is None:  # refused: only for the sender, and nothing happened
        assert reply.ephemeral
        assert world.calls == []
    else:
        assert not reply.ephemeral
        assert world.calls == calls


# --- !tickets -------------------------------------------------------------------------------------


async def test_tickets_lines_exactly(world: World):
    world.tickets.by_session = {
        ("acme/sales", "pending"): [FakeTicket(3, "pending", "Maria")],
        ("acme/sales", "open"): [
            FakeTicket(5, "open", "Família Silva", phone=None, is_group=True),
            FakeTicket(6, "open", "Ana \n Paula", phone=None),
            FakeTicket(7, "open", "Bia", phone=None, lid="123456789012345"),
        ],
        ("acme/sales", "closed"): [FakeTicket(1, "closed", "João", phone="+5521912345678")],
    }
    reply = await run(world, C, "!tickets")
    assert reply == CommandReply(
        "#3 pending Maria (+5511987654321)\n"
        "#5 open Família Silva (group)\n"
        "#6 open Ana Paula (no number)\n"
        "#7 open Bia (LID 123456789012345)"
    )
    assert world.calls == [("list", "acme/sales", "pending"), ("list", "acme/sales", "open")]

    world.calls.clear()
    reply = await run(world, C, "!tickets CLOSED")
    assert reply.text == "#1 closed João (+5521912345678)"
    assert world.calls == [("list", "acme/sales", "closed")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!tickets", "No pending or open tickets."),
        ("!tickets pending", "No pending tickets."),
        ("!tickets open", "No open tickets."),
        ("!tickets closed", "No closed tickets."),
    ],
)
async def test_tickets_none(world: World, text: str, expected: str):
    assert await run(world, C, text) == CommandReply(expected)


async def test_tickets_long_lists_are_cut(world: World):
    world.tickets.by_session = {
        ("acme/support", "pending"): [FakeTicket(i, "pending", f"C{i}") for i in range(1, 61)]
    }
    reply = await run(world, C, "!tickets pending", session="acme/support")
    lines = reply.text.splitlines()
    assert len(lines) == 51
    assert lines[0] == "#1 pending C1 (+5511987654321)"
    assert lines[-1] == "… and 10 more."


# --- login ----------------------------------------------------------------------------------------


async def test_login_remembers_the_origin_before_logging_in(world: World):
    reply = await run(world, C, "!login", ALICE, session="acme/support", frontend="slack")
    assert reply == CommandReply("Starting login for acme/support: the QR code will appear here.")
    assert world.calls == [
        ("remember", "acme/support", "slack", "!room:localhost", None),
        ("login", "acme/support", None),
    ]


async def test_login_of_a_paired_session_says_it_reconnects(linked_world: World):
    world = linked_world
    world.sessions.statuses["acme/sales"] = "BANNED"
    reply = await run(world, OPS, "!login sales", ALICE)
    assert reply.text == (
        "Reconnecting acme/sales (it was BANNED). "
        "If WhatsApp asks to link it again, the QR code will appear here."
    )


# --- isolation between companies ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["!login secret", "!login globex/sales", "!logout globex/secret", "!status secret"],
)
async def test_ops_never_reaches_another_company(world: World, text: str):
    reply = await run(world, OPS, text, ALICE)
    name = text.split()[1]
    assert reply == CommandReply(
        f"No session named {name} in ACME Support. Sessions: sales, support.", ephemeral=True
    )
    assert world.calls == []
    assert "globex" not in reply.text.replace(name, "") and "Globex" not in reply.text


async def test_each_company_sees_only_its_sessions(world: World):
    acme = await run(world, OPS, "!sessions", ALICE)
    globex = await run(world, OPS, "!sessions", GINA, company="globex")
    assert acme.text == "acme/sales CONNECTED +5511900000001\nacme/support LOGGED_OUT"
    assert globex.text == "globex/sales CONNECTED +5511900000009\nglobex/secret QRCODE"


async def test_an_admin_of_one_company_is_an_outsider_in_another(world: World):
    reply = await run(world, OPS, "!login secret", ALICE, company="globex")
    assert reply == CommandReply(
        "Sorry, only Globex Corp's admins and attendants can use commands here.", ephemeral=True
    )
    assert world.calls == []


async def test_a_room_of_an_unknown_company_is_refused(world: World, caplog):
    with caplog.at_level(logging.WARNING, logger="bridge.core.commands"):
        reply = await run(world, OPS, "!status", ALICE, company="initech")
    assert reply == CommandReply(texts.not_a_member(None), ephemeral=True)
    assert "unknown company 'initech'" in caplog.text


# --- the slash command ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "user", "text", "expected"),
    [
        (C, BOB, "close", "!close works inside a ticket thread."),
        (C, BOB, "note ligar amanhã", "!note works inside a ticket thread."),
        (C, BOB, "  TICKETS   pending ", "No pending tickets."),
        (C, BOB, "!status", "acme/sales CONNECTED +5511900000001"),
        (
            OPS,
            ALICE,
            "login support",
            "Starting login for acme/support: the QR code will appear here.",
        ),
        (C, BOB, "clsoe", "Unknown command !clsoe. Did you mean !close? Type !help for the list."),
        (C, BOB, "123", "Unknown command !123. Type !help for the list."),
        (C, MALLORY, "status", NOT_A_MEMBER),
    ],
)
async def test_slash_command(world: World, place: RoomKind, user: str, text: str, expected: str):
    ctx = make_ctx(place, user, frontend="slack")
    reply = await world.registry.handle_slash(ctx, text)
    assert reply.text == expected


@pytest.mark.parametrize("text", ["", "   ", "!"])
async def test_empty_slash_command_shows_help(world: World, text: str):
    reply = await world.registry.handle_slash(make_ctx(C, frontend="slack"), text)
    assert reply.text.startswith("*Commands in this channel* (you are an attendant of ACME")
    assert "Outside threads you can also type /whatsapp <command>." in reply.text


# --- unknown commands -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!foo", "Unknown command !foo. Type !help for the list."),
        ("!clsoe", "Unknown command !clsoe. Did you mean !close? Type !help for the list."),
        ("!tickts", "Unknown command !tickts. Did you mean !tickets? Type !help for the list."),
        (
            "!statu",
            "Unknown command !statu. Did you mean !status or !stats? Type !help for the list.",
        ),
        ("!Obrigado!", "Unknown command !obrigado!. Type !help for the list."),
    ],
)
async def test_unknown_command(world: World, text: str, expected: str):
    assert await run(world, T, text) == CommandReply(expected, ephemeral=True)
    assert world.calls == []


async def test_an_outsider_learns_nothing_about_commands(world: World):
    assert (await run(world, T, "!clsoe", MALLORY)).text == NOT_A_MEMBER


# --- help -----------------------------------------------------------------------------------------


async def test_help_for_an_attendant_in_a_thread(world: World):
    reply = await run(world, T, "!help")
    assert reply == CommandReply(
        "*Commands in this ticket thread* (you are an attendant of ACME Support):\n"
        "!help [command] — list the commands you can use here\n"
        "!accept — take this ticket: it becomes open and assigned to you\n"
        "!close — close this ticket (the customer gets the farewell)\n"
        "!reopen — reopen this closed ticket\n"
        "!assign <user> — give this ticket to an admin or attendant "
        "(a Matrix id, a Slack @mention, or me)\n"
        "!transfer <user|queue|session> — move this ticket to another attendant, "
        "to a queue of this session, or to another session of the company\n"
        "!template [name params…] — send an approved WhatsApp template (Cloud API sessions, "
        "also after the customer's 24-hour window); alone, list them\n"
        "!r <shortcut> — send the customer a saved quick reply "
        "({name}, {ticket}, {attendant} filled in)\n"
        "!replies — the company's quick replies and their shortcuts\n"
        "!transcript — post this ticket's transcript (every message with time and author) "
        "as a file here\n"
        "!note <text> — an internal note: shown to staff on every frontend, never sent to "
        "the customer (a message starting with the note prefix, // by default, is one too)\n"
        "!status — connection status and phone of this session; in ops, of every session\n"
        "!sessions — every WhatsApp session of the company, one per line\n"
        "!stats [queue] — ticket counts, first response times and message volume of the "
        "company, or of its tickets in one queue\n"
        "Elsewhere: !tickets in a session's control room.\n"
        "Type !help <command> for details."
    )


async def test_help_for_an_admin_in_ops_names_sessions(world: World):
    text = (await run(world, OPS, "!help", ALICE)).text
    assert text.startswith("*Commands in the ops room* (you are an admin of ACME Support):")
    assert "\n!login <session> [phone +E164] — " in text
    assert "\n!logout <session> — " in text
    assert "\n!status [session] — " in text
    assert "!close" not in text.split("Elsewhere:")[0]
    assert (
        "Elsewhere: !accept, !close, !reopen, !assign, !transfer, !template, !r, !transcript, "
        "!note inside a ticket thread; "
        "!tickets in a session's control room." in text
    )


@pytest.mark.parametrize("place", list(RoomKind))
async def test_help_lists_only_what_the_role_may_use_here(world: World, place: RoomKind):
    text = (await run(world, place, "!help", BOB)).text
    listed = {line.split()[0][1:] for line in text.splitlines() if line.startswith("!")}
    usable_here = {
        name
        for name, (_, least, places, _) in CONTRACT.items()
        if least == "attendant" and place in places
    }
    assert listed == usable_here
    assert "!login" not in text


async def test_help_of_an_admin_command_says_so(world: World):
    text = (await run(world, C, "!help LOGIN", BOB)).text
    assert text == (
        "*!login* — link a WhatsApp number (QR code, or a pairing code by phone) "
        "or reconnect it (admins only)\n"
        "Usage: !login [phone +E164]\n"
        "In the ops room: !login <session> [phone +E164]\n"
        "Works in a session's control room or in the ops room."
    )


# --- thread command replies, stats ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!accept", "Bob accepted ticket #7; it is open and assigned to them."),
        ("!close", "Ticket #7 closed by Bob."),
        ("!reopen", "Ticket #7 reopened by Bob; it is open."),
    ],
)
async def test_ticket_replies(world: World, text: str, expected: str):
    assert await run(world, T, text) == CommandReply(expected)


async def test_stats(world: World):
    reply = await run(world, OPS, "!stats")
    assert reply.text == (
        "*ACME Support* tickets: 2 pending, 5 open, 9 closed · 4 created today\n"
        "First response: median 2m 10s, mean 3m 05s\n"
        "Messages: 120 in, 98 out"
    )
    assert world.calls == [("stats", "acme")]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "n/a"),
        (0, "0s"),
        (59.4, "59s"),
        (60, "1m 00s"),
        (3599, "59m 59s"),
        (3600, "1h 00m"),
        (86399, "23h 59m"),
        (90000, "1d 1h"),
    ],
)
def test_duration(seconds: float | None, shown: str):
    assert texts.duration(seconds) == shown


# --- errors at the boundary -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "user", "text", "error", "expected"),
    [
        (
            T,
            BOB,
            "!close",
            InvalidInput("ticket #7 is already closed"),
            "Could not run !close: ticket #7 is already closed",
        ),
        (
            T,
            BOB,
            "!assign @carol:localhost",
            NotAuthorized("Carol is on leave"),
            "Could not run !assign: Carol is on leave",
        ),
        (
            C,
            ALICE,
            "!login",
            EngineError("session acme/sales could not connect: timeout"),
            "Could not run !login: session acme/sales could not connect: timeout",
        ),
        (
            OPS,
            ALICE,
            "!logout sales",
            InvalidInput("there is no session acme/sales"),
            "Could not run !logout: there is no session acme/sales",
        ),
    ],
)
async def test_bridge_errors_become_replies(
    world: World,
    linked_world: World,
    place: RoomKind,
    user: str,
    text: str,
    error: Exception,
    expected: str,
    caplog,
):
    if links_a_device(text):
        world = linked_world
    world.tickets.error = world.sessions.error = error
    with caplog.at_level(logging.INFO, logger="bridge.core.commands"):
        reply = await run(world, place, text, user)
    assert reply == CommandReply(expected, ephemeral=True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_login_origin_is_kept_even_when_login_fails(linked_world: World):
    world = linked_world
    world.sessions.error = InvalidInput("session acme/sales is already connected")
    await run(world, C, "!login", ALICE)
    assert world.calls[0][0] == "remember"


async def test_unexpected_errors_are_logged_and_answered(world: World, caplog):
    async def broken(company_id: str, *, queue: str | None = None) -> Any:
        raise RuntimeError("database on fire")

    world.tickets.stats = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="bridge.core.commands"):
        reply = await run(world, C, "!stats")
    assert reply == CommandReply(
        "Something went wrong running !stats; the error was logged.", ephemeral=True
    )
    [record] = caplog.records
    assert record.name == "bridge.core.commands"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    assert "database on fire" not in reply.text


async def test_cancellation_is_not_swallowed(world: World):
    world.tickets.error = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        await run(world, T, "!close")


# --- the context, the registry table --------------------------------------------------------------


@pytest.mark.parametrize(
    ("place", "session_key", "ticket_id"),
    [
        (RoomKind.THREAD, "acme/sales", None),
        (RoomKind.THREAD, None, 7),
        (RoomKind.CONTROL, None, None),
        (RoomKind.CONTROL, "acme/sales", 7),
        (RoomKind.OPS, "acme/sales", None),
        (RoomKind.CONTROL, "globex/sales", None),
    ],
)
def test_inconsistent_contexts_are_programming_errors(
    place: RoomKind, session_key: str | None, ticket_id: int | None
):
    ctx = make_ctx(RoomKind.OPS)
    with pytest.raises(ValueError):
        replace(ctx, place=place, session_key=session_key, ticket_id=ticket_id)


async def test_adding_a_command_is_one_entry(config: Config, world: World):
    async def run_ping(services: Services, call: Invocation) -> CommandReply:
        return CommandReply(f"pong {' '.join(call.args)} from {call.company.name}")

    ping = Command(
        "ping",
        Role.ATTENDANT,
        frozenset({RoomKind.OPS}),
        texts.CommandHelp("answer pong", "!ping [words]"),
        run_ping,
    )
    registry = CommandRegistry(
        config,
        tickets=world.tickets,
        sessions=world.sessions,
        login_origins=FakeOrigins(world.journal),
        commands=(*COMMANDS, ping),
    )
    assert (await registry.handle(make_ctx(OPS), "!PING a b")).text == "pong a b from ACME Support"  # type: ignore[union-attr]
    assert (await registry.handle(make_ctx(C), "!ping")).text == "!ping works in the ops room."  # type: ignore[union-attr]
    help_text = (await registry.handle(make_ctx(OPS), "!help")).text  # type: ignore[union-attr]
    assert "!ping [words] — answer pong" in help_text


def test_two_commands_with_one_name_are_refused(config: Config, world: World):
    with pytest.raises(ValueError, match="share a name"):
        CommandRegistry(
            config,
            tickets=world.tickets,
            sessions=world.sessions,
            login_origins=FakeOrigins(world.journal),
            commands=(*COMMANDS, COMMANDS[0]),
        )


def test_slack_places_are_channels():
    assert texts.wrong_place("tickets", places=["control"], frontend="slack", ops_usage=None) == (
        "!tickets works in a session's channel."
    )


# --- Cloud API sessions: !template elsewhere, !status facts -------------------------------------


@pytest.mark.parametrize("text", ["!template", "!template hello"])
async def test_templates_are_refused_outside_cloud_sessions(world: World, text: str):
    reply = await run(world, T, text, session="acme/support")
    assert reply == CommandReply(
        "Could not run !template: templates are a Cloud API feature; "
        "acme/support runs on whatsmeow",
        ephemeral=True,
    )
    assert world.calls == []


async def test_a_cloud_session_without_templates_says_so(config: Config):
    bare = with_cloud(config, "acme/sales", replace(CLOUD, templates=()))
    journal = Journal()
    registry = CommandRegistry(
        bare,
        tickets=FakeTickets(journal),
        sessions=FakeSessions(journal),
        login_origins=FakeOrigins(journal),
    )
    reply = await registry.handle(make_ctx(T), "!template")
    assert reply == CommandReply(
        "acme/sales has no templates configured (sessions[].cloud.templates)."
    )
    reply = await registry.handle(make_ctx(T), "!template hello")
    assert reply == CommandReply(
        "No template named hello (templates: none configured). Type !template for the list.",
        ephemeral=True,
    )
    assert journal.calls == []


async def test_status_shows_what_the_engine_reports_of_the_number(world: World):
    world.sessions.facts["acme/sales"] = {"quality_rating": "GREEN", "messaging_limit": "TIER_1K"}
    reply = await run(world, C, "!status")
    assert reply == CommandReply(
        "acme/sales CONNECTED +5511900000001\n"
        "Cloud API: quality rating GREEN, messaging limit TIER_1K"
    )
    # one line per session in the ops room's overview, as before
    text = (await run(world, OPS, "!status")).text
    assert text == "acme/sales CONNECTED +5511900000001\nacme/support LOGGED_OUT"


async def test_status_is_answered_when_the_facts_cannot_be_read(world: World):
    world.sessions.facts_error = EngineError("the Graph API did not answer")
    reply = await run(world, T, "!status")
    assert reply == CommandReply(
        "acme/sales CONNECTED +5511900000001\n"
        "Cloud API: the account's quality and limits are unavailable "
        "(the Graph API did not answer)"
    )


# --- Cloud API sessions: !login checks the token, !logout stops using the number ----------------

NO_QR = (
    "acme/sales is on the WhatsApp Business Cloud API: there is no QR code, the number is "
    "linked in Meta's WhatsApp Manager and the bridge uses the access token in "
    "sessions[].cloud."
)


async def test_cloud_login_of_a_logged_out_session_connects_with_the_token(world: World):
    world.sessions.statuses["acme/sales"] = "LOGGED_OUT"

    async def connects(key: str, *, phone: str | None = None) -> None:
        world.calls.append(("login", key, phone))
        world.sessions.statuses[key] = "CONNECTED"

    world.sessions.login = connects  # type: ignore[method-assign]
    reply = await run(world, C, "!login", ALICE)
    assert reply == CommandReply(f"{NO_QR} Meta accepts the token: CONNECTED as +5511900000001.")
    assert world.calls == [("login", "acme/sales", None)]


@pytest.mark.parametrize(
    ("after", "outcome"),
    [
        (
            "LOGGED_OUT",
            "Meta refuses the token (LOGGED_OUT): put a new token in the configuration "
            "(or its file or environment variable) and restart the bridge.",
        ),
        ("DISCONNECTED", "Meta could not be asked now (DISCONNECTED): the bridge tries again."),
    ],
)
async def test_cloud_login_says_when_the_token_still_does_not_work(
    world: World, after: str, outcome: str
):
    world.sessions.statuses["acme/sales"] = "LOGGED_OUT"

    async def fails(key: str, *, phone: str | None = None) -> None:
        world.calls.append(("login", key, phone))
        world.sessions.statuses[key] = after

    world.sessions.login = fails  # type: ignore[method-assign]
    reply = await run(world, OPS, "!login sales", ALICE)
    assert reply == CommandReply(f"{NO_QR} {outcome}")


async def test_cloud_login_of_a_connected_session_asks_meta_again(world: World):
    async def token_refused(key: str) -> dict[str, str]:
        world.sessions.statuses[key] = "LOGGED_OUT"  # the engine reported the refusal
        return {"Cloud API": "unavailable: the token expired"}

    world.sessions.account_facts = token_refused  # type: ignore[method-assign]
    reply = await run(world, C, "!login", ALICE)
    assert reply.text.startswith(f"{NO_QR} Meta refuses the token (LOGGED_OUT)")
    assert [c for c in world.calls if c[0] != "remember"] == []  # nothing to link


async def test_cloud_login_by_phone_is_refused(world: World):
    reply = await run(world, C, "!login phone +5511987654321", ALICE)
    assert reply == CommandReply(
        f"Could not run !login: {NO_QR} Type !login alone to check the token.", ephemeral=True
    )
    assert world.calls == []


async def test_cloud_logout_says_the_token_stays_valid_at_meta(world: World):
    reply = await run(world, C, "!logout", ALICE)
    assert reply == CommandReply(
        "acme/sales is logged out (LOGGED_OUT): the bridge no longer uses its Cloud API "
        "number; the token stays valid at Meta until you revoke it there. "
        "Type !login to connect it again."
    )
    assert world.calls == [("logout", "acme/sales")]
