"""The product's main path in a real browser: sign in, upload a product photo, generate three
images with the local providers and watch them arrive over the websocket without a reload."""

from tests.e2e.flows import WAIT_MS, generate_from_photo, wait_until_done

SCREENSHOT = "/tmp/e2e-detail.png"


def test_generated_images_appear_live_on_the_generation_page(e2e_server, admin_page, tmp_path):
    page = admin_page
    generate_from_photo(
        page, e2e_server, tmp_path, "A blue ceramic mug on a linen tablecloth, morning light"
    )
    # From here on the page must not navigate: images arrive over the websocket.
    images_at_start = page.evaluate(
        """() => {
            window.e2eSamePage = true;
            window.e2eWsMessages = 0;
            document.body.addEventListener("htmx:wsAfterMessage", () => window.e2eWsMessages++);
            return document.querySelectorAll("#generation-live .gen-card img").length;
        }"""
    )
    assert page.locator("#generation-live .gen-card").count() == 3

    page.wait_for_function(
        """() => {
            const imgs = document.querySelectorAll("#generation-live .gen-card img");
            return imgs.length === 3 && [...imgs].every(i => i.complete && i.naturalWidth > 0);
        }""",
        timeout=WAIT_MS,
    )
    wait_until_done(page)

    assert page.evaluate("window.e2eSamePage") is True, "the page reloaded or navigated"
    assert page.evaluate("window.e2eWsMessages") >= 1
    assert images_at_start < 3, "the images were there before the page could show them live"
    assert "Done: 3 of 3 images" in page.locator("#generation-status").inner_text()
    # What came while the page was open, besides the images: who wrote the prompts, the zip.
    assert "Prompts by" in page.locator("#generation-facts").text_content()
    assert page.get_by_role("button", name="Download all (zip)").is_visible()
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.reload()  # the state survives a reload, rendered from the database
    assert page.locator("#generation-live .gen-card img").count() == 3
