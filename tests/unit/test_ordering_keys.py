"""Outbox ordering keys: each kind round-trips through its stored form (the form
earlier versions wrote), and anything else is no key."""

from __future__ import annotations

import pytest

from bridge.core.ordering_keys import (
    LoginKey,
    OpsKey,
    OrderingKey,
    RoomsKey,
    TicketKey,
    company_of_key,
    parse_key,
    ticket_key,
    ticket_of_key,
)

STORED: list[tuple[str, OrderingKey]] = [
    ("t42:matrix", TicketKey(42, "matrix")),
    ("t1:whatsapp", TicketKey(1, "whatsapp")),
    ("ops:acme:slack", OpsKey("acme", "slack")),
    ("login:acme/sales:matrix", LoginKey("acme/sales", "matrix")),
    ("rooms:slack", RoomsKey("slack")),
]


@pytest.mark.parametrize(("text", "key"), STORED)
def test_each_kind_round_trips_through_its_stored_form(text: str, key: OrderingKey) -> None:
    assert str(key) == text
    assert parse_key(text) == key
    assert parse_key(str(key)) == key


def test_ticket_key_is_the_stored_form() -> None:
    assert ticket_key(42, "matrix") == "t42:matrix"
    assert ticket_of_key(ticket_key(42, "matrix")) == 42


@pytest.mark.parametrize(
    ("text", "ticket", "company"),
    [
        ("t42:matrix", 42, None),
        ("ops:acme:slack", None, "acme"),
        ("login:globex/main:matrix", None, "globex"),
        ("rooms:matrix", None, None),
    ],
)
def test_what_a_key_says_about_its_ticket_and_company(
    text: str, ticket: int | None, company: str | None
) -> None:
    assert ticket_of_key(text) == ticket
    assert company_of_key(text) == company


@pytest.mark.parametrize(
    "text",
    [
        "",
        "t42",  # no destination
        "t:matrix",
        "tx1:matrix",
        "t-1:matrix",
        "t²:matrix",  # a digit int() refuses
        "t٣:matrix",  # not ASCII
        "ticket:42:matrix",
        "ops:acme",
        "login:acme:matrix",  # no session
        "login:acme/sales",
        "k",
        ":",
    ],
)
def test_garbage_is_no_key(text: str) -> None:
    assert parse_key(text) is None
    assert ticket_of_key(text) is None
    assert company_of_key(text) is None
