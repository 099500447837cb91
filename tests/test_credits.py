"""Credits: the ledger and balance always agree, top-ups by platform operators from the command
line and the superuser-only admin, and the admin never lets anyone rewrite history. (Attacks on
the currency by tenants are in tests/security/test_credit_minting.py.)"""

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from accounts.models import User
from credits import services as credits
from credits.models import CreditAccount, LedgerEntry
from generation.models import Generation, GenerationImage
from generation.pipeline.results import fail_image
from generation.pipeline.start import start_generation
from library.models import SourceImage
from tests.factories import OrganizationFactory
from tests.images import validated
from workspace.services import open_organization

pytestmark = pytest.mark.django_db


def ledger_sum(org) -> int:
    return LedgerEntry.objects.filter(org=org).aggregate(total=Sum("delta"))["total"] or 0


def assert_consistent(org):
    """The balance is the ledger's sum, never negative, and each entry's balance_after is the
    running sum up to it."""
    balance = CreditAccount.objects.get(org=org).balance
    assert balance == ledger_sum(org) >= 0
    running = 0
    for entry in LedgerEntry.objects.filter(org=org).order_by("pk"):
        running += entry.delta
        assert entry.balance_after == running >= 0, entry
    return balance


def image_provider(org, cost=5):
    """The org's local image model at `cost` per image: the platform operator's catalogue price."""
    provider = org.providers.get(adapter="local-image")
    provider.catalogue.credit_cost = cost
    provider.catalogue.save()
    provider.refresh_from_db()
    return provider


def new_generation(membership, *, count=4, cost=5) -> Generation:
    """A generation row with its images, as start_generation creates them, without holding."""
    provider = image_provider(membership.org, cost)
    generation = Generation.objects.create(
        org=membership.org,
        user=membership.user,
        provider=provider,
        provider_name=provider.name,
        credit_cost=cost,
        prompt="A mug",
        aspect_ratio="1:1",
        count=count,
    )
    GenerationImage.objects.bulk_create(generation.new_images(count))
    return generation


@pytest.fixture
def superuser():
    return User.objects.create_superuser(email="root@nerstudio.test")


@pytest.fixture
def superuser_client(superuser):
    client = Client()  # not the shared `client`, which admin_client signs in
    client.force_login(superuser)
    return client


@pytest.fixture
def account(org):
    return CreditAccount.objects.get(org=org)


@pytest.fixture
def other_account(other_admin_membership):
    return CreditAccount.objects.get(org=other_admin_membership.org)


def top_up_url(account):
    return reverse("admin:credits_creditaccount_top_up", args=[account.pk])


def adjust_url(account):
    return reverse("admin:credits_creditaccount_adjust", args=[account.pk])


# --- Every organization has an account ----------------------------------------------------------


def test_a_new_organization_starts_with_an_empty_credit_account():
    org = open_organization(name="Fresh")

    assert CreditAccount.objects.get(org=org).balance == 0
    assert credits.balance_of(org) == 0
    assert not LedgerEntry.objects.filter(org=org).exists()


def test_saving_an_organization_again_keeps_its_account(org, account):
    credits.top_up(org=org, amount=7)
    org.name = "Renamed"
    org.save()

    assert CreditAccount.objects.filter(org=org).count() == 1
    assert credits.balance_of(org) == 7


# --- The management command ----------------------------------------------------------------------


def test_the_command_tops_up_by_public_id_and_prints_the_new_balance(org, capsys):
    credits.top_up(org=org, amount=10)

    call_command("topup_credits", str(org.public_id), "500", "--note", "Invoice 2026-001")

    assert "New balance: 510" in capsys.readouterr().out
    entry = LedgerEntry.objects.filter(org=org).first()
    assert (entry.kind, entry.delta, entry.amount, entry.balance_after) == ("topup", 500, 500, 510)
    assert entry.actor is None and entry.note == "[command line] Invoice 2026-001"
    assert assert_consistent(org) == 510


