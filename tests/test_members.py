import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from lib.tokens import hash_token
from orgs import services
from orgs.models import Invitation, Membership, OrgError
from tests.factories import (
    AdminMembershipFactory,
    InvitationFactory,
    MembershipFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _link_in(message) -> str:
    return re.search(r"https?://\S+/invite/(\S+)/", message.body).group(0)


def _token_in(message) -> str:
    return re.search(r"/invite/(\S+)/", message.body).group(1)


def test_the_members_page_lists_members_with_role_and_join_date(admin_client, member):
    response = admin_client.get(reverse("workspace:members"))
    body = response.content.decode()
    assert "Ada Admin" in body and "Max Member" in body
    assert member.membership.joined_at.strftime("%-d %b %Y") in body


def test_the_members_page_runs_a_fixed_number_of_queries(
    admin_client, org, django_assert_max_num_queries
):
    for _ in range(10):
        MembershipFactory(org=org)
        InvitationFactory(org=org)
    with django_assert_max_num_queries(8):
        assert admin_client.get(reverse("workspace:members")).status_code == 200


def test_inviting_emails_an_accept_link_and_stores_only_a_hash(admin_client, org, admin):
    response = admin_client.post(
        reverse("workspace:invite"), {"email": "new@acme.test", "role": "admin"}
    )

    assert response.status_code == 302
    invitation = Invitation.objects.get(org=org, email="new@acme.test")
    assert (invitation.role, invitation.invited_by) == ("admin", admin)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@acme.test"]
    token = _token_in(mail.outbox[0])
    assert _link_in(mail.outbox[0]).startswith("http://127.0.0.1:8000/invite/")
    assert invitation.token_hash == hash_token(token)
    assert token not in invitation.token_hash
    assert invitation.is_pending


def test_an_invalid_email_is_refused_with_a_message(admin_client):
    response = admin_client.post(
        reverse("workspace:invite"), {"email": "not-an-email", "role": "member"}
    )
    assert response.status_code == 422
    assert b"Enter a valid email address" in response.content
    assert not Invitation.objects.exists() and not mail.outbox


def test_inviting_an_existing_member_is_refused(admin_client, member):
    response = admin_client.post(
        reverse("workspace:invite"), {"email": member.email.upper(), "role": "member"}
    )
    assert response.status_code == 422
    assert b"already a member" in response.content
    assert not Invitation.objects.exists()


def test_a_verified_second_email_of_a_member_is_refused_as_theirs(org, admin, member):
    EmailAddress.objects.create(user=member, email="max@home.test", verified=True)
    with pytest.raises(OrgError, match="already a member of Acme Creative"):
        services.invite_member(org=org, email="MAX@home.test", role="member", invited_by=admin)
    assert not Invitation.objects.exists()


def test_a_refused_invite_keeps_the_members_address_and_the_invite_url_answers_get(
    admin_client, member
):
    response = admin_client.post(
        reverse("workspace:invite"),
        {"email": member.email, "role": "admin"},
        headers={"HX-Request": "true", "HX-Boosted": "true"},
    )
    page = response.content.decode()
    assert response.status_code == 422
    assert f'value="{member.email}"' in page and '<option value="admin" selected>' in page
    assert response["HX-Replace-Url"] == reverse("workspace:members")

    reload = admin_client.get(reverse("workspace:invite"))  # e.g. a reload of the old address

    assert reload.status_code == 302 and reload["Location"] == reverse("workspace:members")


def test_inviting_the_same_email_twice_resends_the_one_invitation(admin_client, org):
    admin_client.post(reverse("workspace:invite"), {"email": "twice@acme.test", "role": "member"})
    Invitation.objects.update(sent_at=timezone.now() - timedelta(minutes=10))  # may be re-sent
    admin_client.post(reverse("workspace:invite"), {"email": "TWICE@acme.test", "role": "admin"})
    invitation = Invitation.objects.get(org=org)
    assert invitation.role == "admin"
    first, second = (_token_in(m) for m in mail.outbox)
    assert invitation.token_hash == hash_token(second) != hash_token(first)


def test_the_invited_person_accepts_and_joins_with_the_role(client, org):
    user = UserFactory(email="joiner@example.com")
    client.force_login(user)  # signed in before the invitation existed
    invitation = InvitationFactory(org=org, email="Joiner@Example.com", role="member")

    page = client.get(reverse("workspace:invitation", args=[invitation.token]))
    assert page.status_code == 200 and b"Accept and join Acme Creative" in page.content
    response = client.post(reverse("workspace:invitation", args=[invitation.token]))

    assert response.status_code == 302
    assert Membership.objects.get(user=user).org == org
    invitation.refresh_from_db()
    assert invitation.accepted_by == user


def test_a_visitor_without_an_account_can_create_one_from_the_link(client, org):
    invitation = InvitationFactory(org=org, email="nora@new.test")

    response = client.get(reverse("workspace:invitation", args=[invitation.token]))

    page = response.content.decode()
    assert response.status_code == 200
    assert f'action="{reverse("account_signup")}"' in page
    assert 'name="email" value="nora@new.test"' in page
    assert "Create my account" in page
    assert client.session[services.INVITATION_SESSION_KEY] == invitation.token


def test_a_visitor_with_an_account_is_offered_a_sign_in_code_for_the_invited_email(client, org):
    UserFactory(email="known@new.test")
    invitation = InvitationFactory(org=org, email="Known@new.test")

    page = client.get(reverse("workspace:invitation", args=[invitation.token])).content.decode()

    assert f'action="{reverse("account_request_login_code")}"' in page
    assert 'name="email" value="Known@new.test"' in page
    assert "Create my account" not in page


def _sign_up_from_the_link(client, invitation, email):
    client.get(reverse("workspace:invitation", args=[invitation.token]))
    client.post(reverse("account_signup"), {"email": email})
    code = re.search(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", mail.outbox[-1].body, re.MULTILINE)[1]
    return client.post(reverse("account_email_verification_sent"), {"code": code}, follow=True)


def test_a_new_person_signs_up_from_the_link_and_joins_with_one_message(client, org, admin):
    invitation = InvitationFactory(org=org, email="nora@new.test", role="member", invited_by=admin)

    response = _sign_up_from_the_link(client, invitation, "nora@new.test")

    user = User.objects.get(email="nora@new.test")
    assert Membership.objects.get(user=user).org == org
    invitation.refresh_from_db()
    assert invitation.accepted_by == user
    assert services.INVITATION_SESSION_KEY not in client.session
    assert response.redirect_chain[-1][0] == f"{reverse('workspace:onboarding')}?next=%2F"
    assert list(response.context["messages"]) == []

    response = client.post(
        reverse("workspace:onboarding"), {"display_name": "Nora Lind", "next": "/"}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("generation:generate")
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        "Welcome to Acme Creative, Nora! You joined as member."
    ]
    assert b"already been used" not in response.content


def test_the_opened_link_decides_which_organization_is_joined(client, org, other_admin):
    other_org = other_admin.membership.org
    InvitationFactory(org=other_org, email="both@new.test")  # newer, but not the link opened
    opened = InvitationFactory(org=org, email="both@new.test")
    Invitation.objects.filter(pk=opened.pk).update(sent_at=timezone.now() - timedelta(hours=1))

    _sign_up_from_the_link(client, opened, "both@new.test")

    assert Membership.objects.get(user__email="both@new.test").org == org


def test_opening_the_accepted_link_again_goes_home_without_an_error(client, org):
    invitation = InvitationFactory(org=org, email="again@new.test")
    user = UserFactory(email="again@new.test")
    services.accept_invitation(invitation=invitation, user=user)
    client.force_login(user)

    response = client.get(reverse("workspace:invitation", args=[invitation.token]))

    assert response.status_code == 302 and response["Location"] == reverse("home")


def test_signing_in_as_someone_else_after_opening_the_link_shows_why_it_failed(client, org):
    invitation = InvitationFactory(org=org, email="intended@new.test")
    UserFactory(email="other@new.test", name="Otto")
    client.get(reverse("workspace:invitation", args=[invitation.token]))

    client.post(reverse("account_request_login_code"), {"email": "other@new.test"})
    code = re.search(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", mail.outbox[-1].body, re.MULTILINE)[1]
    response = client.post(reverse("account_confirm_login_code"), {"code": code}, follow=True)

    assert response.redirect_chain[-1][0] == reverse(
        "workspace:invitation", args=[invitation.token]
    )
    assert response.status_code == 403
    assert b"was sent to intended@new.test" in response.content
    invitation.refresh_from_db()
    assert invitation.is_pending


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, 410, b"has expired"),
        ({"revoked_at": timezone.now()}, 410, b"was revoked"),
        ({"accepted_at": timezone.now()}, 410, b"already been used"),
    ],
)
def test_a_closed_invitation_explains_why(client, org, change, status, message):
    invitation = InvitationFactory(org=org, email="late@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(**change)
    client.force_login(UserFactory(email="late2@example.com"))
    for method in (client.get, client.post):
        response = method(reverse("workspace:invitation", args=[invitation.token]))
        assert response.status_code == status
        assert message in response.content
    assert not Membership.objects.filter(org=org).exists()


def test_an_unknown_token_is_a_clear_404(client):
    response = client.get(reverse("workspace:invitation", args=["no-such-token"]))
    assert response.status_code == 404
    assert b"This invitation link is not valid" in response.content


def test_an_invitation_opened_by_a_different_email_is_refused(client, org):
    invitation = InvitationFactory(org=org, email="intended@example.com")
    client.force_login(UserFactory(email="intruder@example.com"))

    response = client.post(reverse("workspace:invitation", args=[invitation.token]))

    assert response.status_code == 403
    assert b"was sent to intended@example.com" in response.content
    assert not Membership.objects.filter(org=org).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_an_invitation_works_only_once(org):
    invitation = InvitationFactory(org=org, email="once@example.com")
    user = UserFactory(email="once@example.com")
    services.accept_invitation(invitation=invitation, user=user)
    Membership.objects.filter(user=user).delete()  # removed later: the old link stays used
    with pytest.raises(OrgError, match="already been used"):
        services.accept_invitation(invitation=invitation, user=user)


def test_someone_in_another_organization_cannot_accept(client, org, other_admin):
    invitation = InvitationFactory(org=org, email=other_admin.email)
    client.force_login(other_admin)
    response = client.post(reverse("workspace:invitation", args=[invitation.token]))
    assert b"You already belong to Rival Agency" in response.content
    assert other_admin.membership.org.name == "Rival Agency"


def test_resending_replaces_the_token_and_extends_the_expiry(admin_client, org):
    invitation = InvitationFactory(org=org, expires_at=timezone.now() - timedelta(days=1))
    Invitation.objects.update(sent_at=timezone.now() - timedelta(days=8))
    old_link_token = invitation.token

    admin_client.post(reverse("workspace:resend-invitation", args=[invitation.public_id]))

    invitation.refresh_from_db()
    assert invitation.is_pending
    assert invitation.token_hash == hash_token(_token_in(mail.outbox[-1]))
    assert services.find_invitation(old_link_token) is None


def test_revoking_closes_the_invitation(admin_client, org):
    invitation = InvitationFactory(org=org)
    admin_client.post(reverse("workspace:revoke-invitation", args=[invitation.public_id]))
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    response = admin_client.post(
        reverse("workspace:resend-invitation", args=[invitation.public_id])
    )
    assert response.status_code == 302
    assert not mail.outbox


def test_an_admin_changes_a_members_role(admin_client, member):
    admin_client.post(
        reverse("workspace:change-role", args=[member.membership.public_id]), {"role": "admin"}
    )
    member.membership.refresh_from_db()
    assert member.membership.role == "admin"


def test_an_unknown_role_is_refused(admin_client, member):
    admin_client.post(
        reverse("workspace:change-role", args=[member.membership.public_id]), {"role": "owner"}
    )
    member.membership.refresh_from_db()
    assert member.membership.role == "member"


def test_the_last_admin_cannot_be_demoted(admin_client, admin):
    response = admin_client.post(
        reverse("workspace:change-role", args=[admin.membership.public_id]),
        {"role": "member"},
        follow=True,
    )
    assert b"at least one admin" in response.content
    admin.membership.refresh_from_db()
    assert admin.membership.role == "admin"


def test_the_last_admin_cannot_be_removed(admin_client, admin):
    response = admin_client.post(
        reverse("workspace:remove-member", args=[admin.membership.public_id]), follow=True
    )
    assert b"at least one admin" in response.content
    assert Membership.objects.filter(pk=admin.membership.pk).exists()


def test_an_admin_can_step_down_when_another_admin_remains(admin_client, admin, org):
    AdminMembershipFactory(org=org)
    admin_client.post(
        reverse("workspace:change-role", args=[admin.membership.public_id]), {"role": "member"}
    )
    admin.membership.refresh_from_db()
    assert admin.membership.role == "member"


def test_removing_a_member_takes_away_their_access(admin_client, client, member):
    admin_client.post(reverse("workspace:remove-member", args=[member.membership.public_id]))
    assert not Membership.objects.filter(user=member).exists()
    client.force_login(member)
    assert client.get(reverse("gallery:index"))["Location"] == reverse("workspace:onboarding")
