"""Coach photos: an upload is checked by what it contains (Pillow, never its name or its
declared type), re-encoded as new JPEG files (so no byte of the upload is ever stored or
served) and kept under MEDIA_ROOT at a path coachgate chooses:
``<MEDIA_ROOT>/coach/<profile id>/<size>.jpg``.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageOps

from coachgate.kit.errors import InvalidInput

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 20_000_000
MIN_SIDE = 64
FORMATS = ("JPEG", "PNG", "WEBP")
SIZES = (512, 128)  # the profile photo and its thumbnail, square, in pixels
_QUALITY = 85


def photo_path(coach_id: int, size: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "coach" / str(int(coach_id)) / f"{int(size)}.jpg"


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": "photo"})


def decode(data: bytes) -> Image.Image:
    """The upload as a decoded RGB image, or InvalidInput saying why not."""
    if len(data) > MAX_BYTES:
        raise _refuse("The photo is larger than 5 MB.")
    if not data:
        raise _refuse("The file is empty.")
    try:
        # formats=: only these decoders look at the bytes; the header alone gives the size,
        # so a huge claimed size is refused before anything is decoded.
        opened = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError:
        raise _refuse("The photo has too many pixels (at most 20 megapixels).") from None
    except Exception:  # hostile bytes make Pillow raise many kinds; each means "not a photo"
        raise _refuse("That file is not a JPEG, PNG or WebP image.") from None
    width, height = opened.size
    if width * height > MAX_PIXELS:
        raise _refuse("The photo has too many pixels (at most 20 megapixels).")
    if min(width, height) < MIN_SIDE:
        raise _refuse(f"The photo is too small (at least {MIN_SIDE} × {MIN_SIDE} pixels).")
    try:
        if opened.format == "JPEG":
            opened.draft("RGB", (SIZES[0] * 2, SIZES[0] * 2))  # decode a large JPEG reduced
        opened.load()
        img = ImageOps.exif_transpose(opened)
        if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))  # transparency: on white
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return img.convert("RGB")
    except Exception:  # truncated or corrupt image data, found while decoding
        raise _refuse("That image is damaged and cannot be read.") from None


def render(img: Image.Image) -> dict[int, bytes]:
    """Each size as new JPEG bytes: a centred square, never enlarged past the original."""
    side = min(img.size)
    out: dict[int, bytes] = {}
    for size in SIZES:
        target = min(size, side)
        square = ImageOps.fit(img, (target, target), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        square.save(buf, "JPEG", quality=_QUALITY, optimize=True)  # no EXIF, no ICC copied
        out[size] = buf.getvalue()
    return out


def store(coach_id: int, rendered: dict[int, bytes]) -> None:
    """Write each size atomically (a reader sees the old file or the new one, whole)."""
    for size, data in rendered.items():
        path = photo_path(coach_id, size)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def remove(coach_id: int) -> None:
    for size in SIZES:
        photo_path(coach_id, size).unlink(missing_ok=True)
