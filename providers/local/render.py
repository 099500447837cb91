"""The local image provider's renderer: a product shot drawn with Pillow, no model involved.

Art direction in code: a gradient in the reference palette, bokeh and grain, the product photos
with soft shadows, framed and graded after the shot and light a prompt asks for, and a caption.
Framework-free.
"""

from __future__ import annotations

import colorsys
import io
import math
import random
import re
from collections.abc import Sequence

from PIL import (
    Image,
    ImageDraw,
    ImageEnhance,
    ImageFilter,
    ImageFont,
    ImageOps,
    UnidentifiedImageError,
)

from providers.adapters.errors import GenerationFailed

RGB = tuple[int, int, int]

QUALITY_SIDES = {"draft": 512, "standard": 768}


def size_for(aspect_ratio: str | None, max_side: int = 768) -> tuple[int, int]:
    """Size for "W:H" with the long side at `max_side`; unknown ratios and "auto" are square."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*", aspect_ratio or "")
    w, h = (float(match.group(1)), float(match.group(2))) if match else (1.0, 1.0)
    if w <= 0 or h <= 0:
        w = h = 1.0
    scale = max_side / max(w, h)
    return max(64, round(w * scale / 8) * 8), max(64, round(h * scale / 8) * 8)


def hex_to_rgb(value: str) -> RGB | None:
    match = re.fullmatch(r"#?([0-9a-fA-F]{6})", value.strip())
    if not match:
        return None
    n = int(match.group(1), 16)
    return (n >> 16) & 255, (n >> 8) & 255, n & 255


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _luminance(c: RGB) -> float:
    return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255


def _palette(reference_palette: Sequence[str] | None, rng: random.Random) -> list[RGB]:
    """The reference colours, or a harmonious pair picked from the prompt when there are none."""
    colours = [c for c in (hex_to_rgb(v) for v in reference_palette or ()) if c]
    if not colours:
        hue = rng.random()
        for dh, s, v in ((0.0, 0.35, 0.92), (0.07, 0.55, 0.62), (0.5, 0.4, 0.85)):
            r, g, b = colorsys.hsv_to_rgb((hue + dh) % 1, s, v)
            colours.append((round(r * 255), round(g * 255), round(b * 255)))
    if len(colours) == 1:
        colours.append(_mix(colours[0], (0, 0, 0), 0.35))
    return colours


def _gradient(size: tuple[int, int], start: RGB, end: RGB, angle: float) -> Image.Image:
    """A linear gradient at any angle, rendered small (it is smooth) and scaled up."""
    sw, sh = max(1, size[0] // 4), max(1, size[1] // 4)
    side = math.ceil(math.hypot(sw, sh))  # the crop's corners stay inside the rotated square
    mask = Image.linear_gradient("L").resize((side, side))
    mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC)
    left, top = (side - sw) // 2, (side - sh) // 2
    mask = mask.crop((left, top, left + sw, top + sh)).resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, end), Image.new("RGB", size, start), mask)


def _bokeh(size: tuple[int, int], colours: list[RGB], rng: random.Random) -> Image.Image:
    """Soft out-of-focus circles: texture that varies with prompt and seed."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    w, h = size
    for _ in range(rng.randint(6, 12)):
        r = rng.uniform(0.03, 0.12) * max(w, h)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        colour = _mix(rng.choice(colours), (255, 255, 255), rng.uniform(0.3, 0.7))
        circle = Image.new("RGBA", size, (0, 0, 0, 0))
        ImageDraw.Draw(circle).ellipse(
            (x - r, y - r, x + r, y + r), fill=(*colour, rng.randint(30, 70))
        )
        layer.alpha_composite(circle)  # drawn one by one so overlaps blend instead of cutting holes
    return layer.filter(ImageFilter.GaussianBlur(max(w, h) / 60))