def test_the_command_records_the_operator_named_by_by(org, superuser):
    call_command("topup_credits", "Acme Creative", "40", "--by", "ROOT@nerstudio.test")

    entry = LedgerEntry.objects.get(org=org)
    assert (entry.delta, entry.actor, entry.note) == (40, superuser, "[command line]")


@pytest.mark.parametrize("by", ["ada@acme.test", "nobody@nerstudio.test"])
def test_the_command_refuses_a_by_that_is_not_an_operator(org, admin, by):
    with pytest.raises(CommandError, match="superuser"):
        call_command("topup_credits", "Acme Creative", "40", "--by", by)

    assert not LedgerEntry.objects.exists()


def test_the_command_finds_an_organization_by_its_exact_name(org, capsys):
    call_command("topup_credits", "Acme Creative", "25")

    assert "New balance: 25" in capsys.readouterr().out
    assert credits.balance_of(org) == 25


@pytest.mark.parametrize("ref", ["Nobody Inc", "Acme", "9b2f1c7e-0000-4000-8000-000000000000"])
def test_the_command_refuses_an_unknown_organization(org, ref):
    with pytest.raises(CommandError, match="No organization"):
        call_command("topup_credits", ref, "100")

    assert not LedgerEntry.objects.exists()


def test_the_command_refuses_an_ambiguous_name_and_lists_the_ids(org):
    twin = OrganizationFactory(name="Acme Creative")

    with pytest.raises(CommandError, match="2 organizations") as exc:
        call_command("topup_credits", "Acme Creative", "100")

    assert str(org.public_id) in str(exc.value) and str(twin.public_id) in str(exc.value)
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("amount", ["-5", "0", "1.5", "ten", "1000000001"])
def test_the_command_refuses_an_amount_that_is_not_a_positive_whole_number(org, amount):
    with pytest.raises(CommandError, match=r"amount must be a positive|limited to"):
        call_command("topup_credits", str(org.public_id), amount)

    assert not LedgerEntry.objects.exists()
    assert credits.balance_of(org) == 0


# --- Top-ups in the admin: platform operators only -------------------------------------------


def test_an_org_admin_gets_403_on_the_top_up_form_for_their_own_account(admin_client, account):
    assert admin_client.get(top_up_url(account)).status_code == 403
    response = admin_client.post(top_up_url(account), {"amount": "300", "note": "PO 17"})

    assert response.status_code == 403
    assert not LedgerEntry.objects.exists()
    assert credits.balance_of(account.org) == 0


def test_a_superuser_sees_the_top_up_form(superuser_client, account):
    response = superuser_client.get(top_up_url(account))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="amount"' in page and 'name="note"' in page
    assert "NER Studio administration" in page


def test_a_superuser_tops_up_an_org_as_the_actor(superuser_client, superuser, org, account):
    response = superuser_client.post(top_up_url(account), {"amount": "300", "note": "PO 17"})

    assert response.status_code == 302
    entry = LedgerEntry.objects.get(org=org)
    assert (entry.kind, entry.delta, entry.actor, entry.note) == ("topup", 300, superuser, "PO 17")
    assert assert_consistent(org) == 300
    assert "New balance: 300" in superuser_client.get(response["Location"]).content.decode()


def test_an_org_admin_cannot_top_up_another_org_with_a_crafted_post(admin_client, other_account):
    response = admin_client.post(top_up_url(other_account), {"amount": "1000", "note": "free"})

    assert response.status_code == 404
    assert not LedgerEntry.objects.exists()
    other_account.refresh_from_db()
    assert other_account.balance == 0


@pytest.mark.parametrize("amount", ["0", "-10", "abc", ""])
def test_a_top_up_needs_a_positive_amount(superuser_client, org, account, amount):
    response = superuser_client.post(top_up_url(account), {"amount": amount})

    assert response.status_code == 200
    assert response.context["form"].errors["amount"]
    assert not LedgerEntry.objects.exists()


