"""Where the session manager sends the events that are not its own (messages,
receipts, contacts, QR and pairing codes, engine errors, …).

Every event is cleaned first (:func:`bridge.model.cleaned`: no NUL or other control
characters, no lone surrogates in any string), whichever engine sent it. The events
the core persists (messages, receipts, contact updates, engine errors) go through
the journal when there is one: an event the database refuses is kept on disk and
replayed in order (:mod:`bridge.journal`), so an event whatsmeow acknowledged already
is never lost to a database outage. Only a message that was neither stored nor kept
is raised back to the engine, which then must not treat it as delivered.
"""

from __future__ import annotations

import logging

from bridge.errors import BridgeError, DatabaseError
from bridge.journal import Journal
from bridge.model import cleaned
from bridge.whatsapp.engine import EngineErrorEvent, EngineEvent, EventHandler, MessageEvent
from bridge.whatsapp.event_codec import JOURNALED_EVENTS


def clean_event(event: EngineEvent, slog: logging.Logger) -> EngineEvent:
    """``event`` with every string cleaned (:func:`bridge.model.clean_text`): the one
    place every engine's events pass, so both databases store the same text."""
    try:
        return cleaned(event)
    except ValueError as exc:  # e.g. an address made only of control characters
        slog.warning("unusable %s set aside: %s", type(event).__name__, exc)
        explanation = f"a {type(event).__name__} from WhatsApp was set aside: {exc}"
        return EngineErrorEvent(session=event.session, explanation=explanation)


class Downstream:
    """The handler the events go to, and the journal in front of it (both set while
    the bridge is wired up; without a handler an event is logged and dropped)."""

    def __init__(self) -> None:
        self.handler: EventHandler | None = None
        self.journal: Journal[EngineEvent] | None = None

    async def forward(self, event: EngineEvent, slog: logging.Logger) -> None:
        """Hand ``event`` on; ``slog`` is its session's logger."""
        if self.handler is None:
            slog.warning("no downstream handler: %s dropped", type(event).__name__)
            return
        kept = self.journal if isinstance(event, JOURNALED_EVENTS) else None
        try:
            if kept is not None:
                await kept.deliver(event)  # refused by the database: kept and replayed
            else:
                await self.handler(event)
        except DatabaseError as exc:
            if kept is None:  # (a journal reports its own losses)
                slog.error("%s not persisted: %s", type(event).__name__, exc.explanation)
            if isinstance(event, MessageEvent):
                raise  # neither stored nor journaled: the engine must not acknowledge it
        except Exception:
            slog.exception("downstream handler failed on %s", type(event).__name__)
            if isinstance(event, MessageEvent):
                raise  # neither stored nor journaled: the engine must not acknowledge it

    async def set_aside(self, event: EngineEvent, exc: Exception) -> None:
        """Report a kept event the handler cannot take as an :class:`EngineErrorEvent`."""
        if self.handler is None:
            raise BridgeError("no downstream handler")
        detail = exc.explanation if isinstance(exc, BridgeError) else repr(exc)
        event_id = event.message.wa_id if isinstance(event, MessageEvent) else None
        explanation = f"a kept {type(event).__name__} could not be handled: {detail[:200]}"
        await self.handler(
            EngineErrorEvent(event.session, explanation=explanation, event_id=event_id or "")
        )
