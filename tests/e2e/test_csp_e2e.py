"""The browser suite's Content Security Policy watch (conftest.WatchedBrowser) notices what the
policy refuses, so that the other browser tests passing means their pages raised no violation."""


def test_the_watch_notices_an_inline_style_and_an_inline_script(e2e_server, browser):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{e2e_server.url}/accounts/login/")
        page.evaluate("document.body.setAttribute('style', 'color: red')")
        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.e2eInline = true";
                document.head.appendChild(script);
            }"""
        )
        assert page.evaluate("window.e2eInline") is None  # refused
        violations = browser.take_violations()  # taken: they do not fail this test
        assert any("style-src" in v for v in violations), violations
        assert any("script-src" in v for v in violations), violations
    finally:
        context.close()
