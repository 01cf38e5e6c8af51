"""TicketService over real repositories, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridge.clock import FakeClock
from bridge.config import Config, parse_config
from bridge.core.ticket_policy import merge_notice
from bridge.core.tickets import InboundRoute, TicketChange, TicketService
from bridge.db import Repositories
from bridge.errors import InvalidInput
from bridge.metrics import Metrics
from bridge.model import Message, Party, Text
from bridge.phone import normalize_phone

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
PHONE = "+5511987654321"
OLD_PHONE = "+551187654321"  # the same mobile without the ninth digit
BOB, CAROL, ALICE = "@bob:localhost", "@carol:localhost", "@alice:localhost"
GREETING = "Olá! Um atendente já vai falar com você."
FAREWELL = "Atendimento encerrado. Obrigado!"
OUT_OF_HOURS = "Estamos fora do horário. Respondemos às 8h."

CONFIG = textwrap.dedent(
    f"""\
    homeserver: {{address: "http://127.0.0.1:8008", domain: localhost}}
    appservice: {{as_token: AS-TOKEN, hs_token: HS-TOKEN}}
    tickets: {{reopen_window_minutes: 120}}
    companies:
      - id: acme
        name: ACME Support
        admins: ["{ALICE}"]
        attendants: ["{BOB}", "{CAROL}"]
        sessions:
          - name: sales
            matrix: true
            greeting: "{GREETING}"
            farewell: "{FAREWELL}"
            out_of_hours: "{OUT_OF_HOURS}"
            business_hours:
              timezone: America/Sao_Paulo
              days: mon-fri
              hours: "08:00-18:00"
          - name: sales2
            matrix: true
          - name: community
            matrix: true
            greeting: "Bem-vindos!"
            groups: true
      - id: globex
        name: Globex
        admins: ["@hank:localhost"]
        sessions:
          - name: main
            matrix: true
    """
)


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    """Epoch seconds of a São Paulo wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=SAO_PAULO).timestamp()


MONDAY_10 = local(2024, 1, 8, 10)  # business hours are open


def text(
    body: str = "oi",
    *,
    phone: str | None = PHONE,
    lid: str | None = None,
    name: str | None = "Maria",
    group: str | None = None,
    from_me: bool = False,
) -> Message:
    person = Party(phone=phone, lid=lid, name=name)
    chat = Party(group=group, name="Família") if group else person
    return Message(chat=chat, sender=person, content=Text(body), from_me=from_me)


@dataclass
class World:
    repos: Repositories
    config: Config
    clock: FakeClock
    metrics: Metrics
    service: TicketService
    session_ids: dict[str, int]

    async def route(self, message: Message, session: str = "acme/sales") -> InboundRoute:
        route = await self.service.route_inbound(session, message)
        assert route is not None
        return route

    async def tickets(self, session: str = "acme/sales") -> int:
        return len(await self.service.list(session, limit=1000))


@pytest.fixture
async def world(repos: Repositories) -> World:
    config = parse_config(CONFIG, path=Path("/srv/zap/config.yaml"))
    session_ids = {}
    for company in config.companies:
        await repos.companies.upsert(company.id, company.name)
        for session in company.sessions:
            row = await repos.sessions.upsert(company.id, session.name, engine="sim")
            session_ids[session.key] = row.id
    clock = FakeClock(MONDAY_10)
    metrics = Metrics()
    service = TicketService(repos, config, session_ids=session_ids, clock=clock, metrics=metrics)
    return World(repos, config, clock, metrics, service, session_ids)


# ---------------------------------------------------------------------------
# The lifecycle


async def answer(service: TicketService, ticket_id: int, attendant: str) -> TicketChange | None:
    """An attendant's reply, with the ticket read as the relay reads it."""
    return await service.record_attendant_reply(await service.get(ticket_id), attendant)


