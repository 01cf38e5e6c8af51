"""The Cloud API engine: WhatsApp through Meta's official WhatsApp Business Cloud API.

There is no device and no QR code: the number is linked to the app in Meta's
WhatsApp Manager and the bridge holds its access token (``sessions[].cloud``,
docs/cloud.md). A session is "connected" once Meta accepts the token
(``GET /{phone_number_id}``); the token is checked again every
``token_check_seconds``, and a token Meta refuses (error 190) at any call reports the
session logged out, once, until the next connect.

Outbound calls go through one :class:`~bridge.whatsapp.cloud.graph.GraphClient` per
session (one aiohttp session for the engine) with the JSON of
:mod:`bridge.whatsapp.cloud.outbound`; failures are mapped by
:func:`~bridge.whatsapp.cloud.graph.graph_error`. Inbound traffic does not pass
here: Meta posts it to the bridge's webhook (:mod:`bridge.whatsapp.cloud.webhook`),
which hands the events to :meth:`CloudEngine.emit`.

The Graph API names every message itself (``wamid.…``) and takes no id from the
sender. So ``message_id`` of ``send``/``react``/``send_template`` is the send's
*reference* instead: it rides in ``biz_opaque_callback_data``, which Meta echoes in
every status of that message (:mod:`bridge.whatsapp.cloud.inbound` hands it on as the
events' ``reference``). The core uses it to learn the ``wamid`` of a send whose
answer was lost; what remains possible is in docs/cloud.md, "Sending twice". A
media's caption sent after it as a text carries no reference: the media's own
statuses name the delivery. Sent messages can be neither edited nor deleted through
the Cloud API: ``edit`` and ``revoke`` refuse.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Mapping, Sequence
from typing import TypeVar

import aiohttp

from bridge.clock import Clock
from bridge.config.schema import CloudConfig
from bridge.errors import (
    DeliveryError,
    EngineError,
    InvalidInput,
    PermanentDeliveryError,
    SessionNotConnected,
)
from bridge.media_limits import SizeLimit, megabytes
from bridge.model import Content, Media, Quote, Text, default_filename
from bridge.whatsapp.cloud import outbound
from bridge.whatsapp.cloud.graph import GraphClient, TokenRejected
from bridge.whatsapp.engine import (
    ConnectedEvent,
    DisconnectedEvent,
    Engine,
    EventHandler,
    LoggedOutEvent,
    SessionSpec,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

NO_QR_CODE = (
    "Cloud API sessions have no QR code: the number is linked in Meta's WhatsApp Manager; "
    "check sessions[].cloud.access_token and sessions[].cloud.phone_number_id "
    "(docs/cloud.md)"
)
# What an admin does when Meta refuses the token (the LOGGED_OUT alert; docs/cloud.md).
TOKEN_REFUSED_ACTION = (
    "Create a new access token in Meta's Business Settings (a system user token with "
    "whatsapp_business_messaging), put it in sessions[].cloud.access_token (or its "
    "access_token_file or environment variable), then restart the bridge: the token is "
    "read at start. If Meta accepts the old token again, !login reconnects without a restart."
)


class CloudEngine(Engine):
    """The Cloud API sessions named in ``sessions`` (session key → its settings).

    ``media_max_bytes`` bounds a customer's file fetched from Meta (``media.max_size_mb``).
    """

    name = "cloud"

    def __init__(
        self,
        handler: EventHandler,
        *,
        sessions: Mapping[str, CloudConfig],
        clock: Clock,
        media_max_bytes: int,
        token_check_seconds: float = 300.0,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(handler)
        self._configs = dict(sessions)
        self._clock = clock
        self._media_max_bytes = media_max_bytes
        self._token_check_seconds = token_check_seconds
        self._timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        self._clients: dict[str, GraphClient] = {}
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._connected: set[str] = set()
        self._logged_out: set[str] = set()  # told logged out since their last connect

    # --- lifecycle ----------------------------------------------------------------

    async def is_paired(self, spec: SessionSpec) -> bool:
        return True  # no device: the token in the configuration is the pairing

    async def connect(self, spec: SessionSpec) -> None:
        """Check the token; ``ConnectedEvent`` with the number Meta reports, else
        ``LoggedOutEvent`` (token refused) or ``DisconnectedEvent``."""
        key = spec.key
        client = self._client(key)
        self._stop_check(key)
        self._logged_out.discard(key)
        try:
            info = await client.phone_number_info()
        except TokenRejected as exc:
            await self._token_rejected(key, exc)
            return
        except DeliveryError as exc:
            transient = not isinstance(exc, PermanentDeliveryError)
            await self.emit(DisconnectedEvent(key, reason=exc.explanation, transient=transient))
            return
        self._connected.add(key)
        digits = re.sub(r"\D", "", info.display_phone_number)
        self._checks[key] = asyncio.create_task(self._check_token(key), name=f"token {key}")
        await self.emit(ConnectedEvent(key, phone=f"+{digits}" if digits else None))

    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        raise InvalidInput(NO_QR_CODE)

    async def disconnect(self, key: str) -> None:
        self._stop_check(key)
        self._connected.discard(key)

    async def logout(self, key: str) -> None:
        """Stop using the session; its token stays valid at Meta (revoke it there)."""
        await self.disconnect(key)

    async def close(self) -> None:
        checks = list(self._checks.values())
        for key in list(self._checks):
            self._stop_check(key)
        await asyncio.gather(*checks, return_exceptions=True)  # each ends cancelled
        self._connected.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._clients.clear()

    async def _check_token(self, key: str) -> None:
        """Every ``token_check_seconds``: does Meta still take the token?"""
        while True:
            await self._clock.sleep(self._token_check_seconds)
            try:
                await self._client(key).phone_number_info()
            except TokenRejected as exc:
                self._checks.pop(key, None)  # this task ends here; nobody cancels it
                await self._token_rejected(key, exc)
                return
            except DeliveryError as exc:
                log.warning("session %s: the token check failed: %s", key, exc.explanation)

    def _stop_check(self, key: str) -> None:
        task = self._checks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _token_rejected(self, key: str, exc: TokenRejected) -> None:
        """Report the session logged out, once until it connects again."""
        self._stop_check(key)
        self._connected.discard(key)
        if key in self._logged_out:
            return
        self._logged_out.add(key)
        log.warning("session %s: %s", key, exc.explanation)
        await self.emit(LoggedOutEvent(key, reason=exc.explanation, action=TOKEN_REFUSED_ACTION))

    # --- calls ------------------------------------------------------------------------
    # ``message_id`` is the send's reference: see the module docstring.

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        client = self._connected_client(key)
        outbound.recipient(to)  # refused before a file is uploaded for nothing
        if not isinstance(content, Media):
            payload = outbound.message_payload(to, content, quote=quote)
            return await self._send(key, client, payload, reference=message_id)
        media_id = await self._guarded(key, self._upload(client, content))
        payload = outbound.message_payload(to, content, media_id=media_id, quote=quote)
        wa_id = await self._send(key, client, payload, reference=message_id)
        caption = outbound.detached_caption(content)
        if caption is not None:
            await self._guarded(
                key, client.send_message(outbound.message_payload(to, Text(caption)))
            )
        return wa_id

    async def _upload(self, client: GraphClient, media: Media) -> str:
        if media.data is None:
            raise PermanentDeliveryError(f"the {media.media_kind.value}'s bytes were not at hand")
        mimetype = media.mimetype.split(";", 1)[0].strip() or "application/octet-stream"
        ident = hashlib.sha256(media.data).hexdigest()[:10]
        filename = media.filename or default_filename(media.media_kind, mimetype, ident)
        return await client.upload_media(media.data, mimetype=mimetype, filename=filename)

    async def react(
        self,
        key: str,
        to: str,
        *,
        target: str,
        target_sender: str | None,
        emoji: str,
        message_id: str | None = None,
    ) -> str:
        client = self._connected_client(key)
        payload = outbound.reaction_payload(to, target=target, emoji=emoji)
        return await self._send(key, client, payload, reference=message_id)

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        raise PermanentDeliveryError(
            "the Cloud API cannot edit a sent message: the customer keeps the first version"
        )

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        raise PermanentDeliveryError(
            "the Cloud API cannot delete a sent message: the customer still sees it"
        )

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        """Meta marks a message read with every earlier one: the last id is enough."""
        if not ids:
            return
        client = self._connected_client(key)
        await self._guarded(key, client.mark_read(ids[-1]))

    async def download(self, key: str, media: Media) -> bytes:
        if media.data is not None:
            return media.data
        media_id = (media.ref or {}).get("cloud_media_id")
        if not isinstance(media_id, str) or not media_id:
            raise PermanentDeliveryError("the file has no Cloud API media id to download it by")
        client = self._connected_client(key)
        rule = f"media.max_size_mb is {megabytes(self._media_max_bytes)}"
        limit = SizeLimit(media.media_kind, self._media_max_bytes, rule)
        return await self._guarded(key, client.download_media(media_id, limit=limit))

    async def send_template(
        self,
        key: str,
        to: str,
        *,
        name: str,
        language: str,
        params: Sequence[str],
        message_id: str | None = None,
    ) -> str:
        client = self._connected_client(key)
        payload = outbound.template_payload(to, name=name, language=language, params=params)
        return await self._send(key, client, payload, reference=message_id)

    async def account_facts(self, key: str) -> dict[str, str]:
        """The number's display name, quality rating and messaging limit, for
        ``!status``; a failed look-up is one fact saying why."""
        if key not in self._connected:
            return {}
        try:
            info = await self._guarded(key, self._client(key).phone_number_info())
        except (DeliveryError, EngineError) as exc:
            return {"Cloud API": f"unavailable: {exc.explanation}"}
        facts = {
            "verified name": info.verified_name,
            "quality rating": info.quality_rating,
            "messaging limit": info.messaging_limit_tier,
        }
        return {label: value for label, value in facts.items() if value}

    # --- clients ------------------------------------------------------------------------

    def _client(self, key: str) -> GraphClient:
        client = self._clients.get(key)
        if client is not None:
            return client
        config = self._configs.get(key)
        if config is None:
            raise EngineError(f"session {key} has no Cloud API settings (sessions[].cloud)")
        if self._http is None:
            self._http = aiohttp.ClientSession()
        client = GraphClient(self._http, config, timeout=self._timeout)
        self._clients[key] = client
        return client

    def _connected_client(self, key: str) -> GraphClient:
        if key not in self._connected:
            raise SessionNotConnected(f"the Cloud API session {key} is not connected")
        return self._client(key)

    async def _send(
        self, key: str, client: GraphClient, payload: outbound.JsonDict, *, reference: str | None
    ) -> str:
        """POST ``payload`` with ``reference`` as its callback data; Meta's ``wamid``."""
        payload = outbound.with_reference(payload, reference)
        return await self._guarded(key, client.send_message(payload))

    async def _guarded(self, key: str, call: Awaitable[T]) -> T:
        """``call``'s result; a refused token also reports the session logged out."""
        try:
            return await call
        except TokenRejected as exc:
            await self._token_rejected(key, exc)
            raise
