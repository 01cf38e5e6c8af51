"""The sim's outbound log: what the bridge sent through a simulated session.

:func:`record` appends one operation (a send, reaction, edit or deletion) to the
session's log (kept by ``keep``: in ``outbound.jsonl`` or the shared network,
:mod:`bridge.whatsapp.sim_shared`; the entries' shape is :mod:`bridge.whatsapp.sim_wire`)
and answers its WhatsApp id. It
plays the failures asked for with ``fail_next_sends`` first. A caller-chosen
``message_id`` becomes the entry's id, as whatsmeow's ``SendRequestExtra.ID`` does;
an id the session already sent is dropped the way a recipient's phone drops it.
:func:`remember` makes a logged entry known to the session (quotable, its id sent),
also for the entries read back after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bridge.errors import EngineError, InvalidInput, PermanentDeliveryError
from bridge.model import AnyContent, Quote
from bridge.phone import normalize_phone
from bridge.whatsapp.sim_session import KnownMessage, SimSession, apply_edit
from bridge.whatsapp.sim_wire import entry_chat, entry_preview, outbound_entry, outbound_fields

log = logging.getLogger("bridge.whatsapp.sim.outbound")


async def record(
    session: SimSession,
    *,
    to: str,
    content: AnyContent,
    quote: Quote | None,
    message_id: str | None,
    new_id: Callable[[], str],
    now: float,
    keep: Callable[[SimSession, dict[str, Any]], Awaitable[None]],
    sender: str | None = None,
) -> str:
    """Log ``content`` sent to ``to``; its id (``message_id``, else ``new_id()``).
    ``sender`` (the cluster instance sending) goes into the entry as ``instance``."""
    address = _address(to)
    fields = outbound_fields(content)
    if message_id is not None and not message_id:
        raise PermanentDeliveryError("a chosen WhatsApp message id must not be empty")
    if session.fail_sends > 0:
        session.fail_sends -= 1
        raise EngineError(session.fail_error)
    if message_id in session.sent_ids:
        log.info(
            "sim session %s: %s %s already sent; the recipient drops the repeat",
            session.key,
            fields["kind"],
            message_id,
        )
        return message_id
    wa_id = message_id or new_id()
    entry = outbound_entry(
        wa_id=wa_id,
        to=address,
        timestamp=now,
        fields=fields,
        quote=quote.wa_id if quote is not None else None,
    )
    if sender is not None:
        entry["instance"] = sender
    session.sent_ids.add(wa_id)  # before the await: a concurrent repeat is dropped too
    try:
        await keep(session, entry)
    except BaseException:
        session.sent_ids.discard(wa_id)
        raise
    session.outbound.append(entry)
    remember(session, entry)
    log.debug("sim session %s: outbound %s %s to %s", session.key, entry["kind"], wa_id, address)
    return wa_id


def remember(session: SimSession, entry: Mapping[str, Any]) -> None:
    """Make the logged ``entry`` known to ``session``: its id sent, its text quotable."""
    session.sent_ids.add(entry["id"])
    session.known[entry["id"]] = KnownMessage(
        author=None, text=entry_preview(entry), chat=entry_chat(entry)
    )
    if entry["kind"] == "edit":
        apply_edit(session, entry["target"], entry["text"])


def _address(to: str) -> str:
    """The canonical address for ``to``: a group or LID JID as is, else E.164."""
    if to.endswith(("@g.us", "@lid")):
        return to
    try:
        return normalize_phone(to)
    except InvalidInput as exc:
        raise PermanentDeliveryError(f"cannot send to {to!r}: {exc.explanation}") from exc
