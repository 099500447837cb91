"""The page frame: the header's sections for members and admins, and links into the Django admin,
which must load as whole pages (htmx boosting would run the admin's scripts without its head:
"django is not defined")."""

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

STUDIO = ["/generate/", "/gallery/", "/library/", "/history/"]
ADMIN_PAGES = ["/dashboard/", "/members/", "/providers/", "/settings/", "/audit/", "/admin/"]


class Links(HTMLParser):
    """Every <a href> with the hx-boost value in force on it (its own, else its nearest
    ancestor's)."""

    VOID = {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.links: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        boost = attrs.get("hx-boost")
        if boost is None:
            boost = next((b for _, b in reversed(self.stack) if b is not None), None)
        if tag == "a" and attrs.get("href"):
            self.links.append((attrs["href"], boost))
        if tag not in self.VOID:
            self.stack.append((tag, attrs.get("hx-boost")))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break


def links(html: str) -> list[tuple[str, str | None]]:
    parser = Links()
    parser.feed(html)
    return parser.links


def header(html: str) -> str:
    return re.search(r"<header class=\"topbar\">.*?</header>", html, re.S).group(0)


def test_a_member_sees_the_four_studio_sections_and_no_manage_menu(member_client):
    html = header(member_client.get(reverse("generation:history")).content.decode())

    assert [href for href, _ in links(html)][1:] == [*STUDIO, "/leave/"]  # the account menu
    assert "Manage" not in html


def test_an_admin_has_the_admin_pages_inline_and_in_the_manage_menu(admin_client):
    html = header(admin_client.get(reverse("generation:history")).content.decode())

    hrefs = [href for href, _ in links(html)][1:]
    # inline (wide screens), then the manage menu, then the account menu
    assert hrefs == [*STUDIO, *ADMIN_PAGES, *ADMIN_PAGES, "/leave/"]
    assert "<summary>Manage</summary>" in html


def test_the_manage_menu_marks_the_current_admin_page(admin_client):
    html = header(admin_client.get(reverse("workspace:members")).content.decode())

    assert '<summary class="current">Manage</summary>' in html


@pytest.mark.parametrize(
    "page", ["providers:index", "workspace:dashboard", "generation:history", "workspace:members"]
)
def test_links_into_the_django_admin_are_never_boosted(admin_client, page):
    html = admin_client.get(reverse(page)).content.decode()

    into_admin = [(href, boost) for href, boost in links(html) if href.startswith("/admin/")]
    assert into_admin
    assert all(boost == "false" for _, boost in into_admin), into_admin