async def test_full_lifecycle(world: World) -> None:
    first = await world.route(text("preciso de ajuda"))
    ticket = first.ticket
    assert (first.created, first.reopened, first.auto_replies) == (True, False, (GREETING,))
    assert (ticket.status, ticket.assignee, ticket.session_key) == ("pending", None, "acme/sales")
    assert ticket.label == f"Maria ({PHONE})"
    assert (ticket.company_id, ticket.phone, ticket.is_group) == ("acme", PHONE, False)

    await world.clock.advance(90)
    change = await answer(world.service, ticket.id, BOB)
    assert change is not None
    assert (change.previous_status, change.ticket.status, change.ticket.assignee) == (
        "pending",
        "open",
        BOB,
    )
    assert change.notice == f"Ticket #{ticket.id} opened by {BOB}"
    assert change.ticket.first_response_at == MONDAY_10 + 90
    rendered = world.metrics.render().decode()
    assert 'zapbridge_ticket_first_response_seconds_count{session="acme/sales"} 1.0' in rendered
    assert 'zapbridge_ticket_first_response_seconds_sum{session="acme/sales"} 90.0' in rendered

    await world.clock.advance(60)
    assert await answer(world.service, ticket.id, CAROL) is None
    assert 'first_response_seconds_count{session="acme/sales"} 1.0' in (
        world.metrics.render().decode()
    )

    closed = await world.service.close(ticket.id, by=BOB)
    assert (closed.previous_status, closed.ticket.status) == ("open", "closed")
    assert closed.auto_reply == FAREWELL
    assert closed.notice == f"Ticket #{ticket.id} closed by {BOB}"
    assert closed.ticket.closed_at == world.clock.now()

    await world.clock.advance(30 * 60)
    back = await world.route(text("esqueci uma coisa"))
    assert (back.ticket.id, back.created, back.reopened) == (ticket.id, False, True)
    assert back.ticket.status == "open"  # it had an attendant
    assert back.ticket.assignee == BOB
    assert back.auto_replies == ()  # no second greeting for the same ticket

    await world.service.close(ticket.id, by=BOB)
    await world.clock.advance(120 * 60 + 1)
    later = await world.route(text("outra dúvida"))
    assert later.ticket.id != ticket.id
    assert (later.created, later.reopened, later.ticket.status) == (True, False, "pending")
    assert later.auto_replies == (GREETING,)
    assert await world.tickets() == 2


async def test_reopen_window_edge(world: World) -> None:
    ticket = (await world.route(text())).ticket
    await world.service.close(ticket.id, by=BOB)
    await world.clock.advance(120 * 60)
    exactly = await world.route(text())
    assert (exactly.ticket.id, exactly.reopened) == (ticket.id, True)


async def test_reopened_without_a_reply_is_pending_again(world: World) -> None:
    ticket = (await world.route(text())).ticket
    await world.service.close(ticket.id, by=BOB)
    await world.clock.advance(60)
    back = await world.route(text())
    assert (back.ticket.id, back.reopened, back.ticket.status) == (ticket.id, True, "pending")


async def test_route_inbound_joins_the_callers_transaction(world: World) -> None:
    with pytest.raises(RuntimeError):
        async with world.repos.db.transaction():
            await world.route(text())
            raise RuntimeError("the relay failed after routing")
    assert await world.tickets() == 0
    assert await world.repos.contacts.find(world.session_ids["acme/sales"], phone=PHONE) is None


# ---------------------------------------------------------------------------
# Races


async def open_connections(world: World) -> None:
    """Have PostgreSQL's pool open all its connections, so racers really overlap
    (otherwise the first one finishes while the others are still connecting)."""
    db = world.repos.db
    if db.dialect != "postgres":
        return

    async def hold() -> None:
        async with db.transaction():
            await db.fetchval("SELECT 1")
            await asyncio.sleep(0.05)

    await asyncio.gather(*(hold() for _ in range(10)))


async def test_fifty_concurrent_first_messages_make_one_ticket(world: World) -> None:
    await open_connections(world)
    routes = await asyncio.gather(*(world.route(text(f"m{i}")) for i in range(50)))
    assert len({r.ticket.id for r in routes}) == 1
    assert sum(r.created for r in routes) == 1
    assert sum(len(r.auto_replies) for r in routes) == 1  # one greeting
    assert await world.tickets() == 1


