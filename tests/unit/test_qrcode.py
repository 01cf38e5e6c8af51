"""bridge.core.qrcode: a QR string in, a PNG out that holds the QR symbol of that string.

The PNG is read with Pillow (installed with neonize); the symbol is then checked for
what a scanner needs: the quiet zone, the three finder patterns, format information
saying error correction level M, and modules equal to the symbol of the string.
"""

from __future__ import annotations

import io

import pytest
import segno
from PIL import Image

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
FORMAT_MASK = 0b101010000010010  # ISO/IEC 18004: format information is XORed with this
FORMAT_GENERATOR = 0b10100110111  # its BCH(15, 5) code
LEVEL_M = 0b00


def pixels(png: bytes) -> tuple[Image.Image, list[list[bool]]]:
    """The decoded image, and its pixels as rows of "dark"."""
    image = Image.open(io.BytesIO(png))
    image.load()
    grey = image.convert("L")
    width, height = grey.size
    data = grey.tobytes()
    return image, [[data[y * width + x] < 128 for x in range(width)] for y in range(height)]


def modules_of(png: bytes, *, scale: int) -> list[list[bool]]:
    """The dark modules of the rendered code, read back from the pixels (one per module,
    after checking every pixel of a module agrees)."""
    _, rows = pixels(png)
    border = QUIET_ZONE_MODULES * scale
    size = (len(rows) - 2 * border) // scale
    modules = []
    for my in range(size):
        line = []
        for mx in range(size):
            block = {
                rows[border + my * scale + dy][border + mx * scale + dx]
                for dy in range(scale)
                for dx in range(scale)
            }
            assert len(block) == 1, f"module ({mx}, {my}) is not one colour"
            line.append(block.pop())
        modules.append(line)
    return modules


def is_finder(modules: list[list[bool]], x0: int, y0: int) -> bool:
    """A 7×7 finder pattern at (x0, y0): dark ring, light ring, dark 3×3 centre."""
    for y in range(7):
        for x in range(7):
            ring = max(abs(x - 3), abs(y - 3))
            if modules[y0 + y][x0 + x] != (ring != 2):
                return False
    return True


def format_information(modules: list[list[bool]]) -> int:
    """The 15 format bits beside the top-left finder, unmasked (as zxing reads them)."""
    spots = [(x, 8) for x in range(6)] + [(7, 8), (8, 8), (8, 7)]
    spots += [(8, y) for y in range(5, -1, -1)]
    bits = 0
    for x, y in spots:
        bits = (bits << 1) | modules[y][x]
    return bits ^ FORMAT_MASK


def bch_remainder(value: int) -> int:
    for shift in range(14, 9, -1):
        if value & (1 << shift):
            value ^= FORMAT_GENERATOR << (shift - 10)
    return value


def test_the_png_is_a_qr_symbol_of_level_m_with_its_quiet_zone() -> None:
    png = qr_png(WA_CODE, scale=2)
    image, rows = pixels(png)
    assert png.startswith(PNG_SIGNATURE) and image.format == "PNG"
    width, height = image.size
    assert width == height
    border = QUIET_ZONE_MODULES * 2
    assert not any(any(row[:border]) or any(row[-border:]) for row in rows)
    assert not any(any(row) for row in rows[:border] + rows[-border:])
    modules = modules_of(png, scale=2)
    size = len(modules)
    assert (size - 17) % 4 == 0 and size >= 21  # 17 + 4 × version modules a side
    assert is_finder(modules, 0, 0) and is_finder(modules, size - 7, 0)
    assert is_finder(modules, 0, size - 7) and not is_finder(modules, size - 7, size - 7)
    info = format_information(modules)
    assert bch_remainder(info) == 0  # read correctly, no bit flipped
    assert info >> 13 == LEVEL_M


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_png_pixels_are_the_qr_symbol_of_the_code(scale: int) -> None:
    png = qr_png(WA_CODE, scale=scale)
    symbol = segno.make_qr(WA_CODE, error="m", boost_error=False)  # the payload's symbol
    size = len(symbol.matrix)
    image, rows = pixels(png)

    assert image.size == ((size + 2 * QUIET_ZONE_MODULES) * scale,) * 2
    assert modules_of(png, scale=scale) == [[bool(m) for m in row] for row in symbol.matrix]
    assert not any(rows[0])  # the quiet zone is white


def test_default_scale_is_eight_pixels_a_module() -> None:
    png = qr_png(WA_CODE)
    size = len(segno.make_qr(WA_CODE, error="m", boost_error=False).matrix)
    assert pixels(png)[0].size == ((size + 2 * QUIET_ZONE_MODULES) * 8,) * 2


def test_different_codes_give_different_images() -> None:
    first, second = qr_png(WA_CODE), qr_png(WA_CODE.replace("2@y8", "2@z9"))
    assert pixels(first)[0].size == pixels(second)[0].size  # same length, same version
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
