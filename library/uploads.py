"""Uploaded images in two steps, so memory stays bounded whatever is uploaded.

1. check_image (the form): only what costs next to nothing. The byte size comes from the file,
   the format and pixel dimensions from the image header; no pixel is decoded. A failing form
   therefore never decodes anything.
2. ingest_image (start_generation, after the form and the credit check passed): decode, apply the
   EXIF orientation, bound the long side, and re-encode to the same format without metadata or
   trailing bytes. JPEGs above the decode budget are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's
   DCT scaling); PNG and WebP cannot be, so they have lower pixel limits instead. The content hash
   is of the re-encoded bytes.

Both steps run on a single thread per process each (_worker), so parallel requests
cannot multiply the largest allocation. A thread rather than a lock: glibc gives each thread its
own malloc arena and keeps what a large decode freed there, so one decode at a time on six request
threads still grew the process by six decodes' worth (measured: +395 MB instead of +71 MB for
4096×4096 PNGs; bench/upload_memory.py).

Per-decode memory (measured, Pillow 13): PNG and JPEG use 4 bytes per decoded pixel plus about
as much again when the long side is resized; WebP (libwebp) about 16 bytes per pixel to decode and
16 more to encode. The defaults keep one decode under ~130 MB.
"""

import hashlib
import io
import math
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.template.defaultfilters import filesizeformat
from PIL import (
    Image,
    ImageOps,
    WebPImagePlugin,  # noqa: F401  registered up front: see below
)

# The image formats read here and from providers' results (generation/downloads.py).
# Pillow registers five formats (JPEG and PNG among them) until one outside them is opened or
# saved, and then imports its every plugin: some 50 modules, 50 ms and more, again in every
# worker process a pool starts. With WebP registered by the import above, that never happens.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
ACCEPT = "image/jpeg,image/png,image/webp"  # for <input accept>; a hint, never trusted
# Re-encoding: PNG stays lossless; JPEG and WebP are written at quality 90 (visually lossless for
# photos; a lossless WebP becomes a lossy one).
ENCODE_OPTIONS = {"JPEG": {"quality": 90}, "PNG": {}, "WEBP": {"quality": 90}}
# How long a request waits for the decoder before giving up with a "busy" message (seconds).
DECODE_WAIT_SECONDS = 30.0
SPOOL_BYTES = 256 * 1024  # re-encoded files larger than this wait on disk, not on the heap
KEYED_TRANSPARENCY_MODES = ("1", "L", "P", "RGB", "I", "I;16")
RESIZE_BAND_ROWS = 128  # result rows resized at a time

# Header parsing may hold a whole file (WebP) or its text chunks (PNG, up to Pillow's 64 MB) in
# memory for a moment; decoding holds the pixels. Each runs on its own single thread.
_workers: dict[str, ThreadPoolExecutor] = {}
_workers_lock = threading.Lock()


def _forget_workers() -> None:
    global _workers_lock
    _workers.clear()  # a forked child has none of the parent's threads
    _workers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_workers)


def _worker(name: str) -> ThreadPoolExecutor:
    """This process's single thread for `name` ("headers" or "decoder")."""
    with _workers_lock:
        if name not in _workers:
            _workers[name] = ThreadPoolExecutor(1, thread_name_prefix=f"nerstudio-image-{name}")
        return _workers[name]


@dataclass(frozen=True)
class CheckedUpload:
    """An upload whose size, format and header dimensions are within the limits; not decoded."""

    file: IO[bytes]
    name: str
    format: str  # "JPEG", "PNG" or "WEBP", from the header
    width: int
    height: int
    size: int  # bytes


@dataclass(frozen=True)
class ValidatedImage:
    """A decoded and re-encoded image, ready to store under its content hash. `data` holds the
    bytes, in memory or in a temporary file (ingest_image spools large ones to disk)."""

    data: bytes | IO[bytes]
    sha256: str
    format: str  # "JPEG", "PNG" or "WEBP"
    width: int
    height: int
    name: str = ""
    thumbnail: bytes = b""  # a small WebP for the library's grids

    @property
    def size(self) -> int:
        if isinstance(self.data, bytes):
            return len(self.data)
        self.data.seek(0, os.SEEK_END)
        return self.data.tell()

    def content(self) -> File:
        """The bytes as a Django File, for storage.save()."""
        if isinstance(self.data, bytes):
            return ContentFile(self.data)
        self.data.seek(0)
        return File(self.data, name=f"{self.sha256}.{self.format.lower()}")

    def close(self) -> None:
        if not isinstance(self.data, bytes):
            self.data.close()


def display_name(uploaded_file) -> str:
    return os.path.basename(getattr(uploaded_file, "name", "") or "") or "The image"


