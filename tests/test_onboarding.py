import pytest
from django.urls import reverse

from orgs.models import Invitation, Membership, Organization
from tests.factories import InvitationFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_new_user_names_an_organization_and_becomes_its_admin(client):
    user = UserFactory(email="founder@new.test")
    client.force_login(user)

    response = client.post(reverse("workspace:onboarding"), {"name": "  Northwind Studio "})

    assert response.status_code == 302
    membership = Membership.objects.get(user=user)
    assert membership.org.name == "Northwind Studio"
    assert membership.role == Membership.Role.ADMIN
    assert client.get(response["Location"])["Location"] == reverse("workspace:dashboard")


def test_an_organization_needs_a_name(client):
    client.force_login(UserFactory())
    response = client.post(reverse("workspace:onboarding"), {"name": "   "})
    assert response.status_code == 200
    assert b"Give your organization a name" in response.content or b"required" in response.content
    assert not Organization.objects.exists()


def test_a_member_cannot_create_a_second_organization(member_client, member):
    response = member_client.post(reverse("workspace:onboarding"), {"name": "Side project"})
    assert response.status_code == 302
    assert Organization.objects.count() == 1
    assert Membership.objects.get(user=member).org.name == "Acme Creative"


def test_signing_in_with_a_pending_invitation_offers_it_on_the_welcome_page(client, org):
    invitation = InvitationFactory(org=org, email="Invitee@Example.com", role="admin")
    user = UserFactory(email="invitee@example.com")

    client.force_login(user)  # sends user_logged_in, as allauth does after Google sign-in

    assert not Membership.objects.filter(user=user).exists()  # not without their say
    assert client.get("/")["Location"] == reverse("workspace:onboarding")
    accept = reverse("workspace:accept-invitation", args=[invitation.public_id])
    assert f'action="{accept}"' in client.get(reverse("workspace:onboarding")).content.decode()

    client.post(accept)

    membership = Membership.objects.get(user=user)
    assert (membership.org, membership.role) == (org, "admin")
    invitation.refresh_from_db()
    assert invitation.accepted_by == user and invitation.accepted_at is not None
    assert client.get("/")["Location"] == reverse("workspace:dashboard")


def test_an_unverified_email_does_not_join_an_invited_organization(client, org):
    InvitationFactory(org=org, email="unverified@example.com")
    user = UserFactory(email="unverified@example.com", verified=False)
    client.force_login(user)
    assert not Membership.objects.filter(user=user).exists()
    assert client.get("/")["Location"] == reverse("workspace:onboarding")


def test_expired_or_revoked_invitations_are_not_joined_on_sign_in(client, org):
    from django.utils import timezone

    InvitationFactory(org=org, email="late@example.com", expires_at=timezone.now())
    InvitationFactory(org=org, email="late@example.com", revoked_at=timezone.now())
    user = UserFactory(email="late@example.com")
    client.force_login(user)
    assert not Membership.objects.filter(user=user).exists()
    assert Invitation.objects.filter(accepted_at__isnull=False).count() == 0


def test_onboarding_redirects_a_member_home(member_client):
    assert member_client.get(reverse("workspace:onboarding"))["Location"] == "/"


def test_a_user_without_a_name_is_asked_for_it_with_the_organization(client):
    user = UserFactory(email="anon@new.test", name="")
    client.force_login(user)

    page = client.get(reverse("workspace:onboarding")).content.decode()
    assert 'name="display_name"' in page and 'name="name"' in page

    response = client.post(
        reverse("workspace:onboarding"), {"display_name": "  ", "name": "Anon Co"}
    )
    assert response.status_code == 200
    assert b"Tell your team what to call you" in response.content
    assert not Organization.objects.exists()

    client.post(reverse("workspace:onboarding"), {"display_name": " Ann Onym ", "name": "Anon Co"})
    user.refresh_from_db()
    assert user.name == "Ann Onym"
    assert Membership.objects.get(user=user).org.name == "Anon Co"


def test_a_user_with_a_name_is_not_asked_again(client):
    client.force_login(UserFactory(name="Known Name"))
    page = client.get(reverse("workspace:onboarding")).content.decode()
    assert 'name="display_name"' not in page and 'name="name"' in page


def test_a_member_without_a_name_is_asked_once_then_welcomed(client, org):
    user = MembershipFactory(org=org, user__name="").user
    client.force_login(user)

    page = client.get(reverse("workspace:onboarding")).content.decode()
    assert "Welcome to Acme Creative" in page and 'name="name"' not in page

    response = client.post(
        reverse("workspace:onboarding"), {"display_name": "Mia Member"}, follow=True
    )

    assert [str(m) for m in response.context["messages"]] == [
        "Welcome to Acme Creative, Mia! You joined as member."
    ]
    user.refresh_from_db()
    assert user.name == "Mia Member"
    assert client.get(reverse("workspace:onboarding"))["Location"] == "/"  # never asked again


def test_the_name_step_only_follows_a_local_next_address(client, org):
    client.force_login(MembershipFactory(org=org, user__name="").user)
    evil = client.post(
        reverse("workspace:onboarding"), {"display_name": "Eve", "next": "https://evil.test/"}
    )
    assert evil["Location"] == "/"
