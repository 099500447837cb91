"""The local vision provider: a reference image analysed with Pillow (palette, light, contrast)
and described in words the local prompt writer can quote. Framework-free."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

from providers.adapters.base import VisionAdapter
from providers.adapters.errors import PermanentError
from providers.adapters.types import VisionResult

from .render import RGB, hex_to_rgb, rgb_to_hex

NAMED_COLOURS: dict[str, RGB] = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "charcoal": (55, 55, 60),
    "grey": (128, 128, 128),
    "taupe": (170, 140, 120),
    "cream": (240, 230, 205),
    "silver": (192, 192, 192),
    "red": (200, 30, 30),
    "burgundy": (120, 20, 40),
    "orange": (240, 130, 30),
    "yellow": (240, 210, 40),
    "gold": (200, 160, 50),
    "beige": (220, 200, 160),
    "brown": (120, 75, 40),
    "green": (50, 150, 60),
    "olive": (110, 120, 50),
    "teal": (20, 130, 130),
    "sky blue": (110, 180, 230),
    "blue": (40, 80, 200),
    "navy": (20, 30, 80),
    "purple": (120, 50, 160),
    "pink": (235, 130, 170),
}


EXIF_ORIENTATION = 0x0112


def colour_name(rgb: RGB) -> str:
    return min(
        NAMED_COLOURS,
        key=lambda n: sum((a - b) ** 2 for a, b in zip(rgb, NAMED_COLOURS[n], strict=True)),
    )


@dataclass(frozen=True)
class ImageAnalysis:
    width: int
    height: int
    palette: tuple[tuple[str, float], ...]  # (hex, share of pixels), most dominant first
    brightness: float  # 0 = black, 1 = white
    contrast: float  # luminance standard deviation, 0..1
    saturation: float  # mean HSV saturation, 0..1
    warmth: float  # mean red minus mean blue, -1..1

    @property
    def orientation(self) -> str:
        ratio = self.width / self.height
        return "square" if 0.95 <= ratio <= 1.05 else "landscape" if ratio > 1 else "portrait"


def analyse_image(data: bytes, colours: int = 5) -> ImageAnalysis:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if opened.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):
                width, height = height, width  # shown rotated by a quarter turn
            opened.draft("RGB", (256, 256))
            img = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise PermanentError("The image could not be read.", code="bad_image") from None
    img.thumbnail((160, 160))
    quantized = img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    flat: list[int] = list(quantized.getpalette() or [])
    counts: list[tuple[int, int]] = sorted(quantized.getcolors() or [], reverse=True)  # type: ignore[arg-type]
    total = sum(count for count, _ in counts)
    palette = tuple(
        (rgb_to_hex(flat[index * 3 : index * 3 + 3]), count / total)
        for count, index in counts
        if count / total >= 0.02
    )
    grey = ImageStat.Stat(img.convert("L"))
    hsv = ImageStat.Stat(img.convert("HSV"))
    rgb = ImageStat.Stat(img)
    return ImageAnalysis(
        width=width,
        height=height,
        palette=palette,
        brightness=grey.mean[0] / 255,
        contrast=min(1.0, grey.stddev[0] / 127.5),
        saturation=hsv.mean[1] / 255,
        warmth=(rgb.mean[0] - rgb.mean[2]) / 255,
    )


def describe_analysis(a: ImageAnalysis) -> str:
    """Look first: the local prompt writer quotes the first sentence of a reference."""
    tone = "Bright" if a.brightness > 0.65 else "Dark" if a.brightness < 0.35 else "Mid-toned"
    contrast = "high" if a.contrast > 0.3 else "low" if a.contrast < 0.12 else "moderate"
    vividness = "vivid" if a.saturation > 0.5 else "muted" if a.saturation < 0.2 else "balanced"
    warmth = "warm" if a.warmth > 0.08 else "cool" if a.warmth < -0.08 else "neutral"
    colours = ", ".join(
        f"{colour_name(hex_to_rgb(hex_) or (0, 0, 0))} {hex_} ({share:.0%})"
        for hex_, share in a.palette
    )
    return (
        f"{tone} and {contrast}-contrast, with {vividness}, {warmth} colours. "
        f"{a.orientation.capitalize()} format, {a.width}x{a.height} px. "
        f"Dominant colours: {colours}."
    )


class LocalVisionAdapter(VisionAdapter):
    slug = "local-vision"
    label = "Local image analysis (offline)"
    default_model = "local-pillow"

    def describe(self, image: bytes, *, timeout: float | None = None) -> VisionResult:
        analysis = analyse_image(image)
        return VisionResult(describe_analysis(analysis), tuple(h for h, _ in analysis.palette))

    def _probe(self) -> str:
        return "Local image analysis is built in and ready."
