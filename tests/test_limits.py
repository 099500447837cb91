"""Spending under control (issue 11): per-member monthly limits, the organization settings page
and the low-balance warning."""

import datetime
import re
import zoneinfo

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from credits import limits
from credits import services as credits
from credits.models import LedgerEntry
from generation import tasks
from generation.models import Generation
from orgs import services as org_services
from orgs.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.generate_form import form_data
from tests.images import validated

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("generate_page")]

GENERATE = reverse("generation:generate")
SETTINGS = reverse("workspace:settings")


def start(membership, model, count=3):
    """Start a generation through the service the Generate page uses."""
    return tasks.generate(
        membership=membership,
        provider=model,
        prompt="A mug",
        count=count,
        aspect_ratio=model.default_aspect_ratio,
        quality=model.default_quality,
        products=[validated()],
        references=[],
    )


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def limit(membership, credits_a_month):
    Membership.objects.filter(pk=membership.pk).update(monthly_limit=credits_a_month)
    membership.refresh_from_db()
    return membership


# --- Monthly limits ---


def test_a_generation_within_the_limit_runs_and_counts_against_it(member_membership, local_model):
    credits.top_up(org=member_membership.org, amount=100)
    limit(member_membership, 5)

    start(member_membership, local_model, count=3)

    usage = limits.monthly_usage(member_membership)
    assert (usage.spent, usage.limit, usage.left) == (3, 5, 2)


def test_a_generation_over_the_limit_is_refused_naming_the_limit_what_is_left_and_the_reset(
    member_membership, local_model
):
    credits.top_up(org=member_membership.org, amount=100)
    limit(member_membership, 5)
    start(member_membership, local_model, count=3)

    with pytest.raises(limits.MonthlyLimitReached) as refused:
        start(member_membership, local_model, count=3)

    next_month = timezone.localdate().replace(day=1) + datetime.timedelta(days=32)
    assert str(refused.value) == (
        "This needs 3 credits, but your monthly limit is 5 credits and 2 credits are left "
        f"until 1 {next_month:%B}."
    )
    assert Generation.objects.count() == 1
    assert credits.balance_of(member_membership.org) == 97


def test_failed_images_give_their_credits_back_to_the_month(member_membership, local_model):
    credits.top_up(org=member_membership.org, amount=100)
    limit(member_membership, 4)
    generation = start(member_membership, local_model, count=3)
    for image in generation.images.all()[:2]:
        credits.release(image=image)

    assert limits.monthly_usage(member_membership).spent == 1
    start(member_membership, local_model, count=3)  # 1 + 3 ≤ 4


def test_last_months_spending_does_not_count(member_membership, local_model):
    credits.top_up(org=member_membership.org, amount=100)
    limit(member_membership, 3)
    old = start(member_membership, local_model, count=3)
    last_month = timezone.now() - datetime.timedelta(days=40)
    Generation.objects.filter(pk=old.pk).update(created_at=last_month)
    LedgerEntry.objects.filter(generation=old).update(created_at=last_month)

    start(member_membership, local_model, count=3)

    assert limits.monthly_usage(member_membership).spent == 3


