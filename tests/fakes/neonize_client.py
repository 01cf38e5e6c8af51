"""A recording stand-in for neonize's async client (``neonize.aioze.client.NewAClient``).

It has the constructor and the method signatures of the real client for every
method the whatsmeow engine calls (a test compares them), records each call with
the protobufs passed, and answers from a script set per test. Events reach the
registered callbacks the way neonize delivers them: from another thread, through
``asyncio.run_coroutine_threadsafe`` onto the loop.

Never use a real ``NewAClient`` in tests: calling it before its Go side exists
panics the whole process.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message as ProtoMessage
from neonize.events import EVENT_TO_INT
from neonize.exc import GetProfilePictureError, NeonizeError
from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.utils.enum import (
    ChatPresence,
    ChatPresenceMedia,
    ClientName,
    ClientType,
    MediaType,
    ReceiptType,
)

Handler = Callable[[Any, Any], Coroutine[Any, Any, None]]
_PICTURE_PARAMS = neonize.GetProfilePictureParams()  # the real client's default


@dataclass
class Call:
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class FakeEvent:
    """``client.event``: ``event(EvType)(handler)`` registers, ``event.qr(handler)`` too."""

    def __init__(self) -> None:
        self.handlers: dict[type[ProtoMessage], Handler] = {}
        self.qr_handler: Handler | None = None

    def __call__(self, event: type[ProtoMessage]) -> Callable[[Handler], None]:
        EVENT_TO_INT[event]  # the real registry rejects unknown event types the same way

        def register(func: Handler) -> None:
            self.handlers[event] = func

        return register

    def qr(self, func: Handler) -> None:
        self.qr_handler = func


class FakeNeonizeClient:
    """Records calls; scripted through its public attributes (see ``__init__``)."""

    def __init__(
        self,
        name: str,
        jid: neonize.JID | None = None,
        props: DeviceProps | None = None,
        uuid: str | None = None,
        new_device: bool = False,
    ) -> None:
        self.name = name
        self.jid = jid
        self.props = props
        self.uuid = uuid
        self.new_device = new_device
        self.event = FakeEvent()
        self.qr = self.event.qr
        self.calls: list[Call] = []
        # --- script -------------------------------------------------------------
        self.auto_qr: list[str] = []  # QR codes delivered as soon as connect() runs
        self.auto_events: list[ProtoMessage] = []  # then these events
        self.exit_error: str | None = None  # the Go main loop ends with this error at once
        self.failures: dict[str, Exception] = {}  # method name → raised on its next call
        self.pair_code = "ABCD-EFGH"
        self.on_whatsapp: dict[str, str] = {}  # "+<digits>" query → JID user on WhatsApp
        self.downloads: list[bytes] = []  # returned by download_any, in order
        self.pictures: dict[str, str] = {}  # JID user → profile picture URL (else no picture)
        self.me = neonize.Device()
        self._ids = (f"3EB0{n:018X}" for n in itertools.count(1))
        self._stopped: asyncio.Event | None = None
        self.connect_task: asyncio.Task[None] | None = None
        # the real client stops its Go side (by uuid) when it is garbage-collected
        self._stop_finalizer = weakref.finalize(self, lambda: None)

    # --- recording helpers --------------------------------------------------------

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(name, args, kwargs))
        failure = self.failures.pop(name, None)
        if failure is not None:
            raise failure

    def calls_to(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    @property
    def sent(self) -> list[tuple[neonize.JID, Message]]:
        """``(to, message)`` of every ``send_message`` call."""
        return [(c.args[0], c.args[1]) for c in self.calls_to("send_message")]

    @property
    def stopped(self) -> bool:
        return bool(self.calls_to("stop"))

    # --- the NewAClient surface ---------------------------------------------------

    async def connect(self, proxy_settings: Any = None) -> asyncio.Task[None]:
        self._record("connect", proxy_settings)
        if not self.name.startswith("postgres"):  # whatsmeow opens (creates) its SQLite store
            await asyncio.to_thread(Path(self.name).touch)
        self._stopped = asyncio.Event()
        self.connect_task = asyncio.get_running_loop().create_task(self._main_loop())
        return self.connect_task

    async def _main_loop(self) -> None:
        """Like neonize's blocking ``Neonize()`` Go call: runs until ``stop``."""
        if self.exit_error is not None:
            raise NeonizeError(self.exit_error)
        for code in self.auto_qr:
            await self.deliver_qr(code)
        for event in self.auto_events:
            await self.deliver(event)
        assert self._stopped is not None
        await self._stopped.wait()

    async def stop(self) -> None:
        self._record("stop")
        if self._stopped is not None:
            self._stopped.set()

    async def disconnect(self) -> None:
        self._record("disconnect")

    async def logout(self) -> None:
        self._record("logout")

    async def get_me(self) -> neonize.Device:
        self._record("get_me")
        return self.me

    async def PairPhone(
        self,
        phone: str,
        show_push_notification: bool,
        client_name: ClientName = ClientName.LINUX,
        client_type: ClientType | None = None,
    ) -> str:
        self._record("PairPhone", phone, show_push_notification)
        return self.pair_code

    async def send_message(
        self,
        to: neonize.JID | str,
        message: Message | str,
        link_preview: bool = False,
        ghost_mentions: str | None = None,
        mentions_are_lids: bool = False,
        add_msg_secret: bool = False,
    ) -> neonize.SendResponse:
        self._record("send_message", to, message)
        return neonize.SendResponse(ID=next(self._ids), Timestamp=1_700_000_000)

    async def upload(self, binary: bytes, media_type: MediaType | None = None) -> Any:
        self._record("upload", binary, media_type)
        digest = len(binary).to_bytes(4, "big")
        return neonize.UploadResponse(
            url="https://mmg.whatsapp.net/v/t62/upload.enc",
            DirectPath="/v/t62/upload.enc",
            MediaKey=b"K" * 32,
            FileEncSHA256=b"E" * 28 + digest,
            FileSHA256=b"S" * 28 + digest,
            FileLength=len(binary),
        )

    async def download_any(self, message: Message, path: str | None = None) -> bytes | None:
        self._record("download_any", message, path)
        return self.downloads.pop(0) if self.downloads else b""

    async def send_chat_presence(
        self, jid: neonize.JID, state: ChatPresence, media: ChatPresenceMedia
    ) -> None:
        self._record("send_chat_presence", jid, state, media)

    async def mark_read(
        self,
        *message_ids: str,
        chat: neonize.JID,
        sender: neonize.JID,
        receipt: ReceiptType,
        timestamp: int | None = None,
    ) -> None:
        self._record(
            "mark_read",
            *message_ids,
            chat=chat,
            sender=sender,
            receipt=receipt,
            timestamp=timestamp,
        )

    async def is_on_whatsapp(self, *numbers: str) -> Sequence[neonize.IsOnWhatsAppResponse]:
        self._record("is_on_whatsapp", *numbers)
        answers = []
        for query in numbers:
            user = self.on_whatsapp.get(query)
            jid = neonize.JID(User=user or "", Server="s.whatsapp.net" if user else "")
            answers.append(neonize.IsOnWhatsAppResponse(Query=query, JID=jid, IsIn=bool(user)))
        return answers

    async def get_profile_picture(
        self,
        jid: neonize.JID,
        extra: neonize.GetProfilePictureParams = _PICTURE_PARAMS,
    ) -> neonize.ProfilePictureInfo:
        self._record("get_profile_picture", jid, extra)
        url = self.pictures.get(jid.User)
        if url is None:  # the real client raises when there is no picture to see
            raise GetProfilePictureError(neonize.GetProfilePictureReturnFunction())
        return neonize.ProfilePictureInfo(URL=url, ID="1", Type="image")

    # --- driving events, as neonize's Go callbacks do ------------------------------

    async def deliver(self, event: ProtoMessage) -> bool:
        """Deliver ``event`` from another thread; False when nobody subscribed to it."""
        handler = self.event.handlers.get(type(event))
        if handler is None:
            return False
        await self._from_go_thread(handler, event)
        return True

    async def deliver_qr(self, code: str) -> None:
        assert self.event.qr_handler is not None, "no QR callback registered"
        await self._from_go_thread(self.event.qr_handler, code.encode())

    async def _from_go_thread(self, handler: Handler, payload: Any) -> None:
        loop = asyncio.get_running_loop()

        def go_thread() -> Any:
            return asyncio.run_coroutine_threadsafe(handler(self, payload), loop)

        future = await asyncio.to_thread(go_thread)
        await asyncio.wrap_future(future)


