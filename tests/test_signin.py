"""Sign-in through allauth's real views.

Google: only Google's token endpoint is faked, at the HTTP seam (`responses`); allauth builds the
authorization redirect, checks `state`, exchanges the code, decodes the id_token and signs the user
in exactly as in production. Development sign-in: allauth's login by code, with the code read from
the outbox.
"""

import re
import time
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import responses
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.urls import reverse

from accounts.models import User
from orgs.models import Invitation, Membership
from tests.factories import InvitationFactory

pytestmark = pytest.mark.django_db

CLIENT_ID = "test-client-id.apps.googleusercontent.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"


def google_id_token(*, sub, email, email_verified=True, name="Grace Hopper", picture=None):
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 600,
        "sub": sub,
        "email": email,
        "email_verified": email_verified,
        "name": name,
        "picture": picture or f"https://lh3.googleusercontent.com/a/{sub}=s96-c",
    }
    return jwt.encode(claims, "not-googles-key", algorithm="HS256")


def sign_in_with_google(client, **claims):
    """Run the whole OAuth round trip; return the final response after following redirects."""
    start = client.post(reverse("google_login"))
    assert start.status_code == 302
    authorize = urlparse(start["Location"])
    assert authorize.netloc == "accounts.google.com"
    query = parse_qs(authorize.query)
    assert query["client_id"] == [CLIENT_ID]
    state = query["state"][0]

    with responses.RequestsMock() as google:
        token_call = google.post(
            TOKEN_URL,
            json={
                "access_token": "ya29.fake-access-token",
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "openid email profile",
                "id_token": google_id_token(**claims),
            },
        )
        response = client.get(
            reverse("google_callback"), {"code": "4/fake-code", "state": state}, follow=True
        )
        assert token_call.call_count == 1
    return response


def landed_on(response):
    return (
        response.redirect_chain[-1][0] if response.redirect_chain else response.request["PATH_INFO"]
    )


# --- Google ------------------------------------------------------------------------------------


def test_a_new_google_user_gets_a_profile_and_names_their_organization(client):
    response = sign_in_with_google(
        client,
        sub="1001",
        email="grace@navy.test",
        name="Grace Hopper",
        picture="https://lh3.googleusercontent.com/a/grace",
    )

    user = User.objects.get(email="grace@navy.test")
    assert (user.name, user.avatar_url) == (
        "Grace Hopper",
        "https://lh3.googleusercontent.com/a/grace",
    )
    assert not user.has_usable_password()
    assert SocialAccount.objects.get(user=user, provider="google").uid == "1001"
    assert EmailAddress.objects.filter(user=user, email="grace@navy.test", verified=True).exists()
    assert landed_on(response) == f"{reverse('workspace:onboarding')}?next=%2F"
    assert response.wsgi_request.user == user
    assert not Membership.objects.filter(user=user).exists()
    assert 'value="Grace Hopper"' in response.content.decode()  # asked once, prefilled

    response = client.post(
        reverse("workspace:onboarding"),
        {"display_name": "Grace B. Hopper", "name": "Navy Labs"},
        follow=True,
    )

    membership = Membership.objects.select_related("org").get(user=user)
    assert (membership.org.name, membership.role) == ("Navy Labs", Membership.Role.ADMIN)
    user.refresh_from_db()
    assert user.name == "Grace B. Hopper"
    assert landed_on(response) == reverse("workspace:dashboard")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("role", "home"),
    [
        (Membership.Role.ADMIN, "workspace:dashboard"),
        (Membership.Role.MEMBER, "generation:generate"),
    ],
)
def test_a_google_user_with_a_pending_invitation_accepts_it_on_the_welcome_page(
    client, org, role, home
):
    """Without the link opened, signing in joins nothing: any tenant can invite any address."""
    invitation = InvitationFactory(org=org, email="Linus@Acme.test", role=role)

    response = sign_in_with_google(client, sub="2002", email="linus@acme.test", name="Linus")

    user = User.objects.get(email="linus@acme.test")
    assert not Membership.objects.filter(user=user).exists()
    assert landed_on(response) == f"{reverse('workspace:onboarding')}?next=%2F"
    accept = reverse("workspace:accept-invitation", args=[invitation.public_id])
    assert f'action="{accept}"' in response.content.decode()

    response = client.post(accept, follow=True)

    membership = Membership.objects.get(user=user)
    assert (membership.org, membership.role) == (org, role)
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None and invitation.accepted_by == user
    assert invitation.status == Invitation.Status.ACCEPTED
    assert landed_on(response) == reverse("workspace:onboarding")
    assert [str(m) for m in response.context["messages"]] == []  # said once, after the name

    response = client.post(landed_on(response), {"display_name": "Linus", "next": "/"}, follow=True)

    assert landed_on(response) == reverse(home)
    assert [str(m) for m in response.context["messages"]] == [
        f"Welcome to Acme Creative, Linus! You joined as {role.label.lower()}."
    ]