def check_image(uploaded_file) -> CheckedUpload:
    """The cheap checks, or a ValidationError naming the file. The name and the browser's content
    type are never trusted: the header must be JPEG, PNG or WebP within the size and pixel
    limits. Nothing is decoded: see ingest_image."""
    name = display_name(uploaded_file)
    max_bytes = settings.NERSTUDIO_UPLOAD_MAX_BYTES
    size = _byte_size(uploaded_file)
    if size > max_bytes:
        raise ValidationError(
            "%(name)s is larger than %(limit)s.",
            code="too_large",
            params={"name": name, "limit": filesizeformat(max_bytes)},
        )
    try:
        header = _worker("headers").submit(_read_header, uploaded_file)
        image_format, (width, height) = header.result()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels(name, None) from None  # Pillow's own threshold, before ours
    except Image.UnidentifiedImageError:
        raise not_an_image(name) from None
    except Exception:  # a header no decoder can read, on untrusted bytes
        raise damaged(name) from None
    if image_format not in ALLOWED_FORMATS:
        raise not_an_image(name)
    if width * height > max_pixels(image_format):
        raise too_many_pixels(name, image_format)
    return CheckedUpload(uploaded_file, name, image_format, width, height, size)


def ingest_image(upload: CheckedUpload | ValidatedImage) -> ValidatedImage:
    """Decode a checked upload and re-encode it for storage, or raise a ValidationError naming the
    file. Runs on the process's decoder thread (one image at a time). An image that is already a
    ValidatedImage (re-encoded before) is returned as it is."""
    if isinstance(upload, ValidatedImage):
        return upload
    decoded = _worker("decoder").submit(_reencode, upload)
    try:
        return decoded.result(timeout=DECODE_WAIT_SECONDS)
    except FutureTimeout:
        if not decoded.cancel():  # started meanwhile: let it finish
            return decoded.result()
        raise ValidationError(
            "The server is busy reading other uploads; %(name)s was not read. Try again in a "
            "minute.",
            code="busy",
            params={"name": upload.name},
        ) from None


def _read_header(uploaded_file) -> tuple[str, tuple[int, int]]:
    uploaded_file.seek(0)
    with Image.open(uploaded_file, formats=ALLOWED_FORMATS) as image:
        return image.format or "", image.size


def _reencode(upload: CheckedUpload) -> ValidatedImage:
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (the caller's to close)
    try:
        upload.file.seek(0)
        # Only the decoder the header named may run, on the very image that was checked.
        with Image.open(upload.file, formats=(upload.format,)) as image:
            if image.size != (upload.width, upload.height):
                raise damaged(upload.name)  # not the file that was checked
            if image.format == "JPEG":
                _draft(image, settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS)
            image.load()
            icc_profile = image.info.get("icc_profile")
            transparency = image.info.get("transparency")
            pixels = _fit(image, settings.NERSTUDIO_UPLOAD_MAX_SIDE)
            ImageOps.exif_transpose(pixels, in_place=True)  # upright, then the tag is dropped
            # Everything else the file carried (EXIF with GPS, XMP, comments, text chunks, bytes
            # after the image) is left behind: the savers write only what they are given.
            pixels.info = {}
            options = dict(ENCODE_OPTIONS[upload.format])
            if icc_profile:
                options["icc_profile"] = icc_profile  # colour, not personal data: kept
            if transparency is not None and pixels.mode in KEYED_TRANSPARENCY_MODES:
                options["transparency"] = transparency  # PNG's tRNS: part of the pixels
            pixels.save(out, upload.format, **options)
            width, height = pixels.size
            thumbnail = webp_thumbnail(pixels)
    except ValidationError:
        out.close()
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        out.close()
        raise too_many_pixels(upload.name, upload.format) from None
    except Exception:  # any decoder failure on untrusted bytes means the same thing
        out.close()
        raise damaged(upload.name) from None
    out.seek(0)
    digest = hashlib.file_digest(out, "sha256").hexdigest()
    return ValidatedImage(
        out, digest, upload.format, width, height, name=upload.name, thumbnail=thumbnail
    )


def webp_thumbnail(image: Image.Image) -> bytes:
    """A WebP at most NERSTUDIO_THUMBNAIL_SIDE on its long side; only the small copy is made.
    (Uploads and generated images alike.) Lanczos after a box reduction by the whole factor
    (reducing_gap 1): a third of plain Lanczos's CPU on a 1024 px image, the same to the eye at
    384 px; libwebp's method 2 costs about half of its default's CPU for a few percent more
    bytes."""
    side = settings.NERSTUDIO_THUMBNAIL_SIDE
    small = image.copy() if max(image.size) <= side else None
    if small is None:
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        source = image
        if image.mode not in ("RGB", "RGBA", "L", "LA"):  # palette or 1-bit: no Lanczos on those
            double = (min(image.width, size[0] * 2), min(image.height, size[1] * 2))
            source = image.resize(double, Image.Resampling.NEAREST).convert("RGBA")
        small = source.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)
    out = io.BytesIO()
    small.convert("RGBA" if "A" in small.mode or "transparency" in small.info else "RGB").save(
        out, "WEBP", quality=80, method=2
    )
    return out.getvalue()


