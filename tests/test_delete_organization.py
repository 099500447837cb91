"""Deleting an organization: an admin types its name, and it goes for good: its members and
invitations at once, everything else (generations, library, collections, providers, credits,
files) in the background, in rounds. Refused while a generation runs; members and other
organizations' admins cannot; the audit log keeps the event, with the balance given up, for the
operators."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from credits import services as credits
from gallery.models import Collection, CollectionItem
from generation.models import Generation, GenerationImage
from lib import tasks as task_runner
from library.models import SourceImage
from orgs.models import Invitation, Membership, Organization, OrgError
from providers.models import Provider
from tests.factories import (
    GenerationFactory,
    InvitationFactory,
    MembershipFactory,
    UserFactory,
    finished_image,
    stored_source_image,
)
from workspace import services as workspace_services
from workspace import tasks as workspace_tasks

pytestmark = pytest.mark.django_db

DELETE = reverse("workspace:delete-organization")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_BROKER_URL = None  # the files' task runs on the in-process pool


def _filled(membership):
    """An organization with something of everything: credits, a member, an invitation, an image
    in a collection, a library upload."""
    org = membership.org
    credits.top_up(org=org, amount=40)
    MembershipFactory(org=org)
    InvitationFactory(org=org, invited_by=membership.user)
    source = stored_source_image(org, uploaded_by=membership.user)
    image = finished_image(membership, products=[source])
    collection = Collection.objects.create(org=org, name="Spring", created_by=membership.user)
    CollectionItem.objects.create(collection=collection, image=image, added_by=membership.user)
    return [f.name for f in (image.file, image.thumbnail, source.file) if f]


def test_the_page_says_what_goes_and_asks_for_the_name(admin_client, admin_membership):
    _filled(admin_membership)

    page = admin_client.get(DELETE).content.decode()

    assert "Delete Acme Creative?" in page
    assert "2 members" in page and "40 credits" in page
    assert 'name="confirm_name"' in page and "csrfmiddlewaretoken" in page


def test_a_wrong_name_deletes_nothing(admin_client, admin_membership, org):
    files = _filled(admin_membership)

    response = admin_client.post(DELETE, {"confirm_name": "Acme"})

    assert response.status_code == 422
    assert "Type the organization&#x27;s name, “Acme Creative”, to delete it." in (
        response.content.decode()
    )
    assert not Organization.is_gone(org.pk)
    assert Membership.objects.filter(org=org).count() == 2
    assert all(default_storage.exists(name) for name in files)


@pytest.mark.django_db(transaction=True)  # the removal runs on the task pool's threads
def test_an_admin_deletes_the_organization_with_everything_in_it(
    admin_client, admin_membership, org, other_admin_membership, django_capture_on_commit_callbacks
):
    files = _filled(admin_membership)
    rival_image = finished_image(other_admin_membership)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(DELETE, {"confirm_name": " Acme  Creative "}, follow=True)
    assert task_runner.wait_until_idle(timeout=10)

    assert response.redirect_chain[-1][0] == reverse("workspace:onboarding")
    assert [str(m) for m in response.context["messages"]] == [
        "Deleted Acme Creative and everything in it."
    ]
    assert not Organization.objects.filter(pk=org.pk).exists()
    for model in (Membership, Invitation, Generation, GenerationImage, SourceImage, Provider):
        assert not model.objects.filter(org_id=org.pk).exists(), model
    assert not Collection.objects.filter(org_id=org.pk).exists()
    assert not any(default_storage.exists(name) for name in files)
    assert AuditEvent.objects.filter(org_id=org.pk, action="org.deleted").exists()
    # Another organization keeps everything.
    assert default_storage.exists(rival_image.file.name)
    assert Membership.objects.filter(pk=other_admin_membership.pk).exists()


def test_the_audit_log_keeps_who_deleted_it_and_the_balance_given_up(
    admin_client, admin_membership, admin, org, client
):
    _filled(admin_membership)

    admin_client.post(DELETE, {"confirm_name": "Acme Creative"})

    event = AuditEvent.objects.get(action="org.deleted")
    assert (event.org_id, event.actor, event.target_label) == (org.pk, admin, "Acme Creative")
    assert event.before == {"name": "Acme Creative", "members": 2, "balance": 40}
    operator = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(operator)
    listing = client.get(reverse("admin:audit_auditevent_changelist"))
    assert listing.status_code == 200
    assert "org.deleted" in listing.content.decode()
    assert "Acme Creative" in listing.content.decode()
    detail = client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200
    assert "Acme Creative" in detail.content.decode()


def test_the_former_admin_can_found_a_new_organization(admin_client, admin):
    admin_client.post(DELETE, {"confirm_name": "Acme Creative"})

    response = admin_client.get(reverse("workspace:onboarding"))

    assert response.status_code == 200
    assert not Membership.objects.filter(user=admin).exists()


def test_a_running_generation_stops_the_deletion(admin_client, admin_membership, org):
    GenerationFactory(org=org, user=admin_membership.user, status=Generation.Status.GENERATING)

    response = admin_client.post(DELETE, {"confirm_name": "Acme Creative"})

    assert response.status_code == 422
    assert "A generation is still running" in response.content.decode()
    assert not Organization.is_gone(org.pk)


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_member_cannot_delete_the_organization(member_client, org, method):
    response = getattr(member_client, method)(DELETE, {"confirm_name": "Acme Creative"})

    assert response.status_code == 403
    assert not Organization.is_gone(org.pk)


def test_another_organizations_admin_deletes_only_their_own(
    client, org, admin_membership, other_admin_membership
):
    client.force_login(other_admin_membership.user)

    response = client.post(DELETE, {"confirm_name": "Acme Creative"})

    assert response.status_code == 422  # the name is not their organization's
    assert not Organization.is_gone(org.pk)
    assert not Organization.is_gone(other_admin_membership.org_id)


def test_the_settings_page_links_to_the_deletion(admin_client, admin_membership):
    page = admin_client.get(reverse("workspace:settings")).content.decode()

    assert f'href="{DELETE}"' in page


def test_the_last_admin_is_pointed_to_the_deletion_on_the_leave_page(admin_client, admin):
    page = admin_client.get(reverse("workspace:leave")).content.decode()

    assert f'href="{DELETE}"' in page


def test_a_deletion_without_the_csrf_token_is_refused(admin, org):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)

    response = client.post(DELETE, {"confirm_name": "Acme Creative"})

    assert response.status_code == 403
    assert not Organization.is_gone(org.pk)


@pytest.mark.django_db(transaction=True)  # the removal runs on the task pool's threads
def test_a_large_organizations_files_go_in_several_tasks(
    admin_client, admin_membership, monkeypatch, caplog
):
    monkeypatch.setattr(workspace_tasks, "FILES_PER_TASK", 2)
    files = _filled(admin_membership)
    assert len(files) > 2

    with caplog.at_level("INFO", logger="workspace.tasks"):
        admin_client.post(DELETE, {"confirm_name": "Acme Creative"})
        assert task_runner.wait_until_idle(timeout=10)

    tasks = [r.getMessage() for r in caplog.records if "stored files" in r.getMessage()]
    assert len(tasks) >= 2
    assert all(re.match(r"Deleted ([12]) of \1 stored files", message) for message in tasks)
    assert not any(default_storage.exists(name) for name in files)


@pytest.mark.django_db(transaction=True)  # the removal runs on the task pool's threads
def test_an_operator_deletes_an_organization_from_the_command_line(
    admin_membership, org, django_capture_on_commit_callbacks
):
    files = _filled(admin_membership)
    operator = UserFactory(is_superuser=True, is_staff=True)

    with pytest.raises(CommandError, match="Type the organization"):
        call_command("delete_organization", org.slug, "--confirm", "Acme")
    assert not Organization.is_gone(org.pk)

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "delete_organization",
            org.slug,
            "--confirm",
            "Acme Creative",
            "--by",
            operator.email,
            stdout=out,
        )
    assert task_runner.wait_until_idle(timeout=10)

    assert "Deleted Acme Creative (acme-creative)" in out.getvalue()
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not any(default_storage.exists(name) for name in files)
    assert AuditEvent.objects.get(action="org.deleted").actor == operator


def test_nobody_deletes_an_organization_in_the_django_admin(client, org):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))

    response = client.post(
        reverse("admin:orgs_organization_delete", args=[org.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert not Organization.is_gone(org.pk)


def test_members_lose_access_at_once_while_the_rest_is_removed_in_the_background(
    admin_client, admin_membership, member_membership, org, memory_broker
):
    _filled(admin_membership)
    member = Client()
    member.force_login(member_membership.user)

    admin_client.post(DELETE, {"confirm_name": "Acme Creative"})  # no worker runs the removal

    assert Organization.is_gone(org.pk) and Organization.objects.get(pk=org.pk).deleted_at
    assert not Membership.objects.filter(org=org).exists()
    assert not Invitation.objects.filter(org=org).exists()
    for url in ("generation:generate", "gallery:index", "library:index", "workspace:settings"):
        assert member.get(reverse(url))["Location"] == reverse("workspace:onboarding"), url
    assert GenerationImage.objects.filter(org=org).exists()  # not yet: the purge's work


def test_a_large_organization_is_removed_in_rounds_of_generations(
    admin, admin_membership, org, monkeypatch
):
    monkeypatch.setattr(workspace_services, "PURGE_GENERATIONS", 2)
    files = _filled(admin_membership)
    for _ in range(3):
        finished_image(admin_membership)
    workspace_services.delete_organization(org=org, actor=admin, confirm_name="Acme Creative")

    rounds = []
    while True:
        names, more = workspace_services.purge_organization(org.pk)
        rounds.append((len(names), Generation.objects.filter(org=org).count()))
        if not more:
            break

    assert [left for _, left in rounds] == [2, 0, 0]  # 4 generations, 2 a round, then the rest
    assert sum(n for n, _ in rounds) >= len(files)
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert workspace_services.purge_organization(org.pk) == ([], False)  # a late duplicate


def test_the_removal_leaves_an_organization_that_was_not_deleted_alone(org, admin_membership):
    finished_image(admin_membership)

    assert workspace_services.purge_organization(org.pk) == ([], False)

    assert GenerationImage.objects.filter(org=org).count() == 1


@pytest.mark.django_db(transaction=True)  # the removal runs on the task pool's threads
def test_an_interrupted_removal_is_taken_up_again_by_the_periodic_check(
    admin, admin_membership, org, other_admin_membership
):
    files = _filled(admin_membership)
    workspace_services.delete_organization(org=org, actor=admin, confirm_name="Acme Creative")
    recent = other_admin_membership.org
    workspace_services.delete_organization(
        org=recent, actor=other_admin_membership.user, confirm_name=recent.name
    )
    # Deleted ten minutes ago and its purge's message lost; the other one just now.
    Organization.objects.filter(pk=org.pk).update(deleted_at=timezone.now() - timedelta(minutes=10))

    assert workspace_tasks.purge_deleted_organizations() == 1
    assert task_runner.wait_until_idle(timeout=10)

    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not any(default_storage.exists(name) for name in files)
    assert Organization.objects.filter(pk=recent.pk).exists()  # its own purge is under way


def test_a_second_deletion_says_the_first_is_under_way(admin, org):
    workspace_services.delete_organization(org=org, actor=admin, confirm_name="Acme Creative")

    with pytest.raises(OrgError, match="Acme Creative is already being deleted"):
        workspace_services.delete_organization(org=org, actor=admin, confirm_name="Acme Creative")


def test_operators_commands_no_longer_find_a_deleted_organization(admin, org):
    workspace_services.delete_organization(org=org, actor=admin, confirm_name="Acme Creative")

    with pytest.raises(CommandError, match='No organization matches "acme-creative"'):
        call_command("topup_credits", "acme-creative", "100")
    out = StringIO()
    call_command("list_organizations", stdout=out)
    assert "Acme Creative" not in out.getvalue()


@pytest.mark.django_db(transaction=True)  # the email goes from the task pool's threads
def test_every_other_member_is_emailed_that_the_organization_was_deleted(
    admin_client, admin, admin_membership, org, mailoutbox, settings
):
    others = [MembershipFactory(org=org).user for _ in range(2)]
    org.name = "Acme\nCreative  Studio"  # a tenant's name: quoted, on one line
    org.save(update_fields=["name"])

    admin_client.post(DELETE, {"confirm_name": "Acme Creative Studio"})
    assert task_runner.wait_until_idle(timeout=10)

    assert sorted(m.to[0] for m in mailoutbox) == sorted(u.email for u in others)
    assert all(len(m.to) == 1 for m in mailoutbox)  # nobody learns the others' addresses
    message = mailoutbox[0]
    assert message.subject == "Your NER Studio organization was deleted"
    assert f"{admin.email}, an admin of the organization named “Acme Creative Studio”" in (
        message.body
    )
    assert f"{settings.NERSTUDIO_PUBLIC_URL}/welcome/" in message.body


@pytest.mark.django_db(transaction=True)
def test_members_read_that_the_operators_deleted_it_when_an_operator_did(
    admin_membership, member_membership, org, mailoutbox
):
    operator = UserFactory(is_superuser=True, is_staff=True)

    call_command("delete_organization", org.slug, "--confirm", org.name, "--by", operator.email)
    assert task_runner.wait_until_idle(timeout=10)

    assert len(mailoutbox) == 2  # both members; the operator was not one
    assert "The NER Studio operators deleted the organization named" in mailoutbox[0].body
    assert operator.email not in mailoutbox[0].body


def test_the_email_gives_the_time_of_the_deletion_not_of_its_sending(mailoutbox):
    workspace_tasks.tell_members_of_deletion(
        org_name="Acme Creative",
        deleted_by="ada@acme.test",
        deleted_at="2026-01-02T03:04:00+00:00",
        emails=["max@acme.test"],
    )

    assert "deleted it on 2 January 2026, 03:04 UTC." in mailoutbox[0].body
