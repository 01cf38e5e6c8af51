"""The real WhatsApp engine: whatsmeow, driven through neonize's async client.

One neonize ``NewAClient`` per session (:mod:`bridge.whatsapp.whatsmeow_client`).
Its device store (PostgreSQL or one SQLite file per session) and the pairing record
(in the same database, or a file next to a SQLite store) are
:mod:`bridge.whatsapp.device_files`. ``connect`` checks a shared
PostgreSQL store still holds the recorded device (neonize builds a client on a
missing device and Go then panics). A SQLite store holds one device, so ``connect``
lets whatsmeow take its first one; if that store turns out empty, the QR code that
follows tells, and the session is reported logged out.

:class:`WhatsmeowEngine` is the :class:`~bridge.whatsapp.engine.Engine`. It hands the
lifecycle (connect, logins, logout, neonize's callbacks → events, threads and
reconnection: :mod:`bridge.whatsapp.whatsmeow_lifecycle`) and the calls into a
connected client (sends, receipts, downloads: :mod:`bridge.whatsapp.whatsmeow_outbound`)
to one collaborator each; both share the running clients.

Never call a neonize client method before its Go side exists: neonize looks the
client up in a Go map and a missing entry panics the whole process. Sends and
downloads are therefore only allowed between ``Connected`` and the client's stop,
and ``PairPhone`` only after the first QR code proved the client is up.

Caller-chosen message ids (``message_id`` of ``send``/``react``/``edit``/``revoke``)
are **ignored**: whatsmeow takes one in ``SendRequestExtra.ID`` (and recipients drop a
repeated id), but neonize 0.5.2 does not pass it through. Its ``send_message`` calls
the Go export ``SendMessage(uuid, to, message)``, which has no ``extra`` argument and
lets whatsmeow generate the id; the only export that takes a ``SendRequestExtra``,
``SendFBMessage`` (``send_fb_message``), sends a Messenger-style
``ConsumerApplication`` payload, not the ``waE2E.Message`` a WhatsApp chat needs. So
with this engine a delivery whose send succeeded but whose id was not yet stored
when the bridge died (``kill -9``, power loss) is sent again after the restart: the
customer can see that one message twice. The sim engine honours the id.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps

from bridge.clock import Clock, SystemClock
from bridge.model import Content, Media, Quote
from bridge.whatsapp.device_files import PairingRecords, PairingStore, stored_devices
from bridge.whatsapp.engine import Engine, EventHandler, SessionSpec
from bridge.whatsapp.phone_spellings import PhoneSpellings
from bridge.whatsapp.transcode import MediaConverter
from bridge.whatsapp.whatsmeow_client import ClientFactory, ClientSessions, new_neonize_client
from bridge.whatsapp.whatsmeow_lifecycle import ClientLifecycle
from bridge.whatsapp.whatsmeow_outbound import ClientOutbound


class WhatsmeowEngine(Engine):
    """WhatsApp through whatsmeow (neonize). See the module doc for the device store
    and the two collaborators this delegates to.

    ``client_factory`` builds the neonize client (tests pass a fake); ``device_lister``
    lists the device JIDs of a store (used to check a PostgreSQL store before
    connecting); ``pairings`` keeps the pairing records of sessions on a PostgreSQL
    store in that database (bridge/db/devices.py; without it they are files);
    ``jid_cache`` maps E.164 → the digits WhatsApp knows that number by.
    """

    name = "whatsmeow"

    def __init__(
        self,
        handler: EventHandler,
        *,
        client_factory: ClientFactory | None = None,
        device_lister: Callable[[str], list[str]] | None = None,
        pairings: PairingStore | None = None,
        clock: Clock | None = None,
        converter: MediaConverter | None = None,
        jid_cache: MutableMapping[str, str] | None = None,
        device_name: str = "zapbridge",
        pair_timeout: float = 30.0,
        qr_grace: float = 10.0,
        drain_timeout: float = 30.0,
        executor_threads: int | None = 64,
        avatar_timeout: float = 10.0,
    ) -> None:
        super().__init__(handler)
        clock = clock or SystemClock()
        sessions = ClientSessions()
        spellings = PhoneSpellings(jid_cache)
        self._lifecycle = ClientLifecycle(
            self.emit,
            sessions=sessions,
            client_factory=client_factory or new_neonize_client,
            device_lister=device_lister or stored_devices,
            pairings=PairingRecords(pairings),
            clock=clock,
            spellings=spellings,
            props=DeviceProps(os=device_name, platformType=DeviceProps.SAFARI),
            pair_timeout=pair_timeout,
            qr_grace=qr_grace,
            drain_timeout=drain_timeout,
            executor_threads=executor_threads,
            avatar_timeout=avatar_timeout,
        )
        self._outbound = ClientOutbound(
            sessions=sessions,
            clock=clock,
            converter=converter or MediaConverter(),
            spellings=spellings,
        )

    # --- lifecycle: bridge.whatsapp.whatsmeow_lifecycle ------------------------------

    async def is_paired(self, spec: SessionSpec) -> bool:
        return await self._lifecycle.is_paired(spec)

    async def connect(self, spec: SessionSpec) -> None:
        await self._lifecycle.connect(spec)

    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        await self._lifecycle.login(spec, phone=phone)

    async def disconnect(self, key: str) -> None:
        await self._lifecycle.disconnect(key)

    async def logout(self, key: str) -> None:
        await self._lifecycle.logout(key)

    async def close(self) -> None:
        await self._lifecycle.close()

    # --- calls into the client: bridge.whatsapp.whatsmeow_outbound --------------------
    # ``message_id`` is ignored: see the module docstring.

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        return await self._outbound.send(key, to, content, quote=quote)

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
        return await self._outbound.react(
            key, to, target=target, target_sender=target_sender, emoji=emoji
        )

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        return await self._outbound.edit(key, to, target=target, text=text)

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        return await self._outbound.revoke(key, to, target=target)

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        await self._outbound.mark_read(key, chat, ids=ids, sender=sender)

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        return await self._outbound.chat_presence(key, to, state=state)

    async def download(self, key: str, media: Media) -> bytes:
        return await self._outbound.download(key, media)