async def test_concurrent_messages_reopen_a_ticket_once(world: World) -> None:
    ticket = (await world.route(text())).ticket
    await world.service.close(ticket.id, by=BOB)
    await open_connections(world)
    routes = await asyncio.gather(*(world.route(text(f"m{i}")) for i in range(20)))
    assert {r.ticket.id for r in routes} == {ticket.id}
    assert sum(r.reopened for r in routes) == 1
    assert not any(r.created for r in routes)


async def test_concurrent_closes_send_one_farewell(world: World) -> None:
    ticket = (await world.route(text())).ticket
    await open_connections(world)
    results = await asyncio.gather(
        *(world.service.close(ticket.id, by=who) for who in (BOB, CAROL, ALICE)),
        return_exceptions=True,
    )
    changes = [r for r in results if not isinstance(r, BaseException)]
    assert len(changes) == 1 and changes[0].auto_reply == FAREWELL
    assert all(isinstance(r, InvalidInput) for r in results if r not in changes)


# ---------------------------------------------------------------------------
# Auto replies


async def test_greeting_once_per_ticket(world: World) -> None:
    replies = [(await world.route(text(f"m{i}"))).auto_replies for i in range(3)]
    assert replies == [(GREETING,), (), ()]


async def test_no_auto_replies_when_unconfigured(world: World) -> None:
    route = await world.route(text(), session="acme/sales2")
    assert route.created and route.auto_replies == ()


async def test_out_of_hours_once_per_closed_period(world: World) -> None:
    clock = world.clock
    steps = [  # (local time, replies expected)
        (local(2024, 1, 12, 19), (GREETING, OUT_OF_HOURS)),  # Friday evening: closed
        (local(2024, 1, 12, 20), ()),
        (local(2024, 1, 13, 10), ()),  # Saturday: still the same closed period
        (local(2024, 1, 15, 9), ()),  # Monday 09:00: open
        (local(2024, 1, 15, 19), (OUT_OF_HOURS,)),  # Monday evening: a new closed period
        (local(2024, 1, 15, 19, 30), ()),
        (local(2024, 1, 16, 7, 59), ()),  # Tuesday before opening: no open moment since
        (local(2024, 1, 16, 18), (OUT_OF_HOURS,)),  # 18:00 closes; open 08:00-18:00 since
    ]
    ids = set()
    for at, expected in steps:
        await clock.advance(at - clock.now())
        route = await world.route(text())
        ids.add(route.ticket.id)
        assert route.auto_replies == expected, datetime.fromtimestamp(at, SAO_PAULO)
    assert len(ids) == 1


async def test_out_of_hours_on_a_reopened_ticket(world: World) -> None:
    ticket = (await world.route(text())).ticket  # Monday 10:00, open
    await world.clock.advance(local(2024, 1, 8, 17) - world.clock.now())
    await world.service.close(ticket.id, by=BOB)
    await world.clock.advance(90 * 60)  # 18:30, closed, within the reopen window
    back = await world.route(text())
    assert (back.reopened, back.auto_replies) == (True, (OUT_OF_HOURS,))


# ---------------------------------------------------------------------------
# Who the customer is


async def test_brazil_ninth_digit_shares_a_ticket(world: World) -> None:
    old = await world.route(text(phone=normalize_phone(OLD_PHONE)))
    new = await world.route(text(phone=PHONE))
    raw = await world.route(text(phone=OLD_PHONE))  # normalised here too
    assert old.ticket.id == new.ticket.id == raw.ticket.id
    assert old.ticket.phone == PHONE
    assert await world.tickets() == 1


