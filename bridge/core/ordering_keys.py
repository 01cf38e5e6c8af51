"""Outbox ordering keys: rows of one key are delivered in order, keys side by side.

Each kind of key is a frozen dataclass; ``str(key)`` is what the outbox stores and
:func:`parse_key` reads it back. The stored forms are kept as they are, since rows
written by an earlier version are still pending after an upgrade:

- ``t<ticket>:<destination>``: one ticket's deliveries to one destination;
- ``ops:<company>:<frontend>``: a company's ops channel on one frontend;
- ``login:<company>/<session>:<frontend>``: a session's login codes on one frontend;
- ``rooms:<frontend>``: the rooms a frontend makes at start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TicketKey:
    ticket_id: int
    destination: str

    def __str__(self) -> str:
        return f"t{self.ticket_id}:{self.destination}"


@dataclass(frozen=True)
class OpsKey:
    company_id: str
    frontend: str

    def __str__(self) -> str:
        return f"ops:{self.company_id}:{self.frontend}"


@dataclass(frozen=True)
class LoginKey:
    session_key: str  # "<company>/<session>"
    frontend: str

    @property
    def company_id(self) -> str:
        return self.session_key.split("/", 1)[0]

    def __str__(self) -> str:
        return f"login:{self.session_key}:{self.frontend}"


@dataclass(frozen=True)
class RoomsKey:
    frontend: str

    def __str__(self) -> str:
        return f"rooms:{self.frontend}"


OrderingKey = TicketKey | OpsKey | LoginKey | RoomsKey


def ticket_key(ticket_id: int, destination: str) -> str:
    """The stored key of ``ticket_id``'s deliveries to ``destination``."""
    return str(TicketKey(ticket_id, destination))


def parse_key(text: str) -> OrderingKey | None:
    """The key stored as ``text``; None when it is no key made here."""
    kind, colon, rest = text.partition(":")
    if not colon:
        return None
    if kind == "rooms":
        return RoomsKey(rest)
    if kind == "ops":
        company, colon, frontend = rest.partition(":")
        return OpsKey(company, frontend) if colon else None
    if kind == "login":
        session, colon, frontend = rest.rpartition(":")
        return LoginKey(session, frontend) if colon and "/" in session else None
    digits = kind[1:]
    if kind.startswith("t") and digits.isascii() and digits.isdecimal():
        return TicketKey(int(digits), rest)
    return None


def ticket_of_key(text: str) -> int | None:
    """The ticket whose deliveries a stored key orders, if any."""
    key = parse_key(text)
    return key.ticket_id if isinstance(key, TicketKey) else None


def company_of_key(text: str) -> str | None:
    """The company an ops or login key names (a ticket's company is the ticket's)."""
    key = parse_key(text)
    return key.company_id if isinstance(key, OpsKey | LoginKey) else None
