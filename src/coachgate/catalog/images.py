"""Uploaded images (coach photos, offer pictures): checked by what they contain (Pillow,
never their name or declared type) and decoded to plain RGB, so that what is stored is
always coachgate's own re-encoding and never a byte of the upload."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageFile, ImageOps

from coachgate.kit.errors import InvalidInput

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 20_000_000
MIN_SIDE = 64
FORMATS = ("JPEG", "PNG", "WEBP")
QUALITY = 85


def decode(data: bytes, *, field: str, noun: str, draft: tuple[int, int]) -> Image.Image:
    """The upload as a decoded RGB image (transparency flattened on white, EXIF rotation
    applied), or InvalidInput naming ``field`` and saying why not. ``draft``: a JPEG larger
    than this box is decoded reduced."""

    def refuse(message: str) -> InvalidInput:
        return InvalidInput(message, details={"field": field})

    if not data:
        raise refuse("The file is empty.")
    if len(data) > MAX_BYTES:
        raise refuse(f"The {noun} is larger than 5 MB.")
    try:
        # formats=: only these decoders look at the bytes; the header alone gives the size,
        # so a huge claimed size is refused before anything is decoded.
        opened = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError:
        raise refuse(f"The {noun} has too many pixels (at most 20 megapixels).") from None
    except Exception:  # hostile bytes make Pillow raise many kinds; each means "not an image"
        raise refuse("That file is not a JPEG, PNG or WebP image.") from None
    width, height = opened.size
    if width * height > MAX_PIXELS:
        raise refuse(f"The {noun} has too many pixels (at most 20 megapixels).")
    if min(width, height) < MIN_SIDE:
        raise refuse(f"The {noun} is too small (at least {MIN_SIDE} × {MIN_SIDE} pixels).")
    try:
        if opened.format == "JPEG" and isinstance(opened, ImageFile.ImageFile):
            opened.draft("RGB", draft)
        opened.load()
        img = ImageOps.exif_transpose(opened)
        if img.mode in ("RGBA", "LA", "P", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return img.convert("RGB")
    except Exception:  # truncated or corrupt image data, found while decoding
        raise refuse("That image is damaged and cannot be read.") from None


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=QUALITY, optimize=True)  # no EXIF, no ICC copied
    return buf.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Written whole or not at all: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
