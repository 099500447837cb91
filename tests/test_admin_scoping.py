"""The Django admin for organization admins: their own organization's rows only, no platform
models; members and anonymous visitors are kept out; superusers see everything."""

from datetime import timedelta

import pytest
from allauth.socialaccount.models import SocialApp
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from audit.models import AuditEvent
from orgs.models import Invitation, Membership, Organization
from tests.factories import AdminMembershipFactory, InvitationFactory, MembershipFactory

pytestmark = pytest.mark.django_db

ORG_MODELS = [Organization, Membership, Invitation]
PLATFORM_APPS = {
    "accounts",
    "auth",
    "account",
    "socialaccount",
    "sessions",
    "sites",
    "contenttypes",
}


def changelist(model):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def delete(obj):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_delete", args=[obj.pk])


@pytest.fixture
def rows(org, admin_membership, member_membership, other_admin_membership):
    """Two organizations, each with members and an open invitation."""
    other_org = other_admin_membership.org
    return {
        "org": org,
        "membership": member_membership,
        "invitation": InvitationFactory(org=org, email="new@acme.test"),
        "other_org": other_org,
        "other_membership": MembershipFactory(org=other_org, user__email="rob@rival.test"),
        "other_invitation": InvitationFactory(org=other_org, email="new@rival.test"),
    }


@pytest.fixture
def superuser_client(client):
    client.force_login(User.objects.create_superuser(email="root@nerstudio.test"))
    return client


# --- Who may enter -----------------------------------------------------------------------------


def test_an_org_admin_without_the_staff_flag_can_open_the_admin(admin_client, admin, rows):
    assert not admin.is_staff and not admin.is_superuser

    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    app_list = response.context["app_list"]
    listed = {m["object_name"] for app in app_list for m in app["models"]}
    assert {"Organization", "Membership", "Invitation"} <= listed
    assert not {app["app_label"] for app in app_list} & PLATFORM_APPS


def test_the_index_shows_no_platform_models_to_an_org_admin(admin_client, rows):
    page = admin_client.get(reverse("admin:index")).content.decode()

    platform_only = [
        "Users",
        "Groups",
        "Email addresses",
        "Social applications",
        "Social accounts",
        "Top-up requests",
    ]
    for hidden in platform_only:
        assert f">{hidden}<" not in page
    assert changelist(Organization) in page and changelist(Invitation) in page


@pytest.mark.parametrize(
    "url",
    [
        "/admin/accounts/user/",
        "/admin/auth/group/",
        "/admin/account/emailaddress/",
        "/admin/socialaccount/socialapp/",
        "/admin/socialaccount/socialaccount/",
        "/admin/socialaccount/socialtoken/",
        "/admin/accounts/user/add/",
        "/admin/accounts/",
        "/admin/auth/",
    ],
)
def test_an_org_admin_cannot_open_platform_models(admin_client, admin, url):
    response = admin_client.get(url)
    assert response.status_code in (403, 404)


def test_an_org_admin_cannot_open_or_change_a_user(admin_client, member):
    response = admin_client.post(change(member), {"email": member.email, "is_superuser": "on"})
    assert response.status_code in (403, 404)
    member.refresh_from_db()
    assert not member.is_superuser and not member.is_staff


def test_an_org_admin_cannot_set_a_password_through_the_admin(admin_client, admin):
    """Sign-in is SSO: no password may be created behind it."""
    admin.set_unusable_password()
    admin.save()
    admin_client.force_login(admin)
    assert admin_client.get("/admin/password_change/").status_code == 404

    response = admin_client.post(
        "/admin/password_change/",
        {"new_password1": "Sneaky-pass-123", "new_password2": "Sneaky-pass-123"},
    )
    assert response.status_code == 404
    admin.refresh_from_db()
    assert not admin.has_usable_password()


def test_a_member_cannot_use_the_admin(member_client, rows):
    response = member_client.get(reverse("admin:index"), follow=True)
    assert response.status_code == 403
    response = member_client.get(change(rows["membership"]), follow=True)
    assert response.status_code == 403


