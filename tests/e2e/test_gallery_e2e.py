"""Issue 10's path in a real browser: find an image in the gallery, look at it in the lightbox
(keyboard), download it with a readable name, and vary it on the same product photo without
uploading anything. And an admin's download of every image, from Settings."""

import re
import zipfile

from tests.e2e.flows import WAIT_MS, generate_from_photo, wait_until_done

SCREENSHOT = "/tmp/e2e-lightbox.png"


def test_an_image_is_found_inspected_downloaded_and_varied_without_uploading(
    e2e_server, admin_page, tmp_path
):
    page = admin_page
    generate_from_photo(page, e2e_server, tmp_path, "A teal mug for the lightbox test")
    wait_until_done(page)

    page.goto(f"{e2e_server.url}/gallery/?q=teal+mug")
    items = page.locator("[data-lightbox-item]")
    assert items.count() == 3
    full = [items.nth(i).get_attribute("data-full") for i in range(3)]

    items.nth(0).locator("[data-lightbox-open]").click()
    lightbox = page.locator("#lightbox")
    page.wait_for_function("document.getElementById('lightbox').open")
    image = lightbox.locator(".lb-image")
    assert image.get_attribute("src") == full[0]
    page.wait_for_function(
        "document.querySelector('#lightbox .lb-image').naturalWidth > 0", timeout=WAIT_MS
    )
    page.screenshot(path=SCREENSHOT)
    page.keyboard.press("ArrowRight")
    assert image.get_attribute("src") == full[1]
    page.keyboard.press("ArrowLeft")
    assert image.get_attribute("src") == full[0]
    assert page.url.endswith("/gallery/?q=teal+mug"), "the lightbox must not navigate"

    # The download is an attachment named after the organization and the prompt.
    href = lightbox.locator(".lb-download").get_attribute("href")
    download = page.request.get(f"{e2e_server.url}{href}")
    assert re.fullmatch(
        r'attachment; filename="demo-studio-a-teal-mug-for-the-lightbox-test-[1-3]\.png"',
        download.headers["content-disposition"],
    )

    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('lightbox').open")

    # Vary: Generate opens with the image's own prompt and the same photo, picked from the
    # brand library; nothing is uploaded.
    items.nth(0).locator("[data-lightbox-open]").click()
    variant_prompt = lightbox.locator(".lb-prompt").inner_text()
    lightbox.locator(".lb-vary").click()
    page.wait_for_url(re.compile(r"/generate/\?"))
    assert page.locator("#id_prompt").input_value() == variant_prompt
    picked = page.locator("input[name=library_products]:checked")
    assert picked.count() == 1
    assert page.locator("#id_products").evaluate("input => input.files.length") == 0
    page.locator("#estimate button[type=submit]:not([disabled])").click()
    page.wait_for_url(re.compile(r"/generations/[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    wait_until_done(page)
    assert page.locator(".source-list .source").count() == 1  # the same one photo


def test_the_favourites_filter_is_a_checkbox_one_can_see_and_tick(e2e_server, admin_page):
    page = admin_page
    page.goto(f"{e2e_server.url}/gallery/")
    favourites = page.locator("input[name=favourites]")

    box = favourites.bounding_box()
    assert box["width"] >= 16 and box["height"] >= 16, box  # the filters' sizing made it a sliver
    favourites.check()
    page.wait_for_url(re.compile(r"[?&]favourites=on"), timeout=WAIT_MS)


def test_an_admin_downloads_every_image_of_the_organization_from_settings(
    e2e_server, admin_page, tmp_path
):
    page = admin_page
    generate_from_photo(page, e2e_server, tmp_path, "A green mug for the archive")
    wait_until_done(page)

    page.goto(f"{e2e_server.url}/settings/")
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name="Download all images (zip)").click()

    assert download.value.suggested_filename == "demo-studio-images.zip"
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
    assert sum(name.startswith("demo-studio-a-green-mug-for-the-archive-") for name in names) == 3
    assert page.url == f"{e2e_server.url}/settings/"  # the page stays as it was