class FakeClientFactory:
    """The engine's ``client_factory``: builds fakes, configured by ``setup``."""

    def __init__(self, setup: Callable[[FakeNeonizeClient], None] | None = None) -> None:
        self.setup = setup
        self.clients: list[FakeNeonizeClient] = []

    def __call__(
        self,
        name: str,
        jid: neonize.JID | None = None,
        props: DeviceProps | None = None,
        uuid: str | None = None,
        new_device: bool = False,
    ) -> FakeNeonizeClient:
        client = FakeNeonizeClient(name, jid=jid, props=props, uuid=uuid, new_device=new_device)
        if self.setup is not None:
            self.setup(client)
        self.clients.append(client)
        return client

    @property
    def last(self) -> FakeNeonizeClient:
        return self.clients[-1]


# --- an engine wired to fakes ---------------------------------------------------------

OWN_DEVICE = "5511900000001:7@s.whatsapp.net"


class EngineHarness:
    """A :class:`WhatsmeowEngine` on fake clients, a fake clock and a recorded handler."""

    def __init__(self, device_dir: Path, *, database_url: str | None = None, **engine_kw: Any):
        from bridge.clock import FakeClock
        from bridge.whatsapp.engine import SessionSpec
        from bridge.whatsapp.whatsmeow import WhatsmeowEngine

        self.events: list[Any] = []
        self.factory = FakeClientFactory()
        self.clock = FakeClock()
        self.stored_devices: list[str] = []
        self.spec = SessionSpec(
            key="acme/sales",
            company="acme",
            name="sales",
            device_dir=device_dir,
            database_url=database_url,
        )
        engine_kw.setdefault("executor_threads", None)
        self.engine = WhatsmeowEngine(
            self._record,
            client_factory=self.factory,
            device_lister=lambda database: list(self.stored_devices),
            clock=self.clock,
            **engine_kw,
        )

    async def _record(self, event: Any) -> None:
        self.events.append(event)

    @property
    def client(self) -> FakeNeonizeClient:
        return self.factory.last

    def of_type(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def pair(self, device: str = OWN_DEVICE, lid: str | None = None) -> None:
        """Store a paired device, as a past login would have."""
        from bridge.whatsapp.device_files import DeviceFiles, Pairing

        files = DeviceFiles(self.spec)
        files.write(Pairing(jid=device, lid=lid))
        if files.postgres:
            self.stored_devices.append(device)
        else:
            files.sqlite.write_bytes(b"SQLite format 3\x00")

    async def connected(self) -> FakeNeonizeClient:
        """A paired session, connected."""
        self.pair()
        await self.engine.connect(self.spec)
        await self.client.deliver(neonize.Connected(status=True))
        await self.settle()
        return self.client

    async def until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait (in real time) until ``predicate()`` holds: for work that hops threads,
        which no event signals to the test."""
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110 - polling is the point here
                await asyncio.sleep(0.005)

    async def settle(self) -> None:
        await self.clock.settle()
        for _ in range(3):
            await asyncio.sleep(0)
