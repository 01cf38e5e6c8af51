"""Slack display names: remembered, asked for again once they may have changed."""

from __future__ import annotations

from typing import Any

from bridge.clock import FakeClock
from bridge.slack.events import NAME_LIFETIME_SECONDS, UserDirectory


class FakeUsersApi:
    """``users.info`` answers from ``names``; counts the questions."""

    def __init__(self, **names: str) -> None:
        self.names = names
        self.asked: list[str] = []

    async def call(self, method: str, **args: Any) -> dict[str, Any]:
        assert method == "users_info"
        self.asked.append(args["user"])
        return {"user": {"profile": {"display_name": self.names[args["user"]]}}}


async def test_a_name_is_remembered_then_asked_for_again_after_its_lifetime() -> None:
    clock = FakeClock()
    api = FakeUsersApi(U1="Ana")
    users = UserDirectory(api, clock=clock)  # type: ignore[arg-type]
    assert await users.name_of("U1") == "Ana"
    api.names["U1"] = "Ana Paula"  # she renames herself on Slack
    await clock.advance(NAME_LIFETIME_SECONDS - 1)
    assert await users.name_of("U1") == "Ana"
    assert api.asked == ["U1"]
    await clock.advance(2)
    assert await users.name_of("U1") == "Ana Paula"
    assert api.asked == ["U1", "U1"]


async def test_past_its_size_the_least_recently_used_name_is_forgotten() -> None:
    api = FakeUsersApi(U1="Ana", U2="Bia", U3="Caio")
    users = UserDirectory(api, clock=FakeClock(), size=2)  # type: ignore[arg-type]
    for user in ("U1", "U2", "U1", "U3", "U1", "U2"):
        await users.name_of(user)
    assert api.asked == ["U1", "U2", "U3", "U2"]