def _draft(image: Image.Image, budget: int) -> None:
    """Have libjpeg decode at the largest 1/2ⁿ scale (n ≤ 3) within `budget` pixels."""
    width, height = image.size
    scale = 1
    while scale < 8 and (width // scale) * (height // scale) > budget:
        scale *= 2
    if scale > 1:
        image.draft(image.mode, (width // scale, height // scale))


def _replaced(old: Image.Image, new: Image.Image) -> Image.Image:
    old.close()  # frees its pixels
    return new


def _fit(image: Image.Image, side: int) -> Image.Image:
    """The image with its long side at most `side`. Resized a band of rows at a time, so beside
    the decoded pixels only the (smaller) result and one band are in memory; the caller's image
    is closed once it has been read."""
    width, height = image.size
    if max(width, height) <= side:
        return image
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    info, mode = dict(image.info), image.mode
    if mode in ("1", "P"):  # resize() would fall back to nearest-neighbour
        mode = "RGBA" if "transparency" in info else "L" if mode == "1" else "RGB"
        image = _replaced(image, image.convert(mode))
    resized = Image.new(mode, size)
    step = height / size[1]  # source rows per result row
    margin = math.ceil(3 * step) + 1  # Lanczos reaches 3 result pixels either side
    for top in range(0, size[1], RESIZE_BAND_ROWS):
        bottom = min(top + RESIZE_BAND_ROWS, size[1])
        first = max(0, math.floor(top * step) - margin)
        last = min(height, math.ceil(bottom * step) + margin)
        band = image.crop((0, first, width, last))
        if mode in ("LA", "RGBA"):  # premultiplied, or transparent pixels bleed their colour
            band = band.convert(mode[:-1] + "a")
        box = (0, top * step - first, width, bottom * step - first)  # where, inside the band
        part = band.resize((size[0], bottom - top), Image.Resampling.LANCZOS, box=box)
        resized.paste(part.convert(mode) if part.mode != mode else part, (0, top))
    image.close()  # frees the decoded pixels
    resized.info = info  # the EXIF orientation is still to be applied
    return resized


def _byte_size(uploaded_file) -> int:
    """The larger of the declared size and the file's real length, found by seeking (a file that
    under-reports its size is not read into memory to find out)."""
    declared = getattr(uploaded_file, "size", None) or 0
    try:
        uploaded_file.seek(0, os.SEEK_END)
        actual = uploaded_file.tell()
    except (AttributeError, OSError, ValueError):
        actual = 0
    return max(declared, actual)


def max_pixels(image_format: str | None = None) -> int:
    """The pixel limit for a format: JPEG up to NERSTUDIO_UPLOAD_MAX_PIXELS (decoded at reduced
    scale when large), PNG up to what is decoded at once, WebP lower (libwebp's memory); never
    above Pillow's own decompression-bomb threshold."""
    limit = settings.NERSTUDIO_UPLOAD_MAX_PIXELS
    if image_format == "PNG":
        limit = min(limit, settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS)
    elif image_format == "WEBP":
        limit = min(limit, settings.NERSTUDIO_UPLOAD_MAX_WEBP_PIXELS)
    return min(limit, Image.MAX_IMAGE_PIXELS) if Image.MAX_IMAGE_PIXELS else limit


def not_an_image(name: str) -> ValidationError:
    return ValidationError(
        "%(name)s is not a JPEG, PNG or WebP image.", code="format", params={"name": name}
    )


def damaged(name: str) -> ValidationError:
    return ValidationError(
        "%(name)s could not be read: the file is damaged or incomplete.",
        code="damaged",
        params={"name": name},
    )


def too_many_pixels(name: str, image_format: str | None) -> ValidationError:
    limit, general = max_pixels(image_format), max_pixels()
    if image_format and limit < general:  # a format with a lower limit than JPEG: say so
        label = {"PNG": "PNG", "WEBP": "WebP"}[image_format]
        return ValidationError(
            "%(name)s has more than %(limit)s, the most for a %(format)s image; save it smaller "
            "or as a JPEG (up to %(general)s).",
            code="too_many_pixels",
            params={
                "name": name,
                "limit": human_pixels(limit),
                "format": label,
                "general": human_pixels(general),
            },
        )
    return ValidationError(
        "%(name)s has more than %(limit)s.",
        code="too_many_pixels",
        params={"name": name, "limit": human_pixels(limit)},
    )


def human_pixels(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}".removesuffix(".0") + " megapixels"
    return f"{n:,} pixels"