def test_a_signed_in_user_without_an_organization_cannot_use_the_admin(client):
    client.force_login(User.objects.create_user(email="loner@example.com"))
    assert client.get(reverse("admin:index"), follow=True).status_code == 403


def test_an_anonymous_visitor_is_sent_to_the_sign_in_page(client, rows):
    response = client.get(changelist(Membership), follow=True)

    assert response.status_code == 200
    final_url, _ = response.redirect_chain[-1]
    assert final_url.startswith(reverse("account_login") + "?next=")
    assert "/admin/orgs/membership/" in final_url
    assert "Continue with Google" in response.content.decode()
    assert 'type="password"' not in response.content.decode()


def test_the_admin_login_page_is_not_a_password_form(client):
    response = client.post(
        reverse("admin:login"), {"username": "ada@acme.test", "password": "guess"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


# --- Seeing only their own organization ---------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "own", "others"),
    [
        (Organization, ["org"], ["other_org"]),
        (Membership, ["membership"], ["other_membership"]),
        (Invitation, ["invitation"], ["other_invitation"]),
    ],
)
def test_an_org_admin_lists_only_their_own_organizations_rows(
    admin_client, rows, model, own, others
):
    response = admin_client.get(changelist(model))

    assert response.status_code == 200
    listed = set(response.context["cl"].result_list)
    assert {rows[key] for key in own} <= listed
    assert not {rows[key] for key in others} & listed
    if model is Membership:
        assert listed == set(Membership.objects.filter(org=rows["org"]))
    page = response.content.decode()
    for key in others:
        assert change(rows[key]) not in page


def test_an_org_admin_cannot_find_other_orgs_rows_by_search(admin_client, rows):
    response = admin_client.get(changelist(Membership), {"q": "rival.test"})
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize("key", ["other_org", "other_membership", "other_invitation"])
def test_an_org_admin_cannot_open_another_orgs_row(admin_client, rows, key):
    response = admin_client.get(change(rows[key]), follow=True)

    # Django's admin answers an object outside the queryset by redirecting to the index.
    assert response.redirect_chain[-1][0] == reverse("admin:index")
    notices = [str(m) for m in response.context["messages"]]
    assert len(notices) == 1 and "exist" in notices[0]
    assert f'value="{rows[key].pk}"' not in response.content.decode()


def test_an_org_admin_cannot_rename_another_org(admin_client, rows):
    other = rows["other_org"]

    response = admin_client.post(change(other), {"name": "Hijacked"})

    assert response.status_code == 302
    other.refresh_from_db()
    assert other.name == "Rival Agency"


def test_an_org_admin_cannot_change_another_orgs_member_role(admin_client, rows):
    other = rows["other_membership"]

    admin_client.post(change(other), {"role": "admin"})

    other.refresh_from_db()
    assert other.role == Membership.Role.MEMBER


def test_an_org_admin_cannot_delete_another_orgs_member(admin_client, rows):
    other = rows["other_membership"]

    admin_client.post(delete(other), {"post": "yes"})

    assert Membership.objects.filter(pk=other.pk).exists()


def test_an_org_admin_can_rename_their_own_org(admin_client, rows):
    response = admin_client.post(change(rows["org"]), {"name": "Acme Studio"})

    assert response.status_code == 302
    rows["org"].refresh_from_db()
    assert rows["org"].name == "Acme Studio"


@pytest.mark.parametrize("who", ["admin_client", "superuser_client"])
def test_renaming_an_org_in_the_admin_is_recorded_as_the_settings_page_records_it(
    request, who, rows
):
    client = request.getfixturevalue(who)

    client.post(change(rows["org"]), {"name": "Acme Studio"})
    client.post(change(rows["org"]), {"name": "Acme Studio"})  # unchanged: nothing to record

    (event,) = AuditEvent.objects.filter(org=rows["org"])
    assert (event.action, event.before, event.after) == (
        "org.settings_changed",
        {"name": "Acme Creative"},
        {"name": "Acme Studio"},
    )
    assert event.actor == client.get("/").wsgi_request.user


def test_an_org_admin_can_change_a_role_in_their_own_org(admin_client, rows):
    membership = rows["membership"]

    response = admin_client.post(change(membership), {"role": "admin"})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Membership.Role.ADMIN


def test_an_org_admin_cannot_move_a_member_to_another_org(admin_client, rows):
    membership = rows["membership"]

    admin_client.post(change(membership), {"role": "member", "org": rows["other_org"].pk})

    membership.refresh_from_db()
    assert membership.org == rows["org"]


def test_an_org_admin_cannot_add_or_delete_organizations(admin_client, rows):
    assert admin_client.get(reverse("admin:orgs_organization_add")).status_code == 403
    assert admin_client.post(delete(rows["org"]), {"post": "yes"}).status_code == 403
    assert Organization.objects.filter(pk=rows["org"].pk).exists()


def test_an_org_admin_can_remove_a_member_of_their_own_org(admin_client, rows):
    membership = rows["membership"]

    response = admin_client.post(delete(membership), {"post": "yes"})

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert User.objects.filter(pk=membership.user_id).exists()


# --- The last-admin rule -------------------------------------------------------------------------


def test_the_last_admin_cannot_be_demoted_in_the_admin(admin_client, admin_membership, rows):
    response = admin_client.post(change(admin_membership), {"role": "member"})

    assert response.status_code == 200
    assert "at least one admin" in response.content.decode()
    admin_membership.refresh_from_db()
    assert admin_membership.role == Membership.Role.ADMIN


def test_the_last_admin_cannot_be_deleted_in_the_admin(admin_client, admin_membership, rows):
    assert admin_client.get(delete(admin_membership)).status_code == 403
    assert admin_client.post(delete(admin_membership), {"post": "yes"}).status_code == 403
    assert Membership.objects.filter(pk=admin_membership.pk, role="admin").exists()


def test_an_admin_can_be_demoted_when_another_admin_remains(admin_client, admin_membership, org):
    AdminMembershipFactory(org=org)

    response = admin_client.post(change(admin_membership), {"role": "member"})

    assert response.status_code == 302
    admin_membership.refresh_from_db()
    assert admin_membership.role == Membership.Role.MEMBER


def test_a_superuser_cannot_demote_the_last_admin_either(superuser_client, admin_membership):
    response = superuser_client.post(change(admin_membership), {"role": "member"})

    assert response.status_code == 200
    admin_membership.refresh_from_db()
    assert admin_membership.role == Membership.Role.ADMIN


# --- Invitation actions ------------------------------------------------------------------------


def run_action(client, action, *invitations):
    return client.post(
        changelist(Invitation),
        {"action": action, "_selected_action": [inv.pk for inv in invitations]},
        follow=True,
    )


def test_an_org_admin_can_resend_their_orgs_invitation(admin_client, admin, rows):
    invitation = rows["invitation"]
    old_hash = invitation.token_hash
    emailed_a_while_ago(invitation)

    response = run_action(admin_client, "resend", invitation)

    assert response.status_code == 200
    invitation.refresh_from_db()
    assert invitation.token_hash != old_hash and invitation.invited_by == admin
    assert [m.to for m in mail.outbox] == [["new@acme.test"]]
    assert "/invite/" in mail.outbox[0].body
    assert "1 invitation(s) re-sent" in response.content.decode()


def emailed_a_while_ago(invitation):
    """Past the 10 minutes an invitation waits between two emails."""
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - timedelta(hours=1))