def test_a_member_cannot_top_up(member_client, org, account):
    assert member_client.get(top_up_url(account)).status_code == 403
    assert member_client.post(top_up_url(account), {"amount": "50"}).status_code == 403

    assert not LedgerEntry.objects.exists()


def test_an_anonymous_visitor_cannot_top_up(client, account):
    response = client.post(top_up_url(account), {"amount": "50"})

    assert response.status_code == 302
    assert not LedgerEntry.objects.exists()


def test_a_superuser_tops_up_any_org(superuser_client, superuser, other_account):
    response = superuser_client.post(top_up_url(other_account), {"amount": "40"})

    assert response.status_code == 302
    entry = LedgerEntry.objects.get()
    assert (entry.org_id, entry.delta, entry.actor) == (other_account.org_id, 40, superuser)


# --- Adjustments: superusers only --------------------------------------------------------------


def test_a_superuser_adjusts_a_balance_down_and_up(superuser_client, superuser, org, account):
    credits.top_up(org=org, amount=100)

    superuser_client.post(adjust_url(account), {"delta": "-30", "note": "Refund reversed"})
    superuser_client.post(adjust_url(account), {"delta": "5", "note": "Goodwill"})

    adjustments = list(LedgerEntry.objects.filter(kind="adjustment").order_by("pk"))
    assert [(e.delta, e.amount, e.actor, e.note) for e in adjustments] == [
        (-30, 30, superuser, "Refund reversed"),
        (5, 5, superuser, "Goodwill"),
    ]
    assert assert_consistent(org) == 75


def test_an_adjustment_cannot_take_the_balance_below_zero(superuser_client, org, account):
    credits.top_up(org=org, amount=10)

    response = superuser_client.post(adjust_url(account), {"delta": "-11", "note": "Oops"})

    assert response.status_code == 200
    assert "cannot go below zero" in response.content.decode()
    assert LedgerEntry.objects.count() == 1
    assert assert_consistent(org) == 10


@pytest.mark.parametrize(
    ("data", "field"),
    [({"delta": "0", "note": "x"}, "delta"), ({"delta": "5", "note": ""}, "note")],
)
def test_an_adjustment_needs_a_change_and_a_reason(superuser_client, account, data, field):
    response = superuser_client.post(adjust_url(account), data)

    assert response.context["form"].errors[field]
    assert not LedgerEntry.objects.exists()


def test_an_org_admin_cannot_adjust(admin_client, org, account):
    assert admin_client.get(adjust_url(account)).status_code == 403
    response = admin_client.post(adjust_url(account), {"delta": "1000", "note": "Free credits"})

    assert response.status_code == 403
    assert not LedgerEntry.objects.exists()
    page = admin_client.get(reverse("admin:credits_creditaccount_change", args=[account.pk]))
    assert page.status_code == 200
    assert top_up_url(account) not in page.content.decode()
    assert adjust_url(account) not in page.content.decode()


def test_a_superuser_sees_the_top_up_and_adjustment_tools(superuser_client, account):
    page = superuser_client.get(reverse("admin:credits_creditaccount_change", args=[account.pk]))

    assert page.status_code == 200
    assert top_up_url(account) in page.content.decode()
    assert adjust_url(account) in page.content.decode()


def test_an_org_admin_cannot_adjust_another_orgs_balance(admin_client, other_account):
    response = admin_client.post(adjust_url(other_account), {"delta": "5", "note": "Free"})

    assert response.status_code == 404
    assert not LedgerEntry.objects.exists()


# --- Balances and the ledger are read-only in the admin ------------------------------------------


