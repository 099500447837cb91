"""Credit usage for admins: per day, per member, per model (captured credits only)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from credits import services as credits
from credits.models import LedgerEntry
from credits.usage import usage_summary
from generation.models import GenerationImage
from tests.factories import GenerationFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def spend(membership, model_name, images, cost=2, fail=0, days_ago=0):
    generation = GenerationFactory(
        org=membership.org,
        user=membership.user,
        provider_name=model_name,
        credit_cost=cost,
        count=images + fail,
    )
    credits.hold(generation=generation)
    for index in range(images + fail):
        image = GenerationImage.objects.create(generation=generation, index=index)
        (credits.capture if index < images else credits.release)(image=image)
    if days_ago:
        LedgerEntry.objects.filter(generation=generation).update(
            created_at=timezone.now() - timedelta(days=days_ago)
        )


@pytest.fixture
def spending(org, admin_membership, member_membership):
    credits.top_up(org=org, amount=1000)
    spend(admin_membership, "Seedream 4.5 Edit", images=3, cost=3)
    spend(member_membership, "Local renderer (offline)", images=2, cost=1, fail=1)
    spend(member_membership, "Seedream 4.5 Edit", images=1, cost=3, days_ago=2)
    spend(member_membership, "Seedream 4.5 Edit", images=5, cost=3, days_ago=40)  # too old
    return admin_membership, member_membership


def test_usage_counts_captured_credits_per_day_member_and_model(org, spending):
    admin, member = spending
    usage = usage_summary(org)

    assert (usage.credits, usage.images) == (9 + 2 + 3, 3 + 2 + 1)
    assert len(usage.days) == 30 and usage.days[-1].day == timezone.localdate()
    assert (usage.days[-1].credits, usage.days[-3].credits) == (11, 3)
    members = {row["actor__email"]: (row["images"], row["credits"]) for row in usage.by_member}
    assert members == {admin.user.email: (3, 9), member.user.email: (3, 5)}
    models = {row["model"]: row["credits"] for row in usage.by_model}
    assert models == {"Seedream 4.5 Edit": 12, "Local renderer (offline)": 2}


def test_another_organizations_spending_is_not_counted(org, spending, other_admin_membership):
    credits.top_up(org=other_admin_membership.org, amount=100)
    spend(other_admin_membership, "Rival model", images=4)
    assert "Rival model" not in {r["model"] for r in usage_summary(org).by_model}


def test_the_dashboard_shows_usage(admin_client, spending):
    body = admin_client.get(reverse("workspace:dashboard")).content.decode()
    assert "14 credits on 6 images" in body
    assert "Local renderer (offline)" in body


def test_the_members_page_shows_each_members_usage(admin_client, spending):
    body = admin_client.get(reverse("workspace:members")).content.decode()
    assert "3 images · 5 credits" in body and "3 images · 9 credits" in body


def test_the_dashboard_runs_a_fixed_number_of_queries(
    admin_client, org, spending, django_assert_max_num_queries
):
    for _ in range(5):
        spend(MembershipFactory(org=org), "Seedream 4.5 Edit", images=2)
    with django_assert_max_num_queries(15):
        assert admin_client.get(reverse("workspace:dashboard")).status_code == 200
