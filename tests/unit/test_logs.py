"""Secrets never reach the logs: not in messages, arguments, URLs or tracebacks."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.logs import MESSAGE_LIMIT, TRACEBACK_LIMIT, Redactor, configure_logging

SECRETS = {
    "bot": "xoxb-1111-2222-abcdefghijkl",
    "app": "xapp-1-A111-222-abcdef",
    "as": "as_token_Zq8xWm2Pq7",
    "hs": "hs_token_Kk4Lm9Nn1",
}


@pytest.fixture(params=["text", "json"])
def captured(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    handler = configure_logging(
        level="DEBUG", fmt=request.param, redactor=Redactor(SECRETS.values()), stream=stream
    )
    yield request.param, stream
    logging.getLogger().removeHandler(handler)


def test_known_secrets_are_redacted_everywhere(captured) -> None:  # type: ignore[no-untyped-def]
    fmt, stream = captured
    log = logging.getLogger("bridge.test.secrets")
    log.info("tokens %s and %s", SECRETS["as"], SECRETS["hs"])
    try:
        raise RuntimeError(f"slack said no to {SECRETS['bot']} / {SECRETS['app']}")
    except RuntimeError:
        log.exception("failed with token")
    out = stream.getvalue()
    for secret in SECRETS.values():
        assert secret not in out
    assert out.count("***") >= 4
    assert "bridge.test.secrets" in out
    if fmt == "json":
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert lines[0]["logger"] == "bridge.test.secrets"
        assert "RuntimeError" in lines[1]["exception"]


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        (
            "cannot connect to postgres://zap:s3cr3tpw@db:5432/zap",
            "s3cr3tpw",
            "postgres://zap:***@db",
        ),
        ("GET /_matrix?access_token=syt_abc_123&x=1", "syt_abc_123", "access_token=***"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi", "Bearer ***"),
        ("token xoxp-9-8-7 leaked", "xoxp-9-8-7", "token *** leaked"),
        ("dsn host=db password=hunter22 user=zap", "hunter22", "password=***"),
    ],
)
def test_secret_shapes_are_redacted_without_being_configured(
    text: str, hidden: str, kept: str
) -> None:
    redacted = Redactor()(text)
    assert hidden not in redacted
    assert kept in redacted


# --- linear redaction ---------------------------------------------------------------

MB = 1_000_000


def _repeat(unit: str, size: int = MB) -> str:
    return (unit * (size // len(unit) + 1))[:size]


# One input per pattern, each built to make that pattern work hardest: long runs a
# backtracking pattern would rescan, and prefixes repeated so every one is a match
# or almost one.
ADVERSARIAL = {
    "letters after '!'": "!" + "a" * MB,
    "'a:' repeated": _repeat("a:"),
    "'a://' repeated": _repeat("a://"),
    "'://x:' repeated": _repeat("://x:"),
    "URL without '@'": "postgres://" + _repeat("u:"),
    "URL passwords": _repeat("postgres://u:p@"),
    "'x:y@' repeated": _repeat("x:y@"),
    "'xoxb-' repeated": _repeat("xoxb-"),
    "'xoxb ' repeated": _repeat("xoxb "),
    "Slack tokens": _repeat("xoxb-x "),
    "app tokens": _repeat("xapp-x "),
    "Matrix tokens": _repeat("syt_x "),
    "'Bearer ' repeated": _repeat("Bearer "),
    "bearer headers": _repeat("Bearer x "),
    "'bearer' and spaces": "bearer" + " " * MB,
    "'password=' repeated": _repeat("password="),
    "password parameters": _repeat("password=x "),
    "access tokens": _repeat("access_token=x&"),
    "a known secret repeated": _repeat(SECRETS["bot"] + " "),
    "a known secret cut short, repeated": _repeat(SECRETS["as"][:-1] + " "),
}


def _best_of_three(work: Callable[[], object]) -> float:
    """The CPU time of this thread, best of three: what the work costs, not how
    much of the machine other processes took meanwhile (2 cores, shared)."""
    timings = []
    for _ in range(3):
        started = time.thread_time()
        work()
        timings.append(time.thread_time() - started)
    return min(timings)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_a_megabyte_of_adversarial_text_is_redacted_in_linear_time(name: str) -> None:
    """Before: '!' + 60,000 letters took 5.8 s (a quadratic URL pattern). Now the
    worst input (71,000 URL passwords, each a match) takes about 55 ms of CPU."""
    redactor = Redactor(SECRETS.values())
    text = ADVERSARIAL[name]
    seconds = _best_of_three(lambda: redactor(text))
    assert seconds < 0.1, f"{name}: {seconds * 1000:.0f} ms for 1 MB"


def test_shapes_repeated_a_hundred_thousand_times_are_all_hidden() -> None:
    redactor = Redactor(SECRETS.values())
    assert "xoxb-x" not in redactor(ADVERSARIAL["Slack tokens"])
    assert "password=x" not in redactor(ADVERSARIAL["password parameters"])
    assert "Bearer x" not in redactor(ADVERSARIAL["bearer headers"])
    assert ":p@" not in redactor(ADVERSARIAL["URL passwords"])
    assert SECRETS["bot"] not in redactor(ADVERSARIAL["a known secret repeated"])


def test_a_logged_megabyte_costs_what_a_bounded_line_costs() -> None:
    stream = io.StringIO()
    handler = configure_logging(
        level="INFO", fmt="text", redactor=Redactor(SECRETS.values()), stream=stream
    )
    try:
        log = logging.getLogger("bridge.test.size")
        seconds = _best_of_three(lambda: log.warning("body %s", ADVERSARIAL["URL passwords"]))
    finally:
        logging.getLogger().removeHandler(handler)
    assert seconds < 0.01
    line = stream.getvalue().splitlines()[0]
    assert len(line) < 2 * MESSAGE_LIMIT
    assert line.endswith(f"… [{MB + 5 - MESSAGE_LIMIT} more characters cut]")
    assert ":p@" not in line


# --- secrets never survive, not even cut in half --------------------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
_TEXT_CHARS = _TOKEN_CHARS + " :/@=&?.\n\t\x1b\u2028é"
_secret_values = st.text(alphabet=_TOKEN_CHARS, min_size=4, max_size=60)
_texts = st.text(alphabet=_TEXT_CHARS, max_size=300)


def _kept(bounded: str) -> str:
    """What a cut left of the text: everything before the marker."""
    return bounded.split(" … [", 1)[0]


@settings(max_examples=300, deadline=None)
@given(secret=_secret_values, before=_texts, after=_texts, data=st.data())
def test_a_known_secret_never_survives_anywhere_not_even_at_the_cut(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    redactor = Redactor([secret, *SECRETS.values()])
    text = before + secret + after
    assert secret not in redactor(text)
    limit = data.draw(st.integers(min_value=0, max_value=len(text) + 5), label="limit")
    bounded = redactor.bounded(text, limit)
    assert secret not in bounded
    if limit < len(text):  # cut: nothing left at the cut may begin the secret
        kept = _kept(bounded)
        for length in range(1, len(secret)):
            assert not kept.endswith(secret[:length]), (kept, secret[:length])


@settings(max_examples=200, deadline=None)
@given(password=_secret_values, before=_texts, cut=st.integers(min_value=1, max_value=59))
def test_an_unknown_url_password_cut_before_its_at_sign_is_hidden(
    password: str, before: str, cut: int
) -> None:
    text = f"{before} postgres://zap:{password}@db:5432/zap"
    limit = len(before) + len(" postgres://zap:") + min(cut, len(password))
    kept = _kept(Redactor().bounded(text, limit))
    assert not kept.endswith(password[: min(cut, len(password))])
    assert kept.endswith("postgres://zap:***")


def test_a_cut_inside_a_known_secret_hides_what_is_left_of_it() -> None:
    stream = io.StringIO()
    handler = configure_logging(
        level="INFO", fmt="text", redactor=Redactor(SECRETS.values()), stream=stream
    )
    try:
        padding = "x" * (MESSAGE_LIMIT - 10)
        logging.getLogger("bridge.test.cut").warning("%s%s tail", padding, SECRETS["as"])
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue().splitlines()[0]
    assert SECRETS["as"][:10] not in line
    assert f"{padding}*** … [" in line


# --- one record, one line -----------------------------------------------------------

FORGED = "2030-01-01 00:00:00,000 ERROR   bridge.ops: forged"
HOSTILE = f"hello\n{FORGED}\r\n{FORGED}\x1b[2J\x1b[31m\u2028{FORGED}\u202eevil\x85\x00"


def test_text_lines_cannot_be_forged_with_newlines_or_escapes() -> None:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="text", redactor=Redactor(), stream=stream)
    try:
        logging.getLogger("bridge.test.forge").warning("customer wrote %s", HOSTILE)
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert len(out.splitlines()) == 1
    assert not any(ch in out[:-1] for ch in "\r\x1b\u2028\u202e\x85\x00")
    assert "hello\\n2030-01-01" in out
    assert "\\r\\n" in out and "\\x1b[2J" in out and "\\u2028" in out and "\\u202e" in out


def test_the_traceback_stays_multi_line_but_its_message_cannot_forge_a_line() -> None:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="text", redactor=Redactor(), stream=stream)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        logging.getLogger("bridge.test.forge").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[2].startswith('  File "') and lines[3].startswith("    ")
    assert lines[-1].startswith("ValueError: hello\\n2030-01-01")
    assert not any(line.startswith("2030") for line in lines)


def test_json_lines_stay_one_line_and_bounded() -> None:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="json", redactor=Redactor(), stream=stream)
    try:
        log = logging.getLogger("bridge.test.json")
        log.warning("body %s", HOSTILE * 20_000)
        try:
            raise ValueError(HOSTILE * 20_000)
        except ValueError:
            log.exception("failed %s", HOSTILE)
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    lines = out.splitlines()  # splits on \u2028 and \x85 too
    assert len(lines) == 2
    assert not any(ch in out[:-1] for ch in "\r\x1b\u2028\u202e\x85\x00")
    first, second = (json.loads(line) for line in lines)
    assert first["message"].startswith("body hello\n2030")  # the value is intact
    assert len(lines[0]) < 8 * MESSAGE_LIMIT
    assert len(lines[1]) < 8 * (MESSAGE_LIMIT + TRACEBACK_LIMIT)
    assert "ValueError: hello" in second["exception"]


def test_a_long_traceback_keeps_its_start_and_its_end() -> None:
    def recurse(depth: int) -> None:
        if depth == 0:
            raise RuntimeError("deep " + "y" * MB)
        recurse(depth - 1)

    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="text", redactor=Redactor(), stream=stream)
    try:
        try:
            recurse(500)
        except RuntimeError as exc:
            raise KeyError("outer " + "z" * MB) from exc
    except KeyError:
        logging.getLogger("bridge.test.tb").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert len(out) < MESSAGE_LIMIT + TRACEBACK_LIMIT + 500
    lines = out.splitlines()
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1].startswith("KeyError: 'outer zzz") and lines[-1].endswith("characters cut]")
    assert "in recurse" in out


def test_unformattable_arguments_still_make_a_line() -> None:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="text", redactor=Redactor(), stream=stream)
    record = logging.makeLogRecord(
        {"name": "bridge.test.args", "levelno": logging.WARNING, "msg": "%d items"}
    )
    record.args = ("many",)
    try:
        handler.handle(record)  # straight to ours: pytest's own handler would raise
    finally:
        logging.getLogger().removeHandler(handler)
    assert "%d items (unformattable arguments: TypeError)" in stream.getvalue()


# --- levels are the bridge's ------------------------------------------------------


@pytest.fixture
def at_info() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="text", redactor=Redactor(), stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_a_library_logger_made_later_with_its_own_info_level_stays_quiet(
    at_info: io.StringIO,
) -> None:
    late = logging.getLogger("slack_bolt.MadeAfterConfigure")
    late.setLevel(logging.INFO)
    late.info("request body: secret stuff")
    late.warning("a real problem")
    logging.getLogger("bridge.test.levels").info("our own info")
    out = at_info.getvalue()
    assert "request body" not in out
    assert "a real problem" in out and "our own info" in out


def test_any_library_logger_obeys_the_configured_level(at_info: io.StringIO) -> None:
    chatty = logging.getLogger("somelibrary.internals")
    chatty.setLevel(logging.DEBUG)
    chatty.debug("debug detail")
    chatty.info("library info")
    assert "debug detail" not in at_info.getvalue()
    assert "library info" in at_info.getvalue()


async def test_slack_bolt_refusals_are_not_logged_with_their_body(at_info: io.StringIO) -> None:
    """bolt copies the root level (INFO) onto the loggers it creates after
    configure_logging, then logs every refused request at INFO with its body."""
    from slack_bolt.middleware.request_verification.async_request_verification import (
        AsyncRequestVerification,
    )
    from slack_bolt.request.async_request import AsyncBoltRequest
    from slack_bolt.response import BoltResponse

    verification = AsyncRequestVerification(signing_secret="s3cr3t-signing")
    assert verification.logger.level == logging.INFO  # what bolt did on its own
    body = '{"type": "event_callback", "event": {"text": "BODY-OF-THE-REQUEST"}}'
    request = AsyncBoltRequest(body=body, headers={"content-type": "application/json"})

    async def forward() -> BoltResponse:
        raise AssertionError("an unsigned request must not pass")

    response = await verification.async_process(
        req=request, resp=BoltResponse(status=200), next=forward
    )
    assert response.status == 401
    assert "BODY-OF-THE-REQUEST" not in at_info.getvalue()


def test_records_from_bolt_code_under_an_app_named_logger_are_quiet(
    at_info: io.StringIO,
) -> None:
    """bolt names per-request loggers after the app (``frontend.py``): the handler
    knows them by the package the call comes from."""
    import slack_bolt

    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_zapbridge", False))
    bolt_file = str(Path(slack_bolt.__file__).parent / "app" / "async_app.py")
    for level, text in ((logging.INFO, "app info"), (logging.WARNING, "app warning")):
        record = logging.makeLogRecord(
            {"name": "frontend.py", "levelno": level, "levelname": "X", "msg": text}
        )
        record.pathname = bolt_file
        handler.handle(record)
    assert "app info" not in at_info.getvalue()
    assert "app warning" in at_info.getvalue()


def test_a_logger_the_bridge_named_keeps_its_info_whoever_calls_it(
    at_info: io.StringIO,
) -> None:
    import slack_bolt

    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_zapbridge", False))
    record = logging.makeLogRecord(
        {"name": "bridge.slack.bolt", "levelno": logging.INFO, "msg": "named by us"}
    )
    record.pathname = str(Path(slack_bolt.__file__).parent / "app" / "async_app.py")
    handler.handle(record)
    assert "named by us" in at_info.getvalue()


def test_debug_lets_library_info_through() -> None:
    stream = io.StringIO()
    handler = configure_logging(level="DEBUG", fmt="text", redactor=Redactor(), stream=stream)
    try:
        logging.getLogger("slack_bolt.Verbose").info("bolt details")
    finally:
        logging.getLogger().removeHandler(handler)
        configure_logging(level="INFO", fmt="text", redactor=Redactor(), stream=io.StringIO())
    assert "bolt details" in stream.getvalue()


def test_a_malformed_database_url_is_redacted_without_raising() -> None:
    from bridge.db.opening import redact_url

    for url in ("postgres://u:pw@[::1/db", "postgres://u:pw@h:99999/db", "postgresql://[zz::1]/d"):
        shown = redact_url(url)
        assert "pw" not in shown and shown.startswith("postgres")
    assert redact_url("postgres://u:pw@h/db") == "postgres://u@h/db"
