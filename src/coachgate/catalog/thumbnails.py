"""Offer pictures: an upload checked and decoded by catalog.images, re-encoded as a new
JPEG (so no byte of the upload is ever stored or served), cropped to the card's 16:9 and
kept under MEDIA_ROOT at a name coachgate chooses: ``<MEDIA_ROOT>/offers/<32 hex
digits>.jpg``. A new picture gets a new name, so its URL can be cached for good.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageOps

from . import images
from .images import FORMATS, MAX_BYTES, MAX_PIXELS, MIN_SIDE

__all__ = ["FORMATS", "MAX_BYTES", "MAX_PIXELS", "MIN_SIDE"]  # the limits, for the pages
from .rules import THUMBNAIL_NAME

SIZE = (960, 540)  # the card's picture, 16:9


def directory() -> Path:
    return Path(settings.MEDIA_ROOT) / "offers"


def path_of(name: str) -> Path | None:
    """Where a stored picture lives; None for a name coachgate never gives."""
    if not THUMBNAIL_NAME.fullmatch(name):
        return None
    return directory() / name


def exists(name: str) -> bool:
    path = path_of(name)
    return path is not None and path.is_file()


def render(data: bytes) -> bytes:
    """The upload as new JPEG bytes at the card's size, or InvalidInput saying why not."""
    img = images.decode(data, field="thumbnail", noun="picture",
                        draft=(SIZE[0] * 2, SIZE[1] * 2))
    target = SIZE if img.width >= SIZE[0] else (img.width, img.width * 9 // 16 or 1)
    return images.jpeg(ImageOps.fit(img, target, Image.Resampling.LANCZOS))


def store(data: bytes) -> str:
    """Check and re-encode an upload, write it under a new name, and return the name."""
    name = f"{secrets.token_hex(16)}.jpg"
    images.write_atomically(directory() / name, render(data))
    return name


def delete(name: str) -> None:
    path = path_of(name)
    if path is not None:
        path.unlink(missing_ok=True)
