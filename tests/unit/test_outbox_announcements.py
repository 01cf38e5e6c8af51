"""What an instance announces to the others (bridge/core/outbox_claims.py) and the
channel it goes on (bridge/db/notify.py): pure functions."""

from __future__ import annotations

from bridge.core.outbox_claims import EVERY_KEY, payloads
from bridge.db.notify import MAX_PAYLOAD_BYTES, channel_name


def test_keys_go_in_one_notification_after_the_sender() -> None:
    assert payloads("a", {"t2:slack", "t1:whatsapp"}) == ["a\nt1:whatsapp\nt2:slack"]


def test_the_whole_outbox_is_one_star() -> None:
    assert payloads("a", {"t1:slack", EVERY_KEY}) == ["a\n*"]


def test_many_keys_are_split_within_the_payload_limit() -> None:
    keys = {f"t{n}:whatsapp" for n in range(2000)}
    sent = payloads("instance-1", keys)
    assert len(sent) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in sent)
    assert all(p.startswith("instance-1\n") for p in sent)
    assert sorted(k for p in sent for k in p.split("\n")[1:]) == sorted(keys)


def test_a_key_too_long_to_announce_is_left_to_polling() -> None:
    assert payloads("a", {"x" * MAX_PAYLOAD_BYTES, "t1:slack"}) == ["a\nt1:slack"]


def test_nothing_to_announce_sends_nothing() -> None:
    assert payloads("a", set()) == []


def test_channels_are_scoped_by_schema_within_postgresql_s_length() -> None:
    assert channel_name("public", "outbox") == "zapbridge.public.outbox"
    long_a, long_b = "s" * 60 + "a", "s" * 60 + "b"
    assert channel_name(long_a, "outbox") != channel_name(long_b, "outbox")
    assert all(len(channel_name(s, "outbox").encode()) <= 63 for s in (long_a, long_b))