def test_an_unverified_google_email_does_not_join_an_invited_organization(client, org):
    invitation = InvitationFactory(org=org, email="mallory@acme.test", role="admin")

    response = sign_in_with_google(
        client, sub="3003", email="mallory@acme.test", email_verified=False
    )

    user = User.objects.get(email="mallory@acme.test")
    assert not Membership.objects.filter(user=user).exists()
    assert not EmailAddress.objects.filter(user=user, verified=True).exists()
    invitation.refresh_from_db()
    assert invitation.is_pending
    assert landed_on(response).startswith(reverse("workspace:onboarding"))


def test_an_unverified_google_email_does_not_reach_an_existing_account(client, member):
    sign_in_with_google(client, sub="3004", email="max@acme.test", email_verified=False)

    assert not client.get("/").wsgi_request.user.is_authenticated
    assert User.objects.filter(email__iexact="max@acme.test").count() == 1
    assert not SocialAccount.objects.filter(uid="3004").exists()


def test_a_returning_google_user_is_not_duplicated(client, org):
    sign_in_with_google(client, sub="4004", email="ada@acme.test", name="Ada")
    user = User.objects.get(email="ada@acme.test")
    Membership.objects.create(org=org, user=user, role=Membership.Role.MEMBER)
    client.logout()

    response = sign_in_with_google(client, sub="4004", email="ada@acme.test", name="Ada")

    assert User.objects.filter(email__iexact="ada@acme.test").count() == 1
    assert SocialAccount.objects.filter(provider="google", uid="4004").count() == 1
    assert response.wsgi_request.user == user
    assert landed_on(response) == reverse("generation:generate")


def test_a_google_sign_in_reaches_an_existing_account_with_the_same_email(client, member):
    """E.g. the seeded demo user, or someone who first used the development sign-in."""
    response = sign_in_with_google(client, sub="5005", email="MAX@acme.test", name="Max")

    assert User.objects.filter(email__iexact="max@acme.test").count() == 1
    assert response.wsgi_request.user == member
    assert landed_on(response) == reverse("generation:generate")
    assert SocialAccount.objects.get(user=member).uid == "5005"  # linked for next time


def test_a_forged_state_is_refused(client):
    client.post(reverse("google_login"))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as google:
        token_call = google.post(TOKEN_URL, json={"access_token": "x"})
        response = client.get(reverse("google_callback"), {"code": "c", "state": "forged"})
        assert token_call.call_count == 0
    assert not response.wsgi_request.user.is_authenticated
    assert not User.objects.exists()


# --- Development sign-in (allauth login by code) ---------------------------------------------


def emailed_code():
    assert mail.outbox, "no email was sent"
    match = re.search(
        r"^\s*([A-Z0-9][A-Z0-9-]{4,}[A-Z0-9])\s*$", mail.outbox[-1].body, re.MULTILINE
    )
    assert match, mail.outbox[-1].body
    return match.group(1)


