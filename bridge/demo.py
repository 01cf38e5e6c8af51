"""``python -m bridge demo``: everything local, no accounts needed.

Starts a throwaway Synapse and the bridge (simulated WhatsApp, SQLite) in a data
directory, creates a Matrix admin and an attendant, prints how to log in with any
Matrix client, plays a short customer conversation (the demo attendant answers in
the ticket thread), and prints a one-line-per-message transcript. Ctrl-C stops
everything; running it again reuses the data directory.

However the demo ends (Ctrl-C, SIGTERM, SIGHUP when its terminal closes, SIGKILL,
or the reader of its output gone: ``… | tee demo.log`` and Ctrl-C kills ``tee``
first), nothing of it stays behind: Synapse dies with the demo's process
(``PR_SET_PDEATHSIG``), and printing to a closed pipe never raises, so the stop
always runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from bridge.app import Bridge
from bridge.config import Config, load_config
from bridge.db.database import Database
from bridge.errors import BridgeError
from bridge.files import private_dir, write_private
from bridge.logs import Redactor, configure_logging
from bridge.matrix.local_synapse import LocalSynapse, SynapseError, free_port
from bridge.matrix.registration import build_registration
from bridge.model import content_from_dict
from bridge.whatsapp.sim import SimEngine

log = logging.getLogger("bridge.demo")

COMPANY = "demo"
SESSION = "sales"
KEY = f"{COMPANY}/{SESSION}"
ADMIN = "admin"
ATTENDANT = "attendant"

CONFIG_TEMPLATE = """\
# Written by `python -m bridge demo`; edit freely, it is reused on the next run.
database: {{url: "sqlite:bridge.db"}}
data_dir: data
http: {{host: 127.0.0.1, port: {http_port}}}
logging: {{level: WARNING}}
homeserver: {{address: "http://127.0.0.1:{hs_port}", domain: localhost}}
appservice:
  hostname: 127.0.0.1
  port: {as_port}
  address: "http://127.0.0.1:{as_port}"
  as_token: "{as_token}"
  hs_token: "{hs_token}"
whatsapp:
  engine: sim
  send_per_minute: 120
  sim: {{auto_pair: true}}
companies:
  - id: {company}
    name: Demo Store
    admins: ["@{admin}:localhost"]
    attendants: ["@{attendant}:localhost"]
    ops: {{matrix: true}}
    sessions:
      - name: {session}
        matrix: true
        greeting: "Olá! Um atendente já vai falar com você."
        farewell: "Atendimento encerrado. Obrigado!"
"""

# (delay before, what the customer sends): a short, believable conversation
SCRIPT: list[tuple[float, dict[str, Any]]] = [
    (1.0, {"kind": "text", "text": "Oi! Meu pedido *#4521* ainda não chegou 😕"}),
    (
        2.0,
        {
            "kind": "location",
            "location": {
                "lat": -23.5614,
                "lon": -46.6559,
                "name": "Casa",
                "address": "Av. Paulista, 1578",
            },
        },
    ),
]
ATTENDANT_REPLY = "Oi Maria! Vou verificar o pedido *#4521* agora mesmo."
CUSTOMER_THANKS = {"kind": "text", "text": "Obrigada! 🙏"}


def write_demo_config(directory: Path) -> Path:
    """The demo's config file, written once (ports and tokens are then reused)."""
    path = directory / "config.yaml"
    if not path.exists():
        private_dir(directory)
        write_private(
            path,
            CONFIG_TEMPLATE.format(
                http_port=free_port(),
                hs_port=free_port(),
                as_port=free_port(),
                as_token=secrets.token_urlsafe(32),
                hs_token=secrets.token_urlsafe(32),
                company=COMPANY,
                session=SESSION,
                admin=ADMIN,
                attendant=ATTENDANT,
            ),
        )
    return path


