"""Control rooms (one per session) and ops rooms (one per company), per the contract:

- named ``<company name> · <session>`` / ``<company name> · ops``;
- state ``io.zapbridge.room`` (state key ``""``) = ``{"kind", "company", "session"}``
  (``session`` only for control rooms);
- admins and attendants invited to control rooms, admins to the ops room; admins get
  power level 50 (moderator); the bot, creator, has the highest.

A room this bot created earlier (its state names the same company and session) is
found again instead of created twice, e.g. after a crash before the core stored it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixRequestError, MNotFound
from mautrix.types import (
    EventType,
    Membership,
    MemberStateEventContent,
    RoomCreatePreset,
    RoomID,
    Serializable,
    UserID,
)

from bridge.config import CompanyConfig, SessionConfig

__all__ = ["ROOM_STATE", "RoomDirectory", "room_state"]

log = logging.getLogger("bridge.matrix.rooms")

ROOM_STATE = EventType.find("io.zapbridge.room", EventType.Class.STATE)
ADMIN_LEVEL = 50


def room_state(company: CompanyConfig, session: SessionConfig | None) -> dict[str, str]:
    """The ``io.zapbridge.room`` content of a control room (``session``) or an ops room."""
    if session is None:
        return {"kind": "ops", "company": company.id}
    return {"kind": "control", "company": company.id, "session": session.name}


async def tagged_rooms(bot: IntentAPI) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Each room the bot has joined that carries ``io.zapbridge.room``, with that state."""
    for room in await bot.get_joined_rooms():
        try:
            content = await bot.get_state_event(room, ROOM_STATE)
        except MNotFound:
            continue
        state = content.serialize() if isinstance(content, Serializable) else content
        yield str(room), dict(state)


def matrix_users(ids: tuple[str, ...]) -> list[str]:
    """The Matrix user ids among config ids (Slack ids like ``U0BOB`` are skipped)."""
    return [i for i in dict.fromkeys(ids) if i.startswith("@") and ":" in i]


@dataclass(frozen=True)
class RoomPlan:
    """What a room of the bridge is: its tag, name and topic, who is invited and who
    moderates."""

    state: dict[str, str]  # the io.zapbridge.room content that finds it again
    name: str
    topic: str
    invitees: list[str]
    admins: list[str]


class RoomDirectory:
    """Creates (or finds again) the bridge's rooms, through the bot."""

    def __init__(self, bot: IntentAPI) -> None:
        self._bot = bot
        self._creating = asyncio.Lock()  # two deliveries asking at once get one room

    async def control_room(self, company: CompanyConfig, session: SessionConfig) -> str:
        return await self._ensure(
            RoomPlan(
                state=room_state(company, session),
                name=f"{company.name} · {session.name}",
                topic=f"WhatsApp tickets of {company.name} · {session.name}",
                invitees=matrix_users(company.admins + company.attendants),
                admins=matrix_users(company.admins),
            )
        )

    async def ops_room(self, company: CompanyConfig) -> str:
        return await self._ensure(
            RoomPlan(
                state=room_state(company, None),
                name=f"{company.name} · ops",
                topic=f"WhatsApp sessions of {company.name}: status, QR codes and alerts",
                invitees=matrix_users(company.admins),
                admins=matrix_users(company.admins),
            )
        )

    async def _ensure(self, plan: RoomPlan) -> str:
        async with self._creating:
            found = await self._find(plan.state)
            if found is not None:
                log.info("room %s (%s) found again", found, plan.name)
                await self._invite(RoomID(found), await self._absent(RoomID(found), plan.invitees))
                return found
            return await self._create(plan)

    async def _create(self, plan: RoomPlan) -> str:
        # The creator (the bot) keeps its own level: room version 12 forbids listing it.
        levels: dict[str, Any] = {"users": dict.fromkeys(plan.admins, ADMIN_LEVEL)}
        room = await self._bot.create_room(
            name=plan.name,
            topic=plan.topic,
            preset=RoomCreatePreset.PRIVATE,
            initial_state=[{"type": str(ROOM_STATE), "state_key": "", "content": plan.state}],
            power_level_override=levels,
        )
        log.info("created room %s (%s)", room, plan.name)
        await self._invite(room, plan.invitees)
        return str(room)

    async def _invite(self, room: RoomID, users: list[str]) -> None:
        for user in users:
            try:
                await self._bot.invite_user(room, UserID(user))
            except MatrixRequestError as exc:  # one unknown user must not cost the room
                log.warning("cannot invite %s to %s: %s", user, room, exc)

    async def _absent(self, room: RoomID, users: list[str]) -> list[str]:
        """Who of ``users`` is neither joined nor invited (left, or added to the config)."""
        present = {
            str(event.state_key)
            for event in await self._bot.get_members(room)
            if isinstance(event.content, MemberStateEventContent)
            and event.content.membership in (Membership.JOIN, Membership.INVITE)
        }
        return [user for user in users if user not in present]

    async def _find(self, state: dict[str, str]) -> str | None:
        async for room, found in tagged_rooms(self._bot):
            if found == state:
                return room
        return None
