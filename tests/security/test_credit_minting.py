"""Credits are the platform's currency: a tenant must never mint them.

Anyone who signs in founds an organization and is its admin, so an organization admin is a tenant,
not an operator. Only platform operators (superusers in the admin, whoever runs manage.py) add
credits; organization admins ask with a top-up request, which an operator approves (adding exactly
the requested amount, once) or declines.
"""

from functools import partial

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from credits import services as credits
from credits.models import CreditAccount, LedgerEntry, TopUpRequest
from orgs.models import Organization
from tests.concurrency import race
from tests.factories import TopUpRequestFactory

pytestmark = pytest.mark.django_db

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locking needs PostgreSQL (CI sets it)"
)

REQUEST_CREDITS = reverse("workspace:request-credits")
DASHBOARD = reverse("workspace:dashboard")
REQUESTS_ADMIN = reverse("admin:credits_topuprequest_changelist")
ACCOUNTS_ADMIN = reverse("admin:credits_creditaccount_changelist")


@pytest.fixture
def operator():
    return User.objects.create_superuser(email="root@nerstudio.test")


@pytest.fixture
def operator_client(operator):
    client = Client()  # not the shared `client`, which admin_client and member_client sign in
    client.force_login(operator)
    return client


@pytest.fixture
def account(org):
    return CreditAccount.objects.get(org=org)


def top_up_url(account):
    return reverse("admin:credits_creditaccount_top_up", args=[account.pk])


def adjust_url(account):
    return reverse("admin:credits_creditaccount_adjust", args=[account.pk])


def withdraw_url(top_up_request):
    return reverse("workspace:withdraw-credit-request", args=[top_up_request.public_id])


def pending_request(membership, amount=500, note="PO 17") -> TopUpRequest:
    return credits.request_top_up(
        org=membership.org, user=membership.user, amount=amount, note=note
    )


def run_action(client, action, *requests, query=""):
    return client.post(
        REQUESTS_ADMIN + query,
        {"action": action, "_selected_action": [r.pk for r in requests]},
        follow=True,
    )


