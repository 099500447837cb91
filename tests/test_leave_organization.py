"""Leaving an organization: any member but the last admin, after confirming, recorded in the
organization's audit log. It is how someone joined to the wrong organization gets out, and how
someone moves to the organization that invited them."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from orgs.models import Membership
from tests.factories import AdminMembershipFactory, InvitationFactory, UserFactory

pytestmark = pytest.mark.django_db

LEAVE = reverse("workspace:leave")
LAST_ADMIN = "An organization needs at least one admin: make someone else an admin first."


def notices(response):
    return [str(m) for m in response.context["messages"]]


def test_a_member_is_asked_to_confirm_before_leaving(member_client, member):
    response = member_client.get(LEAVE)

    page = response.content.decode()
    assert response.status_code == 200
    assert "Leave Acme Creative?" in page
    assert f'<form method="post" action="{LEAVE}"' in page and "csrfmiddlewaretoken" in page
    assert Membership.objects.filter(user=member).exists()


def test_a_member_leaves_and_it_is_recorded(member_client, member, org):
    response = member_client.post(LEAVE, follow=True)

    assert not Membership.objects.filter(user=member).exists()
    assert response.redirect_chain[-1][0] == reverse("workspace:onboarding")
    assert notices(response) == ["You left Acme Creative."]
    event = AuditEvent.objects.get(org=org)
    assert (event.action, event.actor, event.target_label, event.before) == (
        "member.left",
        member,
        "Acme Creative",
        {"role": "member"},
    )


def test_the_last_admin_cannot_leave(admin_client, admin, org, member):
    page = admin_client.get(LEAVE).content.decode()
    assert LAST_ADMIN in page and f'action="{LEAVE}"' not in page

    response = admin_client.post(LEAVE, follow=True)

    assert notices(response) == [LAST_ADMIN]
    assert Membership.objects.get(user=admin).is_admin
    assert not AuditEvent.objects.filter(org=org).exists()


def test_an_admin_leaves_when_another_admin_remains(admin_client, admin, org):
    AdminMembershipFactory(org=org)

    admin_client.post(LEAVE)

    assert not Membership.objects.filter(user=admin).exists()


def test_leaving_goes_back_to_the_invitation_that_asked_for_it(client, org, other_admin_membership):
    """Someone in another organization opens an invitation, leaves, and accepts it."""
    AdminMembershipFactory(org=other_admin_membership.org)
    user = other_admin_membership.user
    invitation = InvitationFactory(org=org, email=user.email)
    link = reverse("workspace:invitation", args=[invitation.token])
    client.force_login(user)

    response = client.post(LEAVE, {"next": link})
    assert response["Location"] == link
    client.post(link)

    assert Membership.objects.get(user=user).org == org


def test_leaving_follows_only_a_local_next_address(member_client):
    response = member_client.post(LEAVE, {"next": "https://evil.test/"})
    assert response["Location"] == reverse("workspace:onboarding")


@pytest.mark.parametrize("method", ["get", "post"])
def test_only_members_reach_the_leave_page(client, method):
    assert getattr(client, method)(LEAVE)["Location"].startswith(reverse("account_login"))
    client.force_login(UserFactory())
    assert getattr(client, method)(LEAVE)["Location"] == reverse("workspace:onboarding")
