"""Coach photos: an upload checked and decoded by catalog.images, re-encoded as new JPEG
files (so no byte of the upload is ever stored or served) and kept under MEDIA_ROOT at a
path coachgate chooses: ``<MEDIA_ROOT>/coach/<profile id>/<size>.jpg``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from PIL import Image, ImageOps

from . import images
from .images import FORMATS, MAX_BYTES, MAX_PIXELS, MIN_SIDE

__all__ = ["FORMATS", "MAX_BYTES", "MAX_PIXELS", "MIN_SIDE"]  # the limits, for the pages

SIZES = (512, 128)  # the profile photo and its thumbnail, square, in pixels


def photo_path(coach_id: int, size: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "coach" / str(int(coach_id)) / f"{int(size)}.jpg"


def decode(data: bytes) -> Image.Image:
    """The upload as a decoded RGB image, or InvalidInput saying why not."""
    return images.decode(data, field="photo", noun="photo", draft=(SIZES[0] * 2, SIZES[0] * 2))


def render(img: Image.Image) -> dict[int, bytes]:
    """Each size as new JPEG bytes: a centred square, never enlarged past the original."""
    side = min(img.size)
    return {size: images.jpeg(ImageOps.fit(img, (min(size, side),) * 2,
                                           Image.Resampling.LANCZOS))
            for size in SIZES}


def store(coach_id: int, rendered: dict[int, bytes]) -> None:
    for size, data in rendered.items():
        images.write_atomically(photo_path(coach_id, size), data)


def remove(coach_id: int) -> None:
    for size in SIZES:
        photo_path(coach_id, size).unlink(missing_ok=True)
