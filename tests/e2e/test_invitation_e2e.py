"""Invitations in a real browser: a person without an account opens the emailed link, creates
the account with a sign-in code, gives a name and is generating in the organization within two
minutes; an invitation to someone in another organization is refused at once, and reloading
after that refusal is not an error."""

import re
import time
import uuid

import pytest

from tests.e2e.flows import WAIT_MS, generate_from_photo, wait_until_done

INVITE_LINK = re.compile(r"(http://\S+/invite/\S+/)")
SCREENSHOTS = "/tmp/e2e-invitation-{}.png"


def _fresh_email(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:8]}@new.nerstudio.test"


MAKE_ADMIN = """
from accounts.models import User
from allauth.account.models import EmailAddress
from orgs.models import Membership, Organization
user = User.objects.create_user(email={email!r}, name="Ines Inviter")
EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
Membership.objects.create(org=Organization.objects.get(name="Demo Studio"), user=user, role="admin")
"""


@pytest.fixture(scope="module")
def inviter(e2e_server, browser):
    """A tab signed in (through the code flow) as a Demo Studio admin of this module's own:
    allauth allows three code requests per email a minute, and the other browser tests
    already sign in the demo admin."""
    email = _fresh_email("inviter")
    e2e_server.manage("shell", "-c", MAKE_ADMIN.format(email=email))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{e2e_server.url}/accounts/login/")
    page.fill("input[name=email]", email)
    before = e2e_server.log_size()
    page.get_by_role("button", name="Email me a sign-in code").click()
    page.fill("input[name=code]", e2e_server.sign_in_code(email, before))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{e2e_server.url}/dashboard/")
    yield page
    context.close()


def _invite(page, server, email: str, role: str = "member"):
    page.goto(f"{server.url}/members/")
    page.fill("input[name=email]", email)
    page.select_option("select[name=role]", role)
    before = server.log_size()
    page.get_by_role("button", name="Send invitation").click()
    return before


def _invitation_link(server, email: str, after: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.log_path.read_text(errors="replace")[after:]
        if f"To: {email}" in text and (match := INVITE_LINK.search(text)):
            return match.group(1)
        time.sleep(0.1)
    raise AssertionError(f"No invitation email to {email}:\n{server.log_text()}")


def _messages(page) -> list[str]:
    return [m.inner_text().strip() for m in page.locator("main .messages .message").all()]


def _sign_up_with_a_code(page, server, email: str, button: str) -> None:
    """From a page offering `button` (which posts `email` to sign-up), through the code page."""
    before = server.log_size()
    page.get_by_role("button", name=button).click()
    page.wait_for_url(f"{server.url}/accounts/confirm-email/")
    page.fill("input[name=code]", server.sign_in_code(email, before))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(re.compile(r"/welcome/\?next="))


def test_a_new_person_joins_from_the_link_and_generates_within_two_minutes(
    e2e_server, inviter, browser, tmp_path
):
    email = _fresh_email("nora")
    after = _invite(inviter, e2e_server, email)
    link = _invitation_link(e2e_server, email, after)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        started = time.monotonic()
        page.goto(link)
        assert page.get_by_role("heading", name="Join Demo Studio").is_visible()
        page.screenshot(path=SCREENSHOTS.format("link"), full_page=True)

        _sign_up_with_a_code(page, e2e_server, email, "Create my account")

        # The address bar is the name step's, not allauth's code page.
        assert page.evaluate("location.pathname") == "/welcome/"
        assert page.get_by_role("heading", name="Welcome to Demo Studio").is_visible()
        assert _messages(page) == []
        page.fill("input[name=display_name]", "Nora Lindqvist")
        page.get_by_role("button", name="Continue to Demo Studio").click()
        page.wait_for_url(f"{e2e_server.url}/generate/")
        joined_after = time.monotonic() - started

        assert _messages(page) == ["Welcome to Demo Studio, Nora! You joined as member."]
        assert "Nora Lindqvist" in page.locator("header .account-name").inner_text()

        generate_from_photo(page, e2e_server, tmp_path, "A blue ceramic mug on linen")
        wait_until_done(page)
        generating_after = time.monotonic() - started
        print(
            f"\ninvitee joined after {joined_after:.1f} s, "
            f"first images done after {generating_after:.1f} s"
        )
        assert generating_after < 120

        page.goto(link)  # the used link leads home, not to "already used"
        assert page.evaluate("location.pathname") == "/generate/"
    except Exception:
        page.screenshot(path=SCREENSHOTS.format("failure"), full_page=True)
        raise
    finally:
        context.close()


def test_someone_in_another_organization_is_invited_like_anyone_and_told_to_leave_it_first(
    e2e_server, inviter, browser
):
    email = _fresh_email("rival")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        # Someone founds their own organization through the ordinary sign-up.
        page.goto(f"{e2e_server.url}/accounts/signup/?email={email}")
        _sign_up_with_a_code(page, e2e_server, email, "Create account")
        page.fill("input[name=display_name]", "Rita Rival")
        page.fill("input[name=name]", f"Rival {email[6:14]}")
        page.get_by_role("button", name="Create organization").click()
        page.wait_for_url(f"{e2e_server.url}/dashboard/")

        # The inviter learns nothing about them: the answer is the one anyone gets.
        after = _invite(inviter, e2e_server, email, role="admin")
        inviter.locator("tr[id^=invitation-]", has_text=email).wait_for()
        assert inviter.evaluate("location.pathname") == "/members/"
        link = _invitation_link(e2e_server, email, after)

        response = page.goto(link)
        assert response is not None and response.status == 403  # a refusal, explained
        problem = page.locator(".message-error").inner_text()
        assert "leave it first to join Demo Studio" in problem
        assert page.get_by_role("button", name=re.compile(r"^Leave Rival")).is_visible()
        page.screenshot(path=SCREENSHOTS.format("leave-first"), full_page=True)

        response = page.reload()
        assert response is not None and response.status == 403
    except Exception:
        page.screenshot(path=SCREENSHOTS.format("failure"), full_page=True)
        raise
    finally:
        context.close()