def test_an_existing_user_signs_in_with_an_emailed_code(client, admin):
    response = client.post(reverse("account_request_login_code"), {"email": "ada@acme.test"})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_confirm_login_code")
    assert mail.outbox[-1].to == ["ada@acme.test"]
    assert not client.get("/").wsgi_request.user.is_authenticated

    response = client.post(
        reverse("account_confirm_login_code"), {"code": emailed_code()}, follow=True
    )

    assert response.wsgi_request.user == admin
    assert landed_on(response) == reverse("workspace:dashboard")


def test_a_wrong_code_does_not_sign_in(client, admin):
    client.post(reverse("account_request_login_code"), {"email": "ada@acme.test"})
    code = emailed_code()
    wrong = "A" * 6 if code != "A" * 6 else "B" * 6

    response = client.post(reverse("account_confirm_login_code"), {"code": wrong})

    assert not response.wsgi_request.user.is_authenticated


def test_a_new_email_signs_up_without_a_password_and_names_an_organization(client):
    response = client.post(reverse("account_signup"), {"email": "newbie@new.test"}, follow=True)
    assert landed_on(response) == reverse("account_email_verification_sent")
    user = User.objects.get(email="newbie@new.test")
    assert not user.has_usable_password()
    assert mail.outbox[-1].to == ["newbie@new.test"]

    response = client.post(
        reverse("account_email_verification_sent"), {"code": emailed_code()}, follow=True
    )

    assert response.wsgi_request.user == user
    assert EmailAddress.objects.get(user=user).verified
    assert landed_on(response) == f"{reverse('workspace:onboarding')}?next=%2F"
    page = response.content.decode()
    assert 'name="display_name"' in page and 'name="name"' in page

    response = client.post(
        reverse("workspace:onboarding"),
        {"display_name": "Newbie Person", "name": "Newbie Co", "next": "/"},
        follow=True,
    )

    user.refresh_from_db()
    assert user.name == "Newbie Person"
    assert Membership.objects.get(user=user).org.name == "Newbie Co"
    assert landed_on(response) == reverse("workspace:dashboard")


def test_a_code_signup_with_a_pending_invitation_is_offered_it_on_the_welcome_page(client, org):
    invitation = InvitationFactory(org=org, email="invited@acme.test", role="member")
    client.post(reverse("account_signup"), {"email": "invited@acme.test"})

    response = client.post(
        reverse("account_email_verification_sent"), {"code": emailed_code()}, follow=True
    )

    user = User.objects.get(email="invited@acme.test")
    assert not Membership.objects.filter(user=user).exists()
    assert landed_on(response) == f"{reverse('workspace:onboarding')}?next=%2F"
    client.post(reverse("workspace:accept-invitation", args=[invitation.public_id]))
    assert Membership.objects.get(user=user).org == org
    response = client.post(
        reverse("workspace:onboarding"), {"display_name": "Ivy", "next": "/"}, follow=True
    )
    assert landed_on(response) == reverse("generation:generate")


# --- The sign-in page --------------------------------------------------------------------------


def test_the_sign_in_page_offers_google_and_the_development_sign_in(client):
    page = client.get(reverse("account_login")).content.decode()

    assert "Continue with Google" in page
    assert f'action="{reverse("google_login")}' in page
    assert "Development only" in page
    assert f'action="{reverse("account_request_login_code")}"' in page


def test_the_sign_in_page_hides_the_development_sign_in_when_it_is_off(client, settings):
    settings.NERSTUDIO_DEV_SIGNIN = False

    page = client.get(reverse("account_login")).content.decode()

    assert "Continue with Google" in page
    assert "Development only" not in page