def notices(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def refreshed(top_up_request) -> TopUpRequest:
    return TopUpRequest.objects.get(pk=top_up_request.pk)


def assert_untouched(org):
    assert credits.balance_of(org) == 0
    assert not LedgerEntry.objects.filter(org=org).exists()


# --- Tenants cannot add credits themselves -------------------------------------------------------


def test_an_org_admin_cannot_top_up_their_own_organization(admin_client, org, account):
    assert admin_client.get(top_up_url(account)).status_code == 403
    response = admin_client.post(top_up_url(account), {"amount": "1000000000", "note": "free"})
    assert response.status_code == 403
    assert admin_client.get(adjust_url(account)).status_code == 403
    response = admin_client.post(adjust_url(account), {"delta": "1000", "note": "free"})
    assert response.status_code == 403
    # No admin action adds credits either: none is offered on the account list, and a crafted
    # one is ignored.
    response = admin_client.post(
        ACCOUNTS_ADMIN, {"action": "top_up", "_selected_action": [account.pk]}
    )
    assert response.status_code in (200, 302)

    assert_untouched(org)


def test_an_org_admin_cannot_top_up_another_organization(admin_client, other_admin_membership):
    other = CreditAccount.objects.get(org=other_admin_membership.org)

    assert admin_client.get(top_up_url(other)).status_code == 404
    assert admin_client.post(top_up_url(other), {"amount": "1000"}).status_code == 404
    assert admin_client.post(adjust_url(other), {"delta": "5", "note": "x"}).status_code == 404

    assert_untouched(other.org)


def test_an_org_admin_is_offered_no_top_up_anywhere(admin_client, account):
    pages = [
        DASHBOARD,
        reverse("admin:index"),
        reverse("admin:app_list", args=["credits"]),
        ACCOUNTS_ADMIN,
        reverse("admin:credits_creditaccount_change", args=[account.pk]),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert top_up_url(account) not in page, url
        assert adjust_url(account) not in page, url
        assert "Top up" not in page, url
        assert REQUESTS_ADMIN not in page, url
    assert "Request credits" in admin_client.get(DASHBOARD).content.decode()


def test_a_staff_user_who_is_not_a_superuser_cannot_mint_credits(client, org, account, admin):
    """The admin lets staff in; credits still need a superuser, even with model permissions."""
    staff = User.objects.create_user(email="staff@nerstudio.test", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="credits"))
    top_up_request = TopUpRequestFactory(org=org, requested_by=admin)
    client.force_login(staff)

    # Not an organization's admin either, so the scoped account list has nothing for them.
    assert client.post(top_up_url(account), {"amount": "50"}).status_code == 404
    assert client.get(REQUESTS_ADMIN).status_code == 403
    assert run_action(client, "approve", top_up_request).status_code == 403
    with pytest.raises(credits.TopUpRequestError, match="platform operators"):
        credits.approve_top_up_request(top_up_request=top_up_request, operator=staff)

    assert refreshed(top_up_request).is_pending
    assert_untouched(org)


# --- Only operators decide requests --------------------------------------------------------------


def test_an_org_admin_cannot_approve_their_own_top_up_request(admin_client, admin_membership, org):
    top_up_request = pending_request(admin_membership)
    change = reverse("admin:credits_topuprequest_change", args=[top_up_request.pk])

    assert admin_client.get(REQUESTS_ADMIN).status_code == 403
    assert admin_client.get(change).status_code == 403
    assert run_action(admin_client, "approve", top_up_request).status_code == 403
    assert run_action(admin_client, "decline", top_up_request).status_code == 403
    index = admin_client.get(reverse("admin:index"))
    listed = {m["object_name"] for app in index.context["app_list"] for m in app["models"]}
    assert "TopUpRequest" not in listed and "CreditAccount" in listed
    with pytest.raises(credits.TopUpRequestError, match="platform operators"):
        credits.approve_top_up_request(
            top_up_request=top_up_request, operator=admin_membership.user
        )

    assert refreshed(top_up_request).is_pending
    assert_untouched(org)


def test_a_member_cannot_request_credits(member_client, member, org):
    response = member_client.post(REQUEST_CREDITS, {"amount": "500", "note": "please"})

    assert response.status_code == 403
    with pytest.raises(credits.TopUpRequestError, match="Only organization admins"):
        credits.request_top_up(org=org, user=member, amount=500, note="please")
    assert not TopUpRequest.objects.exists()


def test_a_member_cannot_withdraw_a_request(member_client, member, admin_membership):
    top_up_request = pending_request(admin_membership)

    assert member_client.post(withdraw_url(top_up_request)).status_code == 403
    with pytest.raises(credits.TopUpRequestError):
        credits.withdraw_top_up_request(top_up_request=top_up_request, user=member)

    assert refreshed(top_up_request).is_pending


def test_an_admin_cannot_request_credits_for_another_organization(admin, other_admin_membership):
    with pytest.raises(credits.TopUpRequestError):
        credits.request_top_up(org=other_admin_membership.org, user=admin, amount=10)

    assert not TopUpRequest.objects.exists()


def test_another_organizations_request_is_404(client, admin_membership, other_admin):
    top_up_request = pending_request(admin_membership, note="Acme's purchase order")
    client.force_login(other_admin)

    response = client.post(withdraw_url(top_up_request))

    assert response.status_code == 404
    assert refreshed(top_up_request).is_pending
    assert "Acme's purchase order" not in client.get(DASHBOARD).content.decode()


# --- Bounds and limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0", "-5", "1000001", "1e9", "abc", ""])
def test_a_request_amount_outside_the_bounds_is_refused(admin_client, admin, org, amount):
    response = admin_client.post(REQUEST_CREDITS, {"amount": amount, "note": "x"})

    assert response.status_code == 422
    assert response.context["top_up_form"].errors["amount"]
    assert not TopUpRequest.objects.exists()


@pytest.mark.parametrize("amount", [0, -5, 1_000_001])
def test_the_service_refuses_an_amount_outside_the_bounds(admin, org, amount):
    with pytest.raises(credits.TopUpRequestError, match="between 1 and 1,000,000"):
        credits.request_top_up(org=org, user=admin, amount=amount)

    with pytest.raises(IntegrityError), transaction.atomic():
        TopUpRequest.objects.create(org=org, requested_by=admin, amount=amount)
    assert not TopUpRequest.objects.exists()


def test_an_organization_cannot_pile_up_open_requests(
    admin_client, admin_membership, org, other_admin_membership, operator
):
    for amount in (100, 200, 300):
        assert admin_client.post(REQUEST_CREDITS, {"amount": amount}).status_code == 302

    response = admin_client.post(REQUEST_CREDITS, {"amount": "400"})

    assert response.status_code == 422
    assert "already has 3 open requests" in response.content.decode()
    assert TopUpRequest.objects.filter(org=org).count() == 3
    pending_request(other_admin_membership)  # another organization's limit is its own
    # Once the platform answers one, the organization may ask again.
    oldest = TopUpRequest.objects.filter(org=org).last()
    credits.decline_top_up_request(top_up_request=oldest, operator=operator)
    assert admin_client.post(REQUEST_CREDITS, {"amount": "400"}).status_code == 302
    assert TopUpRequest.objects.filter(org=org).pending().count() == 3


def test_a_request_note_is_kept_to_200_characters(admin, org):
    top_up_request = credits.request_top_up(org=org, user=admin, amount=5, note="x" * 500)

    assert len(top_up_request.note) == 200


# --- Approved once -------------------------------------------------------------------------------


def test_a_request_is_approved_once_even_when_approved_twice(admin_membership, org, operator):
    top_up_request = pending_request(admin_membership, amount=700)
    second = User.objects.create_superuser(email="ops@nerstudio.test")

    credits.approve_top_up_request(top_up_request=top_up_request, operator=operator)
    with pytest.raises(credits.TopUpRequestError, match="already approved"):
        credits.approve_top_up_request(top_up_request=top_up_request, operator=second)
    with pytest.raises(credits.TopUpRequestError, match="already approved"):
        credits.decline_top_up_request(top_up_request=top_up_request, operator=second)
    with pytest.raises(credits.TopUpRequestError, match="already approved"):
        credits.withdraw_top_up_request(top_up_request=top_up_request, user=admin_membership.user)

    assert credits.balance_of(org) == 700
    assert LedgerEntry.objects.filter(org=org).count() == 1
    assert refreshed(top_up_request).decided_by == operator


def test_an_operator_approving_from_a_stale_list_is_told_it_was_decided(
    operator_client, admin_membership, org, operator
):
    """Two operators had the pending list open: the second click reports the first decision
    and adds nothing."""
    top_up_request = pending_request(admin_membership, amount=300)
    credits.decline_top_up_request(top_up_request=top_up_request, operator=operator)

    response = run_action(operator_client, "approve", top_up_request)

    assert response.status_code == 200
    assert notices(response) == [f"Request {top_up_request.reference} was already declined."]
    assert_untouched(org)


def test_a_request_cannot_be_marked_approved_without_its_top_up(admin_membership):
    top_up_request = pending_request(admin_membership)

    with pytest.raises(IntegrityError), transaction.atomic():
        TopUpRequest.objects.filter(pk=top_up_request.pk).update(
            status=TopUpRequest.Status.APPROVED, decided_at=timezone.now()
        )
    assert refreshed(top_up_request).is_pending


def _race(calls):
    return race(calls, expected=(credits.TopUpRequestError,))


@needs_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second_decision", ["approve", "decline"])
def test_a_request_is_approved_once_even_when_two_operators_approve_at_once(
    admin_membership, org, second_decision
):
    operators = [User.objects.create_superuser(email=f"op{i}@nerstudio.test") for i in range(2)]
    decide = {
        "approve": credits.approve_top_up_request,
        "decline": credits.decline_top_up_request,
    }
    for round_ in range(10):
        top_up_request = pending_request(admin_membership, amount=100 + round_)
        calls = [
            partial(
                credits.approve_top_up_request, top_up_request=top_up_request, operator=operators[0]
            ),
            partial(decide[second_decision], top_up_request=top_up_request, operator=operators[1]),
        ]

        outcomes = _race(calls)

        decided = [o for o in outcomes if isinstance(o, TopUpRequest)]
        assert len(decided) == 1, outcomes
        final = refreshed(top_up_request)
        assert final.status == decided[0].status
        entries = LedgerEntry.objects.filter(org=org, top_up_request=final)
        assert entries.count() == (1 if final.status == TopUpRequest.Status.APPROVED else 0)

    approved = TopUpRequest.objects.filter(org=org, status=TopUpRequest.Status.APPROVED)
    assert credits.balance_of(org) == sum(r.amount for r in approved)
    assert LedgerEntry.objects.filter(org=org).count() == approved.count()


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_organization_cannot_pile_up_open_requests_by_posting_at_once(admin_membership, org):
    outcomes = _race(
        [lambda i=i: pending_request(admin_membership, amount=10 + i) for i in range(8)]
    )

    assert sum(isinstance(o, TopUpRequest) for o in outcomes) == 3
    assert TopUpRequest.objects.filter(org=org).count() == 3


# --- What operators and tenants do ---------------------------------------------------------------


def test_a_superusers_approval_adds_exactly_the_amount_with_a_ledger_entry_naming_the_operator(
    operator_client, operator, admin_membership, org
):
    credits.top_up(org=org, amount=10)
    top_up_request = pending_request(admin_membership, amount=2500, note="PO 17")

    response = run_action(operator_client, "approve", top_up_request)

    assert notices(response) == [
        f"Approved request {top_up_request.reference}: added 2500 credits to Acme Creative. "
        "New balance: 2510."
    ]
    entry = LedgerEntry.objects.filter(org=org).first()
    assert (entry.kind, entry.delta, entry.actor) == ("topup", 2500, operator)
    assert entry.note == f"Request {top_up_request.reference}: PO 17"
    final = refreshed(top_up_request)
    assert (final.status, final.decided_by, final.ledger_entry) == ("approved", operator, entry)
    assert final.decided_at is not None
    assert credits.balance_of(org) == 2510


def test_an_operator_approves_and_declines_several_requests_at_once(
    operator_client, admin_membership, other_admin_membership
):
    ours = [pending_request(admin_membership, amount=a) for a in (100, 200)]
    theirs = pending_request(other_admin_membership, amount=50)

    response = run_action(operator_client, "approve", ours[0], theirs)
    response_decline = run_action(operator_client, "decline", ours[1])

    assert len(notices(response)) == 2
    assert "Declined request" in notices(response_decline)[0]
    assert credits.balance_of(admin_membership.org) == 100
    assert credits.balance_of(other_admin_membership.org) == 50
    assert refreshed(ours[1]).status == TopUpRequest.Status.DECLINED


def test_a_decline_changes_no_balance(operator_client, operator, admin_membership, org):
    credits.top_up(org=org, amount=40)
    top_up_request = pending_request(admin_membership, amount=900)

    response = run_action(operator_client, "decline", top_up_request)

    assert "No credits moved" in notices(response)[0]
    final = refreshed(top_up_request)
    assert (final.status, final.decided_by, final.ledger_entry) == ("declined", operator, None)
    assert credits.balance_of(org) == 40
    assert LedgerEntry.objects.filter(org=org).count() == 1


def test_the_commands_top_up_is_in_the_ledger(org, operator, capsys):
    call_command(
        "topup_credits", str(org.public_id), "1200", "--note", "Invoice 9", "--by", operator.email
    )

    entry = LedgerEntry.objects.get(org=org)
    assert (entry.kind, entry.delta, entry.actor) == ("topup", 1200, operator)
    assert entry.note == "[command line] Invoice 9"
    assert credits.balance_of(org) == 1200
    assert "New balance: 1200" in capsys.readouterr().out


def test_an_org_admin_requests_credits_from_the_dashboard_and_operators_are_emailed(
    admin_client, admin, org, settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = ["ops@nerstudio.test"]
    settings.NERSTUDIO_PUBLIC_URL = "https://studio.example.com"

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(REQUEST_CREDITS, {"amount": "1500", "note": " PO 17 "})

    assert response.status_code == 302
    top_up_request = TopUpRequest.objects.get()
    assert (top_up_request.org, top_up_request.requested_by) == (org, admin)
    assert (top_up_request.amount, top_up_request.note, top_up_request.status) == (
        1500,
        "PO 17",
        "pending",
    )
    assert_untouched(org)
    [email] = mail.outbox
    assert email.to == ["ops@nerstudio.test"]
    assert "1,500 credits for Acme Creative" in email.subject
    assert "PO 17" in email.body and "ada@acme.test" in email.body
    assert "https://studio.example.com" + REQUESTS_ADMIN in email.body
    page = admin_client.get(response["Location"]).content.decode()
    assert "Requested 1,500 credits" in page
    assert 'id="credit-request-' in page and "Pending" in page and "PO 17" in page


def test_no_email_is_sent_without_admins(admin, org, settings, django_capture_on_commit_callbacks):
    settings.ADMINS = []

    with django_capture_on_commit_callbacks(execute=True):
        credits.request_top_up(org=org, user=admin, amount=10)

    assert mail.outbox == []
    assert TopUpRequest.objects.count() == 1


def test_a_request_is_kept_when_emailing_the_operators_fails(
    admin, org, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.ADMINS = ["ops@nerstudio.test"]

    def broken_mail_server(*args, **kwargs):
        raise ConnectionRefusedError("SMTP is down")

    monkeypatch.setattr(credits, "mail_admins", broken_mail_server)  # the outside I/O seam

    with django_capture_on_commit_callbacks(execute=True):
        top_up_request = credits.request_top_up(org=org, user=admin, amount=10)

    assert refreshed(top_up_request).is_pending


def test_the_dashboard_shows_each_requests_status(admin_client, admin_membership, operator, org):
    approved, declined, waiting = (
        pending_request(admin_membership, amount=a, note=f"n{a}") for a in (11, 22, 33)
    )
    credits.approve_top_up_request(top_up_request=approved, operator=operator)
    credits.decline_top_up_request(top_up_request=declined, operator=operator)

    page = admin_client.get(DASHBOARD).content.decode()

    for top_up_request, label in [
        (approved, "Approved"),
        (declined, "Declined"),
        (waiting, "Pending"),
    ]:
        row = page.split(f'id="credit-request-{top_up_request.public_id}"')[1].split("</tr>")[0]
        assert label in row
        assert (withdraw_url(top_up_request) in row) == (top_up_request is waiting)
    # The approval reads as the platform's, without the operator's account.
    assert operator.email not in page and "NER Studio" in page


def test_an_org_admin_sees_the_platform_not_the_operator_in_the_ledger(
    admin_client, admin_membership, operator, org
):
    credits.approve_top_up_request(
        top_up_request=pending_request(admin_membership), operator=operator
    )
    entry = LedgerEntry.objects.get(org=org)

    for url in [
        reverse("admin:credits_ledgerentry_changelist"),
        reverse("admin:credits_ledgerentry_change", args=[entry.pk]),
    ]:
        page = admin_client.get(url).content.decode()
        assert operator.email not in page, url
        assert "NER Studio" in page, url


def test_an_org_admin_withdraws_a_pending_request(admin_client, admin, admin_membership, org):
    top_up_request = pending_request(admin_membership)

    response = admin_client.post(withdraw_url(top_up_request), follow=True)

    assert "Withdrew the request" in response.content.decode()
    final = refreshed(top_up_request)
    assert (final.status, final.decided_by) == ("withdrawn", admin)
    assert_untouched(org)


def test_operators_find_pending_requests(operator_client, admin_membership, operator, org):
    waiting = pending_request(admin_membership, note="waiting one")
    done = pending_request(admin_membership, note="decided one")
    credits.decline_top_up_request(top_up_request=done, operator=operator)

    default = operator_client.get(REQUESTS_ADMIN)
    everything = operator_client.get(REQUESTS_ADMIN, {"status": "all"})
    accounts = operator_client.get(ACCOUNTS_ADMIN)
    index = operator_client.get(reverse("admin:index")).content.decode()

    assert list(default.context["cl"].result_list) == [waiting]
    assert set(everything.context["cl"].result_list) == {waiting, done}
    page = accounts.content.decode()
    assert "1 pending top-up request" in page
    assert f"{REQUESTS_ADMIN}?org__id__exact={org.pk}" in page
    for_org = operator_client.get(REQUESTS_ADMIN, {"org__id__exact": org.pk})
    assert list(for_org.context["cl"].result_list) == [waiting]
    assert REQUESTS_ADMIN in index


def test_deleting_an_organization_deletes_its_requests_and_ledger(admin_membership, operator):
    org = admin_membership.org
    approved = pending_request(admin_membership)
    credits.approve_top_up_request(top_up_request=approved, operator=operator)
    pending_request(admin_membership)

    Organization.objects.filter(pk=org.pk).delete()

    assert not TopUpRequest.objects.exists()
    assert not LedgerEntry.objects.exists()


# --- Prices and timeouts of the platform's models -------------------------------------------------


def test_an_org_admin_cannot_lower_a_platform_models_price(admin_client, admin_membership):
    from providers.models import Provider

    row = admin_membership.org.providers.get(adapter="local-image")
    price = row.catalogue.credit_cost
    change = reverse("admin:providers_platformmodel_change", args=[row.pk])

    response = admin_client.post(
        change,
        {
            "name": row.name,
            "priority": row.priority,
            "enabled": "on",
            "is_default": "on",
            "credit_cost": 0,
            "timeout_seconds": 1e9,
        },
    )

    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.credit_cost, row.timeout_seconds) == (price, row.catalogue.timeout_seconds)
    with pytest.raises(IntegrityError), transaction.atomic():
        Provider.objects.filter(pk=row.pk).update(credit_cost=0)  # nor behind the form's back


@pytest.mark.parametrize("timeout", ["0.5", "121", "1e9", "-1"])
def test_a_provider_timeout_outside_1_to_120_seconds_is_refused(admin_client, timeout):
    from providers.models import Provider

    response = admin_client.post(
        reverse("admin:providers_ownkeyprovider_add"),
        {
            "name": "Slowpoke",
            "adapter": "openai-vision",
            "api_key": "sk-own-1234",
            "priority": 10,
            "timeout_seconds": timeout,
            "options": "{}",
            "credit_cost": 0,
            "max_product_images": 4,
            "max_reference_images": 4,
            "enabled": "on",
        },
    )

    assert response.status_code == 200
    assert "Ensure this value is" in response.content.decode()
    assert not Provider.objects.filter(name="Slowpoke").exists()


def test_the_database_refuses_an_unbounded_timeout(admin_membership):
    from providers.models import Provider

    row = admin_membership.org.providers.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Provider.objects.filter(pk=row.pk).update(timeout_seconds=1e9)
