"""On a phone (390 × 844): no page scrolls sideways, and the Generate button is on screen from
the start (it stays at the bottom while the fields scroll) and works from there."""

import re

from tests.e2e.flows import WAIT_MS, product_photo

PHONE = {"width": 390, "height": 844}
PAGES = [
    "/generate/",
    "/gallery/",
    "/collections/",
    "/library/",
    "/history/",
    "/dashboard/",
    "/members/",
    "/providers/",
    "/settings/",
    "/audit/",
]
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def overflow(page, url: str) -> int:
    page.goto(url)
    page.wait_for_load_state("load")
    return page.evaluate(OVERFLOW)


def test_the_sign_in_pages_fit_a_phone(e2e_server, browser):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        for url in ("/accounts/login/", "/accounts/signup/"):
            assert overflow(page, e2e_server.url + url) <= 0, url
    finally:
        context.close()


def test_no_page_scrolls_sideways_and_generate_is_on_screen(e2e_server, admin_page, tmp_path):
    page = admin_page
    page.set_viewport_size(PHONE)
    wide = {url: overflow(page, e2e_server.url + url) for url in PAGES}
    assert {url: px for url, px in wide.items() if px > 0} == {}

    page.goto(f"{e2e_server.url}/generate/")
    button = page.locator("#estimate button[type=submit]")
    box = button.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    on_top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('.generate-button') !== null",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert on_top, "something covers the Generate button"

    # Fill the form from the top and generate from the button at the bottom of the screen.
    page.set_input_files("#id_products", product_photo(tmp_path / "mug.png"))
    page.fill("#id_prompt", "A blue ceramic mug on linen")
    page.fill("#id_count", "1")
    page.locator("#estimate button[type=submit]:not([disabled])").click()
    page.wait_for_url(re.compile(r"/generations/[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    assert page.evaluate(OVERFLOW) <= 0, "the generation page"

    image = page.locator("#generation-live .gen-card a.gen-frame").first
    image.wait_for(timeout=WAIT_MS)
    assert overflow(page, e2e_server.url + image.get_attribute("href")) <= 0, "an image page"
