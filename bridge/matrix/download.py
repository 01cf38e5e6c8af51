"""An attendant's file from the homeserver, never more bytes than a limit allows.

``download_within`` checks the answer's ``Content-Length`` before reading and
counts the bytes as they arrive, stopping as soon as they pass the limit (the
caller checks the size the event declares before asking at all). It asks the same
way as mautrix's ``download_media`` (the authenticated media endpoint of Matrix
v1.11 when the homeserver has it, as the appservice bot), which reads everything.
"""

from __future__ import annotations

from typing import Any

from mautrix.client import ClientAPI
from mautrix.types import ContentURI, SpecVersions

from bridge.errors import DeliveryError, PermanentDeliveryError
from bridge.media_limits import SizeLimit


async def download_within(client: ClientAPI, mxc: str, *, limit: SizeLimit) -> bytes:
    """The bytes at ``mxc``, fetched as ``client`` (the appservice bot); the limit's
    refusal once they are more than it allows. aiohttp and mautrix errors propagate
    (the caller wraps the call in ``matrix_call``)."""
    api = client.api
    authenticated = bool((await client.versions()).supports(SpecVersions.V111))
    try:
        url = api.get_download_url(ContentURI(mxc), authenticated=authenticated)
    except ValueError as exc:
        raise PermanentDeliveryError(f"the file's address is not an mxc:// URI: {exc}") from exc
    params: dict[str, Any] = {"allow_redirect": "true"}
    headers: dict[str, str] = {}
    if authenticated:
        headers["Authorization"] = f"Bearer {api.token}"
        if api.as_user_id:
            params["user_id"] = api.as_user_id
    async with api.session.get(url, params=params, headers=headers) as response:
        if response.status >= 400:
            raise _status_error(response.status)
        return await limit.read(response)


def _status_error(status: int) -> DeliveryError:
    if status in (404, 403):
        return PermanentDeliveryError(f"the homeserver does not give the file ({status})")
    if status == 429 or status >= 500:
        return DeliveryError(f"the homeserver failed to give the file ({status})")
    return PermanentDeliveryError(f"the homeserver refused the file ({status})")
