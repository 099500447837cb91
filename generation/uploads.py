"""Uploaded images, checked by decoding them (see validate_image)."""

import hashlib
import io
import os
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
ACCEPT = "image/jpeg,image/png,image/webp"  # for <input accept>; a hint, never trusted


@dataclass(frozen=True)
class ValidatedImage:
    """An upload that decoded as an allowed image within the limits."""

    data: bytes
    sha256: str
    format: str  # "JPEG", "PNG" or "WEBP"
    width: int
    height: int
    name: str = ""


def validate_image(uploaded_file) -> ValidatedImage:
    """Decode an upload and return it with its content hash, or raise a ValidationError naming
    the file. The name and the browser's content type are never trusted: the bytes must decode as
    JPEG, PNG or WebP within the size and pixel limits."""
    name = os.path.basename(getattr(uploaded_file, "name", "") or "") or "The image"
    max_bytes = settings.NERSTUDIO_UPLOAD_MAX_BYTES
    too_large = ValidationError(
        "%(name)s is larger than %(limit)s.",
        code="too_large",
        params={"name": name, "limit": human_bytes(max_bytes)},
    )
    if (getattr(uploaded_file, "size", None) or 0) > max_bytes:
        raise too_large  # before reading a byte of it
    uploaded_file.seek(0)
    data = uploaded_file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large

    not_an_image = ValidationError(
        "%(name)s is not a JPEG, PNG or WebP image.", code="format", params={"name": name}
    )
    too_many_pixels = ValidationError(
        "%(name)s has more than %(limit)s.",
        code="too_many_pixels",
        params={"name": name, "limit": human_pixels(max_pixels())},
    )
    damaged = ValidationError(
        "%(name)s could not be read: the file is damaged or incomplete.",
        code="damaged",
        params={"name": name},
    )
    try:
        # Only these decoders may run. Opening reads the header, not the pixels, so the pixel
        # limit is checked before anything large is decoded.
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            image_format, (width, height) = image.format, image.size
            if image_format not in ALLOWED_FORMATS:
                raise not_an_image
            if width * height > max_pixels():
                raise too_many_pixels
            image.verify()
        # verify() leaves the image unusable; decode it for real from the start.
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            image.load()
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels from None
    except Image.UnidentifiedImageError:
        raise not_an_image from None
    except Exception:  # any decoder failure on untrusted bytes means the same thing
        raise damaged from None
    return ValidatedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=image_format,
        width=width,
        height=height,
        name=name,
    )


def max_pixels() -> int:
    """Our limit, never above Pillow's own decompression-bomb threshold."""
    limit = settings.NERSTUDIO_UPLOAD_MAX_PIXELS
    return min(limit, Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else limit


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def human_pixels(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:g} megapixels"
    return f"{n:,} pixels"