def _password(directory: Path, name: str) -> str:
    """A per-directory password, kept so a second run can log in again."""
    path = directory / "passwords.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if name not in known:
        known[name] = secrets.token_urlsafe(9)
        write_private(path, json.dumps(known))
    return known[name]


class Output:
    """The demo's printed lines. A closed reader (``| tee`` killed by the same Ctrl-C)
    silences it instead of raising: the demo must still stop Synapse."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.closed = False

    def say(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(text, file=self._stream, flush=True)
        except (BrokenPipeError, ValueError, OSError):  # ValueError: the file was closed
            self.closed = True
            self._discard_the_rest()

    def _discard_the_rest(self) -> None:
        """Point the stream's descriptor at /dev/null, so the interpreter's last flush
        at exit does not complain about the broken pipe either."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)


class Transcript:
    """Prints every stored message once, as one line, by polling the messages table."""

    def __init__(self, db: Database, out: Output) -> None:
        self._db = db
        self._out = out
        self._last = 0

    async def start_after_existing(self) -> None:
        self._last = int(await self._db.fetchval("SELECT COALESCE(MAX(id), 0) FROM messages"))

    async def poll(self) -> int:
        rows = await self._db.fetch(
            "SELECT id, direction, sender, sender_name, content FROM messages "
            "WHERE id > $1 ORDER BY id",
            self._last,
        )
        for row in rows:
            self._last = row["id"]
            self._out.say(self.line(row))
        return len(rows)

    @staticmethod
    def line(row: dict[str, Any]) -> str:
        content = content_from_dict(
            json.loads(row["content"]) if isinstance(row["content"], str) else row["content"]
        )
        text = getattr(content, "body", None) or getattr(content, "placeholder", None)
        if text is None:
            name = getattr(content, "name", None)
            text = f"[{content.kind}{': ' + name if name else ''}]"
        who = row["sender_name"] or row["sender"]
        arrow = "WhatsApp → Matrix" if row["direction"] == "in" else "Matrix → WhatsApp"
        if row["sender"] == "bot":
            arrow, who = "bridge → WhatsApp", "auto reply"
        return f"[{arrow}] {who}: {' '.join(str(text).split())}"


class MatrixUser:
    """A few Matrix client calls for the demo attendant."""

    def __init__(self, address: str, token: str) -> None:
        self._address = address
        self._headers = {"Authorization": f"Bearer {token}"}

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession(headers=self._headers) as http:
            async with http.request(
                method, f"{self._address}/_matrix/client/v3{path}", json=body
            ) as resp:
                data = await resp.json()
                if resp.status >= 400:
                    raise BridgeError(f"Matrix {method} {path}: {data.get('error', data)}")
                return data

    async def join(self, room: str) -> None:
        await self._call("POST", f"/join/{room}", {})

    async def reply_in_thread(self, room: str, root: str, text: str) -> None:
        body = {
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        }
        txn = secrets.token_hex(8)
        await self._call("PUT", f"/rooms/{room}/send/m.room.message/{txn}", body)


async def _until(check: Callable[[], Awaitable[Any]], *, seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.1)