def _grain(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """Fine film grain from a seeded tile (Pillow's own noise is not seedable)."""
    tile = Image.frombytes("L", (64, 64), rng.randbytes(64 * 64))
    grain = Image.new("L", size)
    for x in range(0, size[0], 64):
        for y in range(0, size[1], 64):
            grain.paste(tile, (x, y))
    return grain


def _load_product(data: bytes, box: tuple[int, int]) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", box)  # cheap downscale for large JPEGs
            img = ImageOps.exif_transpose(opened).convert("RGBA")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise GenerationFailed("A product image could not be read.", code="bad_image") from None
    img = ImageOps.contain(img, box, Image.Resampling.LANCZOS)
    if img.getchannel("A").getextrema()[0] == 255:
        # An opaque photo: round its corners so it sits on the backdrop like a print.
        mask = Image.new("L", img.size, 0)
        radius = min(img.size) // 12
        ImageDraw.Draw(mask).rounded_rectangle((0, 0, *img.size), radius=radius, fill=255)
        img.putalpha(mask)
    return img


def _shadow(product: Image.Image, blur: float) -> Image.Image:
    alpha = product.getchannel("A").point(lambda a: a * 0.45)
    pad = round(blur * 3)
    shadow = Image.new("RGBA", (product.width + 2 * pad, product.height + 2 * pad), (0, 0, 0, 0))
    dark = Image.new("RGBA", product.size, (20, 16, 12, 255))
    dark.putalpha(alpha)
    shadow.paste(dark, (pad, pad))
    return shadow.filter(ImageFilter.GaussianBlur(blur))


def _direction(prompt: str) -> str:
    """The part of a variant that differs from its siblings: what follows the shared brief."""
    sentences = [s for s in re.split(r"(?<=\.)\s+", prompt) if s.strip()]
    return " ".join(sentences[1:]) if len(sentences) > 1 else prompt


def _caption(prompt: str) -> str:
    words = re.findall(r"[\w'-]+", _direction(prompt))
    text = " ".join(words[:8])
    return text[:60].upper()


# Framing and grading follow the shot and light a prompt asks for, so variants look different.
FRAMING = (  # (words, scale, horizontal centre, vertical centre)
    (("close-up", "detail", "macro"), 1.3, 0.5, 0.5),
    (("wide", "negative space"), 0.6, 0.38, 0.55),
    (("low-angle", "monumental"), 1.1, 0.5, 0.6),
    (("flat lay", "top-down", "overhead"), 0.8, 0.5, 0.5),
    (("three-quarter", "from above"), 0.9, 0.56, 0.48),
)
GRADES = (  # (words, tint colour, strength, brightness)
    (("golden-hour", "warm", "sunset"), (255, 170, 60), 0.16, 1.03),
    (("moody", "low-key", "dusk", "night"), (20, 24, 48), 0.22, 0.82),
    (("high-key", "bright", "morning"), (255, 255, 255), 0.14, 1.08),
    (("cool", "blue hour", "icy"), (90, 150, 230), 0.14, 1.0),
    (("dappled", "natural light"), (170, 210, 140), 0.08, 1.0),
)


def _framing(prompt: str, rng: random.Random) -> tuple[float, float, float]:
    text = _direction(prompt).lower()
    scale, cx, cy = next(
        (frame[1:] for frame in FRAMING if any(word in text for word in frame[0])), (1, 0.5, 0.5)
    )
    return scale, cx + rng.uniform(-0.03, 0.03), cy + rng.uniform(-0.02, 0.02)


def _grade(canvas: Image.Image, prompt: str) -> Image.Image:
    text = _direction(prompt).lower()
    for words, tint, strength, brightness in GRADES:
        if any(word in text for word in words):
            tinted = Image.blend(canvas, Image.new("RGBA", canvas.size, (*tint, 255)), strength)
            return ImageEnhance.Brightness(tinted).enhance(brightness)
    return canvas


def render_image(
    prompt: str,
    product_images: Sequence[bytes],
    reference_palette: Sequence[str] | None = None,
    aspect_ratio: str | None = "1:1",
    seed: int = 0,
    *,
    max_side: int = 768,
) -> bytes:
    """A PNG: palette gradient, bokeh and grain, the products with soft shadows, a caption.

    Deterministic for the same inputs, so a retried job produces the same picture.
    """
    rng = random.Random(f"{seed}:{prompt}")
    size = size_for(aspect_ratio, max_side)
    w, h = size
    colours = _palette(reference_palette, rng)
    light, deep = sorted(colours[:2], key=_luminance, reverse=True)
    light = _mix(light, (255, 255, 255), 0.25)

    canvas = _gradient(size, light, deep, rng.uniform(0, 360)).convert("RGBA")
    # A soft light behind the subject.
    glow = Image.radial_gradient("L").resize(size).point(lambda v: round((255 - v) * 0.35))
    highlight = Image.new("RGBA", size, (*_mix(light, (255, 255, 255), 0.5), 255))
    canvas = Image.composite(highlight, canvas, glow)
    canvas.alpha_composite(_bokeh(size, colours, rng))

    products = list(product_images)[:4]
    scale, centre_x, centre_y = _framing(prompt, rng)
    if products:
        gap = w * 0.03
        slot_w = (w * 0.72 * scale - gap * (len(products) - 1)) / len(products)
        loaded = [_load_product(p, (round(slot_w), round(h * 0.6 * scale))) for p in products]
        x = w * centre_x - (sum(p.width for p in loaded) + gap * (len(loaded) - 1)) / 2
        for product in loaded:
            top = round(h * centre_y - product.height / 2)
            shadow = _shadow(product, max(w, h) / 45)
            pad = (shadow.width - product.width) // 2
            canvas.alpha_composite(shadow, (round(x) - pad, top - pad + round(h * 0.025)))
            canvas.alpha_composite(product, (round(x), top))
            x += product.width + gap
    else:
        # No product yet: an empty podium keeps the composition balanced.
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        rx, ry, cy, drop = w * 0.22, h * 0.05, h * 0.62, h * 0.02
        draw.ellipse((w / 2 - rx, cy - ry + drop, w / 2 + rx, cy + ry + drop), fill=(0, 0, 0, 50))
        draw.ellipse(
            (w / 2 - rx, cy - ry, w / 2 + rx, cy + ry),
            fill=(*_mix(light, (255, 255, 255), 0.4), 255),
        )
        canvas.alpha_composite(layer.filter(ImageFilter.GaussianBlur(1)))

    canvas = _grade(canvas, prompt)
    grain = _grain(size, rng).point(lambda v: v // 24)  # at most ~4% lighter
    canvas = Image.composite(Image.new("RGBA", size, (255, 255, 255, 255)), canvas, grain)

    caption = _caption(prompt)
    if caption:
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        font = ImageFont.load_default(size=max(11, min(w, h) // 40))
        ink = (255, 255, 255) if _luminance(deep) < 0.5 else (30, 30, 30)
        margin = round(min(w, h) * 0.05)
        ImageDraw.Draw(layer).text(
            (margin, h - margin), caption, font=font, fill=(*ink, 170), anchor="ls"
        )
        canvas.alpha_composite(layer)

    out = io.BytesIO()
    # Grain compresses poorly whatever the level; the fastest level costs little in size.
    canvas.convert("RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()
