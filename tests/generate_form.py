"""Posting the Generate page in tests: uploads, the form's data, and what ended up stored."""

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import image_bytes


def upload(name, data, content_type="image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def png(name="product.png", **kwargs) -> SimpleUploadedFile:
    return upload(name, image_bytes("PNG", **kwargs))


def webp(name="mood.webp", **kwargs) -> SimpleUploadedFile:
    return upload(name, image_bytes("WEBP", **kwargs), "image/webp")


def form_data(model, **overrides) -> dict:
    """A valid Generate post for `model` (one product photo, three images), changed by
    `overrides`."""
    data = {
        "products": [png()],
        "references": [],
        "prompt": "A bottle on wet slate at dusk",
        "model": str(model.public_id),
        "aspect_ratio": model.default_aspect_ratio,
        "quality": model.default_quality,
        "count": 3,
    }
    data.update(overrides)
    return data


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
