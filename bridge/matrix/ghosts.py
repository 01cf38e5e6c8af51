"""Ghost users: one Matrix user per WhatsApp contact, ``@<user_prefix><digits>:<domain>``,
named ``Maria (+5511987654321)``, joined to a room before it posts there.

A customer WhatsApp shows by LID alone (its phone hidden) posts as
``@<user_prefix>lid-<digits>``, named ``Maria (LID <digits>)``. Once the phone is
known the customer posts as the phone's ghost, the same one every session and every
mention uses; Matrix users cannot be merged, so the LID ghost, when it ever spoke,
is renamed ``Maria (+5511987654321)`` too: its earlier messages read as the same
person.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping

import aiohttp
from mautrix.appservice import IntentAPI
from mautrix.errors import MatrixError, MatrixRequestError

from bridge.cache import bounded
from bridge.core.frontend import Author, AuthorKind, contact_label
from bridge.errors import AvatarError

__all__ = ["GhostDirectory", "ghost_localpart", "ghost_name"]

log = logging.getLogger("bridge.matrix.ghosts")

AVATAR_MAX_BYTES = 5 * 2**20
AVATAR_TIMEOUT = 20.0


async def download_avatar(url: str, *, max_bytes: int = AVATAR_MAX_BYTES) -> tuple[bytes, str]:
    """The bytes and content type of the picture at ``url`` (an image, at most
    ``max_bytes``); raises :class:`AvatarError` otherwise."""
    timeout = aiohttp.ClientTimeout(total=AVATAR_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
        if response.status != 200:
            raise AvatarError(f"HTTP {response.status}")
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not ctype.startswith("image/"):
            raise AvatarError(f"not an image ({ctype or 'no content type'})")
        if (response.content_length or 0) > max_bytes:
            raise AvatarError(f"{response.content_length} bytes, over {max_bytes}")
        data = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) > max_bytes:
                raise AvatarError(f"over {max_bytes} bytes")
    if not data:
        raise AvatarError("empty body")
    return bytes(data), ctype


def ghost_localpart(prefix: str, *, phone: str | None, lid: str | None = None) -> str:
    """``wa_5511987654321`` for a phone; ``wa_lid-<digits>`` for a LID-only contact."""
    if phone:
        if phone.endswith("@lid"):
            return f"{prefix}lid-{re.sub(r'[^0-9]', '', phone)}"
        digits = re.sub(r"[^0-9]", "", phone)
        if digits:
            return f"{prefix}{digits}"
    if lid:
        return f"{prefix}lid-{re.sub(r'[^0-9]', '', lid)}"
    raise ValueError("a ghost needs a phone or a LID")


def ghost_name(author: Author) -> str:
    """``Maria (+5511987654321)``, ``Maria (LID 1234…)`` while the phone is hidden;
    just the name or the phone when one is missing."""
    phone, lid = author.phone, author.lid
    if phone and phone.endswith("@lid"):  # a group member known by LID alone
        lid = lid or phone.removesuffix("@lid")
        phone = None
    return contact_label(author.name, phone=phone, lid=lid)


class GhostDirectory:
    """Finds a customer's ghost, registers and names it, and joins it to rooms.

    What it already did is remembered for the life of the process (the homeserver
    is asked again after a restart)."""

    def __init__(self, bot: IntentAPI, *, prefix: str, domain: str) -> None:
        self._bot = bot
        self._prefix = prefix
        self._domain = domain
        self._names: MutableMapping[str, str] = bounded()  # mxid → the name it was given
        self._avatars: MutableMapping[str, str] = bounded()  # mxid → the source URL last tried

    def mxid_of(self, author: Author) -> str:
        return (
            f"@{ghost_localpart(self._prefix, phone=author.phone, lid=author.lid)}:{self._domain}"
        )

    def is_ghost(self, mxid: str) -> bool:
        return mxid.startswith(f"@{self._prefix}") and mxid.endswith(f":{self._domain}")

    def mention_of(self, phone: str) -> tuple[str, str] | None:
        """(the ghost's mxid, ``phone``) for a mention of ``phone``; None when the
        phone makes no ghost."""
        try:
            return self.mxid_of(Author(AuthorKind.CUSTOMER, "", phone=phone)), phone
        except ValueError:
            return None

    def phone_of(self, mxid: str) -> str | None:
        """The phone a phone ghost stands for; None for anyone else (a LID ghost too)."""
        if not self.is_ghost(mxid):
            return None
        digits = mxid[len(f"@{self._prefix}") :].split(":", 1)[0]
        return f"+{digits}" if digits.isdigit() else None

    async def ready_in(self, room: str, author: Author) -> IntentAPI:
        """The author's ghost, registered, named and joined to ``room``."""
        mxid = self.mxid_of(author)
        intent = self._bot.user(mxid)  # type: ignore[arg-type]
        await intent.ensure_registered()
        name = ghost_name(author)
        if self._names.get(mxid) != name:
            await self._set_name(intent, name)
            self._names[mxid] = name
        if author.avatar_url and self._avatars.get(mxid) != author.avatar_url:
            self._avatars[mxid] = author.avatar_url  # tried once per URL, even on failure
            await self._set_avatar(intent, author.avatar_url)
        if author.phone and author.lid:
            await self._rename_lid_ghost(author.lid, name)
        await intent.ensure_joined(room)  # type: ignore[arg-type]
        return intent

    async def _rename_lid_ghost(self, lid: str, name: str) -> None:
        """The ghost that spoke for this person while only the LID was known takes
        the name with the phone; one that never spoke is not created for it."""
        mxid = f"@{ghost_localpart(self._prefix, phone=None, lid=lid)}:{self._domain}"
        if self._names.get(mxid) == name:
            return
        current = await self._bot.get_displayname(mxid)  # type: ignore[arg-type]
        if current is not None and current != name:
            await self._bot.user(mxid).set_displayname(name, check_current=False)  # type: ignore[arg-type]
            log.info("ghost %s (a LID) renamed %s: the phone is known now", mxid, name)
        self._names[mxid] = name

    async def _set_name(self, intent: IntentAPI, name: str) -> None:
        try:
            current = await intent.get_displayname(intent.mxid)
        except MatrixRequestError:
            current = None
        if current != name:
            await intent.set_displayname(name, check_current=False)
            log.debug("ghost %s named %s", intent.mxid, name)

    async def _set_avatar(self, intent: IntentAPI, url: str) -> None:
        """Upload the picture at ``url`` and make it the ghost's avatar; a failure is
        logged, never raised (the post goes on without it)."""
        try:
            data, ctype = await download_avatar(url)
        except (AvatarError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("ghost %s: could not download the avatar %s: %s", intent.mxid, url, exc)
            return
        try:
            mxc = await intent.upload_media(data, mime_type=ctype, filename="avatar")
            await intent.set_avatar_url(mxc, check_current=False)
        except (MatrixError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("ghost %s: could not set the avatar: %s", intent.mxid, exc)
            return
        log.debug("ghost %s: avatar set to %s (from %s)", intent.mxid, mxc, url)
