"""One running neonize client per session, shared by the whatsmeow engine's parts.

:class:`ClientSession` is what the engine knows about a session's client;
:class:`ClientSessions` holds the running one of each session and guards every call
into a client (:meth:`ClientSessions.op`): a neonize client method must never run
before ``Connected`` or after the client's stop (see :mod:`bridge.whatsapp.whatsmeow`).
The lifecycle (:mod:`bridge.whatsapp.whatsmeow_lifecycle`) starts and retires
clients; the outbound calls (:mod:`bridge.whatsapp.whatsmeow_outbound`) use them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, MediaType, ReceiptType

from bridge.errors import SessionNotConnected
from bridge.whatsapp import wa_inbound as inbound
from bridge.whatsapp.device_files import DeviceFiles
from bridge.whatsapp.engine import SessionSpec


class NeonizeClient(Protocol):
    """The part of neonize's ``NewAClient`` this engine uses."""

    event: Any

    async def connect(self) -> asyncio.Task[Any]: ...
    async def stop(self) -> None: ...
    async def logout(self) -> None: ...
    async def get_me(self) -> neonize.Device: ...
    async def PairPhone(self, phone: str, show_push_notification: bool) -> str: ...
    async def send_message(self, to: neonize.JID, message: wa.Message) -> neonize.SendResponse: ...
    async def upload(self, binary: bytes, media_type: MediaType | None = None) -> Any: ...
    async def download_any(self, message: wa.Message) -> bytes | None: ...
    async def get_profile_picture(
        self, jid: neonize.JID, extra: neonize.GetProfilePictureParams = ...
    ) -> neonize.ProfilePictureInfo: ...
    async def send_chat_presence(
        self, jid: neonize.JID, state: ChatPresence, media: ChatPresenceMedia
    ) -> None: ...
    async def mark_read(
        self,
        *message_ids: str,
        chat: neonize.JID,
        sender: neonize.JID,
        receipt: ReceiptType,
        timestamp: int | None = None,
    ) -> None: ...


ClientFactory = Callable[..., NeonizeClient]
"""Called like ``NewAClient(name, jid=…, props=…, uuid=…, new_device=…)``."""


def new_neonize_client(
    name: str, *, jid: neonize.JID | None, props: DeviceProps, uuid: str, new_device: bool
) -> NeonizeClient:
    from neonize.aioze.client import NewAClient

    client: NeonizeClient = NewAClient(name, jid=jid, props=props, uuid=uuid, new_device=new_device)
    return client


@dataclass(eq=False)
class ClientSession:
    """One session's neonize client and what the engine tracks about it."""

    spec: SessionSpec
    files: DeviceFiles
    client: NeonizeClient
    login: str | None  # "qr" / "phone" while logging in, None for a paired device
    me: inbound.Identity
    task: asyncio.Task[Any] | None = None
    connected: bool = False
    closing: bool = False
    qr_count: int = 0
    qr_timer: asyncio.Task[None] | None = None
    first_qr: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    events: asyncio.Lock = field(default_factory=asyncio.Lock)
    ops: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def key(self) -> str:
        return self.spec.key

    def __post_init__(self) -> None:
        self.idle.set()


class ClientSessions:
    """The running client of each session: at most one, until it is retired."""

    def __init__(self) -> None:
        self._by_key: dict[str, ClientSession] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> ClientSession | None:
        return self._by_key.get(key)

    def add(self, session: ClientSession) -> None:
        self._by_key[session.key] = session

    def pop(self, key: str) -> None:
        self._by_key.pop(key, None)

    def all(self) -> list[ClientSession]:
        return list(self._by_key.values())

    def live(self, session: ClientSession) -> bool:
        """Whether ``session`` is still its key's client and not stopping."""
        return self._by_key.get(session.key) is session and not session.closing

    @contextlib.asynccontextmanager
    async def op(self, key: str) -> AsyncIterator[ClientSession]:
        """A call into ``key``'s connected client; its stop waits for the calls running."""
        session = self._by_key.get(key)
        if session is None or session.closing or not session.connected:
            raise SessionNotConnected(f"session {key} is not connected to WhatsApp")
        session.ops += 1
        session.idle.clear()
        try:
            yield session
        finally:
            session.ops -= 1
            if session.ops == 0:
                session.idle.set()
