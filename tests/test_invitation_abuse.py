"""Invitations a hostile tenant cannot abuse. Anyone who signs in can found an organization, so an
organization's admin is a tenant: an invitation must not capture someone who never opened it, must
not tell whether an address uses NER Studio elsewhere, and must not mail anyone without end."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from lib import ratelimit
from orgs import services
from orgs.models import Invitation, Membership, Organization
from tests.factories import InvitationFactory, UserFactory

pytestmark = pytest.mark.django_db

INVITE = reverse("workspace:invite")
ONBOARDING = reverse("workspace:onboarding")


def accept_url(invitation):
    return reverse("workspace:accept-invitation", args=[invitation.public_id])


def decline_url(invitation):
    return reverse("workspace:decline-invitation", args=[invitation.public_id])


@pytest.fixture
def limiter_clock(monkeypatch):
    """The rate limiter's clock, stopped in the middle of an hour, so a test's hits all land in
    one fixed window."""
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_800_001_800.0))


@pytest.fixture
def rival_org(other_admin_membership):
    return other_admin_membership.org


# --- Signing in joins only the invitation whose link was opened --------------------------------


def test_signing_in_does_not_join_an_invitation_whose_link_was_not_opened(
    client, org, rival_org, admin
):
    InvitationFactory(org=org, email="victim@bigcorp.test")
    InvitationFactory(org=rival_org, email="victim@bigcorp.test")  # newer: the old code took it
    victim = UserFactory(email="victim@bigcorp.test")

    client.force_login(victim)  # user_logged_in, as allauth sends it

    assert not Membership.objects.filter(user=victim).exists()
    assert Invitation.objects.pending().count() == 2
    assert client.get("/")["Location"] == ONBOARDING
    client.post(ONBOARDING, {"name": "BigCorp Studio"})
    assert Membership.objects.get(user=victim).org.name == "BigCorp Studio"


def test_the_welcome_page_offers_each_pending_invitation_and_a_new_organization(
    client, org, rival_org, admin, other_admin
):
    mine = InvitationFactory(org=org, email="nora@new.test", invited_by=admin)
    theirs = InvitationFactory(org=rival_org, email="NORA@new.test", invited_by=other_admin)
    InvitationFactory(org=org, email="someone-else@new.test")
    client.force_login(UserFactory(email="nora@new.test"))

    page = client.get(ONBOARDING).content.decode()

    assert "Acme Creative" in page and "Ada Admin" in page
    assert "Rival Agency" in page and other_admin.email in page
    for invitation in (mine, theirs):
        assert f'action="{accept_url(invitation)}"' in page
        assert f'action="{decline_url(invitation)}"' in page
    assert page.count('action="/welcome/invitations/') == 4  # not someone else's invitation
    assert 'name="name"' in page  # creating their own organization stays open


def test_accepting_from_the_welcome_page_joins_that_organization(client, org, rival_org):
    InvitationFactory(org=rival_org, email="nora@new.test")
    chosen = InvitationFactory(org=org, email="nora@new.test", role="admin")
    user = UserFactory(email="nora@new.test")
    client.force_login(user)

    response = client.post(accept_url(chosen), follow=True)

    membership = Membership.objects.get(user=user)
    assert (membership.org, membership.role) == (org, "admin")
    chosen.refresh_from_db()
    assert chosen.accepted_by == user
    assert "Welcome to Acme Creative!" in [str(m) for m in response.context["messages"]]


def test_accepting_needs_a_post(client, org):
    invitation = InvitationFactory(org=org, email="nora@new.test")
    user = UserFactory(email="nora@new.test")
    client.force_login(user)

    assert client.get(accept_url(invitation)).status_code == 405
    assert not Membership.objects.filter(user=user).exists()


def test_nobody_accepts_or_declines_an_invitation_sent_to_another_address(client, org):
    invitation = InvitationFactory(org=org, email="intended@new.test")
    intruder = UserFactory(email="intruder@new.test")
    client.force_login(intruder)

    assert client.post(accept_url(invitation)).status_code == 404
    assert client.post(decline_url(invitation)).status_code == 404

    assert not Membership.objects.filter(user=intruder).exists()
    invitation.refresh_from_db()
    assert invitation.is_pending


def test_an_unverified_address_is_offered_no_invitation(client, org):
    invitation = InvitationFactory(org=org, email="unverified@new.test")
    user = UserFactory(email="unverified@new.test", verified=False)
    client.force_login(user)

    assert accept_url(invitation) not in client.get(ONBOARDING).content.decode()
    assert client.post(accept_url(invitation)).status_code == 404
    assert not Membership.objects.filter(user=user).exists()


def test_declining_closes_the_invitation_and_the_organization_can_see_it(client, org):
    invitation = InvitationFactory(org=org, email="nora@new.test")
    user = UserFactory(email="nora@new.test")
    client.force_login(user)

    response = client.post(decline_url(invitation), follow=True)

    assert response.redirect_chain[-1][0] == ONBOARDING
    assert decline_url(invitation) not in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.DECLINED
    assert not Membership.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(org=org)
    assert (event.action, event.actor, event.target_label) == (
        "invitation.declined",
        user,
        "nora@new.test",
    )
    link = client.get(reverse("workspace:invitation", args=[invitation.token]))
    assert link.status_code == 410 and b"You declined this invitation" in link.content


# --- Whether an address is in another organization is not told --------------------------------


def test_inviting_someone_in_another_organization_answers_as_for_anyone(
    admin_client, org, other_admin
):
    unknown = admin_client.post(INVITE, {"email": "nobody@nowhere.test", "role": "member"})
    known = admin_client.post(INVITE, {"email": other_admin.email, "role": "member"})

    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert known.status_code == 302
    assert Invitation.objects.for_org(org).for_email(other_admin.email).get().is_pending
    assert [m.to for m in mail.outbox] == [["nobody@nowhere.test"], [other_admin.email]]


def test_someone_in_another_organization_learns_at_acceptance_to_leave_it_first(
    client, org, other_admin, other_admin_membership
):
    from tests.factories import MembershipFactory

    MembershipFactory(org=other_admin_membership.org, role="admin")  # Rita is not the last admin
    invitation = InvitationFactory(org=org, email=other_admin.email)
    client.force_login(other_admin)

    page = client.get(reverse("workspace:invitation", args=[invitation.token])).content.decode()

    assert "You already belong to Rival Agency" in page
    assert "leave it" in page
    link = reverse("workspace:invitation", args=[invitation.token])
    assert f'href="{reverse("workspace:leave")}?next={link}"' in page


# --- Invitation emails are limited --------------------------------------------------------------


def test_an_organization_sends_at_most_20_invitation_emails_an_hour(
    admin_client, org, limiter_clock
):
    for i in range(20):
        response = admin_client.post(INVITE, {"email": f"person{i}@new.test", "role": "member"})
        assert response.status_code == 302

    response = admin_client.post(INVITE, {"email": "one-more@new.test", "role": "member"})

    assert response.status_code == 422
    assert "20 invitation emails this hour, the most allowed" in response.content.decode()
    assert "You can send more in 30 minutes" in response.content.decode()
    assert len(mail.outbox) == 20
    assert not Invitation.objects.for_email("one-more@new.test").exists()


def test_re_sent_invitations_count_towards_the_hourly_limit(admin_client, org, limiter_clock):
    invitations = [InvitationFactory(org=org) for _ in range(21)]
    Invitation.objects.update(sent_at=timezone.now() - timedelta(hours=1))

    for invitation in invitations:
        admin_client.post(reverse("workspace:resend-invitation", args=[invitation.public_id]))

    assert len(mail.outbox) == 20


def test_an_invitation_is_emailed_at_most_once_every_10_minutes(admin_client, org):
    admin_client.post(INVITE, {"email": "target@victim.test", "role": "member"})
    invitation = Invitation.objects.get(org=org)

    again = admin_client.post(INVITE, {"email": "target@victim.test", "role": "admin"})
    resend = admin_client.post(
        reverse("workspace:resend-invitation", args=[invitation.public_id]), follow=True
    )

    assert again.status_code == 422
    assert "less than 10 minutes ago. You can send it again in 10 minutes" in again.content.decode()
    assert [str(m) for m in resend.context["messages"]] == [
        "An invitation was emailed to target@victim.test less than 10 minutes ago. "
        "You can send it again in 10 minutes."
    ]
    assert len(mail.outbox) == 1
    invitation.refresh_from_db()
    assert invitation.role == "member"

    Invitation.objects.update(sent_at=timezone.now() - timedelta(minutes=10))
    admin_client.post(reverse("workspace:resend-invitation", args=[invitation.public_id]))
    assert len(mail.outbox) == 2


def test_an_organization_has_at_most_50_pending_invitations(admin_client, org):
    for _ in range(50):
        InvitationFactory(org=org)
    InvitationFactory(org=org, expires_at=timezone.now())  # expired: no longer counts

    response = admin_client.post(INVITE, {"email": "fifty-first@new.test", "role": "member"})

    assert response.status_code == 422
    assert "already has 50 pending invitations, the most allowed" in response.content.decode()
    assert not mail.outbox
    Invitation.objects.filter(pk=Invitation.objects.pending().first().pk).update(
        revoked_at=timezone.now()
    )
    response = admin_client.post(INVITE, {"email": "fifty-first@new.test", "role": "member"})
    assert response.status_code == 302


def test_the_invitation_email_keeps_tenant_text_out_of_the_subject_and_quotes_the_org_name(
    admin_client, org, admin
):
    org.name = "URGENT: verify your payroll\nat https://evil.example/login"
    org.save()
    admin.name = "IT Helpdesk"
    admin.save()

    admin_client.post(INVITE, {"email": "target@victim.test", "role": "member"})

    (message,) = mail.outbox
    assert message.subject == "You're invited to NER Studio"
    assert "IT Helpdesk" not in message.body
    assert (
        "ada@acme.test invited you to join the organization named "
        "“URGENT: verify your payroll at https://evil.example/login” on NER Studio, as member."
    ) in message.body
    assert "you can ignore this email" in message.body


def test_the_hourly_limit_is_the_organizations_own(admin_client, org, other_admin, limiter_clock):
    rival = Organization.objects.get(name="Rival Agency")
    for i in range(20):
        admin_client.post(INVITE, {"email": f"person{i}@new.test", "role": "member"})

    services.invite_member(org=rival, email="new@rival.test", role="member", invited_by=other_admin)

    assert Invitation.objects.for_org(rival).count() == 1
