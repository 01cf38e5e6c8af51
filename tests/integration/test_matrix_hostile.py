"""Hostile and malformed input through a real Synapse (issue 11): an event no one
can handle is set aside and reported once, and never holds back the events behind
it; a transaction over 1 MiB is accepted; generated requests straight at the
appservice never get a 5xx, never stall the loop, and leave it working."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.matrix.local_synapse import free_port
from tests.harness.stall import LoopStallMonitor
from tests.harness.synapse import (
    Homeserver,
    MatrixBridge,
    MatrixUser,
    alice,
    bob,
    bridge,
    synapse,
    until,
)
from tests.harness.synapse import _config as harness_config

__all__ = ["alice", "bob", "bridge", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOT = "@whatsappbot:localhost"
REPO = Path(__file__).resolve().parents[2]
FUZZ_EXAMPLES = 500
HTML = "org.matrix.custom.html"


def threaded(content: dict[str, Any], root: str) -> dict[str, Any]:
    relation = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    return {**content, "m.relates_to": {**relation, "m.in_reply_to": {"event_id": root}}}


def poison_events(root: str) -> list[tuple[str, dict[str, Any]]]:
    """(event type, content): shapes a room member can post that the bridge cannot
    read, each with another field of the wrong type."""
    text = {"msgtype": "m.text", "body": "x"}
    thread = threaded(text, root)["m.relates_to"]
    return [
        ("m.room.message", {**text, "m.relates_to": "junk"}),  # the event
        ("m.room.message", {**text, "m.relates_to": {**thread, "event_id": 42}}),
        ("m.room.message", {**text, "m.relates_to": {**thread, "m.in_reply_to": "$x"}}),
        ("m.room.message", {**text, "format": HTML, "formatted_body": {"b": "x"}}),
        ("m.sticker", {"body": "s", "url": ["mxc://localhost/x"], "m.relates_to": thread}),
        ("m.reaction", {"m.relates_to": ["m.annotation", root, "👍"]}),
    ]


async def test_poison_events_are_set_aside_and_the_next_reply_is_delivered(
    bridge: MatrixBridge, bob: MatrixUser, alice: MatrixUser
) -> None:
    await bridge.customer(text="Oi, preciso de ajuda")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    ops = await bridge.room("ops", session=None)
    await bob.join(room)
    await alice.join(ops)
    answered = len(bridge.hs.forwarder.answers)

    poison = [await bob.send(room, content, kind) for kind, content in poison_events(root)]
    await bob.send(room, threaded({"msgtype": "m.text", "body": "nul\x00aqui"}, root))
    await bob.send(room, threaded({"msgtype": "m.text", "body": "Posso ajudar?"}, root))

    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Posso ajudar?"))
    assert sent["text"] == "*bob:*\nPosso ajudar?"
    odd = await bridge.outbound(lambda m: "aqui" in m.get("text", ""))
    assert odd["text"] == "*bob:*\nnulaqui"  # cleaned, not refused
    repo = bridge.bridge.repos.quarantine
    for event_id in poison:
        row = await until(lambda e=event_id: repo.get("matrix", e), clock=bridge.clock)
        assert row.company_id == "acme" and " is " in row.reason and row.excerpt.startswith("{")
    assert await repo.count() == len(poison)

    async def reported() -> list[str] | None:
        bodies = [e["content"].get("body", "") for e in await alice.messages(ops)]
        alerts = [b for b in bodies if "set aside" in b]
        return alerts if len(alerts) >= len(poison) else None

    alerts = await until(reported, what="the ops alerts", clock=bridge.clock)
    for event_id in poison:
        assert sum(event_id in alert for alert in alerts) == 1, (event_id, alerts)
    told = [
        e
        for e in await bob.messages(room)
        if e["sender"] == BOT and "not relayed" in e["content"].get("body", "")
    ]
    assert {e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] for e in told} <= set(poison)
    assert told, "the sender is told"
    # every transaction was acknowledged: Synapse had nothing to retry
    assert [status for _, status in bridge.hs.forwarder.answers[answered:]] == [200] * len(
        bridge.hs.forwarder.answers[answered:]
    )


# --- a transaction over 1 MiB ----------------------------------------------------------


class BridgeProcess:
    """``python -m bridge run`` on the session's Synapse (sim engine, SQLite in
    memory), behind the forwarder: a real process that can be paused (SIGSTOP)."""

    def __init__(self, hs: Homeserver, directory: Path) -> None:
        self.hs = hs
        self.directory = directory
        self.listen_port = free_port()
        self.config = harness_config(
            directory,
            hs_address=hs.synapse.address,
            as_port=self.listen_port,
            tokens=(hs.as_token, hs.hs_token),
        )
        self.base = f"http://127.0.0.1:{self.config.http.port}"
        self.log_path = directory / "bridge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", "bridge", "run", "-c", str(self.directory / "config.yaml")],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.hs.forwarder.target = self.listen_port

        async def connected() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            try:
                health = await self.get("/health")
            except aiohttp.ClientError:
                return False
            return bool(health["sessions"]) and set(health["sessions"].values()) == {"CONNECTED"}

        await until(connected, limit=60, what="the bridge process")

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    async def stop(self) -> None:
        """Leave the rooms (the next test's bridge makes its own), then SIGTERM."""
        if self.proc is None:
            return
        self.resume()
        bot = MatrixUser(self.hs.synapse.address, BOT, self.hs.as_token)
        for room in (await bot.request("GET", "/_matrix/client/v3/joined_rooms"))["joined_rooms"]:
            await bot.request("POST", f"/_matrix/client/v3/rooms/{quote(room)}/leave", {})
        self.hs.forwarder.target = None
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as http, http.get(f"{self.base}{path}") as resp:
            resp.raise_for_status()
            return await resp.json()

    async def customer(self, text: str) -> None:
        body = {"from": "+5511987654321", "push_name": "Maria", "kind": "text", "text": text}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{self.base}/sim/sessions/sales/inbound", json=body) as resp:
                assert resp.status == 200, await resp.text()

    async def outbound(self) -> list[dict[str, Any]]:
        return list((await self.get("/sim/sessions/sales/outbound"))["messages"])


async def control_room_and_root(bot: MatrixUser, bob: MatrixUser) -> tuple[str, str]:
    """The room the bot tagged as the control room of sales, and ticket #1's root."""

    async def room() -> str | None:
        joined = (await bot.request("GET", "/_matrix/client/v3/joined_rooms"))["joined_rooms"]
        for candidate in joined:
            try:
                state = await bot.state(candidate, "io.zapbridge.room")
            except AssertionError:
                continue
            if state == {"kind": "control", "company": "acme", "session": "sales"}:
                return str(candidate) if candidate in await bob.invited_rooms() else None
        return None

    control = await until(room, limit=30, what="the control room")
    await bob.join(control)

    async def root() -> str | None:
        for event in await bob.messages(control):
            if event["content"].get("body", "").startswith("Ticket #1 ·"):
                return str(event["event_id"])
        return None

    return control, await until(root, limit=30, what="the ticket's root")


async def test_a_transaction_over_1_mib_after_a_pause_is_delivered_in_order_once(
    synapse: Homeserver, tmp_path: Path, bob: MatrixUser
) -> None:
    """The bridge process is paused (SIGSTOP) while bob posts 24 messages of 60 KB:
    Synapse's first push waits on the paused bridge, the others queue up and go as
    one transaction of about 1.5 MiB once the bridge runs again (SIGCONT)."""
    bridge = BridgeProcess(synapse, tmp_path / "bridge")
    await bridge.start()
    try:
        await bridge.customer("Oi, preciso de ajuda")
        bot = MatrixUser(synapse.synapse.address, BOT, synapse.as_token)
        room, root = await control_room_and_root(bot, bob)
        answered = len(synapse.forwarder.answers)
        filler = "x" * 60_000  # Synapse limits an event to 64 KiB
        texts = [f"grande {n:02d} {filler}" for n in range(24)]
        bridge.pause()
        try:
            for text in texts:
                await bob.send(room, threaded({"msgtype": "m.text", "body": text}, root))
        finally:
            bridge.resume()

        async def delivered() -> list[str] | None:
            sent = [m.get("text", "") for m in await bridge.outbound()]
            ours = [t.removeprefix("*bob:*\n") for t in sent if "grande" in t]
            return ours if len(ours) >= len(texts) else None

        assert await until(delivered, limit=60, what="every message on WhatsApp") == texts
        answers = synapse.forwarder.answers[answered:]
        print(f"\ntransactions after the pause (bytes, status): {answers}")
        assert max(size for size, _ in answers) > 1024 * 1024, answers
        assert {status for _, status in answers} == {200}, answers
    except BaseException:
        print(bridge.log_tail())
        raise
    finally:
        await bridge.stop()


# --- generated requests straight at the appservice ------------------------------------


@dataclass(frozen=True)
class Generated:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:  # hypothesis prints the failing one: keep it short
        return f"Generated({self.method} {self.path[:80]!r} {self.headers} {self.body[:200]!r}…)"


def _requests(hs_token: str, room: str, root: str) -> st.SearchStrategy[Generated]:
    odd = st.sampled_from(["", "\x00", "\ud800", "x\udfffy", "$root", "!", "\n", "é" * 40])
    text = st.text(max_size=20) | odd | st.just(root) | st.just(room)
    scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
    value = st.recursive(
        scalar,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=8,
    )
    thread = st.fixed_dictionaries(
        {"rel_type": st.sampled_from(["m.thread", "m.annotation", "m.replace"]) | value},
        optional={"event_id": st.just(root) | value, "m.in_reply_to": value, "key": value},
    )
    content = st.fixed_dictionaries(
        {},
        optional={
            "msgtype": st.sampled_from(["m.text", "m.image", "m.location"]) | value,
            "body": text | value,
            "m.relates_to": thread | value,
            "url": st.just("mxc://localhost/x") | value,
            "info": value,
            "format": st.just(HTML) | value,
            "formatted_body": text | value,
            "displayname": value,
            "membership": st.sampled_from(["join", "leave"]) | value,
        },
    )

    def plausible(*values: Any) -> st.SearchStrategy[Any]:
        """Mostly one of ``values``, sometimes any JSON value."""
        return st.sampled_from(values) | st.sampled_from(values) | st.sampled_from(values) | value

    event = st.fixed_dictionaries(
        {
            "type": plausible("m.room.message", "m.reaction", "m.room.redaction", "m.sticker"),
            "event_id": st.uuids().map(lambda u: f"${u}") | value,
            "room_id": plausible(room),
            "sender": plausible("@bob:localhost", "@mallory:localhost", BOT),
            "content": content | content | value,
        },
        optional={
            "state_key": st.just("@bob:localhost") | value,
            "redacts": value,
            "unsigned": value,
            "origin_server_ts": value,
        },
    )
    member = st.fixed_dictionaries(
        {
            "type": st.just("m.room.member"),
            "event_id": st.uuids().map(lambda u: f"${u}"),
            "room_id": st.just(room),
            "sender": st.just("@bob:localhost"),
            "state_key": plausible("@bob:localhost"),
            "content": content | value,
        }
    )

    def transaction(events: list[Any], extra: Any, padding: int) -> bytes:
        """The transaction's JSON, with ``padding`` bytes added (cheaply: this runs in
        hypothesis' thread, and a long encoding there would hold the loop too)."""
        head = json.dumps({"events": events, "ephemeral": extra}).encode()
        return head[:-1] + b', "padding": "' + b"p" * padding + b'"}'

    def nested(depth: int) -> bytes:
        return b'{"events": [' + b"[" * depth + b"]" * depth + b"]}"

    transactions = st.builds(
        transaction,
        st.lists(st.one_of(event, event, event, member, value), min_size=1, max_size=6),
        value,
        st.sampled_from([0, 0, 100_000, 1_200_000, 3_000_000]),
    )
    body = st.one_of(
        transactions,
        transactions,
        transactions,
        st.binary(max_size=300),
        st.sampled_from([b"", b"null", b"[]", b"{}", b'{"events": {}}', b'{"events": [NaN]}']),
        st.sampled_from([b'{"events": ["\\ud800"]}', b"\xff\xfe", b'{"events": [1e999]}']),
        st.integers(min_value=0, max_value=200_000).map(nested),
        value.map(lambda v: json.dumps(v).encode()),
    )
    txn_id = (
        st.text(min_size=1, max_size=30)
        | st.integers(min_value=0).map(str)
        | st.sampled_from(["²", "٣"])
    )
    transaction_path = st.builds(
        str.__add__,
        st.sampled_from(["/_matrix/app/v1/transactions/", "/transactions/"]),
        txn_id.map(lambda txn: quote(txn, safe="")),
    )
    token = st.sampled_from(
        [
            {"Authorization": f"Bearer {hs_token}"},
            {"Authorization": f"Bearer {hs_token}"},
            {"Authorization": f"Bearer {hs_token}"},
            {"Authorization": "Bearer wrong"},
            {"Authorization": hs_token},
            {},
        ]
    )
    routes = st.one_of(  # (method, path): the routes the homeserver uses, then any
        st.tuples(st.just("PUT"), transaction_path),
        st.tuples(st.just("PUT"), transaction_path),
        st.tuples(st.just("PUT"), transaction_path),
        st.tuples(st.just("PUT"), transaction_path),
        st.tuples(st.just("POST"), st.just("/_matrix/app/v1/ping")),
        st.tuples(
            st.just("GET"),
            st.sampled_from(
                ["/_matrix/app/v1/users/%40wa_1%3Alocalhost", "/_matrix/app/v1/rooms/%23x%3Ahs"]
            ),
        ),
        st.tuples(
            st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
            transaction_path | st.sampled_from(["/_matrix/mau/live", "/", "/nowhere"]),
        ),
    )
    return st.builds(
        lambda route, headers, data: Generated(route[0], route[1], headers, data),
        routes,
        token,
        body,
    )


async def test_generated_requests_get_no_5xx_nor_stall_the_loop(
    bridge: MatrixBridge, bob: MatrixUser, synapse: Homeserver
) -> None:
    """Hypothesis generates requests (routes, tokens right and wrong, bodies up to
    3 MB, deep nesting, odd transaction ids) in a thread; each goes to the appservice
    from the event loop. Every answer is 2xx or 4xx, and the loop stalls less than
    100 ms while one is served (the stall monitor's worst from a tick before the
    request to a tick after its answer: the generating thread holds the loop too at
    times, which is no request's doing). Then a reply through Synapse still reaches
    the customer."""
    await bridge.customer(text="Oi, preciso de ajuda")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    loop = asyncio.get_running_loop()
    base = f"http://127.0.0.1:{bridge.listen_port}"
    statuses: Counter[int] = Counter()
    sizes: list[int] = []

    worst: list[tuple[float, int, str]] = []  # (stall, status, request) per request

    async def send(http: aiohttp.ClientSession, request: Generated) -> int:
        await asyncio.sleep(0.01)  # the monitor ticks: a stall before this is not ours
        overall, monitor.worst = monitor.worst, 0.0
        async with http.request(
            request.method, base + request.path, headers=request.headers, data=request.body
        ) as resp:
            await resp.read()
        await asyncio.sleep(0.01)  # and ticks again after the answer
        worst.append((monitor.worst, resp.status, repr(request)))
        monitor.worst = max(overall, monitor.worst)
        return resp.status

    gc.collect()
    gc.freeze()  # the test process's own heap: its collections are no request's doing
    try:
        async with aiohttp.ClientSession() as http, LoopStallMonitor() as monitor:

            @settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(_requests(synapse.hs_token, room, root))
            def check(request: Generated) -> None:
                status = asyncio.run_coroutine_threadsafe(send(http, request), loop).result(60)
                statuses[status] += 1
                sizes.append(len(request.body))
                assert 200 <= status < 500, (status, request)

            await asyncio.to_thread(check)
    finally:
        gc.unfreeze()
    worst.sort(reverse=True)
    print(
        f"\nappservice fuzz: {len(sizes)} requests ({sum(n > 2**20 for n in sizes)} over "
        f"1 MiB, largest {max(sizes)} bytes), statuses {dict(statuses)}; "
        f"worst stall while a request was served {worst[0][0] * 1000:.1f} ms "
        f"(overall, hypothesis' thread included, {monitor.report()})"
    )
    print(f"  events set aside: {await bridge.bridge.repos.quarantine.count()}")
    for stall, status, request in worst[:3]:
        print(f"  {stall * 1000:.1f} ms {status} {request[:160]}")
    assert worst[0][0] < 0.1, worst[:3]
    assert sum(statuses.values()) >= FUZZ_EXAMPLES

    await bob.send(room, threaded({"msgtype": "m.text", "body": "Depois do ataque"}, root))
    sent = await bridge.outbound(lambda m: m.get("text", "").endswith("Depois do ataque"))
    assert sent["text"] == "*bob:*\nDepois do ataque"


# --- /health ------------------------------------------------------------------------------


async def test_refused_transactions_make_health_degraded_until_one_is_acknowledged(
    bridge: MatrixBridge, synapse: Homeserver
) -> None:
    async def health() -> dict[str, Any]:
        url = f"http://127.0.0.1:{bridge.config.http.port}/health"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            return dict(await resp.json())

    assert (await health())["status"] == "ok"
    url = f"http://127.0.0.1:{bridge.listen_port}/_matrix/app/v1/transactions/"
    headers = {"Authorization": f"Bearer {synapse.hs_token}"}
    # Synapse's own pushes (the echoes of the bridge's start-up) are acknowledged by the
    # forwarder meanwhile, not passed on: one arriving between the refused transactions
    # below would be acknowledged by the bridge and, rightly, end the degraded state.
    synapse.forwarder.target = None
    async with aiohttp.ClientSession() as http:
        for n, body in enumerate((b"[]", b"\xff", b'{"events": 1}')):
            async with http.put(f"{url}bad{n}", data=body, headers=headers) as resp:
                assert resp.status == 400
        degraded = await health()
        assert degraded["status"] == "degraded"
        assert degraded["problems"] == [
            "the last 3 transactions were refused: 400 no events list in the transaction; "
            "400 the body is not UTF-8; "
            "400 no events list in the transaction"
        ]
        async with http.put(f"{url}good", json={"events": []}, headers=headers) as resp:
            assert resp.status == 200
    assert (await health())["status"] == "ok"