def test_the_resend_action_keeps_an_invitation_to_one_email_per_10_minutes(admin_client, rows):
    response = run_action(admin_client, "resend", rows["invitation"])

    assert not mail.outbox
    assert [str(m) for m in response.context["messages"]] == [
        "new@acme.test: An invitation was emailed to new@acme.test less than 10 minutes ago. "
        "You can send it again in 10 minutes."
    ]


def test_an_org_admin_can_revoke_their_orgs_invitation(admin_client, rows):
    invitation = rows["invitation"]

    run_action(admin_client, "revoke", invitation)

    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


def test_invitation_actions_ignore_another_orgs_invitations(admin_client, rows):
    other = rows["other_invitation"]
    before = (other.token_hash, other.sent_at, other.invited_by_id)

    run_action(admin_client, "resend", other)
    run_action(admin_client, "revoke", other)

    other.refresh_from_db()
    assert (other.token_hash, other.sent_at, other.invited_by_id) == before
    assert other.revoked_at is None
    assert mail.outbox == []


def test_a_used_invitation_is_not_resent(admin_client, rows):
    invitation = rows["invitation"]
    run_action(admin_client, "revoke", invitation)

    response = run_action(admin_client, "resend", invitation)

    assert mail.outbox == []
    assert "Only open invitations can be re-sent" in response.content.decode()