async def test_lid_then_phone_is_one_contact(world: World) -> None:
    lid_only = await world.route(text(phone=None, lid="123456789"))
    assert (lid_only.ticket.phone, lid_only.ticket.label) == (None, "Maria (LID 123456789)")
    assert not lid_only.contact_changed  # a new contact: its new ticket shows it
    both = await world.route(text(phone=PHONE, lid="123456789"))
    assert (both.ticket.id, both.created) == (lid_only.ticket.id, False)
    assert (both.ticket.phone, both.ticket.label) == (PHONE, f"Maria ({PHONE})")
    assert both.contact_changed  # the card must show the phone now
    again = await world.route(text(phone=PHONE, lid="123456789"))
    assert not again.contact_changed
    session_id = world.session_ids["acme/sales"]
    by_phone = await world.repos.contacts.find(session_id, phone=PHONE)
    by_lid = await world.repos.contacts.find(session_id, lid="123456789")
    assert by_phone is not None and by_lid is not None and by_phone.id == by_lid.id
    assert await world.tickets() == 1


async def test_lid_contact_merges_into_the_phones(world: World) -> None:
    phone_first = await world.route(text(phone=PHONE))
    lid_only = await world.route(text(phone=None, lid="123456789", name="Maria L"))
    assert lid_only.ticket.id != phone_first.ticket.id  # not known to be her yet
    both = await world.route(text(phone=PHONE, lid="123456789"))
    assert both.ticket.id == phone_first.ticket.id
    assert [t.id for t in both.closed_tickets] == [lid_only.ticket.id]
    assert both.closed_tickets[0].status == "closed"
    session_id = world.session_ids["acme/sales"]
    by_lid = await world.repos.contacts.find(session_id, lid="123456789")
    assert by_lid is not None and by_lid.id == phone_first.ticket.contact_id
    assert [t.id for t in await world.service.list("acme/sales", status="pending")] == [
        phone_first.ticket.id
    ]


async def test_lid_alone_after_the_link_is_the_same_contact(world: World) -> None:
    phone_first = await world.route(text(phone=PHONE))
    await world.route(text(phone=PHONE, lid="123456789"))
    lid_only = await world.route(text(phone=None, lid="123456789"))  # no phone given
    assert (lid_only.ticket.id, lid_only.ticket.phone) == (phone_first.ticket.id, PHONE)
    assert not lid_only.contact_changed
    assert await world.tickets() == 1


async def test_merge_keeps_the_older_ticket_when_the_lid_wrote_first(world: World) -> None:
    lid_first = await world.route(text(phone=None, lid="123456789"))
    await world.clock.advance(60)
    phone_later = await world.route(text(phone=PHONE))  # not known to be her yet
    both = await world.route(text(phone=PHONE, lid="123456789"))
    assert both.ticket.id == lid_first.ticket.id  # where the conversation began
    assert [t.id for t in both.closed_tickets] == [phone_later.ticket.id]
    assert both.contact_changed and both.ticket.phone == PHONE
    assert merge_notice(both.closed_tickets[0], both.ticket) == (
        f"Ticket #{phone_later.ticket.id} closed: WhatsApp linked this customer to "
        f"Maria ({PHONE}); the conversation goes on in ticket #{lid_first.ticket.id}"
    )


async def test_learning_the_phone_of_a_lid_only_contact_changes_its_card(world: World) -> None:
    lid_only = await world.route(text(phone=None, lid="123456789"))
    news = await world.service.learn_contact("acme/sales", Party(phone=PHONE, lid="123456789"))
    assert news.active is not None and news.active.id == lid_only.ticket.id
    assert (news.active.label, news.closed_tickets) == (f"Maria ({PHONE})", ())
    again = await world.service.learn_contact("acme/sales", Party(phone=PHONE, lid="123456789"))
    assert again.active is None  # nothing new to show


async def test_a_link_learned_outside_a_message_merges_the_lid_contact(world: World) -> None:
    phone_first = await world.route(text(phone=PHONE))
    lid_only = await world.route(text(phone=None, lid="123456789"))
    news = await world.service.learn_contact("acme/sales", Party(phone=PHONE, lid="123456789"))
    assert news.active is not None and news.active.id == phone_first.ticket.id
    assert [t.id for t in news.closed_tickets] == [lid_only.ticket.id]
    assert news.contact.lid == "123456789"


