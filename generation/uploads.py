"""Uploaded images, checked by decoding them (see validate_image)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ValidatedImage:
    """An upload that decoded as an allowed image within the limits."""

    data: bytes
    sha256: str
    format: str  # "JPEG", "PNG" or "WEBP"
    width: int
    height: int
    name: str = ""
