"""The ffmpeg conversions WhatsApp needs before an upload: voice notes as ogg/opus,
stickers as 512×512 webp, and ffprobe for a voice note's duration."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import EngineError
from bridge.model import Media, MediaKind
from bridge.whatsapp import wa_outbound as outbound

log = logging.getLogger(__name__)

_FFMPEG_MISSING = (
    "ffmpeg is not installed: it is needed to convert {what} to the format WhatsApp "
    "requires; install the ffmpeg package on the bridge host"
)


def is_webp(mimetype: str) -> bool:
    """Whether a mimetype names a webp image."""
    return mimetype.lower().partition(";")[0].strip() == "image/webp"


def is_opus(mimetype: str) -> bool:
    """Whether a mimetype names ogg/opus audio (``audio/ogg`` alone counts)."""
    base, _, params = mimetype.lower().partition(";")
    if base.strip() not in ("audio/ogg", "audio/opus"):
        return False
    return "codecs" not in params or "opus" in params


@dataclass(frozen=True)
class Upload:
    """A file as WhatsApp takes it."""

    data: bytes
    mimetype: str
    duration: int | None


class MediaConverter:
    """The ffmpeg conversions WhatsApp needs: voice notes as ogg/opus, stickers as webp."""

    def __init__(self, *, ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe", timeout: float = 120.0):
        self._ffmpeg = ffmpeg
        self._ffprobe = ffprobe
        self._timeout = timeout

    async def for_whatsapp(self, media: Media, data: bytes) -> Upload:
        """``data`` of ``media`` as WhatsApp needs it: a voice note in ogg/opus with its
        duration, a sticker in webp; anything else as it is."""
        mimetype, duration = media.mimetype, media.duration
        if media.media_kind is MediaKind.VOICE:
            if not is_opus(mimetype):
                data = await self.to_opus(data)
            mimetype = outbound.VOICE_MIMETYPE
            duration = duration or await self.duration(data)
        elif media.media_kind is MediaKind.STICKER and not is_webp(mimetype):
            data = await self.to_webp(data)
            mimetype = outbound.STICKER_MIMETYPE
        return Upload(data=data, mimetype=mimetype, duration=duration)

    async def to_opus(self, data: bytes) -> bytes:
        args = ["-vn", "-map_metadata", "-1", "-ac", "1", "-ar", "48000"]
        args += ["-c:a", "libopus", "-b:a", "32k", "-application", "voip", "-f", "ogg"]
        return await self._transcode(data, ".ogg", args, what="voice notes")

    async def to_webp(self, data: bytes) -> bytes:
        scale = (
            "scale=512:512:force_original_aspect_ratio=decrease,format=rgba,"
            "pad=512:512:(ow-iw)/2:(oh-ih)/2:color=black@0"
        )
        args = ["-vf", scale, "-frames:v", "1", "-c:v", "libwebp", "-f", "webp"]
        return await self._transcode(data, ".webp", args, what="stickers")

    async def duration(self, data: bytes) -> int | None:
        """Seconds of audio/video in ``data``, None when ffprobe cannot tell."""
        exe = shutil.which(self._ffprobe)
        if exe is None:
            log.debug("ffprobe not found; sending without a duration")
            return None
        args = ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"]
        with tempfile.TemporaryDirectory(prefix="zapbridge-") as tmp:
            src = Path(tmp) / "input"
            await asyncio.to_thread(src.write_bytes, data)
            out, err, code = await self._run(exe, [*args, str(src)])
        try:
            return max(1, round(float(out.decode().strip()))) if code == 0 else None
        except ValueError:
            log.debug("ffprobe gave no duration: %s", err.decode(errors="replace").strip())
            return None

    async def _transcode(self, data: bytes, suffix: str, args: list[str], *, what: str) -> bytes:
        exe = shutil.which(self._ffmpeg)
        if exe is None:
            raise EngineError(_FFMPEG_MISSING.format(what=what))
        with tempfile.TemporaryDirectory(prefix="zapbridge-") as tmp:
            src, dst = Path(tmp) / "input", Path(tmp) / f"output{suffix}"
            await asyncio.to_thread(src.write_bytes, data)
            head = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(src)]
            _, err, code = await self._run(exe, [*head, *args, str(dst)])
            if code != 0:
                detail = err.decode(errors="replace").strip()[-400:]
                raise EngineError(f"ffmpeg could not convert the file for WhatsApp: {detail}")
            return await asyncio.to_thread(dst.read_bytes)

    async def _run(self, exe: str, args: list[str]) -> tuple[bytes, bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            exe, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise EngineError(f"{Path(exe).name} took longer than {self._timeout:.0f} s") from exc
        return out, err, proc.returncode if proc.returncode is not None else -1
