"""The frontend interface: what the core asks of Matrix or Slack, and what they tell
the core. Frontends know nothing of WhatsApp protobufs; the core knows nothing of
Matrix events or Slack payloads. Everything crossing is a neutral model object.

Core → frontend calls are made by outbox executors, so they must be idempotent
where the platform allows it (``txn_id`` is stable across retries of one delivery).
Frontend → core calls go through :class:`FrontendInbox` and return only once the
work is persisted, so the frontend may then acknowledge its source.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import Protocol

from bridge.config import CompanyConfig, SessionConfig
from bridge.model import AckStatus, AnyContent, Content, Text


class AuthorKind(enum.StrEnum):
    CUSTOMER = "customer"  # a WhatsApp contact (a ghost on Matrix, a username on Slack)
    ATTENDANT = "attendant"  # an attendant's words mirrored from the other frontend
    BOT = "bot"  # the bridge itself (auto replies, notices)
    NOTE = "note"  # an attendant's internal note mirrored from the other frontend


@dataclass(frozen=True)
class Author:
    kind: AuthorKind
    name: str
    phone: str | None = None  # customers: E.164 (Matrix ghost id, Slack username)
    lid: str | None = None
    avatar_url: str | None = None


def contact_label(name: str | None, *, phone: str | None, lid: str | None = None) -> str:
    """How a customer is shown: ``Maria (+5511987654321)``; ``Maria (LID 1234…)``
    while WhatsApp hides the phone (a LID-only contact); the phone or ``LID 1234…``
    alone when there is no other name. ``lid`` is the LID's digits."""
    known_as = phone or (f"LID {lid}" if lid else None)
    if not name or name == known_as:
        return known_as or "WhatsApp contact"
    return f"{name} ({known_as})" if known_as else name


@dataclass(frozen=True)
class TicketCard:
    """What a ticket's thread root shows."""

    ticket_id: int
    session_key: str
    contact_name: str
    phone: str | None
    is_group: bool
    status: str  # pending | open | closed
    assignee: str | None
    lid: str | None = None  # the LID's digits, shown while the phone is unknown
    queue: str | None = None  # the ticket's queue (docs/tickets.md#queues)

    @property
    def who(self) -> str:
        """``Maria (+5511987654321)``, ``Maria (LID 1234…)``, or a group's name."""
        if self.is_group:
            return self.contact_name
        return contact_label(self.contact_name, phone=self.phone, lid=self.lid)

    @property
    def headline(self) -> str:
        """``Ticket #12 · Maria (+5511987654321) · pending``, then ``· queue: sales`` and
        the assignee when there are (docs/tickets.md, "The card")."""
        line = f"Ticket #{self.ticket_id} · {self.who} · {self.status}"
        if self.queue:
            line += f" · queue: {self.queue}"
        return f"{line} · {self.assignee}" if self.assignee else line


@dataclass(frozen=True)
class ChatAddress:
    """Where something is posted: a room or channel, optionally inside a thread."""

    room: str
    thread_root: str | None = None


@dataclass(frozen=True)
class Posted:
    """Ids of what a post created: the main event first (a contact card may add a file)."""

    event_ids: tuple[str, ...]


