"""The operators' management commands: topup_credits finds an organization however it is named
(and never guesses), list_organizations and list_topup_requests show what there is, and
approve_topup_request and decline_topup_request decide requests through credits.services. Commands
run as the operator: without --by, the audit log's actor is "command line"."""

import re
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from audit.models import AuditEvent
from credits import services as credits
from credits.models import LedgerEntry, TopUpRequest
from tests.factories import MembershipFactory, OrganizationFactory, TopUpRequestFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return User.objects.create_superuser(email="root@nerstudio.test")


def run(*args) -> str:
    """What the command printed."""
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def refused(*args) -> str:
    """The command's error message; it must refuse."""
    with pytest.raises(CommandError) as exc:
        call_command(*args)
    return str(exc.value)


# --- topup_credits: finding the organization ----------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        lambda org: str(org.pk),
        lambda org: str(org.public_id),
        lambda org: str(org.public_id).upper(),
        lambda org: "acme-creative",
        lambda org: "ACME-Creative",
        lambda org: "Acme Creative",
        lambda org: "  acme CREATIVE ",
    ],
    ids=[
        "id",
        "public id",
        "public id in capitals",
        "slug",
        "slug in capitals",
        "name",
        "any case",
    ],
)
def test_topup_credits_finds_the_organization_by_id_public_id_slug_or_name(org, ref):
    OrganizationFactory(name="Rival Agency")

    out = run("topup_credits", ref(org), "250")

    assert "Added 250 credits to Acme Creative (acme-creative). New balance: 250." in out
    assert credits.balance_of(org) == 250
    assert LedgerEntry.objects.get().org == org


def test_topup_credits_says_one_credit_not_one_credits(org):
    assert "Added 1 credit to Acme Creative" in run("topup_credits", "acme-creative", "1")


def test_topup_credits_refuses_a_name_two_organizations_share_and_lists_both(org):
    twin = OrganizationFactory(name="ACME creative")

    message = refused("topup_credits", "acme creative", "100")

    assert message.startswith('2 organizations match "acme creative"')
    for one in (org, twin):
        assert one.slug in message and str(one.public_id) in message
    assert "acme-creative-2" in message
    assert not LedgerEntry.objects.exists()


def test_each_of_two_organizations_with_one_name_is_reached_by_its_slug(org):
    twin = OrganizationFactory(name="Acme Creative")

    run("topup_credits", twin.slug, "30")

    assert twin.slug == "acme-creative-2"
    assert (credits.balance_of(org), credits.balance_of(twin)) == (0, 30)


def test_a_number_that_is_one_organizations_id_and_anothers_name_is_ambiguous(org):
    numbered = OrganizationFactory(name=str(org.pk))

    message = refused("topup_credits", str(org.pk), "100")

    assert message.startswith(f'2 organizations match "{org.pk}"')
    assert str(org.public_id) in message and str(numbered.public_id) in message
    assert not LedgerEntry.objects.exists()


def test_an_unknown_organization_is_refused_with_the_close_matches(org):
    OrganizationFactory(name="Zebra Films")

    message = refused("topup_credits", "Acme Creatve", "100")

    assert message.startswith('No organization matches "Acme Creatve"')
    assert "Close matches:" in message and "acme-creative" in message
    assert str(org.public_id) in message
    assert "Zebra" not in message
    assert not LedgerEntry.objects.exists()


def test_part_of_a_name_is_not_a_match_but_is_suggested(org):
    message = refused("topup_credits", "acme", "100")

    assert message.startswith('No organization matches "acme"')
    assert "Acme Creative" in message
    assert credits.balance_of(org) == 0


@pytest.mark.parametrize("ref", ["Nothing Like It", "999999", "", "   "])
def test_a_reference_with_no_close_match_points_to_list_organizations(org, ref):
    message = refused("topup_credits", ref, "100")

    assert "list_organizations" in message or "Name the organization" in message
    assert not LedgerEntry.objects.exists()


