"""Media in stored content: a reference to the media store, never bytes; rows written
before the store (``{"b64": …}``) still decode. And the size limits toward WhatsApp."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from bridge.config import MediaConfig
from bridge.errors import PermanentDeliveryError
from bridge.media_limits import MB, toward_whatsapp
from bridge.model import Media, MediaKind, StoredBytes, content_from_dict, content_to_dict

DATA = b"\xff\xd8 a jpeg"
REF = StoredBytes(hashlib.sha256(DATA).hexdigest(), len(DATA))


def test_stored_media_keep_only_their_reference() -> None:
    media = Media(MediaKind.IMAGE, "image/jpeg", stored=REF, caption="foto", size=REF.size)
    encoded = content_to_dict(media)
    assert encoded["data"] == {"sha256": REF.sha256, "size": REF.size}
    assert "stored" not in encoded
    assert content_from_dict(json.loads(json.dumps(encoded))) == media


def test_stored_media_with_their_bytes_loaded_still_keep_only_the_reference() -> None:
    media = Media(MediaKind.IMAGE, "image/jpeg", data=DATA, stored=REF)
    encoded = json.dumps(content_to_dict(media))
    assert base64.b64encode(DATA).decode() not in encoded and '"b64"' not in encoded
    decoded = content_from_dict(json.loads(encoded))
    assert isinstance(decoded, Media)
    assert (decoded.data, decoded.stored) == (None, REF)


def test_a_row_written_before_the_store_still_decodes_with_its_bytes() -> None:
    old_row = {  # as messages.content held it before the media store
        "type": "media",
        "media_kind": "document",
        "mimetype": "application/pdf",
        "data": {"b64": base64.b64encode(b"%PDF-1.4").decode()},
        "ref": None,
        "filename": "boleto.pdf",
        "caption": None,
        "size": 8,
        "sha256": None,
        "width": None,
        "height": None,
        "duration": None,
        "gif": False,
    }
    decoded = content_from_dict(old_row)
    assert isinstance(decoded, Media)
    assert (decoded.data, decoded.stored, decoded.filename) == (b"%PDF-1.4", None, "boleto.pdf")


def test_the_size_of_stored_media_is_the_stored_size() -> None:
    assert Media(MediaKind.VIDEO, "video/mp4", stored=StoredBytes("0" * 64, 42)).byte_size == 42


@pytest.mark.parametrize(
    ("kind", "max_size_mb", "size", "refusal"),
    [
        (MediaKind.VIDEO, 100, 16 * MB, None),
        (MediaKind.VIDEO, 100, 17 * MB, "the video is 17 MB; WhatsApp takes videos up to 16 MB"),
        (MediaKind.IMAGE, 100, 20 * MB + MB // 2, "the image is 20.5 MB; WhatsApp takes images"),
        (MediaKind.VOICE, 100, 17 * MB, "voice note is 17 MB; WhatsApp takes voice notes up to"),
        (MediaKind.AUDIO, 100, 17 * MB, "audio file is 17 MB; WhatsApp takes audio files up to"),
        (MediaKind.DOCUMENT, 200, 99 * MB, None),
        (MediaKind.DOCUMENT, 200, 101 * MB, "WhatsApp takes documents up to 100 MB"),
        (MediaKind.DOCUMENT, 5, 6 * MB, "the document is 6 MB; media.max_size_mb is 5 MB"),
        (MediaKind.IMAGE, 5, 6 * MB, "media.max_size_mb is 5 MB"),
    ],
)
def test_files_toward_whatsapp_are_held_to_its_limits_and_the_config(
    kind: MediaKind, max_size_mb: int, size: int, refusal: str | None
) -> None:
    limit = toward_whatsapp(kind, MediaConfig(max_size_mb=max_size_mb))
    if refusal is None:
        limit.check(size)
        return
    with pytest.raises(PermanentDeliveryError) as caught:
        limit.check(size)
    assert refusal in caught.value.explanation


def test_a_streamed_refusal_says_over_the_limit() -> None:
    limit = toward_whatsapp(MediaKind.VIDEO, MediaConfig())
    refusal = limit.refusal(16 * MB + 1, at_least=True)
    assert refusal.explanation == "the video is over 16 MB; WhatsApp takes videos up to 16 MB"
    limit.check(None)  # an unknown size is checked as the bytes arrive
