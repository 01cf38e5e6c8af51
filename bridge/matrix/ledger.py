"""What the bridge already sent to a Matrix room, so one delivery is never sent twice.

A send names its transaction (``PUT /rooms/{room}/send/{type}/{txn}``), and the
homeserver answers a repeated transaction id with the event it already made. It
recognises one only while it remembers it: Synapse keeps those of appservice users
in memory, so a send that landed just before Synapse restarted (the answer lost
with the connection) would be stored twice. :class:`SendLedger` closes that window:

- every event it sends carries the txn id in its content too (``TXN_KEY``);
- after an ambiguous failure of a send (``DeliveryError.ambiguous``: it may have
  landed), the retry first looks for the txn id among the sender's latest
  ``LOOKBACK`` events in the room and answers the event found there instead of
  sending again.

A send the core gives no txn id (a QR code image) is known instead by a digest of
what it sends: :meth:`SendLedger.once` answers the event such a send made before in
this process (the latest ``REMEMBERED`` of them).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mautrix.api import Method, Path
from mautrix.appservice import IntentAPI
from mautrix.types import EventType

from bridge.cache import bounded
from bridge.errors import DeliveryError
from bridge.matrix import convert
from bridge.matrix.calls import matrix_call
from bridge.matrix.fields import page_events

__all__ = ["TXN_KEY", "SendLedger"]

log = logging.getLogger("bridge.matrix.ledger")

TXN_KEY = "io.zapbridge.txn"  # in every event's content: the delivery it came from
LOOKBACK = 100  # events of the sender read back after an ambiguous failure
REMEMBERED = 1_000  # sends known by a digest

JSON = dict[str, Any]


class SendLedger:
    """Sends each event of a delivery at most once (see the module docstring)."""

    def __init__(self) -> None:
        self._unsure: set[tuple[str, str]] = set()  # (room, txn) sends that may have landed
        self._by_digest: MutableMapping[str, str] = bounded(REMEMBERED)  # digest → event

    async def once(self, digest: str, send: Callable[[], Awaitable[str]]) -> str:
        """The event the send known by ``digest`` made before, else the one ``send``
        makes now."""
        event = self._by_digest.get(digest)
        if event is None:
            event = await send()
            self._by_digest[digest] = event
        return event

    async def send(
        self,
        intent: IntentAPI,
        room: str,
        content: JSON,
        *,
        txn_id: str | None,
        what: str,
        kind: str = convert.MESSAGE,
    ) -> str:
        """Send one event as ``intent``; the event id. ``txn_id`` makes a retry of the
        same delivery a no-op; without one, the event is sent as it is."""
        event_type = EventType.find(kind, EventType.Class.MESSAGE)
        if txn_id is not None:
            content = {**content, TXN_KEY: txn_id}
            if (room, txn_id) in self._unsure:
                found = await self._sent_before(intent, room, txn_id)
                if found is not None:
                    self._unsure.discard((room, txn_id))
                    return found
        txn = txn_id or intent.api.get_txn_id()
        path = Path.v3.rooms[room].send[str(event_type)][txn]
        try:
            async with matrix_call(what):
                data = await intent.api.request(Method.PUT, path, content)
        except DeliveryError as exc:
            if txn_id is not None and exc.ambiguous:
                self._unsure.add((room, txn_id))
            raise
        if txn_id is not None:
            self._unsure.discard((room, txn_id))
        return str(data["event_id"])

    async def _sent_before(self, intent: IntentAPI, room: str, txn_id: str) -> str | None:
        """The event ``intent`` sent into ``room`` with ``txn_id``, among its latest."""
        query = {
            "dir": "b",
            "limit": str(LOOKBACK),
            "filter": json.dumps({"senders": [intent.mxid]}),
        }
        async with matrix_call("look for a send that may have landed"):
            data = await intent.api.request(
                Method.GET, Path.v3.rooms[room].messages, query_params=query
            )
        for event in page_events(data):
            found = event.loose_text("event_id")
            if found and event.loose_obj("content").loose_text(TXN_KEY) == txn_id:
                log.info("%s reached %s before its answer was lost: not sent again", txn_id, room)
                return found
        return None
