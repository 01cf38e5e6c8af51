"""How large a file may be, in one place for the frontends and the core.

- Toward WhatsApp (an attendant's file): the smaller of ``media.max_size_mb`` and
  WhatsApp's own limit for the kind (:data:`WHATSAPP_MAX_BYTES`). Frontends check it
  before downloading a file (the declared size, then the bytes as they arrive) and
  the relay checks it again before anything is stored or sent; the refusal's
  explanation is what the attendant reads in the thread.
- Toward the frontends (a customer's file): ``media.max_size_mb``
  (``bridge.core.deliveries``).

WhatsApp's limits are those of its business documentation (16 MB for images,
video and audio, 100 MB for documents), which the phones apply too. Stickers get
the image limit because the engine turns them into a small webp before sending.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bridge.config import MediaConfig
from bridge.errors import PermanentDeliveryError
from bridge.model import MediaKind

MB = 1024 * 1024

WHATSAPP_MAX_BYTES: dict[MediaKind, int] = {
    MediaKind.IMAGE: 16 * MB,
    MediaKind.VIDEO: 16 * MB,
    MediaKind.AUDIO: 16 * MB,
    MediaKind.VOICE: 16 * MB,
    MediaKind.STICKER: 16 * MB,
    MediaKind.DOCUMENT: 100 * MB,
}

_NAMES = {MediaKind.VOICE: "voice note", MediaKind.AUDIO: "audio file"}
_CHUNK_BYTES = 256 * 1024


class FileTooLarge(PermanentDeliveryError):
    """A file over the limit for its kind; the explanation names its size and the limit
    (``the video is 17 MB; WhatsApp takes videos up to 16 MB``)."""


def kind_name(kind: MediaKind) -> str:
    """``video``, ``voice note``, ``document`` …: a file's kind as the attendant says it."""
    return _NAMES.get(kind, kind.value)


@dataclass(frozen=True)
class SizeLimit:
    """At most ``max_bytes`` for a file of ``kind``; ``rule`` says whose limit it is."""

    kind: MediaKind
    max_bytes: int
    rule: str

    def check(self, size: int | None) -> None:
        """Raise the refusal when ``size`` (if known) is over the limit."""
        if size is not None and size > self.max_bytes:
            raise self.refusal(size)

    def refusal(self, size: int, *, at_least: bool = False) -> FileTooLarge:
        """The error to tell the attendant; ``at_least`` when only part was counted."""
        amount = f"over {megabytes(self.max_bytes)}" if at_least else megabytes(size)
        return FileTooLarge(f"the {kind_name(self.kind)} is {amount}; {self.rule}")

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        """A download's body within the limit: refused by its ``Content-Length``
        before reading, else at the first chunk that takes it past the limit."""
        self.check(response.content_length)
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            received += len(chunk)
            if received > self.max_bytes:
                raise self.refusal(received, at_least=True)
            chunks.append(chunk)
        return b"".join(chunks)


def toward_whatsapp(kind: MediaKind, media: MediaConfig) -> SizeLimit:
    """The limit for an attendant's file of ``kind`` on its way to a customer."""
    whatsapp = WHATSAPP_MAX_BYTES[kind]
    if media.max_size_bytes < whatsapp:
        return SizeLimit(kind, media.max_size_bytes, f"media.max_size_mb is {media.max_size_mb} MB")
    plural = "audio files" if kind is MediaKind.AUDIO else f"{kind_name(kind)}s"
    return SizeLimit(kind, whatsapp, f"WhatsApp takes {plural} up to {megabytes(whatsapp)}")


def megabytes(size: int) -> str:
    """``16 MB``, ``20.3 MB``: whole numbers without decimals."""
    value = size / MB
    return f"{value:.0f} MB" if value == int(value) else f"{value:.1f} MB"