def test_nobody_edits_a_balance_in_the_admin(superuser_client, org, account):
    credits.top_up(org=org, amount=10)
    url = reverse("admin:credits_creditaccount_change", args=[account.pk])

    superuser_client.post(url, {"balance": "999999"})

    assert assert_consistent(org) == 10
    assert superuser_client.get(reverse("admin:credits_creditaccount_add")).status_code == 403
    delete = reverse("admin:credits_creditaccount_delete", args=[account.pk])
    assert superuser_client.post(delete, {"post": "yes"}).status_code == 403
    assert CreditAccount.objects.filter(pk=account.pk).exists()


def test_an_org_admin_lists_only_their_own_account(admin_client, account, other_account):
    response = admin_client.get(reverse("admin:credits_creditaccount_changelist"))

    assert list(response.context["cl"].result_list) == [account]
    other = reverse("admin:credits_creditaccount_change", args=[other_account.pk])
    assert admin_client.get(other, follow=True).redirect_chain[-1][0] == reverse("admin:index")


@pytest.mark.parametrize("who", ["superuser_client", "admin_client"])
def test_the_ledger_is_append_only_in_the_admin(request, who, org, admin):
    client = request.getfixturevalue(who)
    entry = credits.top_up(org=org, amount=10, actor=admin, note="original")
    change = reverse("admin:credits_ledgerentry_change", args=[entry.pk])
    delete = reverse("admin:credits_ledgerentry_delete", args=[entry.pk])

    assert client.get(change).status_code == 200  # viewable
    client.post(change, {"delta": "1000", "note": "rewritten"})
    assert client.get(reverse("admin:credits_ledgerentry_add")).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:credits_ledgerentry_changelist")
    client.post(
        changelist, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )

    entry.refresh_from_db()
    assert (entry.delta, entry.note) == (10, "original")
    assert LedgerEntry.objects.count() == 1


def test_an_org_admin_sees_only_their_orgs_ledger(admin_client, org, other_admin_membership):
    own = credits.top_up(org=org, amount=10)
    other = credits.top_up(org=other_admin_membership.org, amount=20)
    changelist = reverse("admin:credits_ledgerentry_changelist")

    response = admin_client.get(changelist)
    assert list(response.context["cl"].result_list) == [own]
    page = response.content.decode()
    assert "Rival Agency" not in page  # no organization filter listing other orgs
    for column in ["Kind", "Delta", "Amount", "Balance after", "Actor", "Generation", "Provider"]:
        assert column in page
    crafted = admin_client.get(changelist, {"org__id__exact": other.org_id})
    assert list(crafted.context["cl"].result_list) == []
    entry_url = reverse("admin:credits_ledgerentry_change", args=[other.pk])
    assert admin_client.get(entry_url, follow=True).redirect_chain[-1][0] == reverse("admin:index")


def test_the_admin_ledger_says_what_each_movement_did(admin_client, org, admin_membership):
    credits.top_up(org=org, amount=100)
    generation = new_generation(admin_membership, count=2, cost=3)
    credits.hold(generation=generation)
    first, second = generation.images.order_by("index")
    credits.capture(image=first)
    credits.release(image=second)

    page = admin_client.get(reverse("admin:credits_ledgerentry_changelist")).content.decode()

    for words in [
        "Added 100 credits",
        "Held 6 credits for a generation",
        "Spent 3 credits of the hold: an image arrived",
        "Refunded 3 credits: an image failed",
    ]:
        assert words in page


def test_a_superuser_sees_every_ledger_and_filters_by_org(
    superuser_client, org, other_admin_membership
):
    own = credits.top_up(org=org, amount=10)
    other = credits.top_up(org=other_admin_membership.org, amount=20)
    changelist = reverse("admin:credits_ledgerentry_changelist")

    assert set(superuser_client.get(changelist).context["cl"].result_list) == {own, other}
    narrowed = superuser_client.get(changelist, {"org__id__exact": org.pk})
    assert list(narrowed.context["cl"].result_list) == [own]


