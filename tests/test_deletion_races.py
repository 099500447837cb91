"""Work that arrives while an organization is deleted (CI runs these on PostgreSQL), from a
member whose request was already past its access check: a generation's start waits for the
deletion (both lock the credit account) and finds the organization deleted; a write that waits
for the removal of the organization's rows fails on its foreign key. Either way the person is told
so and sent to the welcome page, nothing is charged, and nothing of theirs stays in storage."""

import threading
import time

import pytest
from django.core.files.storage import default_storage
from django.db import connection, connections, transaction
from django.urls import reverse

from credits import services as credits
from credits.models import CreditAccount, LedgerEntry
from generation.models import Generation
from library.models import SourceImage
from orgs.models import Organization
from tests.factories import stored_source_image
from tests.generate_form import form_data, png, stored_files
from workspace import services as workspace_services

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locking needs PostgreSQL (CI sets it)"
    ),
]


class Deletion(threading.Thread):
    """Deletes the organization on its own connection and holds its locks for `hold` seconds
    before committing, so the request under test waits on it. With `purge`, the background
    removal runs in the same transaction (its files deleted at once)."""

    def __init__(self, org, admin, *, purge=False, hold=0.5):
        super().__init__()
        self.org, self.admin, self.purge, self.hold = org, admin, purge, hold
        self.locked, self.error = threading.Event(), None

    def run(self):
        try:
            with transaction.atomic():
                if self.purge:  # as the removal's last round: the row locked for update
                    Organization.objects.select_for_update().get(pk=self.org.pk)
                workspace_services.delete_organization(
                    org=self.org, actor=self.admin, confirm_name=self.org.name
                )
                self.locked.set()
                more = self.purge
                while more:
                    files, more = workspace_services.purge_organization(self.org.pk)
                    for name in files:
                        default_storage.delete(name)
                time.sleep(self.hold)
        except BaseException as exc:  # shown by the test
            self.error = exc
        finally:
            self.locked.set()
            connections.close_all()

    def __enter__(self):
        self.start()
        assert self.locked.wait(10)
        return self

    def __exit__(self, *exc):
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error


def test_a_generation_started_as_the_organization_is_deleted_is_refused_and_charges_nothing(
    admin_client, admin, org, local_model, generate_page
):
    credits.top_up(org=org, amount=20)
    pick = stored_source_image(org)  # from the library: nothing to store first

    with Deletion(org, admin):
        response = admin_client.post(
            reverse("generation:generate"),
            form_data(local_model, products=[], library_products=[str(pick.public_id)]),
        )

    assert response.status_code == 302
    assert response["Location"] == reverse("workspace:onboarding")
    page = admin_client.get(response["Location"]).content.decode()
    assert "Acme Creative was deleted by an admin; what you sent was not saved." in page
    assert not Generation.objects.filter(org=org).exists()
    assert CreditAccount.objects.get(org=org).balance == 20
    assert list(LedgerEntry.objects.filter(org=org).values_list("kind", flat=True)) == ["topup"]


def test_a_generation_posted_as_the_organization_is_removed_leaves_no_upload_behind(
    admin_client, admin, org, local_model, generate_page, settings
):
    credits.top_up(org=org, amount=20)

    with Deletion(org, admin, purge=True):
        response = admin_client.post(
            reverse("generation:generate"), form_data(local_model, products=[png()])
        )

    assert response["Location"] == reverse("workspace:onboarding")
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not Generation.objects.exists() and not SourceImage.objects.exists()
    assert stored_files(settings) == []  # the upload stored before the wait went with it


def test_a_library_upload_as_the_organization_is_removed_leaves_nothing_behind(
    admin_client, admin, org, media_root, settings
):
    with Deletion(org, admin, purge=True):
        response = admin_client.post(
            reverse("library:upload"),
            {"images": [png("shelf.png")]},
            headers={"HX-Request": "true"},
        )

    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("workspace:onboarding")
    assert not SourceImage.objects.exists()
    assert stored_files(settings) == []
