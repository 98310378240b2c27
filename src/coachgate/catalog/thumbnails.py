"""Offer pictures: an upload is checked by what it contains (Pillow, never its name or its
declared type), re-encoded as a new JPEG (so no byte of the upload is ever stored or
served), cropped to the card's 16:9 and kept under MEDIA_ROOT at a name coachgate chooses:
``<MEDIA_ROOT>/offers/<32 hex digits>.jpg``. A new picture gets a new name, so its URL can
be cached for good.
"""

from __future__ import annotations

import io
import os
import secrets
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageFile, ImageOps

from coachgate.kit.errors import InvalidInput

from .rules import THUMBNAIL_NAME

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 20_000_000
MIN_SIDE = 64
FORMATS = ("JPEG", "PNG", "WEBP")
SIZE = (960, 540)  # the card's picture, 16:9
_QUALITY = 85


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


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": "thumbnail"})


def render(data: bytes) -> bytes:
    """The upload as new JPEG bytes at the card's size, or InvalidInput saying why not."""
    if not data:
        raise _refuse("The file is empty.")
    if len(data) > MAX_BYTES:
        raise _refuse("The picture is larger than 5 MB.")
    try:
        # formats=: only these decoders look at the bytes; the header alone gives the size,
        # so a huge claimed size is refused before anything is decoded.
        img: Image.Image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError:
        raise _refuse("The picture has too many pixels (at most 20 megapixels).") from None
    except Exception:  # hostile bytes make Pillow raise many kinds; each means "not a picture"
        raise _refuse("That file is not a JPEG, PNG or WebP image.") from None
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise _refuse("The picture has too many pixels (at most 20 megapixels).")
    if min(width, height) < MIN_SIDE:
        raise _refuse(f"The picture is too small (at least {MIN_SIDE} × {MIN_SIDE} pixels).")
    try:
        if img.format == "JPEG" and isinstance(img, ImageFile.ImageFile):
            img.draft("RGB", (SIZE[0] * 2, SIZE[1] * 2))  # decode a large JPEG reduced
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))  # transparency: on white
            flat.paste(rgba, mask=rgba.getchannel("A"))
            img = flat
        else:
            img = img.convert("RGB")
        target = SIZE if img.width >= SIZE[0] else (img.width, img.width * 9 // 16 or 1)
        card = ImageOps.fit(img, target, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        card.save(buf, "JPEG", quality=_QUALITY, optimize=True)  # no EXIF, no ICC copied
        return buf.getvalue()
    except Exception:  # truncated or corrupt image data, found while decoding
        raise _refuse("That image is damaged and cannot be read.") from None


def store(data: bytes) -> str:
    """Check and re-encode an upload, write it under a new name, and return the name."""
    jpeg = render(data)
    name = f"{secrets.token_hex(16)}.jpg"
    where = directory()
    where.mkdir(parents=True, exist_ok=True)
    # Written whole or not at all: a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=where, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(jpeg)
        os.replace(tmp, where / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def delete(name: str) -> None:
    path = path_of(name)
    if path is not None:
        path.unlink(missing_ok=True)