async def test_push_name_updates_the_contact(world: World) -> None:
    await world.route(text(name="Maria"))
    route = await world.route(text(name="Maria Silva"))
    assert route.ticket.contact_name == "Maria Silva"
    unnamed = await world.route(text(phone="+5521912345678", name=None))
    assert unnamed.ticket.label == "+5521912345678"


async def test_groups_only_where_enabled(world: World) -> None:
    group = "120363000000000001@g.us"
    assert await world.service.route_inbound("acme/sales", text(group=group)) is None
    assert await world.tickets() == 0
    route = await world.route(text(group=group), session="acme/community")
    assert (route.created, route.auto_replies) == (True, ("Bem-vindos!",))
    ticket = route.ticket
    assert (ticket.is_group, ticket.phone, ticket.contact_name, ticket.label) == (
        True,
        None,
        "Família",
        "Família",
    )
    again = await world.route(text(phone="+5511911112222", group=group), session="community")
    assert again.ticket.id == ticket.id  # every member writes into the group's ticket


# ---------------------------------------------------------------------------
# Messages sent from the business phone itself


async def test_from_me_creates_without_auto_replies(world: World) -> None:
    await world.clock.advance(local(2024, 1, 8, 20) - world.clock.now())  # closed now
    route = await world.route(text(name="Loja ACME", from_me=True))
    assert (route.created, route.auto_replies) == (True, ())
    assert route.ticket.contact_name == PHONE  # our own push name is not hers
    customer = await world.route(text())
    assert customer.ticket.id == route.ticket.id
    assert customer.auto_replies == (OUT_OF_HOURS,)  # the greeting was for a new ticket
    mine = await world.route(text(from_me=True))
    assert (mine.ticket.id, mine.auto_replies) == (route.ticket.id, ())


async def test_from_me_never_reopens(world: World) -> None:
    ticket = (await world.route(text())).ticket
    await world.service.close(ticket.id, by=BOB)
    await world.clock.advance(60)
    mine = await world.route(text(from_me=True))
    assert mine.ticket.id != ticket.id
    assert (mine.created, mine.reopened, mine.auto_replies) == (True, False, ())
    assert (await world.service.get(ticket.id)).status == "closed"


# ---------------------------------------------------------------------------
# Attendant actions


async def test_accept(world: World) -> None:
    ticket = (await world.route(text())).ticket
    accepted = await world.service.accept(ticket.id, BOB)
    assert (accepted.previous_status, accepted.ticket.status, accepted.ticket.assignee) == (
        "pending",
        "open",
        BOB,
    )
    assert accepted.notice == f"Ticket #{ticket.id} accepted by {BOB}"
    assert accepted.ticket.first_response_at is None  # accepting is not answering
    with pytest.raises(InvalidInput, match=f"already accepted by {BOB}"):
        await world.service.accept(ticket.id, BOB)
    taken = await world.service.accept(ticket.id, CAROL)
    assert taken.notice == f"Ticket #{ticket.id} accepted by {CAROL} (was {BOB})"
    assert taken.ticket.assignee == CAROL
    reply = await answer(world.service, ticket.id, BOB)
    assert reply is None  # open and owned: nothing visible changes
    assert (await world.service.get(ticket.id)).first_response_at == world.clock.now()
    await world.service.close(ticket.id, by=CAROL)
    with pytest.raises(InvalidInput, match="is closed; reopen it first"):
        await world.service.accept(ticket.id, BOB)


async def test_reply_to_a_closed_ticket_changes_nothing(world: World) -> None:
    ticket = (await world.route(text())).ticket
    await world.service.close(ticket.id, by=BOB)
    assert await answer(world.service, ticket.id, BOB) is None
    assert (await world.service.get(ticket.id)).first_response_at is None


