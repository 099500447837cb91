"""Real image bytes for tests."""

import hashlib
import io

from PIL import Image, ImageDraw

from library.uploads import ValidatedImage


def png_bytes(colour="#c0392b", size=(320, 240), fmt="PNG") -> bytes:
    image = Image.new("RGB", size, "#f4efe6")
    ImageDraw.Draw(image).ellipse((40, 30, size[0] - 40, size[1] - 30), fill=colour)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def validated(colour="#c0392b", size=(320, 240)) -> ValidatedImage:
    data = png_bytes(colour, size)
    return ValidatedImage(data, hashlib.sha256(data).hexdigest(), "PNG", *size, name="p.png")