class Demo:
    def __init__(self, directory: Path, *, out: TextIO = sys.stdout) -> None:
        self.directory = directory.resolve()
        self.out = Output(out)
        self.config: Config | None = None
        self.synapse: LocalSynapse | None = None
        self.bridge: Bridge | None = None

    def say(self, text: str) -> None:
        self.out.say(text)

    async def start(self) -> None:
        self.config = load_config(write_demo_config(self.directory))
        configure_logging(
            level=self.config.logging.level, fmt="text", redactor=Redactor(self.config.secrets())
        )
        hs_port = int(self.config.homeserver.address.rsplit(":", 1)[1])
        self.synapse = LocalSynapse(
            self.directory / "synapse", registration=build_registration(self.config), port=hs_port
        )
        self.say(f"Starting Synapse on {self.synapse.address} …")
        await self.synapse.start()
        self.admin_password = await self._user(ADMIN, admin=True)
        self.attendant_password = await self._user(ATTENDANT, admin=False)
        self.bridge = Bridge(self.config)
        await self.bridge.start()

    async def _user(self, name: str, *, admin: bool) -> str:
        assert self.synapse is not None
        password = _password(self.directory, name)
        with contextlib.suppress(SynapseError):  # already registered on an earlier run
            await self.synapse.register_user(name, password, admin=admin)
        return password

    def print_welcome(self) -> None:
        assert self.synapse is not None and self.config is not None
        self.say(
            "\nzapbridge demo is running.\n"
            f"  Matrix homeserver: {self.synapse.address}\n"
            f"  Log in as:         @{ADMIN}:localhost   password: {self.admin_password}\n"
            f"  (attendant:        @{ATTENDANT}:localhost   password: {self.attendant_password})\n"
            f"  Bridge health:     http://127.0.0.1:{self.config.http.port}/health\n"
            f"  Play a customer:   curl -XPOST http://127.0.0.1:{self.config.http.port}"
            f'/sim/sessions/{SESSION}/inbound -d \'{{"from": "+5511987654321", '
            '"push_name": "Maria", "kind": "text", "text": "Oi"}\'\n'
            f"  Data directory:    {self.directory} (reused next time)\n"
            "Ctrl-C stops everything.\n\nTranscript:"
        )

    async def play(self) -> None:
        """The scripted conversation: a customer writes, the demo attendant answers."""
        bridge = self.bridge
        assert bridge is not None and isinstance(bridge.engine, SimEngine)
        customer = {"from": "+5511987654321", "push_name": "Maria"}
        for delay, body in SCRIPT:
            await asyncio.sleep(delay)
            await bridge.engine.inbound(KEY, {**customer, **body})
        thread = await _until(self._latest_thread, seconds=30)
        assert self.synapse is not None
        _, token = await self._login(ATTENDANT, self.attendant_password)
        attendant = MatrixUser(self.synapse.address, token)
        await attendant.join(thread["room_id"])
        await asyncio.sleep(1.0)
        await attendant.reply_in_thread(thread["room_id"], thread["thread_root"], ATTENDANT_REPLY)
        await asyncio.sleep(2.0)
        await bridge.engine.inbound(KEY, {**customer, **CUSTOMER_THANKS})

    async def _latest_thread(self) -> dict[str, Any] | None:
        assert self.bridge is not None
        return await self.bridge.db_required.fetchrow(
            "SELECT room_id, thread_root FROM thread_refs WHERE frontend = 'matrix' "
            "ORDER BY ticket_id DESC LIMIT 1"
        )

    async def _login(self, name: str, password: str) -> tuple[str, str]:
        assert self.synapse is not None
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": password,
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.synapse.address}/_matrix/client/v3/login", json=body
            ) as resp:
                data = await resp.json()
                if resp.status != 200:
                    raise BridgeError(f"cannot log in as {name}: {data.get('error', data)}")
        return data["user_id"], data["access_token"]

    async def stop(self) -> None:
        try:
            if self.bridge is not None:
                await self.bridge.stop()
        finally:
            if self.synapse is not None:
                await self.synapse.stop()


async def run_demo(
    directory: Path, *, duration: float | None = None, out: TextIO = sys.stdout
) -> None:
    demo = Demo(directory, out=out)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    try:
        await demo.start()
        assert demo.bridge is not None
        transcript = Transcript(demo.bridge.db_required, demo.out)
        await transcript.start_after_existing()
        demo.print_welcome()
        player = asyncio.create_task(demo.play())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                while not stopping.is_set():
                    await transcript.poll()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), 0.3)
        await transcript.poll()
        if not player.done():
            player.cancel()
        elif player.exception() is not None:
            demo.say(f"demo conversation stopped: {player.exception()}")
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        demo.say("stopping …")
        await demo.stop()


# SIGHUP: the terminal running the demo was closed.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
