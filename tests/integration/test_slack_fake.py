"""The Slack fake itself, driven by the real slack_sdk clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import SlackFake


@pytest.fixture
async def fake() -> AsyncIterator[SlackFake]:
    fake = SlackFake()
    await fake.start()
    fake.add_channel("C0SALES", "sales")
    fake.add_channel("C0OUT", "outside", bot_member=False)
    fake.add_user("U0BOB", name="bob", display_name="Bob", real_name="Bob Silva")
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def web(fake: SlackFake) -> AsyncWebClient:
    return AsyncWebClient(base_url=fake.api_url, token=fake.bot_token)


async def slack_error(call) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# --- Web API: auth and validation ------------------------------------------------------


async def test_api_url_is_a_free_local_port_with_trailing_slash(fake: SlackFake) -> None:
    assert fake.api_url.startswith("http://127.0.0.1:")
    assert fake.api_url.endswith("/api/")
    other = SlackFake()
    await other.start()
    try:
        assert other.api_url != fake.api_url
    finally:
        await other.stop()


async def test_auth_test_names_the_bot_and_is_recorded(fake: SlackFake, web) -> None:
    answer = await web.auth_test()
    assert (answer["user_id"], answer["bot_id"], answer["team_id"]) == ("U0BOT", "B0BOT", "T0FAKE")
    [call] = fake.calls_of("auth.test")
    assert call.token == fake.bot_token
    assert call.response["ok"] is True


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (None, "not_authed"),
        ("xoxb-somebody-else", "invalid_auth"),
        (SlackFake.app_token, "not_allowed_token_type"),
    ],
)
async def test_web_api_needs_the_bot_token(fake: SlackFake, token, error) -> None:
    client = AsyncWebClient(base_url=fake.api_url, token=token)
    exc = await slack_error(client.chat_postMessage(channel="C0SALES", text="hi"))
    assert exc.response["error"] == error
    assert fake.messages("C0SALES") == []


async def test_connections_open_needs_the_app_token(fake: SlackFake, web) -> None:
    exc = await slack_error(web.apps_connections_open(app_token=fake.bot_token))
    assert exc.response["error"] == "not_allowed_token_type"
    answer = await web.apps_connections_open(app_token=fake.app_token)
    assert answer["url"].startswith("ws://127.0.0.1:")


async def test_unknown_method(fake: SlackFake, web) -> None:
    exc = await slack_error(web.api_call("chat.postMessages", json={"channel": "C0SALES"}))
    assert exc.response["error"] == "unknown_method"
    assert fake.calls_of("chat.postMessages")[0].response["error"] == "unknown_method"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"channel": "C0SALES"}, "no_text"),
        ({"text": "hi"}, "channel_not_found"),
        ({"channel": "C0NOPE", "text": "hi"}, "channel_not_found"),
        ({"channel": "C0OUT", "text": "hi"}, "not_in_channel"),
        ({"channel": "C0SALES", "text": "x" * 40_001}, "msg_too_long"),
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_post_message_validation(fake: SlackFake, web, args, error) -> None:
    exc = await slack_error(web.api_call("chat.postMessage", json=args))
    assert exc.response["error"] == error


async def test_form_encoded_and_token_in_body_are_accepted(fake: SlackFake) -> None:
    async with aiohttp.ClientSession() as http:
        form = {"token": fake.bot_token, "channel": "C0SALES", "text": "form", "blocks": "[]"}
        async with http.post(fake.api_url + "chat.postMessage", data=form) as resp:
            body = await resp.json()
        # a JSON body's "token" is not read (Slack wants the header then)
        payload = {"token": fake.bot_token, "channel": "C0SALES", "text": "json"}
        async with http.post(fake.api_url + "chat.postMessage", json=payload) as resp:
            refused = await resp.json()
    assert body["ok"] is True
    assert fake.calls_of("chat.postMessage")[0].args["blocks"] == []
    assert refused == {"ok": False, "error": "not_authed"}


# --- messages, threads, reactions -------------------------------------------------------


async def test_post_message_in_a_thread_with_username(fake: SlackFake, web) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Ticket #1"}}]
    root = await web.chat_postMessage(channel="C0SALES", text="Ticket #1", blocks=blocks)
    reply = await web.chat_postMessage(
        channel="C0SALES", text="olá", thread_ts=root["ts"], username="Maria", icon_emoji=":x:"
    )
    assert root["ts"].startswith("1700000000.")
    assert float(reply["ts"]) > float(root["ts"])
    thread = fake.messages("C0SALES", thread_ts=root["ts"])
    assert [m["text"] for m in thread] == ["Ticket #1", "olá"]
    assert thread[0]["blocks"] == blocks
    assert thread[0]["reply_count"] == 1
    assert (thread[1]["username"], thread[1]["thread_ts"]) == ("Maria", root["ts"])
    assert fake.calls_of("chat.postMessage")[1].args["username"] == "Maria"


async def test_update_and_delete(fake: SlackFake, web) -> None:
    posted = await web.chat_postMessage(channel="C0SALES", text="pending")
    await web.chat_update(channel="C0SALES", ts=posted["ts"], text="open")
    assert [m["text"] for m in fake.messages("C0SALES")] == ["open"]
    for call in (
        web.chat_update(channel="C0SALES", ts="1.000001", text="x"),
        web.chat_delete(channel="C0SALES", ts="1.000001"),
    ):
        assert (await slack_error(call)).response["error"] == "message_not_found"
    human = fake.user_message("C0SALES", "U0BOB", "mine")
    exc = await slack_error(web.chat_update(channel="C0SALES", ts=human["ts"], text="x"))
    assert exc.response["error"] == "cant_update_message"
    await web.chat_delete(channel="C0SALES", ts=posted["ts"])
    assert [m["text"] for m in fake.messages("C0SALES")] == ["mine"]


async def test_post_ephemeral(fake: SlackFake, web) -> None:
    answer = await web.chat_postEphemeral(channel="C0SALES", user="U0BOB", text="no")
    assert answer["message_ts"]
    exc = await slack_error(web.chat_postEphemeral(channel="C0SALES", user="U0NOPE", text="no"))
    assert exc.response["error"] == "user_not_found"
    assert fake.messages("C0SALES") == []


async def test_reactions(fake: SlackFake, web) -> None:
    posted = await web.chat_postMessage(channel="C0SALES", text="hi")
    await web.reactions_add(channel="C0SALES", timestamp=posted["ts"], name="white_check_mark")
    assert fake.reactions("C0SALES", posted["ts"]) == ["white_check_mark"]
    exc = await slack_error(
        web.reactions_add(channel="C0SALES", timestamp=posted["ts"], name="white_check_mark")
    )
    assert exc.response["error"] == "already_reacted"
    await web.reactions_remove(channel="C0SALES", timestamp=posted["ts"], name="white_check_mark")
    exc = await slack_error(
        web.reactions_remove(channel="C0SALES", timestamp=posted["ts"], name="white_check_mark")
    )
    assert exc.response["error"] == "no_reaction"
    exc = await slack_error(web.reactions_add(channel="C0SALES", timestamp="1.1", name="eyes"))
    assert exc.response["error"] == "message_not_found"


async def test_users_and_conversations(fake: SlackFake, web) -> None:
    user = (await web.users_info(user="U0BOB"))["user"]
    assert user["profile"]["display_name"] == "Bob"
    assert user["profile"]["real_name"] == "Bob Silva"
    assert user["profile"]["image_72"]
    exc = await slack_error(web.users_info(user="U0NOPE"))
    assert exc.response["error"] == "user_not_found"
    info = await web.conversations_info(channel="C0OUT")
    assert info["channel"]["is_member"] is False
    await web.conversations_join(channel="C0OUT")
    assert (await web.chat_postMessage(channel="C0OUT", text="now"))["ok"]
    members = await web.conversations_members(channel="C0OUT")
    assert "U0BOT" in members["members"]


# --- scripted failures ------------------------------------------------------------------


async def test_scripted_error_answers_http_200_then_recovers(fake: SlackFake, web) -> None:
    fake.script("chat.postMessage", error="fatal_error", times=2)
    for _ in range(2):
        exc = await slack_error(web.chat_postMessage(channel="C0SALES", text="hi"))
        assert (exc.response.status_code, exc.response["error"]) == (200, "fatal_error")
    assert (await web.chat_postMessage(channel="C0SALES", text="hi"))["ok"]
    assert [c.response["ok"] for c in fake.calls_of("chat.postMessage")] == [False, False, True]
    assert len(fake.messages("C0SALES")) == 1


async def test_scripted_429_carries_retry_after(fake: SlackFake, web) -> None:
    fake.script("chat.postMessage", retry_after=7)
    exc = await slack_error(web.chat_postMessage(channel="C0SALES", text="hi"))
    assert exc.response.status_code == 429
    assert exc.response["error"] == "ratelimited"
    assert exc.response.headers["Retry-After"] == "7"
    assert fake.messages("C0SALES") == []
    assert (await web.chat_postMessage(channel="C0SALES", text="hi"))["ok"]


async def test_scripted_status(fake: SlackFake, web) -> None:
    fake.script("users.info", error="service_unavailable", status=503)
    exc = await slack_error(web.users_info(user="U0BOB"))
    assert (exc.response.status_code, exc.response["error"]) == (503, "service_unavailable")


async def test_script_fraction_is_reproducible(fake: SlackFake, web) -> None:
    async def outcomes() -> list[bool]:
        results = []
        for _ in range(100):
            try:
                await web.chat_postMessage(channel="C0SALES", text="x")
                results.append(True)
            except SlackApiError as exc:
                assert exc.response.headers["Retry-After"] == "2"
                results.append(False)
        return results

    fake.script_fraction("chat.postMessage", fraction=0.2, retry_after=2, seed=3)
    first = await outcomes()
    fake.script_fraction("chat.postMessage", fraction=0.2, retry_after=2, seed=3)
    assert await outcomes() == first
    assert 10 <= first.count(False) <= 30
    assert (await web.auth_test())["ok"]  # other methods untouched


# --- files ---------------------------------------------------------------------------


async def test_files_v2_upload_into_a_thread(fake: SlackFake, web) -> None:
    root = await web.chat_postMessage(channel="C0SALES", text="Ticket #1")
    data = bytes(range(256)) * 10
    answer = await web.files_upload_v2(
        channel="C0SALES",
        thread_ts=root["ts"],
        content=data,
        filename="voice-1.ogg",
        title="voice-1.ogg",
        initial_comment="a caption",
    )
    file_id = answer["file"]["id"]
    stored = fake.files[file_id]
    assert (stored.data, stored.name, stored.channel) == (data, "voice-1.ogg", "C0SALES")
    assert (stored.thread_ts, stored.initial_comment) == (root["ts"], "a caption")
    shared = fake.messages("C0SALES", thread_ts=root["ts"])[-1]
    assert (shared["subtype"], shared["text"]) == ("file_share", "a caption")
    assert shared["files"][0]["id"] == file_id
    async with aiohttp.ClientSession() as http:
        url = shared["files"][0]["url_private"]
        headers = {"Authorization": f"Bearer {fake.bot_token}"}
        async with http.get(url, headers=headers) as resp:
            assert (resp.status, await resp.read()) == (200, data)
        async with http.get(url) as resp:
            assert resp.status == 403


async def test_files_complete_needs_the_upload(fake: SlackFake, web) -> None:
    ticket = await web.files_getUploadURLExternal(filename="a.txt", length=3)
    files = [{"id": ticket["file_id"], "title": "a"}]
    exc = await slack_error(web.files_completeUploadExternal(files=files, channel_id="C0SALES"))
    assert exc.response["error"] == "file_not_found"
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("file", b"abc", filename="a.txt")
        async with http.post(ticket["upload_url"], data=form) as resp:
            assert resp.status == 200
    exc = await slack_error(web.files_completeUploadExternal(files=files, channel_id="C0NOPE"))
    assert exc.response["error"] == "invalid_channel"
    await web.files_completeUploadExternal(files=files, channel_id="C0SALES")
    assert fake.files[ticket["file_id"]].data == b"abc"
    exc = await slack_error(web.files_getUploadURLExternal(filename="a.txt", length=0))
    assert exc.response["error"] == "missing_argument"  # what the reference says for 0


async def test_hosted_file_needs_the_bot_token(fake: SlackFake) -> None:
    file = fake.host_file("photo.jpg", b"\xff\xd8jpeg", "image/jpeg")
    async with aiohttp.ClientSession() as http:
        wrong = {"Authorization": "Bearer xoxb-other"}
        async with http.get(file["url_private"], headers=wrong) as resp:
            assert resp.status == 403
        right = {"Authorization": f"Bearer {fake.bot_token}"}
        async with http.get(file["url_private"], headers=right) as resp:
            assert await resp.read() == b"\xff\xd8jpeg"
            assert resp.content_type == "image/jpeg"


# --- a human in Slack -------------------------------------------------------------------


async def test_user_message_is_an_event_and_part_of_the_channel(fake: SlackFake) -> None:
    root = fake.user_message("C0SALES", "U0BOB", "root")
    file = fake.host_file("a.pdf", b"%PDF", "application/pdf")
    event = fake.user_message("C0SALES", "U0BOB", "see", thread_ts=root["ts"], files=[file])
    assert event["type"] == "message"
    assert (event["channel"], event["user"], event["subtype"]) == ("C0SALES", "U0BOB", "file_share")
    assert event["client_msg_id"] and event["ts"] > root["ts"]
    assert [m["text"] for m in fake.messages("C0SALES", thread_ts=root["ts"])] == ["root", "see"]


# --- HTTP mode signatures ---------------------------------------------------------------


async def test_signed_headers_verify_with_slack_sdk(fake: SlackFake) -> None:
    body = b"token=x&command=%2Fwhatsapp&text=status"
    headers = fake.signed_headers(body)
    verifier = SignatureVerifier(fake.signing_secret)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)
    assert not verifier.is_valid_request(body, fake.signed_headers(body, secret="other"))
    stale = fake.signed_headers(body, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)


# --- Socket Mode ------------------------------------------------------------------------


async def test_raw_socket_hello_envelope_ack(fake: SlackFake, web) -> None:
    url = (await web.apps_connections_open(app_token=fake.app_token))["url"]
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            event = fake.user_message("C0SALES", "U0BOB", "oi")
            envelope_id = await fake.send_event(event)
            envelope = await ws.receive_json(timeout=5)
            assert envelope["envelope_id"] == envelope_id
            assert envelope["type"] == "events_api"
            assert envelope["retry_attempt"] == 0
            assert envelope["payload"]["type"] == "event_callback"
            assert envelope["payload"]["event"]["text"] == "oi"
            assert envelope["payload"]["team_id"] == "T0FAKE"
            assert fake.unacked == {envelope_id}
            await ws.send_str(json.dumps({"envelope_id": envelope_id}))
            assert await fake.wait_ack(envelope_id) == {"envelope_id": envelope_id}
            assert fake.unacked == set()
        with pytest.raises(aiohttp.WSServerHandshakeError):  # URLs are single use
            await http.ws_connect(url)


async def test_wait_ack_times_out(fake: SlackFake) -> None:
    envelope_id = await fake.send_event({"type": "message", "text": "nobody listens"})
    with pytest.raises(TimeoutError):
        await fake.wait_ack(envelope_id, timeout=0.1)
    assert envelope_id in fake.unacked


class Listener:
    """Records requests and acks them, except the first ``skip`` ones."""

    def __init__(self, skip: int = 0, payload: dict | None = None) -> None:
        self.requests: list[SocketModeRequest] = []
        self.skip = skip
        self.payload = payload
        self.seen = asyncio.Event()

    async def __call__(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        self.requests.append(request)
        self.seen.set()
        if len(self.requests) <= self.skip:
            return
        response = SocketModeResponse(envelope_id=request.envelope_id, payload=self.payload)
        await client.send_socket_mode_response(response)


async def socket_client(fake: SlackFake, listener: Listener) -> SocketModeClient:
    client = SocketModeClient(
        app_token=fake.app_token,
        web_client=AsyncWebClient(base_url=fake.api_url),
        ping_interval=1,
    )
    client.socket_mode_request_listeners.append(listener)
    await client.connect()
    await fake.wait_connected()
    return client


async def test_socket_mode_client_gets_events_and_acks(fake: SlackFake) -> None:
    listener = Listener()
    client = await socket_client(fake, listener)
    try:
        assert fake.connections == 1
        envelope_id = await fake.send_event(fake.user_message("C0SALES", "U0BOB", "!status"))
        ack = await fake.wait_ack(envelope_id)
        assert ack["envelope_id"] == envelope_id
        [request] = listener.requests
        assert request.type == "events_api"
        assert request.payload["event"]["text"] == "!status"
    finally:
        await client.close()


async def test_unacked_envelope_is_redelivered_after_disconnect(fake: SlackFake) -> None:
    listener = Listener(skip=1)
    client = await socket_client(fake, listener)
    try:
        envelope_id = await fake.send_event(fake.user_message("C0SALES", "U0BOB", "hello"))
        await asyncio.wait_for(listener.seen.wait(), 5)
        assert fake.unacked == {envelope_id}
        fake.disconnect_socket()
        await fake.wait_connected(count=2)
        await fake.wait_ack(envelope_id)
        first, second = listener.requests
        assert first.envelope_id == second.envelope_id == envelope_id
        assert (first.retry_attempt, second.retry_attempt) == (0, 1)
        assert second.retry_reason
        assert fake.unacked == set()
        assert fake.calls_of("apps.connections.open")[-1].token == fake.app_token
    finally:
        await client.close()


async def test_slash_command_and_block_action_payloads(fake: SlackFake, web) -> None:
    listener = Listener(payload={"text": "ok"})
    client = await socket_client(fake, listener)
    try:
        envelope_id = await fake.send_slash_command(
            "/whatsapp", "status", user_id="U0BOB", channel_id="C0SALES"
        )
        ack = await fake.wait_ack(envelope_id)
        assert ack["payload"] == {"text": "ok"}
        command = listener.requests[0]
        assert command.type == "slash_commands"
        assert command.accepts_response_payload is True
        assert (command.payload["command"], command.payload["text"]) == ("/whatsapp", "status")
        assert (command.payload["user_id"], command.payload["channel_id"]) == ("U0BOB", "C0SALES")

        blocks = [
            {
                "type": "actions",
                "block_id": "ticket",
                "elements": [{"type": "button", "action_id": "ticket_accept", "value": "1"}],
            }
        ]
        card = await web.chat_postMessage(channel="C0SALES", text="Ticket #1", blocks=blocks)
        envelope_id = await fake.send_block_action(
            "ticket_accept", user_id="U0BOB", channel_id="C0SALES", message_ts=card["ts"], value="1"
        )
        await fake.wait_ack(envelope_id)
        action = listener.requests[1].payload
        assert listener.requests[1].type == "interactive"
        assert action["type"] == "block_actions"
        assert action["user"]["id"] == "U0BOB"
        assert action["container"]["message_ts"] == card["ts"]
        assert action["channel"]["id"] == "C0SALES"
        assert action["message"]["text"] == "Ticket #1"
        assert action["actions"][0]["action_id"] == "ticket_accept"
        assert action["actions"][0]["block_id"] == "ticket"
        assert action["actions"][0]["value"] == "1"
    finally:
        await client.close()


async def test_bolt_async_app_over_socket_mode(fake: SlackFake) -> None:
    """The stack the frontend uses: bolt AsyncApp + AsyncSocketModeHandler."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(client=AsyncWebClient(base_url=fake.api_url, token=fake.bot_token))
    seen: list[str] = []
    replied = asyncio.Event()

    @app.event("message")
    async def on_message(event, say) -> None:
        seen.append(event["text"])
        await say(text=f"echo {event['text']}", thread_ts=event["ts"])
        replied.set()

    @app.command("/whatsapp")
    async def on_command(ack, command) -> None:
        await ack(f"got {command['text']}")

    handler = AsyncSocketModeHandler(app, fake.app_token, ping_interval=1)
    await handler.connect_async()
    try:
        await fake.wait_connected()
        event = fake.user_message("C0SALES", "U0BOB", "oi")
        await fake.wait_ack(await fake.send_event(event))
        await asyncio.wait_for(replied.wait(), 5)
        assert seen == ["oi"]
        reply = fake.messages("C0SALES", thread_ts=event["ts"])[-1]
        assert (reply["text"], reply["bot_id"]) == ("echo oi", fake.bot_id)
        envelope_id = await fake.send_slash_command(
            "/whatsapp", "status", user_id="U0BOB", channel_id="C0SALES"
        )
        assert (await fake.wait_ack(envelope_id))["payload"] == {"text": "got status"}
    finally:
        await handler.close_async()


async def test_set_topic_and_files_delete(fake: SlackFake, web) -> None:  # type: ignore[no-untyped-def]
    await web.conversations_setTopic(channel="C0SALES", topic="acme/sales: CONNECTED")
    assert fake.topic("C0SALES") == "acme/sales: CONNECTED"
    error = await slack_error(web.conversations_setTopic(channel="C0SALES", topic="x" * 251))
    assert error.response["error"] == "too_long"
    error = await slack_error(web.conversations_setTopic(channel="C0OUT", topic="t"))
    assert error.response["error"] == "not_in_channel"

    await web.files_upload_v2(channel="C0SALES", content=b"png", filename="qr.png")
    [file_id] = list(fake.files)
    assert any(m.get("files") for m in fake.messages("C0SALES"))
    await web.files_delete(file=file_id)
    assert fake.files == {} and not any(m.get("files") for m in fake.messages("C0SALES"))
    error = await slack_error(web.files_delete(file=file_id))
    assert error.response["error"] == "file_not_found"
