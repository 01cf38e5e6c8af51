"""bridge.core.qrcode: QR strings rendered as PNG, checked pixel by pixel."""

from __future__ import annotations

import struct
import zlib

import pytest
import segno

from bridge.core.qrcode import QUIET_ZONE_MODULES, qr_png
from bridge.errors import InvalidInput

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The shape of a WhatsApp login QR string: ref, noise key, identity key, adv secret.
WA_CODE = (
    "2@y8HrbaB2Dh1yyJ8YJqtEdgDKvT8pJWM4sNRbGfZ0yRwdB8Y6aWL9XYMm3P5fFqTnVtBc7x4Hs==,"
    "7xIbM0E0n3w4nTQ0yM6nZ8Ugc3d4a5pKpB0V4XvK9Ts=,"
    "Q0xq8p2KcB6Z4m7y3WlV9aQz1e5r8t2u4i6o8p0a2s4=,"
    "hX3t1k7Vt4m2wqv8dS0aXyZq5n9b3c7e1f5g9h3j7k1="
)


def read_png(data: bytes) -> tuple[int, int, list[list[int]]]:
    """Width, height and 0/1 pixel rows of a 1-bit greyscale PNG (filters None, Up)."""
    assert data.startswith(PNG_SIGNATURE)
    pos, header, idat = len(PNG_SIGNATURE), b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, colour, interlace) == (1, 0, 0)
    raw, stride = zlib.decompress(idat), (width + 7) // 8
    rows: list[list[int]] = []
    previous = bytes(stride)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        filter_type, scan = line[0], line[1:]
        assert filter_type in (0, 2), f"unexpected PNG filter {filter_type}"
        if filter_type == 2:
            scan = bytes((a + b) & 0xFF for a, b in zip(scan, previous, strict=True))
        previous = scan
        rows.append([(scan[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
    return width, height, rows


def modules_of(png: bytes, *, scale: int) -> list[list[bool]]:
    """The dark modules of the rendered code, read back from the pixels."""
    width, _, rows = read_png(png)
    border = QUIET_ZONE_MODULES * scale
    return [
        [rows[y][x] == 0 for x in range(border, width - border, scale)]
        for y in range(border, width - border, scale)
    ]


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_png_pixels_are_the_qr_symbol_of_the_code(scale: int) -> None:
    png = qr_png(WA_CODE, scale=scale)
    symbol = segno.make_qr(WA_CODE, error="m", boost_error=False)
    size = len(symbol.matrix)
    width, height, rows = read_png(png)

    assert width == height == (size + 2 * QUIET_ZONE_MODULES) * scale
    assert modules_of(png, scale=scale) == [[bool(m) for m in row] for row in symbol.matrix]
    assert all(pixel == 1 for pixel in rows[0])  # the quiet zone is white


def test_default_scale_is_eight_pixels_a_module() -> None:
    png = qr_png(WA_CODE)
    size = len(segno.make_qr(WA_CODE, error="m", boost_error=False).matrix)
    assert read_png(png)[0] == (size + 2 * QUIET_ZONE_MODULES) * 8


def test_different_codes_give_different_images() -> None:
    first, second = qr_png(WA_CODE), qr_png(WA_CODE.replace("2@y8", "2@z9"))
    assert first.startswith(PNG_SIGNATURE) and second.startswith(PNG_SIGNATURE)
    assert first != second
    assert modules_of(first, scale=8) != modules_of(second, scale=8)


def test_same_code_gives_the_same_image() -> None:
    assert qr_png(WA_CODE) == qr_png(WA_CODE)


def test_empty_code_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        qr_png("")


def test_code_too_long_for_a_qr_symbol_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="too long"):
        qr_png("x" * 5000)


def test_scale_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="scale"):
        qr_png(WA_CODE, scale=0)