def test_the_month_starts_at_midnight_in_the_organizations_time_zone(member_membership):
    org = member_membership.org
    org.time_zone = "Asia/Tokyo"  # UTC+9, no daylight saving
    org.save(update_fields=["time_zone"])
    # 30 November 15:30 UTC is 1 December 00:30 in Tokyo: already December there.
    now = datetime.datetime(2026, 11, 30, 15, 30, tzinfo=datetime.UTC)
    first, resets_on = limits.month_start(org, now)
    assert first == datetime.datetime(2026, 12, 1, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert resets_on == datetime.date(2027, 1, 1)
    # 30 November 14:30 UTC is 23:30 in Tokyo: still November.
    first, resets_on = limits.month_start(org, now - datetime.timedelta(hours=1))
    assert (first.month, resets_on) == (11, datetime.date(2026, 12, 1))


def test_a_member_without_a_limit_is_never_refused_by_one(member_membership, local_model):
    credits.top_up(org=member_membership.org, amount=100)
    for _ in range(3):
        start(member_membership, local_model, count=8)
    assert limits.monthly_usage(member_membership).left is None


def test_the_generate_page_shows_a_members_month_and_refuses_past_the_limit(
    member_client, member_membership, local_model
):
    credits.top_up(org=member_membership.org, amount=100)
    limit(member_membership, 5)
    start(member_membership, local_model, count=3)

    page = member_client.get(GENERATE).content.decode()
    assert "Your month: 3 of 5 credits used; 2 left until" in page
    assert "Over your monthly limit: this needs 3 credits and 2 are left" in page
    assert re.search(r'<button type="submit" class="generate-button"\s+disabled>', page)

    response = member_client.post(GENERATE, form_data(local_model, count=3))
    assert response.status_code == 422
    assert "your monthly limit is 5 credits and 2 credits are left" in response.content.decode()
    assert Generation.objects.count() == 1


def test_new_members_start_with_the_organizations_default_limit(org, admin):
    org.default_monthly_limit = 250
    org.save(update_fields=["default_monthly_limit"])
    invitation = org_services.invite_member(
        org=org, email="new@example.com", role="member", invited_by=admin
    )
    newcomer = UserFactory(email="new@example.com")

    membership = org_services.accept_invitation(invitation=invitation, user=newcomer)

    assert membership.monthly_limit == 250


# --- The settings page ---


def test_an_admin_changes_the_settings_and_the_audit_log_says_what_changed(admin_client, org):
    response = admin_client.post(
        SETTINGS,
        {
            "name": org.name,
            "time_zone": "Europe/Berlin",
            "default_monthly_limit": "300",
            "low_balance_threshold": "",
        },
    )

    assert response.status_code == 302
    org.refresh_from_db()
    assert (org.time_zone, org.default_monthly_limit) == ("Europe/Berlin", 300)
    event = AuditEvent.objects.get(action="org.settings_changed")
    assert event.org == org
    assert event.before == {"time_zone": "UTC", "default_monthly_limit": None}
    assert event.after == {"time_zone": "Europe/Berlin", "default_monthly_limit": 300}


def test_an_unknown_time_zone_is_refused(admin_client, org):
    response = admin_client.post(SETTINGS, {"name": org.name, "time_zone": "Mars/Olympus"})
    assert response.status_code == 422
    org.refresh_from_db()
    assert org.time_zone == "UTC"


@pytest.mark.parametrize(
    "field, value",
    [
        ("default_monthly_limit", str(10**30)),
        ("default_monthly_limit", "-5"),
        ("low_balance_threshold", "1e9"),
        ("low_balance_threshold", "ten"),
        ("name", "x" * 10_000),
    ],
)
def test_hostile_settings_are_refused_with_nothing_changed(admin_client, org, field, value):
    data = {"name": org.name, "time_zone": "UTC", field: value}
    response = admin_client.post(SETTINGS, data)
    assert response.status_code == 422
    org.refresh_from_db()
    assert (org.default_monthly_limit, org.low_balance_threshold) == (None, None)
    assert not AuditEvent.objects.filter(action="org.settings_changed").exists()


@pytest.mark.parametrize("value", [str(10**30), "-1", "1.5", "lots"])
def test_a_hostile_member_limit_is_refused_with_nothing_changed(
    admin_client, member_membership, value
):
    url = reverse("workspace:set-monthly-limit", args=[member_membership.public_id])
    response = admin_client.post(url, {"monthly_limit": value}, follow=True)
    assert response.redirect_chain[-1][0] == SETTINGS
    assert "message-error" in response.content.decode()
    member_membership.refresh_from_db()
    assert member_membership.monthly_limit is None
    assert not AuditEvent.objects.filter(action="member.limit_changed").exists()


def test_members_cannot_open_or_change_the_settings(member_client, member_membership, org):
    assert member_client.get(SETTINGS).status_code == 403
    url = reverse("workspace:set-monthly-limit", args=[member_membership.public_id])
    assert member_client.post(url, {"monthly_limit": ""}).status_code == 403


def test_an_admin_sets_and_clears_a_members_limit(admin_client, admin, member_membership):
    url = reverse("workspace:set-monthly-limit", args=[member_membership.public_id])

    admin_client.post(url, {"monthly_limit": "120"})
    member_membership.refresh_from_db()
    assert member_membership.monthly_limit == 120
    admin_client.post(url, {"monthly_limit": ""})
    member_membership.refresh_from_db()
    assert member_membership.monthly_limit is None

    events = AuditEvent.objects.filter(action="member.limit_changed").order_by("pk")
    assert [(e.before, e.after, e.actor) for e in events] == [
        ({"monthly_limit": None}, {"monthly_limit": 120}, admin),
        ({"monthly_limit": 120}, {"monthly_limit": None}, admin),
    ]


def test_another_organizations_member_is_not_found(admin_client):
    stranger = MembershipFactory(org=OrganizationFactory())
    url = reverse("workspace:set-monthly-limit", args=[stranger.public_id])
    assert admin_client.post(url, {"monthly_limit": "1"}).status_code == 404
    stranger.refresh_from_db()
    assert stranger.monthly_limit is None


def test_the_settings_page_lists_each_members_month_in_a_fixed_number_of_queries(
    admin_client, org, local_model, django_assert_max_num_queries
):
    credits.top_up(org=org, amount=500)
    for _ in range(6):
        start(MembershipFactory(org=org, monthly_limit=50), local_model, count=2)
    with django_assert_max_num_queries(8):
        page = admin_client.get(SETTINGS).content.decode()
    assert page.count("2 credits of 50") == 6


# --- The low-balance warning ---


@pytest.fixture
def warned_org(org, admin):
    org.low_balance_threshold = 10
    org.save(update_fields=["low_balance_threshold"])
    credits.top_up(org=org, amount=20)
    return org


def test_falling_below_the_threshold_emails_the_admins_once(
    warned_org, admin, member_membership, local_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        start(member_membership, local_model, count=8)  # 20 → 12: above
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        start(member_membership, local_model, count=3)  # 12 → 9: below
        start(member_membership, local_model, count=3)  # 9 → 6: still below, no second email

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [admin.email]
    assert mail.outbox[0].subject == f"Low balance: 9 credits left in {warned_org.name}"
    assert "below the warning level of 10 credits" in mail.outbox[0].body


def test_the_warning_re_arms_once_the_balance_is_back_above_the_threshold(
    warned_org, member_membership, local_model, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        start(member_membership, local_model, count=8)
        start(member_membership, local_model, count=3)  # below: first email
        credits.top_up(org=warned_org, amount=50)  # back above
        start(member_membership, local_model, count=8)  # 59 → 51: above
        credits.adjust(org=warned_org, delta=-45, actor=None, note="Correction")  # below again
    assert len(mail.outbox) == 2


def test_an_arriving_image_leaves_the_organization_row_alone(
    warned_org, member_membership, local_model
):
    """A capture moves no balance, so the warning has nothing to check: the commonest ledger
    movement adds no write to the organization row."""
    generation = start(member_membership, local_model, count=2)
    image = generation.images.order_by("index").first()
    with CaptureQueriesContext(connection) as captured:
        credits.capture(image=image)
    assert not [q for q in captured if 'UPDATE "orgs_organization"' in q["sql"]]
    assert any('"credits_ledgerentry"' in q["sql"] for q in captured)


def test_admins_see_a_low_balance_banner_and_members_do_not(
    warned_org, admin, member_membership, local_model
):
    start(member_membership, local_model, count=8)
    start(member_membership, local_model, count=6)  # 6 left
    admin_page = signed_in(admin).get(GENERATE).content.decode()
    member_page = signed_in(member_membership.user).get(GENERATE).content.decode()
    assert "Low balance: 6 credits left, below your warning level of 10." in admin_page
    assert "Low balance" not in member_page


def test_a_short_balance_tells_each_person_what_they_can_do(admin, member, org, local_model):
    credits.top_up(org=org, amount=2)
    post = form_data(local_model, count=3)
    admin_page = signed_in(admin).post(GENERATE, post).content.decode()
    member_page = signed_in(member).post(GENERATE, form_data(local_model, count=3)).content.decode()
    assert "This needs 3 credits but your organization has 2 credits." in admin_page
    assert "Request credits from the dashboard" in admin_page
    assert "Ask an admin" not in admin_page
    assert "Ask an admin to request more credits" in member_page