def test_signing_in_shows_no_routine_allauth_message(client, admin):
    client.post(reverse("account_request_login_code"), {"email": "ada@acme.test"})
    response = client.post(
        reverse("account_confirm_login_code"), {"code": emailed_code()}, follow=True
    )
    assert landed_on(response) == reverse("workspace:dashboard")
    assert [str(m) for m in response.context["messages"]] == []


def test_an_unknown_email_is_told_so_and_offered_an_account_instead_of_an_empty_email(client):
    response = client.post(reverse("account_request_login_code"), {"email": "nobody@new.test"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "No account uses this email yet" in page
    assert f'action="{reverse("account_signup")}"' in page
    assert "Create an account with nobody@new.test" in page
    assert not mail.outbox


def test_a_user_without_a_name_is_asked_for_it_after_signing_in_until_given(client, org):
    user = Membership.objects.create(
        org=org, user=User.objects.create_user("nameless@acme.test"), role="member"
    ).user
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)

    client.post(reverse("account_request_login_code"), {"email": user.email})
    response = client.post(
        reverse("account_confirm_login_code"), {"code": emailed_code()}, follow=True
    )
    assert landed_on(response) == f"{reverse('workspace:onboarding')}?next=%2F"

    client.post(reverse("workspace:onboarding"), {"display_name": "Named Now", "next": "/"})
    client.logout()
    client.post(reverse("account_request_login_code"), {"email": user.email})
    response = client.post(
        reverse("account_confirm_login_code"), {"code": emailed_code()}, follow=True
    )
    assert landed_on(response) == reverse("generation:generate")


@pytest.mark.parametrize(
    ("url_name", "heading"),
    [
        ("account_login", "Sign in to NER Studio"),
        ("account_signup", "Create your NER Studio account"),
        ("account_request_login_code", "Sign in with an email code"),
    ],
)
def test_the_sign_in_pages_share_the_product_layout(client, url_name, heading):
    page = client.get(reverse(url_name)).content.decode()
    assert f"<h1>{heading}</h1>" in page
    assert 'class="topbar"' in page and 'class="card signin"' in page
    assert "Menu:" not in page  # allauth's bare fallback layout


def test_the_code_and_sign_out_pages_share_the_product_layout(client, admin):
    client.post(reverse("account_request_login_code"), {"email": "ada@acme.test"})
    page = client.get(reverse("account_confirm_login_code")).content.decode()
    assert "<h1>Enter your sign-in code</h1>" in page and 'class="card signin code-entry"' in page
    assert 'autocomplete="one-time-code"' in page

    client.force_login(admin)
    page = client.get(reverse("account_logout")).content.decode()
    assert "<h1>Sign out of NER Studio?</h1>" in page and 'class="topbar"' in page


def test_the_sign_up_page_prefills_an_email_from_the_address(client):
    page = client.get(reverse("account_signup"), {"email": "nora@new.test"}).content.decode()
    assert 'value="nora@new.test"' in page


def test_a_new_google_user_joins_the_invitation_whose_link_they_opened(client, org):
    invitation = InvitationFactory(org=org, email="gina@acme.test", role="member")
    page = client.get(reverse("workspace:invitation", args=[invitation.token])).content.decode()
    assert "Continue with Google" in page and f'action="{reverse("google_login")}' in page

    response = sign_in_with_google(client, sub="6006", email="gina@acme.test", name="Gina Google")

    user = User.objects.get(email="gina@acme.test")
    invitation.refresh_from_db()
    assert invitation.accepted_by == user
    assert landed_on(response) == f"{reverse('workspace:onboarding')}?next=%2F"
    assert 'value="Gina Google"' in response.content.decode()
    assert [str(m) for m in response.context["messages"]] == []


def test_a_failed_google_sign_in_explains_itself_in_the_product_layout(client):
    response = client.get(reverse("socialaccount_login_error"))
    page = response.content.decode()
    assert "<h1>Sign-in with Google failed</h1>" in page and 'class="topbar"' in page
    assert f'href="{reverse("account_login")}"' in page
