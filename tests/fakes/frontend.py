"""A recording fake frontend for core tests: it keeps rooms, threads and posts in
memory, can be scripted to fail, and plays attendants' events into the core."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from bridge.config import CompanyConfig, SessionConfig
from bridge.core.frontend import (
    Attendant,
    AttendantPost,
    Author,
    ChatAddress,
    Frontend,
    FrontendInbox,
    Posted,
    Reply,
    TicketCard,
    UnhandledEvent,
)
from bridge.errors import DeliveryError, PermanentDeliveryError
from bridge.model import AckStatus, AnyContent, Content, Text


@dataclass
class Call:
    op: str
    place: ChatAddress | None
    args: dict[str, Any] = field(default_factory=dict)


class FakeFrontend(Frontend):
    def __init__(self, name: str = "matrix", *, sessions: set[str] | None = None) -> None:
        self.name = name
        self._serves = sessions  # session keys; None = all
        self.calls: list[Call] = []
        self.cards: dict[str, TicketCard] = {}  # thread root → current card
        self.topics: dict[str, str] = {}
        self.inbox: FrontendInbox | None = None
        self._ids = itertools.count(1)
        self._failures: dict[str, list[Exception]] = {}
        self._txns: dict[str, str] = {}  # txn_id → event id (idempotent like Matrix)

    # --- scripting -------------------------------------------------------------

    def fail_next(
        self, op: str, times: int = 1, *, permanent: bool = False, error: str = "boom"
    ) -> None:
        exc: Exception = PermanentDeliveryError(error) if permanent else DeliveryError(error)
        self._failures.setdefault(op, []).extend([exc] * times)

    def _maybe_fail(self, op: str) -> None:
        queue = self._failures.get(op)
        if queue:
            raise queue.pop(0)

    def _event(self, txn_id: str | None = None) -> str:
        if txn_id is not None and txn_id in self._txns:
            return self._txns[txn_id]
        event = f"${self.name}{next(self._ids)}"
        if txn_id is not None:
            self._txns[txn_id] = event
        return event

    def of(self, op: str) -> list[Call]:
        return [c for c in self.calls if c.op == op]

    def posts_in(self, root: str) -> list[Call]:
        return [c for c in self.calls if c.op == "post" and c.place and c.place.thread_root == root]

    # --- Frontend ---------------------------------------------------------------

    def serves_session(self, session: SessionConfig) -> bool:
        return self._serves is None or session.key in self._serves

    def serves_ops(self, company: CompanyConfig) -> bool:
        return True

    async def start(self, inbox: FrontendInbox) -> None:
        self.inbox = inbox

    async def ensure_control_room(self, company: CompanyConfig, session: SessionConfig) -> str:
        self._maybe_fail("room")
        room = f"!control-{company.id}-{session.name}"
        self.calls.append(Call("room", ChatAddress(room), {"kind": "control"}))
        return room

    async def ensure_ops_room(self, company: CompanyConfig) -> str:
        self._maybe_fail("room")
        room = f"!ops-{company.id}"
        self.calls.append(Call("room", ChatAddress(room), {"kind": "ops"}))
        return room

    async def create_thread(self, room: str, card: TicketCard, *, txn_id: str) -> str:
        self._maybe_fail("thread")
        root = self._event(txn_id)
        self.cards[root] = card
        self.calls.append(Call("thread", ChatAddress(room, root), {"card": card}))
        return root

    async def update_card(self, place: ChatAddress, card: TicketCard) -> None:
        self._maybe_fail("card")
        assert place.thread_root is not None
        self.cards[place.thread_root] = card
        self.calls.append(Call("card", place, {"card": card}))

    async def post(
        self,
        place: ChatAddress,
        author: Author,
        content: Content,
        *,
        reply_to: str | None,
        txn_id: str,
    ) -> Posted:
        self._maybe_fail("post")
        event = self._event(txn_id)
        self.calls.append(
            Call(
                "post",
                place,
                {"author": author, "content": content, "reply_to": reply_to, "event": event},
            )
        )
        return Posted((event,))

    async def react(
        self, place: ChatAddress, author: Author, *, target: str, emoji: str, txn_id: str
    ) -> str | None:
        self._maybe_fail("react")
        event = self._event(txn_id)
        self.calls.append(
            Call("react", place, {"author": author, "target": target, "emoji": emoji})
        )
        return event

    async def edit(
        self, place: ChatAddress, author: Author, *, target: str, new: Text, txn_id: str
    ) -> str | None:
        self._maybe_fail("edit")
        event = self._event(txn_id)
        self.calls.append(Call("edit", place, {"author": author, "target": target, "new": new}))
        return event

    async def delete(self, place: ChatAddress, author: Author, *, target: str) -> None:
        self._maybe_fail("delete")
        self.calls.append(Call("delete", place, {"author": author, "target": target}))

    async def mark_receipt(
        self, place: ChatAddress, author: Author, *, target: str, status: AckStatus
    ) -> None:
        self.calls.append(Call("receipt", place, {"target": target, "status": status}))

    async def notice(self, place: ChatAddress, text: str, *, txn_id: str) -> str:
        self._maybe_fail("notice")
        event = self._event(txn_id)
        self.calls.append(Call("notice", place, {"text": text, "event": event}))
        return event

    async def post_image(
        self, place: ChatAddress, *, data: bytes, filename: str, caption: str, replaces: str | None
    ) -> str:
        event = self._event()
        self.calls.append(
            Call(
                "image",
                place,
                {"data": data, "filename": filename, "caption": caption, "replaces": replaces},
            )
        )
        return event

    async def set_topic(self, room: str, text: str) -> None:
        self.topics[room] = text
        self.calls.append(Call("topic", ChatAddress(room), {"text": text}))

    # --- attendants ---------------------------------------------------------------

    async def attendant(
        self,
        place: ChatAddress,
        user: str,
        content: AnyContent | str,
        *,
        name: str | None = None,
        reply_to: str | None = None,
        event_id: str | None = None,
    ) -> tuple[str, Reply | None]:
        """Play an attendant's event into the core; return its event id and the reply."""
        assert self.inbox is not None, "frontend not started"
        body = Text(content) if isinstance(content, str) else content
        event = event_id or self._event()
        reply = await self.inbox.attendant_event(
            AttendantPost(
                frontend=self.name,
                place=place,
                event_id=event,
                attendant=Attendant(user, name or user.split(":")[0].lstrip("@").title()),
                content=body,
                reply_to=reply_to,
            )
        )
        return event, reply

    async def unhandled(self, place: ChatAddress | None, event_id: str, reason: str) -> bool:
        """Play an event this frontend could not handle into the core (set aside)."""
        assert self.inbox is not None, "frontend not started"
        return await self.inbox.set_aside(
            UnhandledEvent(self.name, event_id, place, reason, excerpt=f'{{"id": "{event_id}"}}')
        )
