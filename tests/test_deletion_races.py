"""Work that arrives while an admin deletes the organization (CI runs these on PostgreSQL): the
deletion locks the organization's row, so a concurrent write waits for it and then finds the
organization gone. The person is told so and sent to the welcome page; nothing of theirs stays
behind in storage."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse

from credits import services as credits
from generation.models import Generation
from library.models import SourceImage
from orgs.models import Organization
from tests.generate_form import form_data, png, stored_files
from workspace import services as workspace_services

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locking needs PostgreSQL (CI sets it)"
    ),
]


class Deletion(threading.Thread):
    """Deletes the organization on its own connection, holding its row for `hold` seconds first
    (as a deletion of a large organization does), so the request under test waits on it."""

    def __init__(self, org, admin, hold=0.5):
        super().__init__()
        self.org, self.admin, self.hold = org, admin, hold
        self.locked, self.error = threading.Event(), None

    def run(self):
        try:
            with transaction.atomic():
                Organization.objects.select_for_update().get(pk=self.org.pk)
                self.locked.set()
                time.sleep(self.hold)
                workspace_services.delete_organization(
                    org=self.org, actor=self.admin, confirm_name=self.org.name
                )
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


def test_a_generation_posted_during_the_deletion_says_the_organization_is_gone(
    admin_client, admin, org, local_model, generate_page, settings
):
    credits.top_up(org=org, amount=20)

    with Deletion(org, admin):
        response = admin_client.post(
            reverse("generation:generate"), form_data(local_model, products=[png()])
        )

    assert response.status_code == 302
    assert response["Location"] == reverse("workspace:onboarding")
    page = admin_client.get(response["Location"]).content.decode()
    assert "Acme Creative was deleted" in page
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not Generation.objects.exists() and not SourceImage.objects.exists()
    assert stored_files(settings) == []  # the upload stored before the wait went with it


def test_a_library_upload_during_the_deletion_says_the_organization_is_gone(
    admin_client, admin, org, media_root, settings
):
    with Deletion(org, admin):
        response = admin_client.post(
            reverse("library:upload"),
            {"images": [png("shelf.png")]},
            headers={"HX-Request": "true"},
        )

    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("workspace:onboarding")
    assert not SourceImage.objects.exists()
    assert stored_files(settings) == []
