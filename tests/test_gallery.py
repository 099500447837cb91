import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generation.models import Generation, GenerationImage
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _image(membership, index=0, status="done", prompt="A mug"):
    provider = membership.org.providers.get(adapter="local-image")
    generation = Generation.objects.create(
        org=membership.org,
        user=membership.user,
        provider=provider,
        provider_name=provider.name,
        credit_cost=1,
        prompt=prompt,
        aspect_ratio="1:1",
        count=1,
        status="done",
    )
    return GenerationImage.objects.create(
        generation=generation,
        index=index,
        status=status,
        finished_at=timezone.now(),
        prompt=f"{prompt} variant",
        file=f"generated/{generation.pk}.png",
        thumbnail=f"generated/thumbs/{generation.pk}.webp",
        width=64,
        height=64,
    )


def test_a_member_sees_only_their_own_images(member_client, member_membership, admin_membership):
    _image(member_membership, prompt="Mine")
    _image(admin_membership, prompt="The admin's")
    body = member_client.get(reverse("gallery:index")).content.decode()
    assert "Mine variant" in body and "The admin&#x27;s variant" not in body


def test_an_admin_sees_the_whole_organizations_images(
    admin_client, member_membership, other_admin_membership
):
    _image(member_membership, prompt="Member work")
    _image(other_admin_membership, prompt="Rival work")
    body = admin_client.get(reverse("gallery:index")).content.decode()
    assert "Member work variant" in body and "Rival work" not in body


def test_failed_images_are_not_in_the_gallery(member_client, member_membership):
    _image(member_membership, prompt="Finished")
    _image(member_membership, prompt="Broken", status="failed")
    body = member_client.get(reverse("gallery:index")).content.decode()
    assert "Finished variant" in body and "Broken" not in body


def test_the_gallery_runs_a_fixed_number_of_queries_whatever_the_page_size(admin_client, org):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(reverse("gallery:index")).status_code == 200
        return len(captured.captured_queries)

    _image(MembershipFactory(org=org))
    few = queries()
    for _ in range(40):  # more than a page
        _image(MembershipFactory(org=org))
    assert queries() == few <= 10
