"""Where the ops notifier's words go: outbox rows for each frontend of the company,
and login codes to the room where ``!login`` was typed.

An ops row the database refuses is kept in the ``ops`` journal
(:meth:`OutboxOpsSink.keep_refused_in`, :mod:`bridge.journal`) and enqueued once the
database is back, in order per ops channel. Login codes are not kept: a QR code is
stale within a minute, and the next one replaces it.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from bridge.clock import Clock
from bridge.config import Config
from bridge.core.frontend import Frontend
from bridge.core.operations import LoginCode as LoginCodeOperation
from bridge.core.operations import Operation, OpsMessage, decode, encode, op_name
from bridge.core.ops import LoginCode, OpsPost
from bridge.core.ordering_keys import LoginKey, OpsKey
from bridge.core.outbox import OutboxWorker
from bridge.db.outbox import OutboxRepository
from bridge.journal import Journal

log = logging.getLogger("bridge.core.ops")


@dataclass(frozen=True)
class OpsRow:
    """One outbox row for an ops channel or a control room topic."""

    destination: str
    ordering_key: str
    message: OpsMessage


class OpsRowCodec:
    """The ``ops`` journal's :class:`~bridge.journal.Codec`."""

    def encode(self, item: OpsRow) -> dict[str, Any]:
        return {
            "destination": item.destination,
            "key": item.ordering_key,
            "payload": encode(item.message),
        }

    def decode(self, body: dict[str, Any]) -> OpsRow:
        destination, key, payload = body.get("destination"), body.get("key"), body.get("payload")
        if not (
            isinstance(destination, str) and isinstance(key, str) and isinstance(payload, dict)
        ):
            raise ValueError("an ops row needs a destination, a key and a payload object")
        message = decode(payload)
        if not isinstance(message, OpsMessage):
            raise ValueError(f"an ops row holds an ops message, not {op_name(payload)!r}")
        return OpsRow(destination, key, message)

    def lane(self, item: OpsRow) -> str:
        return item.ordering_key


@dataclass(frozen=True)
class LoginOrigin:
    frontend: str
    room: str
    thread_root: str | None


class OutboxOpsSink:
    """Implements the notifier's ``OpsSink`` and the commands' ``LoginOrigins``."""

    def __init__(
        self,
        config: Config,
        outbox_repo: OutboxRepository,
        outbox: OutboxWorker,
        *,
        frontends: dict[str, Frontend],
        clock: Clock,
    ) -> None:
        self._config = config
        self._repo = outbox_repo
        self._outbox = outbox
        self._frontends = frontends
        self._clock = clock
        self._origins: dict[str, LoginOrigin] = {}
        self._kept: Journal[OpsRow] | None = None

    def keep_refused_in(self, journal: Journal[OpsRow] | None) -> None:
        """Ops rows the database refuses go to ``journal`` (its handler: :meth:`enqueue`)."""
        self._kept = journal

    def remember(
        self, session_key: str, *, frontend: str, room: str, thread_root: str | None
    ) -> None:
        self._origins[session_key] = LoginOrigin(frontend, room, thread_root)

    async def post_ops(self, post: OpsPost) -> None:
        company = self._config.find_company(post.company_id)
        if company is None:
            return
        session = self._config.session_for_key(post.session_key) if post.session_key else None
        for name, frontend in self._frontends.items():
            text = post.text if frontend.serves_ops(company) else ""
            topic = post.topic if session is not None and frontend.serves_session(session) else None
            if not text and not topic:
                continue
            message = OpsMessage(
                company=company.id,
                session=post.session_key,
                text=text,
                topic=topic,
                severity=str(post.severity),
            )
            row = OpsRow(name, str(OpsKey(company.id, name)), message)
            if self._kept is not None:
                await self._kept.deliver(row)  # refused by the database: kept and replayed
            else:
                await self.enqueue(row)
        if not post.has_message:
            return
        log.info("ops %s: %s", post.company_id, post.text)

    async def post_login_code(self, login: LoginCode) -> None:
        session_key = login.session_key
        origin = self._origins.get(session_key)
        if origin is None or origin.frontend not in self._frontends:
            log.warning("login code for %s but nobody asked for it here; not shown", session_key)
            return
        if login.kind == "qr":
            text = f"Scan this QR code with WhatsApp on the phone of {session_key}"
            if login.expires_in:
                text += f" (valid {int(login.expires_in)} s)"
        else:
            text = (
                f"Pairing code for {session_key}: *{login.code}*\n"
                "On the phone: WhatsApp › Linked devices › Link with phone number."
            )
        code_op = LoginCodeOperation(
            session=session_key,
            room=origin.room,
            thread=origin.thread_root,
            text=text,
            png=base64.b64encode(login.png).decode() if login.png else None,
        )
        await self._enqueue(origin.frontend, str(LoginKey(session_key, origin.frontend)), code_op)

    async def enqueue(self, row: OpsRow) -> None:
        """Insert ``row`` into the outbox (the ``ops`` journal replays through this)."""
        await self._enqueue(row.destination, row.ordering_key, row.message)

    async def _enqueue(self, destination: str, key: str, operation: Operation) -> None:
        await self._repo.enqueue(
            destination, ordering_key=key, payload=encode(operation), now=self._clock.now()
        )
        self._outbox.wake()
