"""Founding an organization: the one way an organization comes to be; and deleting one.

It sits above the apps it brings together (orgs, credits, providers), so none of them reaches up
into another: onboarding, seed_demo and the test factories all call `open_organization`, and no
signal does this behind the scenes.
"""

from django.db import transaction

from audit.services import changes, record_event
from credits import services as credit_services
from credits.models import CreditAccount, LedgerEntry
from generation.models import Generation, GenerationImage
from lib.tasks import enqueue
from library.models import SourceImage
from orgs.models import Membership, Organization, OrgError
from providers.defaults import install_default_providers
from providers.models import ProviderAttempt
from workspace import tasks


@transaction.atomic
def open_organization(*, name: str) -> Organization:
    """An organization ready to use: the row, its credit account (balance 0, so the balance shows
    and the first credit movement has a row to lock) and the default providers (one row per
    offered catalogue model; see providers.defaults). It adds no member: see
    create_organization."""
    org = Organization.objects.create(name=name.strip())
    credit_services.open_account(org=org)
    install_default_providers(org)
    return org


@transaction.atomic
def create_organization(*, user, name: str) -> Organization:
    """Onboarding: a user without an organization opens one and becomes its admin."""
    if Membership.objects.filter(user=user).exists():
        raise OrgError("You already belong to an organization.")
    org = open_organization(name=name)
    Membership.objects.create(org=org, user=user, role=Membership.Role.ADMIN)
    return org


SETTINGS_FIELDS = ("name", "time_zone", "default_monthly_limit", "low_balance_threshold")


@transaction.atomic
def update_organization_settings(*, org: Organization, actor, **values) -> Organization:
    """Change the organization's settings (SETTINGS_FIELDS) and record what changed. A new low
    balance threshold re-arms the warning."""
    old = {field: getattr(org, field) for field in SETTINGS_FIELDS}
    new = {field: values.get(field, old[field]) for field in SETTINGS_FIELDS}
    before, after = changes(old, new)
    if not after:
        return org
    for field, value in after.items():
        setattr(org, field, value)
    if "low_balance_threshold" in after:
        org.low_balance_warned_at = None
    org.save(update_fields=[*after, "low_balance_warned_at"])
    record_event(
        actor=actor, action="org.settings_changed", org=org, target=org, before=before, after=after
    )
    return org


@transaction.atomic
def delete_organization(*, org: Organization, actor, confirm_name: str) -> None:
    """An admin deletes the organization for good: its members, invitations, generations,
    library, collections, providers and own keys, credit balance and ledger. The files follow in
    the background (workspace.tasks.delete_stored_files). Refused while a generation is running
    (its provider may still call back and its credits are held). The audit log keeps one event,
    with the balance given up, for the operators."""
    org = Organization.objects.select_for_update().get(pk=org.pk)
    if " ".join(confirm_name.split()) != " ".join(org.name.split()):
        raise OrgError(f"Type the organization's name, “{org.name}”, to delete it.")
    if Generation.objects.filter(org=org, finished_at__isnull=True).exists():
        raise OrgError(
            "A generation is still running; delete the organization once it has finished."
        )
    files = [
        name
        for model in (GenerationImage, SourceImage)
        for pair in model.objects.filter(org=org).values_list("file", "thumbnail")
        for name in pair
        if name
    ]
    balance = CreditAccount.objects.filter(org=org).values_list("balance", flat=True).first()
    record_event(
        actor=actor,
        action="org.deleted",
        org=org,
        target=org,
        before={
            "name": org.name,
            "members": Membership.objects.filter(org=org).count(),
            "balance": balance or 0,
        },
    )
    _delete_in_bulk(org)
    for start in range(0, len(files), FILES_PER_TASK):
        enqueue(tasks.delete_stored_files, names=files[start : start + FILES_PER_TASK])


FILES_PER_TASK = 500  # a task's message stays small however large the organization


def _delete_in_bulk(org: Organization) -> None:
    """The cascade, largest tables first and each in one statement: left to the organization's
    own cascade, deleting its providers first set every generation's and image's provider to
    NULL (rewriting rows about to go) and every ledger entry's generation and image too."""
    LedgerEntry.objects.filter(org=org).delete()
    ProviderAttempt.objects.filter(provider__org=org).delete()
    Generation.objects.filter(org=org).delete()
    org.delete()