def test_an_id_too_large_for_the_database_is_simply_not_found(org):
    message = refused("topup_credits", "9" * 30, "100")

    assert message.startswith("No organization matches")


@pytest.mark.parametrize("amount", ["-5", "0", "1.5", "ten", "", "1000000001"])
def test_topup_credits_refuses_a_bad_amount_and_moves_nothing(org, amount):
    message = refused("topup_credits", "acme-creative", amount)

    assert "positive whole number" in message or "limited to" in message
    assert credits.balance_of(org) == 0
    assert not AuditEvent.objects.exists()


def test_a_top_up_from_the_command_line_is_in_the_audit_log_as_the_command_line(org):
    run("topup_credits", "acme-creative", "40", "--note", "Invoice 7")

    event = AuditEvent.objects.get()
    assert (event.action, event.org, event.actor) == ("credits.topped_up", org, None)
    assert (event.actor_label, event.actor_is_operator) == ("command line", True)
    assert (event.before, event.after) == (
        {"balance": 0},
        {"balance": 40, "note": "[command line] Invoice 7"},
    )
    assert event.tenant_actor_label == "NER Studio"


def test_a_top_up_by_a_named_operator_is_theirs_in_the_audit_log(org, operator):
    run("topup_credits", "acme-creative", "40", "--by", "Root@NERstudio.test")

    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_label, event.actor_is_operator) == (
        operator,
        "root@nerstudio.test",
        True,
    )


# --- list_organizations -------------------------------------------------------------------------


@pytest.fixture
def three_orgs(org, admin_membership, member_membership):
    """Acme Creative (2 members, 1,200 credits, 2 pending requests, 1 declined), Rival Agency
    (1 member, 0 credits) and Blue Door (no one, 5 credits, 1 pending)."""
    credits.top_up(org=org, amount=1200)
    TopUpRequestFactory.create_batch(2, org=org)
    credits.decline_top_up_request(top_up_request=TopUpRequestFactory(org=org), operator=None)
    rival = MembershipFactory(org__name="Rival Agency").org
    blue = OrganizationFactory(name="Blue Door")
    credits.top_up(org=blue, amount=5)
    TopUpRequestFactory(org=blue)
    return org, rival, blue