def test_generations_are_read_only_and_scoped_in_the_admin(
    admin_client, admin_membership, other_admin_membership
):
    own = new_generation(admin_membership)
    new_generation(other_admin_membership)
    changelist = reverse("admin:generation_generation_changelist")

    response = admin_client.get(changelist)

    assert list(response.context["cl"].result_list) == [own]
    change = reverse("admin:generation_generation_change", args=[own.pk])
    assert admin_client.get(change).status_code == 200
    admin_client.post(change, {"prompt": "Changed", "count": "9"})
    own.refresh_from_db()
    assert (own.prompt, own.count) == ("A mug", 4)
    delete = reverse("admin:generation_generation_delete", args=[own.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:generation_generation_add")).status_code == 403


def test_every_credit_admin_page_renders(superuser_client, admin_client, admin_membership, account):
    generation = new_generation(admin_membership)
    credits.top_up(org=account.org, amount=100)
    credits.hold(generation=generation)
    entry = LedgerEntry.objects.first()
    top_up_request = credits.request_top_up(
        org=account.org, user=admin_membership.user, amount=50, note="More"
    )
    urls = [
        reverse("admin:app_list", args=["credits"]),
        reverse("admin:app_list", args=["generation"]),
        reverse("admin:credits_creditaccount_changelist"),
        reverse("admin:credits_creditaccount_change", args=[account.pk]),
        reverse("admin:credits_ledgerentry_changelist"),
        reverse("admin:credits_ledgerentry_change", args=[entry.pk]),
        reverse("admin:generation_generation_changelist"),
        reverse("admin:generation_generation_change", args=[generation.pk]),
    ]
    for url in urls:
        assert admin_client.get(url).status_code == 200, url
    operator_urls = [
        top_up_url(account),
        adjust_url(account),
        reverse("admin:credits_topuprequest_changelist"),
        reverse("admin:credits_topuprequest_changelist") + "?status=all",
        reverse("admin:credits_topuprequest_change", args=[top_up_request.pk]),
    ]
    for url in [*urls, *operator_urls]:
        assert superuser_client.get(url).status_code == 200, url


# --- The dashboard -----------------------------------------------------------------------------


def test_the_dashboard_shows_the_balance_and_the_last_five_entries(admin_client, org, admin):
    for i in range(6):
        credits.top_up(org=org, amount=1000 + i, actor=admin, note=f"top-up #{i}")

    response = admin_client.get(reverse("workspace:dashboard"))

    page = response.content.decode()
    assert "6,015" in page and "credits available" in page
    assert [f"top-up #{i}" in page for i in range(6)] == [False] + [True] * 5
    assert reverse("admin:credits_ledgerentry_changelist") in page


def test_the_dashboard_of_a_new_org_shows_zero_credits(admin_client):
    page = admin_client.get(reverse("workspace:dashboard")).content.decode()

    assert "credits available" in page and "No credit movements yet" in page


# --- Hold, capture, release: the ledger and the balance agree -------------------------------------


def test_a_generation_holds_then_settles_each_image_once(admin_membership, org):
    credits.top_up(org=org, amount=100)
    generation = new_generation(admin_membership, count=4, cost=5)
    images = list(generation.images.all())

    hold = credits.hold(generation=generation)
    assert (hold.kind, hold.delta, hold.amount) == ("hold", -20, 20)
    assert hold.actor == admin_membership.user
    assert assert_consistent(org) == 80

    assert credits.capture(image=images[0]).delta == 0
    assert credits.capture(image=images[1]).delta == 0
    assert assert_consistent(org) == 80  # captured credits stay spent
    released = credits.release(image=images[2], note="Provider refused")
    assert (released.delta, released.amount, released.image) == (5, 5, images[2])
    assert assert_consistent(org) == 85
    credits.release(image=images[3])

    assert assert_consistent(org) == 90  # 100 − 2 images × 5
    assert LedgerEntry.objects.filter(generation=generation).count() == 5


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("capture", "capture"),
        ("capture", "release"),
        ("release", "release"),
        ("release", "capture"),
    ],
)
def test_an_image_settles_once(admin_membership, org, first, second):
    credits.top_up(org=org, amount=50)
    generation = new_generation(admin_membership, count=2, cost=5)
    credits.hold(generation=generation)
    image = generation.images.first()
    getattr(credits, first)(image=image)
    balance = assert_consistent(org)

    with transaction.atomic():  # as in fail_image: the duplicate must not break the transaction
        assert getattr(credits, second)(image=image) is None
        assert Generation.objects.filter(pk=generation.pk).exists()

    assert assert_consistent(org) == balance
    assert LedgerEntry.objects.filter(image=image).count() == 1