async def test_assign(world: World) -> None:
    ticket = (await world.route(text())).ticket
    with pytest.raises(InvalidInput, match="@eve:localhost is not an admin or attendant of ACME"):
        await world.service.assign(ticket.id, "@eve:localhost", by=BOB)
    with pytest.raises(InvalidInput, match="not an admin or attendant"):
        await world.service.assign(ticket.id, "@hank:localhost", by=BOB)  # Globex's admin
    change = await world.service.assign(ticket.id, CAROL, by=BOB)
    assert change.notice == f"Ticket #{ticket.id} assigned to {CAROL} by {BOB}"
    assert (change.ticket.assignee, change.ticket.status) == (CAROL, "open")
    with pytest.raises(InvalidInput, match=f"already assigned to {CAROL}"):
        await world.service.assign(ticket.id, CAROL, by=BOB)
    admin = await world.service.assign(ticket.id, ALICE, by=CAROL)
    assert admin.ticket.assignee == ALICE


async def test_transfer_to_a_user(world: World) -> None:
    ticket = (await world.route(text())).ticket
    change = await world.service.transfer(ticket.id, CAROL, by=BOB)
    assert change.notice == f"Ticket #{ticket.id} transferred to {CAROL} by {BOB}"
    assert (change.ticket.assignee, change.ticket.status, change.new_ticket) == (
        CAROL,
        "open",
        None,
    )


@pytest.mark.parametrize("target", ["sales2", "acme/sales2"])
async def test_transfer_to_another_session(world: World, target: str) -> None:
    ticket = (await world.route(text(phone=None, lid="777", name="Maria"))).ticket
    ticket = (await world.route(text(phone=PHONE, lid="777", name="Maria"))).ticket
    change = await world.service.transfer(ticket.id, target, by=BOB)
    new = change.new_ticket
    assert new is not None
    assert (change.ticket.status, change.previous_status, change.auto_reply) == (
        "closed",
        "pending",
        None,
    )
    assert change.notice == (
        f"Ticket #{ticket.id} transferred to sales2 by {BOB} (ticket #{new.id} there)"
    )
    assert (new.session_key, new.phone, new.contact_name, new.status) == (
        "acme/sales2",
        PHONE,
        "Maria",
        "pending",
    )
    there = await world.route(text(phone=PHONE), session="acme/sales2")
    assert (there.ticket.id, there.created) == (new.id, False)


@pytest.mark.parametrize(
    "target", ["globex/main", "main", "sales3", "@eve:localhost", "U0NOBODY", "acme/"]
)
async def test_transfer_refused(world: World, target: str) -> None:
    ticket = (await world.route(text())).ticket
    with pytest.raises(InvalidInput, match="neither an admin or attendant of ACME Support"):
        await world.service.transfer(ticket.id, target, by=BOB)
    assert await world.service.get(ticket.id) == ticket
    assert await world.tickets("globex/main") == 0


async def test_transfer_error_cases(world: World) -> None:
    ticket = (await world.route(text())).ticket
    with pytest.raises(InvalidInput, match="already on session sales"):
        await world.service.transfer(ticket.id, "sales", by=BOB)
    group = (await world.route(text(group="1@g.us"), session="acme/community")).ticket
    with pytest.raises(InvalidInput, match="group ticket cannot move"):
        await world.service.transfer(group.id, "sales", by=BOB)
    await world.service.close(ticket.id, by=BOB)
    with pytest.raises(InvalidInput, match="is closed"):
        await world.service.transfer(ticket.id, "sales2", by=BOB)


