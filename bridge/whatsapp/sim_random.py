"""Every random thing the sim makes (message ids, QR code parts, pairing codes), from
one seeded generator: the same seed gives the same run."""

from __future__ import annotations

import base64
import random

from bridge.whatsapp.engine import MESSAGE_ID_PREFIX

_PAIR_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"  # WhatsApp's: no 0, I, O, U


class SimRandom:
    """The sim's seeded generator."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def message_id(self) -> str:
        """A WhatsApp-like message id: ``3EB0`` and 18 uppercase hex digits."""
        return f"{MESSAGE_ID_PREFIX}{self._rng.getrandbits(72):018X}"

    def key_b64(self) -> str:
        """A base64 32-byte key, as in a QR code's noise/identity/adv-secret parts."""
        return base64.b64encode(self._rng.randbytes(32)).decode()

    def qr_ref(self) -> str:
        """The server's rotating part of a QR code."""
        return "2@" + base64.b64encode(self._rng.randbytes(48)).decode()

    def pair_code(self) -> str:
        """An 8-character phone pairing code such as ``ABCD-EFGH``."""
        chars = "".join(self._rng.choice(_PAIR_CODE_ALPHABET) for _ in range(8))
        return f"{chars[:4]}-{chars[4:]}"
