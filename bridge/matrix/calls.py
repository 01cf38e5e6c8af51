"""Homeserver failures as the bridge's delivery errors: every client API call of the
Matrix side runs inside :func:`matrix_call`, which turns what went wrong into a
``DeliveryError`` (retried: rate limits with the server's ``retry_after_ms``, 5xx,
timeouts, an unreachable homeserver) or a ``PermanentDeliveryError`` (refusals,
files too large)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from mautrix.errors import (
    IntentError,
    MatrixConnectionError,
    MatrixRequestError,
    MLimitExceeded,
)

from bridge.errors import DeliveryError, PermanentDeliveryError
from bridge.matrix.appservice import retry_after_of_last_429

__all__ = ["matrix_call"]


@contextlib.asynccontextmanager
async def matrix_call(what: str) -> AsyncIterator[None]:
    """Translate homeserver failures while doing ``what`` into delivery errors."""
    try:
        yield
    except IntentError as exc:
        cause = exc.__cause__
        if isinstance(cause, MatrixRequestError):
            raise _delivery_error(what, cause) from exc
        raise PermanentDeliveryError(f"{what}: {exc}") from exc
    except MatrixRequestError as exc:
        raise _delivery_error(what, exc) from exc
    except (MatrixConnectionError, aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"{what}: the homeserver is unreachable ({exc})") from exc


def _delivery_error(what: str, exc: MatrixRequestError) -> DeliveryError:
    errcode = getattr(exc, "errcode", None) or "M_UNKNOWN"
    message = getattr(exc, "message", None) or str(exc)
    status = getattr(exc, "http_status", 0)
    if isinstance(exc, MLimitExceeded) or status == 429:
        return DeliveryError(
            f"{what}: rate limited by the homeserver", retry_after=retry_after_of_last_429()
        )
    if errcode == "M_TOO_LARGE" or status == 413:
        return PermanentDeliveryError(f"{what}: the file is too large for the homeserver")
    if status >= 500 or status == 0:
        return DeliveryError(f"{what}: the homeserver failed ({status} {errcode})")
    return PermanentDeliveryError(f"{what}: {errcode}: {message}")