async def test_close_and_reopen_errors(world: World) -> None:
    ticket = (await world.route(text())).ticket
    with pytest.raises(InvalidInput, match=f"ticket #{ticket.id} is not closed: it is pending"):
        await world.service.reopen(ticket.id, by=BOB)
    await world.service.close(ticket.id, by=BOB)
    with pytest.raises(InvalidInput) as caught:
        await world.service.close(ticket.id, by=BOB)
    assert caught.value.explanation == f"ticket #{ticket.id} is already closed"

    reopened = await world.service.reopen(ticket.id, by=CAROL)
    assert (reopened.previous_status, reopened.ticket.status, reopened.ticket.assignee) == (
        "closed",
        "open",
        CAROL,
    )
    assert reopened.ticket.closed_at is None
    assert reopened.notice == f"Ticket #{ticket.id} reopened by {CAROL}"

    await world.service.close(ticket.id, by=BOB)
    await world.clock.advance(3 * 3600)
    newer = (await world.route(text())).ticket
    with pytest.raises(InvalidInput, match=f"already has ticket #{newer.id}"):
        await world.service.reopen(ticket.id, by=BOB)
    assert (await world.service.get(ticket.id)).status == "closed"


async def test_unknown_ticket_and_session(world: World) -> None:
    with pytest.raises(InvalidInput) as caught:
        await world.service.get(999)
    assert caught.value.explanation == "no ticket #999"
    for action in (
        world.service.close(999, by=BOB),
        world.service.accept(999, BOB),
    ):
        with pytest.raises(InvalidInput, match="no ticket #999"):
            await action
    with pytest.raises(InvalidInput, match="unknown session"):
        await world.service.route_inbound("acme/nope", text())


# ---------------------------------------------------------------------------
# Reading


async def test_list_by_status(world: World) -> None:
    pending = (await world.route(text(phone="+5511900000001"))).ticket
    opened = (await world.route(text(phone="+5511900000002"))).ticket
    closed = (await world.route(text(phone="+5511900000003"))).ticket
    await world.service.accept(opened.id, BOB)
    await world.service.close(closed.id, by=BOB)
    await world.route(text(phone="+5511900000004"), session="acme/sales2")

    async def ids(status: str | None) -> list[int]:
        return [t.id for t in await world.service.list("acme/sales", status=status)]

    assert await ids(None) == [closed.id, opened.id, pending.id]  # newest first
    assert await ids("pending") == [pending.id]
    assert await ids("open") == [opened.id]
    assert await ids("closed") == [closed.id]
    assert len(await world.service.list("sales", limit=2)) == 2  # a unique bare name
    with pytest.raises(InvalidInput, match="unknown ticket status 'done'"):
        await world.service.list("acme/sales", status="done")


async def test_stats(world: World) -> None:
    service, clock = world.service, world.clock
    yesterday = (await world.route(text(phone="+5511900000001"))).ticket  # Monday 10:00
    await clock.advance(60)
    await answer(service, yesterday.id, BOB)  # 60 s
    await service.close(yesterday.id, by=BOB)
    await clock.advance(local(2024, 1, 9, 9) - clock.now())  # Tuesday 09:00
    answered = []
    for n, wait in enumerate((120, 300)):
        ticket = (await world.route(text(phone=f"+551190000001{n}"))).ticket
        await clock.advance(wait)
        await answer(service, ticket.id, CAROL)
        answered.append(ticket)
    waiting = (await world.route(text(phone="+5511900000099"), session="acme/sales2")).ticket
    await world.route(text(phone="+5511900000098"), session="globex/main")  # not ACME's

    stats = await service.stats("acme")
    assert stats.by_status == {"pending": 1, "open": 2, "closed": 1}
    assert stats.created_today == 3  # Tuesday in São Paulo
    assert stats.timezone == "America/Sao_Paulo"
    assert stats.first_response_median_seconds == 120
    assert stats.first_response_mean_seconds == pytest.approx(160)
    assert stats.answered == 3
    assert stats.open_by_assignee == {CAROL: 2}
    assert stats.unassigned == 1
    assert waiting.status == "pending"
    globex = await service.stats("globex")
    assert (globex.by_status["pending"], globex.answered, globex.timezone) == (1, 0, "UTC")
    assert globex.first_response_median_seconds is None


async def test_company_of(world: World) -> None:
    ticket = (await world.route(text())).ticket
    assert world.service.company_of(ticket).name == "ACME Support"
    with pytest.raises(InvalidInput, match="unknown company"):
        world.service.company_of(replace(ticket, company_id="initech"))