def columns(out: str) -> list[list[str]]:
    """The table's rows, split on the runs of spaces between columns."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def test_list_organizations_shows_each_with_its_slug_members_balance_and_pending_requests(
    three_orgs,
):
    acme, rival, blue = three_orgs

    out = run("list_organizations")

    assert columns(out) == [
        ["Name", "Slug", "Public id", "Members", "Balance", "Pending"],
        ["Acme Creative", "acme-creative", str(acme.public_id), "2", "1,200", "2"],
        ["Blue Door", "blue-door", str(blue.public_id), "0", "5", "1"],
        ["Rival Agency", "rival-agency", str(rival.public_id), "1", "0", "0"],
    ]


def test_list_organizations_aligns_its_columns(three_orgs):
    acme, rival, blue = three_orgs

    header, *rows = run("list_organizations").splitlines()

    public_ids = [str(org.public_id) for org in (acme, blue, rival)]
    assert {header.index("Public id")} == {
        row.index(id) for row, id in zip(rows, public_ids, strict=True)
    }
    assert {len(line) for line in [header, *rows]} == {len(header)}  # numbers aligned right


def test_list_organizations_searches_names_and_slugs_in_any_case(three_orgs):
    by_name = columns(run("list_organizations", "--search", "DOOR"))
    by_slug = columns(run("list_organizations", "--search", "rival-ag"))

    assert [row[0] for row in by_name[1:-1]] == ["Blue Door"]
    assert by_name[-1] == ["1 of 3 organizations."]
    assert [row[0] for row in by_slug[1:-1]] == ["Rival Agency"]


def test_list_organizations_pending_shows_only_those_waiting_for_credits(three_orgs):
    rows = columns(run("list_organizations", "--pending"))

    assert [row[0] for row in rows[1:-1]] == ["Acme Creative", "Blue Door"]


def test_list_organizations_says_when_nothing_matches(three_orgs):
    assert run("list_organizations", "--search", "nothing").strip() == "No organization matches."


def test_list_organizations_makes_one_query_however_many_organizations(
    three_orgs, django_assert_num_queries
):
    OrganizationFactory.create_batch(5)

    with django_assert_num_queries(1):
        run("list_organizations")


# --- list_topup_requests ------------------------------------------------------------------------


def test_list_topup_requests_shows_the_pending_ones_oldest_first(admin_membership, org):
    first = credits.request_top_up(org=org, user=admin_membership.user, amount=1500, note="PO 1")
    second = credits.request_top_up(org=org, user=admin_membership.user, amount=20)
    credits.withdraw_top_up_request(top_up_request=second, user=admin_membership.user)
    third = TopUpRequestFactory(org=OrganizationFactory(name="Blue Door"), amount=70, note="")

    rows = columns(run("list_topup_requests"))

    assert rows[0] == [
        "Reference", "Organization", "Slug", "Amount", "Requested by", "Asked (UTC)", "Status",
        "Note",
    ]  # fmt: skip
    assert [row[0] for row in rows[1:]] == [first.reference, third.reference]
    assert rows[1][:5] == [
        first.reference,
        "Acme Creative",
        "acme-creative",
        "1,500",
        "ada@acme.test",
    ]
    assert rows[1][-2:] == ["Pending", "PO 1"]


def test_list_topup_requests_filters_by_organization_and_status(org):
    pending = TopUpRequestFactory(org=org)
    declined = credits.decline_top_up_request(
        top_up_request=TopUpRequestFactory(org=org), operator=None
    )
    TopUpRequestFactory(org=OrganizationFactory(name="Blue Door"))

    everything = columns(run("list_topup_requests", "--org", "acme-creative", "--status", "all"))
    only_declined = columns(run("list_topup_requests", "--status", "DECLINED"))

    assert [row[0] for row in everything[1:]] == [pending.reference, declined.reference]
    assert [row[0] for row in only_declined[1:]] == [declined.reference]


def test_list_topup_requests_says_when_there_are_none(org):
    assert run("list_topup_requests").strip() == "No pending top-up requests."


def test_list_topup_requests_refuses_an_unknown_status():
    assert "--status must be one of" in refused("list_topup_requests", "--status", "open")


def test_list_topup_requests_refuses_an_unknown_organization(org):
    assert refused("list_topup_requests", "--org", "nobody").startswith("No organization")


# --- approve_topup_request and decline_topup_request --------------------------------------------


@pytest.fixture
def pending(admin_membership, org):
    credits.top_up(org=org, amount=100)
    return credits.request_top_up(org=org, user=admin_membership.user, amount=900, note="PO 9")


def test_approving_from_the_command_line_adds_the_credits_once(pending, org):
    out = run("approve_topup_request", pending.reference)

    assert out.strip() == (
        f"Approved request {pending.reference}: added 900 credits to Acme Creative. "
        "New balance: 1000."
    )
    pending.refresh_from_db()
    assert (pending.status, pending.decided_by) == ("approved", None)
    assert pending.ledger_entry.delta == 900 and pending.ledger_entry.actor is None
    assert credits.balance_of(org) == 1000
    event = AuditEvent.objects.get(action="top_up_request.approved")
    assert (event.actor, event.actor_label, event.actor_is_operator) == (None, "command line", True)
    assert (event.before, event.after) == (
        {"status": "pending", "balance": 100},
        {"status": "approved", "balance": 1000},
    )


@pytest.mark.parametrize(
    "ref",
    [
        lambda r: r.reference.upper(),
        lambda r: f"  {r.reference} ",
        lambda r: str(r.public_id),
        lambda r: r.public_id.hex,
    ],
    ids=["capitals", "spaces", "public id", "public id without dashes"],
)
def test_a_request_is_found_by_its_reference_or_public_id(pending, org, ref):
    run("approve_topup_request", ref(pending))

    assert TopUpRequest.objects.get().status == "approved"


def test_approving_with_by_records_the_operator(pending, operator):
    run("approve_topup_request", pending.reference, "--by", operator.email)

    pending.refresh_from_db()
    assert pending.decided_by == operator and pending.ledger_entry.actor == operator
    assert AuditEvent.objects.get(action="top_up_request.approved").actor == operator


@pytest.mark.parametrize("command", ["approve_topup_request", "decline_topup_request"])
def test_a_by_that_is_not_an_operator_decides_nothing(pending, admin, org, command):
    message = refused(command, pending.reference, "--by", admin.email)

    assert "superuser" in message
    assert TopUpRequest.objects.get().status == "pending"
    assert credits.balance_of(org) == 100


@pytest.mark.parametrize("first", ["approve_topup_request", "decline_topup_request"])
@pytest.mark.parametrize("then", ["approve_topup_request", "decline_topup_request"])
def test_a_decided_request_is_not_decided_again(pending, org, first, then):
    run(first, pending.reference)
    balance = credits.balance_of(org)
    events = AuditEvent.objects.count()

    message = refused(then, pending.reference)

    status = "approved" if first == "approve_topup_request" else "declined"
    assert message == f"Request {pending.reference} was already {status}."
    assert credits.balance_of(org) == balance
    assert AuditEvent.objects.count() == events


def test_a_withdrawn_request_cannot_be_approved(pending, admin, org):
    credits.withdraw_top_up_request(top_up_request=pending, user=admin)

    message = refused("approve_topup_request", pending.reference)

    assert message == f"Request {pending.reference} was already withdrawn."
    assert credits.balance_of(org) == 100


@pytest.mark.parametrize("command", ["approve_topup_request", "decline_topup_request"])
def test_an_unknown_reference_is_refused(pending, command):
    assert refused(command, "0badc0de").startswith("No top-up request has the reference 0badc0de")
    assert refused(command, "PO 9").startswith('"PO 9" is not a request reference')
    assert refused(command, "abc").startswith('"abc" is not a request reference')
    assert TopUpRequest.objects.get().status == "pending"


def test_a_reference_two_requests_share_asks_for_the_public_id(org):
    one = TopUpRequestFactory(org=org, public_id=uuid.UUID("3f2a9c1e-0000-4000-8000-000000000001"))
    two = TopUpRequestFactory(org=org, public_id=uuid.UUID("3f2a9c1e-0000-4000-8000-000000000002"))

    message = refused("approve_topup_request", "3f2a9c1e")

    assert message.startswith("2 requests start with 3f2a9c1e; give the whole public id")
    assert str(one.public_id) in message and str(two.public_id) in message
    run("approve_topup_request", str(two.public_id))
    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.status, two.status) == ("pending", "approved")


def test_declining_from_the_command_line_moves_nothing_and_keeps_the_reason(pending, org):
    out = run("decline_topup_request", pending.reference, "--note", " Invoice 9 is unpaid ")

    assert out.strip() == (
        f"Declined request {pending.reference} (900 credits for Acme Creative). No credits moved."
    )
    pending.refresh_from_db()
    assert (pending.status, pending.decided_by, pending.ledger_entry) == ("declined", None, None)
    assert credits.balance_of(org) == 100
    event = AuditEvent.objects.get(action="top_up_request.declined")
    assert (event.actor_label, event.actor_is_operator) == ("command line", True)
    assert event.after == {"status": "declined", "note": "Invoice 9 is unpaid"}


def test_declining_with_by_records_the_operator(pending, operator):
    run("decline_topup_request", pending.reference, "--by", operator.email)

    pending.refresh_from_db()
    assert pending.decided_by == operator
    assert AuditEvent.objects.get(action="top_up_request.declined").actor == operator
