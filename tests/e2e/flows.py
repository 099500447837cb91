"""Steps the browser tests share."""

import re

WAIT_MS = 60_000


def product_photo(path) -> str:
    """A simple packshot: a mug on a light backdrop."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), "#f4efe6")
    draw = ImageDraw.Draw(image)
    draw.ellipse((170, 380, 470, 430), fill="#d8d0c4")  # shadow
    draw.rounded_rectangle((220, 150, 420, 400), radius=28, fill="#2e86de")  # body
    draw.arc((380, 200, 480, 330), start=270, end=90, fill="#2e86de", width=22)  # handle
    image.save(path, "PNG")
    return str(path)


def generate_from_photo(page, server, tmp_path, prompt="A blue ceramic mug on linen") -> None:
    """Upload a product photo on Generate and start three images; returns on the new
    generation's page."""
    page.goto(f"{server.url}/generate/")
    page.set_input_files("#id_products", product_photo(tmp_path / "mug.png"))
    page.fill("#id_prompt", prompt)
    page.fill("#id_count", "3")
    page.locator("#estimate button[type=submit]:not([disabled])").click()
    page.wait_for_url(re.compile(r"/generations/[0-9a-f-]{36}/$"), timeout=WAIT_MS)


def wait_until_done(page) -> None:
    """On a generation's page: until its status line says done (the live updates brought it)."""
    page.wait_for_selector('#generation-status[data-status="done"]', timeout=WAIT_MS)