class Frontend(abc.ABC):
    """A chat platform the attendants use."""

    name: str  # "matrix" | "slack": the outbox destination and the message_refs key

    @abc.abstractmethod
    def serves_session(self, session: SessionConfig) -> bool:
        """Whether this session's tickets get threads here."""

    @abc.abstractmethod
    def serves_ops(self, company: CompanyConfig) -> bool:
        """Whether this company's ops channel lives here."""

    async def start(self, inbox: FrontendInbox) -> None:  # noqa: B027 - optional hook
        """Begin receiving; report attendants' events to ``inbox``."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop receiving and release resources."""

    @abc.abstractmethod
    async def ensure_control_room(self, company: CompanyConfig, session: SessionConfig) -> str:
        """The session's control room (created and members invited when missing)."""

    @abc.abstractmethod
    async def ensure_ops_room(self, company: CompanyConfig) -> str:
        """The company's ops room or channel."""

    @abc.abstractmethod
    async def create_thread(self, room: str, card: TicketCard, *, txn_id: str) -> str:
        """Post the ticket's root; return its id (the thread root)."""

    @abc.abstractmethod
    async def update_card(self, place: ChatAddress, card: TicketCard) -> None:
        """Show the ticket's new status or assignee on its root."""

    @abc.abstractmethod
    async def post(
        self,
        place: ChatAddress,
        author: Author,
        content: Content,
        *,
        reply_to: str | None,
        txn_id: str,
    ) -> Posted:
        """Post a message into a thread; ``reply_to`` is the quoted event, if known."""

    @abc.abstractmethod
    async def react(
        self, place: ChatAddress, author: Author, *, target: str, emoji: str, txn_id: str
    ) -> str | None:
        """Add a reaction (an empty emoji removes the author's reaction on ``target``)."""

    @abc.abstractmethod
    async def edit(
        self, place: ChatAddress, author: Author, *, target: str, new: Text, txn_id: str
    ) -> str | None:
        """Replace the text of ``target``."""

    @abc.abstractmethod
    async def delete(self, place: ChatAddress, author: Author, *, target: str) -> None:
        """Remove ``target`` (or mark it deleted where removal is impossible)."""

    @abc.abstractmethod
    async def mark_receipt(
        self, place: ChatAddress, author: Author, *, target: str, status: AckStatus
    ) -> None:
        """Show that the customer received or read ``target``."""

    @abc.abstractmethod
    async def notice(self, place: ChatAddress, text: str, *, txn_id: str) -> str:
        """A bot notice (WhatsApp-style markup)."""

    @abc.abstractmethod
    async def post_image(
        self, place: ChatAddress, *, data: bytes, filename: str, caption: str, replaces: str | None
    ) -> str:
        """A bot image (QR codes); ``replaces`` is a previous one to remove."""

    @abc.abstractmethod
    async def set_topic(self, room: str, text: str) -> None:
        """The room's topic or status line (session status)."""

    def forget_trust(self, place: ChatAddress) -> None:  # noqa: B027 - optional hook
        """Another instance may have posted into ``place`` since this one last looked
        (an outbox key moved here, docs/cluster.md): check it again before the next post
        there. Nothing to do for a frontend that always checks."""

    def health_problems(self) -> list[str]:
        """What keeps this frontend from working, one line each (``/health`` is then
        degraded); none by default."""
        return []


# --- frontend → core ----------------------------------------------------------


@dataclass(frozen=True)
class Attendant:
    user_id: str  # "@bob:localhost" / "U0BOB"
    display_name: str


@dataclass(frozen=True)
class ThreadEvent:
    """Something an attendant did in a room or thread."""

    frontend: str
    place: ChatAddress
    event_id: str  # platform id of this event (dedupe key)
    attendant: Attendant


@dataclass(frozen=True)
class AttendantPost(ThreadEvent):
    content: AnyContent  # Text/Media/Location/ContactCard, or Reaction/Edit/Deletion
    reply_to: str | None = None  # the platform event it quotes
    # For actions, the target is a platform event id: Reaction.target / Edit.target /
    # Deletion.target hold the frontend's event id, not a WhatsApp id.


@dataclass(frozen=True)
class ThreadRead(ThreadEvent):
    """An attendant read a ticket thread up to ``event_id`` (a Matrix read receipt);
    see docs/presence.md."""


@dataclass(frozen=True)
class ThreadTyping(ThreadEvent):
    """An attendant started (``typing``) or stopped typing where ``place`` says (the
    thread the frontend attributes the typing to; docs/presence.md). ``event_id`` is
    empty: typing has no id."""

    typing: bool


@dataclass(frozen=True)
class Reply:
    text: str
    ephemeral: bool = False


@dataclass(frozen=True)
class UnhandledEvent:
    """An inbound event the frontend could not handle, to be set aside (recorded,
    reported once in the ops channel, skipped; see ``bridge.core.quarantine``)."""

    frontend: str  # the source: "matrix" | "slack"
    event_id: str  # the platform's id of the event
    place: ChatAddress | None  # where it was posted, as far as the frontend could tell
    reason: str  # why it could not be handled; shown to operators: no secrets
    excerpt: str  # the raw event, bounded (``bridge.core.quarantine.excerpt_of``)


class FrontendInbox(Protocol):
    """The core's side: each call returns after the work is persisted."""

    async def attendant_event(self, event: AttendantPost) -> Reply | None:
        """A message or action in a ticket thread (or a command anywhere)."""

    async def command(self, event: ThreadEvent, text: str) -> Reply | None:
        """A command (``!close`` or a slash command's text)."""

    async def thread_read(self, event: ThreadRead) -> None:
        """An attendant read a ticket thread: the customer's messages are marked read
        on WhatsApp (docs/presence.md). Anything else (a stranger, no ticket) is
        ignored."""

    async def thread_typing(self, event: ThreadTyping) -> None:
        """An attendant types in a ticket thread (or stopped): the customer sees
        "typing…" (docs/presence.md)."""

    async def set_aside(self, event: UnhandledEvent) -> bool:
        """Set aside an event that cannot be handled; True the first time. Raises
        ``DatabaseError`` when it cannot be recorded (do not acknowledge the source)."""
