"""Top-up requests cannot flood the platform operators: besides at most 3 open at once, an
organization makes at most 5 requests a day that the platform did not answer, withdrawn ones
included (each request emails the operators)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from credits import services as credits
from credits.models import TopUpRequest

pytestmark = pytest.mark.django_db

REQUEST_CREDITS = reverse("workspace:request-credits")


def withdraw(client, top_up_request):
    url = reverse("workspace:withdraw-credit-request", args=[top_up_request.public_id])
    return client.post(url)


def test_withdrawn_requests_count_towards_the_daily_limit(
    admin_client, org, settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = ["ops@nerstudio.test"]
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            assert admin_client.post(REQUEST_CREDITS, {"amount": "1000"}).status_code == 302
        withdraw(admin_client, TopUpRequest.objects.for_org(org).pending().get())

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(REQUEST_CREDITS, {"amount": "1000"})

    assert response.status_code == 422
    assert (
        "Your organization has made 5 credit requests in the past 24 hours, counting withdrawn "
        "ones: the most allowed. You can ask again in 24 hours."
    ) in response.content.decode()
    assert TopUpRequest.objects.for_org(org).count() == 5
    assert sum(1 for m in mail.outbox if m.to == ["ops@nerstudio.test"]) == 5


def test_requests_older_than_a_day_no_longer_count(admin, org):
    for _ in range(5):
        withdrawn = credits.request_top_up(org=org, user=admin, amount=10)
        credits.withdraw_top_up_request(top_up_request=withdrawn, user=admin)
    TopUpRequest.objects.filter(pk=withdrawn.pk).update(
        created_at=timezone.now() - timedelta(hours=24, seconds=1)
    )

    assert credits.request_top_up(org=org, user=admin, amount=10).is_pending


def test_requests_the_platform_answered_do_not_count(admin, org, other_admin):
    operator = type(admin).objects.create_superuser(email="root@nerstudio.test")
    for _ in range(6):
        answered = credits.request_top_up(org=org, user=admin, amount=10)
        credits.decline_top_up_request(top_up_request=answered, operator=operator)

    assert credits.request_top_up(org=org, user=admin, amount=10).is_pending


def test_the_daily_limit_is_the_organizations_own(admin, org, other_admin):
    for _ in range(5):
        withdrawn = credits.request_top_up(org=org, user=admin, amount=10)
        credits.withdraw_top_up_request(top_up_request=withdrawn, user=admin)
    rival = other_admin.membership.org

    assert credits.request_top_up(org=rival, user=other_admin, amount=10).is_pending
    with pytest.raises(credits.TopUpRequestError, match="5 credit requests in the past 24 hours"):
        credits.request_top_up(org=org, user=admin, amount=10)