def test_a_release_returns_exactly_the_image_cost(admin_membership, org):
    credits.top_up(org=org, amount=21)
    generation = new_generation(admin_membership, count=3, cost=7)
    credits.hold(generation=generation)
    assert assert_consistent(org) == 0

    for image in generation.images.all():
        credits.release(image=image)

    assert assert_consistent(org) == 21


def test_a_generation_is_held_once(admin_membership, org):
    credits.top_up(org=org, amount=100)
    generation = new_generation(admin_membership, count=2, cost=5)
    credits.hold(generation=generation)

    with pytest.raises(IntegrityError), transaction.atomic():
        credits.hold(generation=generation)

    assert assert_consistent(org) == 90


def test_insufficient_credits_change_nothing(admin_membership, org):
    credits.top_up(org=org, amount=19)
    generation = new_generation(admin_membership, count=4, cost=5)

    with pytest.raises(credits.InsufficientCredits) as exc:
        credits.hold(generation=generation)

    assert (exc.value.needed, exc.value.available) == (20, 19)
    assert "needs 20 credits" in str(exc.value)
    assert assert_consistent(org) == 19
    assert LedgerEntry.objects.filter(org=org).count() == 1


def test_a_refused_submission_stores_and_charges_nothing(admin_membership, org, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    provider = image_provider(org, cost=5)
    credits.top_up(org=org, amount=14)

    with pytest.raises(credits.InsufficientCredits):
        start_generation(
            membership=admin_membership,
            provider=provider,
            prompt="A mug",
            count=3,
            aspect_ratio=provider.default_aspect_ratio,
            quality=provider.default_quality,
            products=[validated()],
            references=[validated("#2e86de")],
        )

    assert assert_consistent(org) == 14
    assert LedgerEntry.objects.filter(org=org).count() == 1
    assert not Generation.objects.exists() and not SourceImage.objects.exists()
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_an_accepted_submission_holds_count_times_cost(admin_membership, org, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    provider = image_provider(org, cost=5)
    credits.top_up(org=org, amount=15)

    generation = start_generation(
        membership=admin_membership,
        provider=provider,
        prompt="A mug",
        count=3,
        aspect_ratio=provider.default_aspect_ratio,
        quality=provider.default_quality,
        products=[validated()],
        references=[],
    )

    hold = LedgerEntry.objects.get(kind="hold")
    assert (hold.generation, hold.delta, hold.provider) == (generation, -15, provider)
    assert assert_consistent(org) == 0


def test_a_failed_image_releases_its_share_once(admin_membership, org):
    credits.top_up(org=org, amount=10)
    generation = new_generation(admin_membership, count=2, cost=5)
    credits.hold(generation=generation)
    image = generation.images.first()

    assert fail_image(image.pk, "Provider down") is True
    assert fail_image(image.pk, "Provider down again") is False

    assert assert_consistent(org) == 5
    assert LedgerEntry.objects.get(image=image).note == "Provider down"


def test_the_database_refuses_a_negative_balance(org, account):
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditAccount.objects.filter(pk=account.pk).update(balance=-1)


def test_top_ups_must_be_positive(org):
    for amount in (0, -5):
        with pytest.raises(ValueError):
            credits.top_up(org=org, amount=amount)
    assert not LedgerEntry.objects.exists()