def test_an_org_admin_cannot_edit_an_invitation(admin_client, rows):
    invitation = rows["invitation"]

    admin_client.post(change(invitation), {"email": "evil@example.com", "role": "admin"})

    invitation.refresh_from_db()
    assert (invitation.email, invitation.role) == ("new@acme.test", "member")


# --- Superusers and rendering ------------------------------------------------------------------


def test_a_superuser_sees_every_organizations_rows_and_the_platform_models(superuser_client, rows):
    for model in ORG_MODELS:
        listed = set(superuser_client.get(changelist(model)).context["cl"].result_list)
        assert listed == set(model.objects.all())
    for model in [User, Group, SocialApp]:
        assert superuser_client.get(changelist(model)).status_code == 200
    assert superuser_client.get(change(rows["other_org"])).status_code == 200


def test_every_admin_page_renders_for_an_org_admin(admin_client, rows):
    urls = [reverse("admin:index"), reverse("admin:app_list", args=["orgs"])]
    for model in ORG_MODELS:
        urls.append(changelist(model))
    urls += [change(rows["org"]), change(rows["membership"]), change(rows["invitation"])]
    urls.append(delete(rows["membership"]))

    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert "NER Studio administration" in response.content.decode(), url


def test_foreign_key_choices_are_limited_to_the_admins_own_org(rf, admin, rows):
    """A form field pointing at an organization, an org-scoped row or a user offers only the
    admin's own organization, its rows and its members."""
    from django.contrib import admin as django_admin

    request = rf.get("/admin/")
    request.user = admin
    membership_admin = django_admin.site._registry[Membership]
    invitation_admin = django_admin.site._registry[Invitation]

    org_field = membership_admin.formfield_for_foreignkey(
        Membership._meta.get_field("org"), request
    )
    user_field = invitation_admin.formfield_for_foreignkey(
        Invitation._meta.get_field("invited_by"), request
    )

    assert list(org_field.queryset) == [rows["org"]]
    assert set(user_field.queryset) == set(User.objects.filter(membership__org=rows["org"]))
    assert rows["other_membership"].user not in user_field.queryset

    request.user = User.objects.create_superuser(email="root@nerstudio.test")
    org_field = membership_admin.formfield_for_foreignkey(
        Membership._meta.get_field("org"), request
    )
    assert set(org_field.queryset) == {rows["org"], rows["other_org"]}


def test_the_admin_offers_sign_out_and_no_password_change(client):
    root = User.objects.create_superuser(email="root@nerstudio.test", password="usable-Pass-1")
    client.force_login(root)

    page = client.get(reverse("admin:index")).content.decode()

    assert f'action="{reverse("account_logout")}"' in page
    assert "/admin/password_change/" not in page
    assert "Back to NER Studio" in page
    assert 'rel="icon" href="/static/img/favicon.svg"' in page  # else the browser asks /favicon.ico


def test_a_superuser_can_open_and_add_users(superuser_client, member):
    assert superuser_client.get(change(member)).status_code == 200
    assert superuser_client.get(reverse("admin:accounts_user_add")).status_code == 200

    response = superuser_client.post(
        reverse("admin:accounts_user_add"), {"email": "new@nerstudio.test", "name": "New"}
    )

    assert response.status_code == 302
    user = User.objects.get(email="new@nerstudio.test")
    assert not user.has_usable_password()
