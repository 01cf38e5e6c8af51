"""Queues, the decisions that need no database (docs/tickets.md#queues): reading the
customer's answer to the menu, the menu's text, who works a queue's tickets, what
``!transfer`` and ``!tickets`` name, and the notices of a ticket's thread.

:mod:`bridge.core.queue_menu` applies them over the repositories.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from bridge.config import CompanyConfig, Config, MenuConfig, QueueConfig, SessionConfig
from bridge.core.ticket_policy import Attended
from bridge.errors import InvalidInput
from bridge.model import Message, Text

_KEYCAP = "\u20e3"  # 2️⃣ is "2", VARIATION SELECTOR-16, COMBINING ENCLOSING KEYCAP
_VARIATION = "\ufe0f"
_TEN = "\U0001f51f"  # 🔟
_TRAILING = ".)-:"
MAX_ANSWER_CHARS = 16
"""Longer texts are never an option (a sentence that starts with a digit is no answer)."""


def parse_option(text: str) -> int | None:
    """The option a customer's text names: ``"2"``, ``" 2 "``, ``"2."``, ``"2)"``,
    ``"2️⃣"``, ``"🔟"``, ``"٢"`` (any decimal digits, at most two); else None."""
    word = text.strip()
    if not word or len(word) > MAX_ANSWER_CHARS:
        return None
    if word == _TEN:
        return 10
    word = word.replace(_VARIATION, "").replace(_KEYCAP, "").rstrip(_TRAILING).strip()
    if not word or len(word) > 2 or not all(unicodedata.decimal(c, None) is not None for c in word):
        return None
    return int("".join(str(unicodedata.decimal(c)) for c in word))


def answer_of(message: Message) -> int | None:
    """The option a customer's message names; None for anything else (media, from_me)."""
    if message.from_me or not isinstance(message.content, Text):
        return None
    return parse_option(message.content.body)


def render_menu(menu: MenuConfig, queues: tuple[QueueConfig, ...]) -> str:
    """``menu.text`` then one line per queue, by option: ``*1* - Vendas``."""
    lines = [f"*{q.option}* - {q.shown_as}" for q in sorted(queues, key=lambda q: q.option)]
    return "\n".join([menu.text, *lines])


def queue_of_option(session: SessionConfig, option: int) -> QueueConfig | None:
    return next((q for q in session.queues if q.option == option), None)


def default_queue(session: SessionConfig) -> QueueConfig:
    """The session's default queue (config guarantees ``menu`` and the queue)."""
    name = session.menu.default_queue if session.menu is not None else ""
    return session.find_queue(name) or session.queues[0]


# --- when the business is attended --------------------------------------------------------


def attended_by(session: SessionConfig, queue_name: str | None) -> Attended:
    """A ticket's hours: its queue's when the queue has ``business_hours``, else the
    session's."""
    queue = session.find_queue(queue_name) if queue_name else None
    if queue is not None and queue.business_hours is not None:
        return queue
    return session


# --- who works a queue ----------------------------------------------------------------------


def works_queue(
    company: CompanyConfig, session: SessionConfig | None, queue_name: str | None, user: str
) -> bool:
    """Whether ``user`` may see and act on a ticket in ``queue_name``: admins always;
    attendants when the ticket has no queue (still choosing, or a session without
    queues), when the queue lists no attendants, or when they are listed."""
    if user in company.admins:
        return True
    if user not in company.attendants:
        return False
    queue = session.find_queue(queue_name) if session and queue_name else None
    return queue is None or not queue.attendants or user in queue.attendants


def check_works_queue(config: Config, session_key: str, queue_name: str | None, user: str) -> None:
    """Refuses ``user`` as the owner of a ticket in a queue they do not work."""
    company = config.find_company(session_key.partition("/")[0])
    session = config.session_for_key(session_key)
    if company is not None and not works_queue(company, session, queue_name, user):
        raise InvalidInput(f"{user} does not work queue {queue_name}: they cannot own its tickets")


class QueuedTicket(Protocol):
    """A ticket as the queue checks see it (a TicketView fits)."""

    @property
    def id(self) -> int: ...
    @property
    def company_id(self) -> str: ...
    @property
    def session_key(self) -> str: ...
    @property
    def queue(self) -> str | None: ...


def queue_refusal(config: Config, ticket: QueuedTicket, user: str) -> str | None:
    """Why a member of the ticket's company may not post or run commands in its
    thread (its queue is not theirs); None when they may, or are no member at all
    (refused elsewhere, as any outsider)."""
    company = config.find_company(ticket.company_id)
    if company is None or user not in (*company.admins, *company.attendants):
        return None
    session = config.session_for_key(ticket.session_key)
    if works_queue(company, session, ticket.queue, user):
        return None
    return (
        f"Ticket #{ticket.id} is in queue {ticket.queue}, which you do not work: "
        "ask an admin or one of its attendants"
    )


def find_queue_word(session: SessionConfig | None, word: str) -> QueueConfig | None:
    """The queue of ``session`` that ``word`` names (any case); never a user id
    (``@…``, ``<@…>``, a matrix.to link, ``me``) nor ``company/session``."""
    if session is None or word.startswith(("@", "<@", "https://")) or "/" in word:
        return None
    wanted = word.strip().lower()
    if wanted == "me":
        return None
    return next((q for q in session.queues if q.name == wanted), None)


# --- what a ticket's thread is told ----------------------------------------------------------


def chosen_notice(ticket_id: int, queue: str, *, option: int) -> str:
    return f"Ticket #{ticket_id} routed to queue {queue}: the customer chose {option}"


def defaulted_notice(ticket_id: int, queue: str, *, invalid: int) -> str:
    return f"Ticket #{ticket_id} routed to queue {queue} after {invalid} answers naming no option"


def timed_out_notice(ticket_id: int, queue: str, *, seconds: int) -> str:
    return f"Ticket #{ticket_id} routed to queue {queue}: no answer to the menu within {seconds} s"


def direct_notice(ticket_id: int, queue: str) -> str:
    """A ticket that gets no menu (a group, or one the business phone started)."""
    return f"Ticket #{ticket_id} routed to queue {queue}"


def moved_to_queue_notice(ticket_id: int, queue: str, *, by: str) -> str:
    return f"Ticket #{ticket_id} transferred to queue {queue} by {by}"
