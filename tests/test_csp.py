"""The Content Security Policy (SECURE_CSP): every page is sent with it, scripts and styles come
from our static files (an inline one carries the request's nonce), and no template relies on what
the policy refuses: inline handlers, style attributes, <style> or <script> blocks without a nonce.
The browser suite (tests/e2e) fails on any violation a real page reports."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from nerstudio.settings.base import content_security_policy
from tests.factories import ImageModelFactory, finished_image

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


class Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {
        directive.split()[0]: directive.split()[1:]
        for directive in (part.strip() for part in header.split(";"))
        if directive
    }


def assert_strict(response) -> str:
    """The page's policy is the strict one; returns its nonce."""
    directives = policy(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"][0] == "'self'"
    for directive in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in directives[directive]
        assert "'unsafe-eval'" not in directives[directive]
    nonces = [v for v in directives["script-src"] if v.startswith("'nonce-")]
    assert len(nonces) == 1, directives["script-src"]
    return nonces[0][len("'nonce-") : -1]


def assert_nothing_inline_without(nonce: str, html: str) -> None:
    parser = Elements()
    parser.feed(html)
    for tag, attrs in parser.tags:
        handlers = [name for name in attrs if name.startswith(("on", "hx-on"))]
        assert not handlers, f"<{tag} {handlers}>: inline handlers run only with 'unsafe-inline'"
        assert "style" not in attrs, f"<{tag} style=…>: style attributes need 'unsafe-inline'"
        if (tag == "script" and "src" not in attrs) or tag == "style":
            assert attrs.get("nonce") == nonce, f"an inline <{tag}> without the page's nonce"


@pytest.fixture
def pages(admin_client, admin_membership, media_root):
    image = finished_image(admin_membership)
    ImageModelFactory(org=admin_membership.org, is_default=True)
    return [
        reverse("workspace:dashboard"),
        reverse("workspace:dashboard") + "?days=7",
        reverse("workspace:members"),
        reverse("generation:generate"),
        reverse("generation:detail", args=[image.generation.public_id]),
        reverse("gallery:index"),
        reverse("gallery:image", args=[image.public_id]),
        reverse("admin:index"),
    ]


def test_a_page_is_sent_with_a_strict_policy_and_a_nonce(admin_client, admin_membership):
    response = admin_client.get(reverse("workspace:dashboard"))
    assert response.status_code == 200
    nonce = assert_strict(response)
    assert f'nonce="{nonce}"' in response.content.decode()  # htmx's <script>


def test_each_response_has_its_own_nonce(admin_client, admin_membership):
    first = assert_strict(admin_client.get(reverse("workspace:dashboard")))
    second = assert_strict(admin_client.get(reverse("workspace:dashboard")))
    assert first != second


def test_the_sign_in_page_has_the_policy_too(client):
    response = client.get(reverse("account_login"))
    assert response.status_code == 200
    assert_nothing_inline_without(assert_strict(response), response.content.decode())


def test_pages_have_no_inline_script_or_style_without_the_nonce(admin_client, pages):
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_nothing_inline_without(assert_strict(response), response.content.decode())


INLINE = [
    (re.compile(r"<style\b(?![^>]*\bnonce=)"), "a <style> block without a nonce"),
    (re.compile(r"\sstyle=[\"']"), "a style attribute"),
    (re.compile(r"<script\b(?![^>]*\b(?:src|nonce)=)"), "an inline <script> without a nonce"),
    (re.compile(r"\s(?:on[a-z]+|hx-on[:-][\w:-]*)=[\"']"), "an inline event handler"),
    (re.compile(r"\bjs:|javascript:"), "code in an attribute"),
]


def test_no_template_relies_on_what_the_policy_refuses():
    """Templates a test page may not reach (errors, emails' HTML, admin screens) too. SVG
    presentation attributes (fill, stroke) are not style attributes and stay allowed."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for pattern, what in INLINE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(TEMPLATES)}:{line}: {what}")
    assert not found, "\n".join(found)


def test_htmx_is_configured_to_need_neither_eval_nor_an_injected_style(admin_client, admin):
    html = admin_client.get(reverse("workspace:dashboard")).content.decode()
    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", html).group(1)
    assert '"allowEval":false' in config
    assert '"includeIndicatorStyles":false' in config
    css = (Path(settings.BASE_DIR) / "static/css/app.css").read_text()
    assert ".htmx-indicator" in css  # the indicator CSS htmx no longer injects


def test_images_may_come_from_the_media_bucket_and_sockets_from_this_host():
    policy = content_security_policy(
        public_url="https://studio.example.com",
        media_endpoint="https://acct.r2.cloudflarestorage.com/ignored/path",
        google=False,
    )
    assert "https://acct.r2.cloudflarestorage.com" in policy["img-src"]
    assert {"data:", "blob:"} <= set(policy["img-src"])
    assert "wss://studio.example.com" in policy["connect-src"]
    assert policy["form-action"] == ["'self'"]


def test_without_a_bucket_images_come_from_this_site_only():
    policy = content_security_policy(
        public_url="http://127.0.0.1:8000", media_endpoint="", google=False
    )
    assert [v for v in policy["img-src"] if v.startswith("http")] == [
        "https://*.googleusercontent.com"  # avatars of people signed in with Google
    ]
    assert "ws://127.0.0.1:8000" in policy["connect-src"]


def test_google_sign_in_may_leave_for_google():
    """Chromium applies form-action to the redirect after a POST: allauth's Google sign-in starts
    with a POST that redirects to accounts.google.com."""
    policy = content_security_policy(public_url="https://s.example", media_endpoint="", google=True)
    assert policy["form-action"] == ["'self'", "https://accounts.google.com"]
