"""Login QR codes as PNG images, for the room or channel where ``!login`` was typed."""

from __future__ import annotations

import io

import segno

from bridge.errors import InvalidInput

# Four modules of white around the code: the quiet zone scanners need.
QUIET_ZONE_MODULES = 4


def qr_png(code: str, *, scale: int = 8) -> bytes:
    """Render the QR string ``code`` as a black-on-white PNG, ``scale`` pixels a module.

    Raises :class:`InvalidInput` when ``code`` is empty or too long for a QR code,
    and :class:`ValueError` for a ``scale`` below 1 (a programming error).
    """
    if scale < 1:
        raise ValueError(f"scale must be at least 1, not {scale}")
    if not code:
        raise InvalidInput("the engine sent an empty QR code")
    try:
        symbol = segno.make_qr(code, error="m", boost_error=False)
    except segno.DataOverflowError as exc:
        raise InvalidInput(f"the QR code is too long to render ({len(code)} characters)") from exc
    out = io.BytesIO()
    symbol.save(out, kind="png", scale=scale, border=QUIET_ZONE_MODULES)
    return out.getvalue()
