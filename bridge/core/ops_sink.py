"""Where the ops notifier's words go: outbox rows for each frontend of the company,
and login codes to the room where ``!login`` was typed."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from bridge.clock import Clock
from bridge.config import Config
from bridge.core.frontend import Frontend
from bridge.core.ops import OpsPost
from bridge.core.outbox import OutboxWorker
from bridge.db.outbox import OutboxRepository

log = logging.getLogger("bridge.core.ops")


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
            payload = {
                "op": "ops",
                "company": company.id,
                "session": post.session_key,
                "text": text,
                "topic": topic,
                "severity": str(post.severity),
            }
            await self._enqueue(name, f"ops:{company.id}:{name}", payload)
        if not post.has_message:
            return
        log.info("ops %s: %s", post.company_id, post.text)

    async def post_login_code(
        self,
        session_key: str,
        *,
        png: bytes | None,
        code: str,
        kind: str,
        expires_in: float | None,
    ) -> None:
        origin = self._origins.get(session_key)
        if origin is None or origin.frontend not in self._frontends:
            log.warning("login code for %s but nobody asked for it here; not shown", session_key)
            return
        if kind == "qr":
            text = f"Scan this QR code with WhatsApp on the phone of {session_key}"
            if expires_in:
                text += f" (valid {int(expires_in)} s)"
        else:
            text = (
                f"Pairing code for {session_key}: *{code}*\n"
                "On the phone: WhatsApp › Linked devices › Link with phone number."
            )
        payload = {
            "op": "login",
            "session": session_key,
            "room": origin.room,
            "thread": origin.thread_root,
            "text": text,
            "png": base64.b64encode(png).decode() if png else None,
        }
        await self._enqueue(origin.frontend, f"login:{session_key}:{origin.frontend}", payload)

    async def _enqueue(self, destination: str, key: str, payload: Mapping[str, object]) -> None:
        await self._repo.enqueue(
            destination, ordering_key=key, payload=payload, now=self._clock.now()
        )
        self._outbox.wake()
