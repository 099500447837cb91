"""Founding an organization: the one way an organization comes to be; and deleting one.

It sits above the apps it brings together (orgs, credits, providers), so none of them reaches up
into another: onboarding, seed_demo and the test factories all call `open_organization`, and no
signal does this behind the scenes.
"""

from django.db import transaction
from django.utils import timezone

from audit.services import changes, record_event
from credits import services as credit_services
from credits.models import CreditAccount, LedgerEntry
from generation.models import Generation, GenerationImage
from library.models import SourceImage
from orgs.models import Invitation, Membership, Organization, OrgError
from providers.defaults import install_default_providers
from providers.models import ProviderAttempt


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
def delete_organization(*, org: Organization, actor, confirm_name: str) -> list[str]:
    """An admin deletes the organization for good. At once: its members and invitations go (no
    one can reach it any more) and it is marked deleted; its generations, library, collections,
    providers, credits and files are then removed in the background, in rounds
    (purge_organization, which workspace.tasks.delete_organization queues), however large it
    is. Refused while a generation is running (its provider may still call back and its
    credits are held). The audit log keeps one event, with the balance given up, for the
    operators. Returns the email addresses of the members removed, the actor's aside."""
    # The credit account first, then the organization, the order a credit movement takes them
    # in (its low-balance warning updates the organization). A generation starting holds the
    # account from its credit hold to its commit (generation.pipeline.start): one that got
    # there first is seen running below, one that comes after sees the organization deleted.
    balance = _lock_account(org.pk)
    org = Organization.objects.select_for_update(no_key=True).get(pk=org.pk)
    if org.deleted_at is not None:
        raise OrgError(f"{org.name} is already being deleted.")
    if " ".join(confirm_name.split()) != " ".join(org.name.split()):
        raise OrgError(f"Type the organization's name, “{org.name}”, to delete it.")
    if Generation.objects.filter(org=org, finished_at__isnull=True).exists():
        raise OrgError(
            "A generation is still running; delete the organization once it has finished."
        )
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
    members = Membership.objects.filter(org=org)
    emails = list(members.exclude(user=actor).values_list("user__email", flat=True))
    Invitation.objects.filter(org=org).delete()
    members.delete()
    org.deleted_at = timezone.now()
    org.save(update_fields=["deleted_at"])
    return emails


PURGE_GENERATIONS = 1_000  # per round: each round is one short transaction


def purge_organization(org_id: int) -> tuple[list[str], bool]:
    """One round of removing a deleted organization: up to PURGE_GENERATIONS generations with
    their images and ledger entries, or, once none are left, everything else and the
    organization itself. Returns the stored files the round's rows named (to delete once it
    has committed) and whether another round is needed. Nothing for an organization not
    deleted, or gone."""
    with transaction.atomic():
        _lock_account(org_id)  # as delete_organization: the account, then the organization
        org = (
            Organization.objects.select_for_update()
            .filter(pk=org_id, deleted_at__isnull=False)
            .first()
        )
        if org is None:
            return [], False
        batch = list(
            Generation.objects.filter(org=org)
            .order_by()
            .values_list("pk", flat=True)[:PURGE_GENERATIONS]
        )
        if batch:
            files = _stored_files(GenerationImage.objects.filter(generation_id__in=batch))
            # Largest tables first, each in one statement: left to the generations' cascade,
            # every ledger entry of theirs would be updated (its generation set to NULL) first.
            LedgerEntry.objects.filter(generation_id__in=batch).delete()
            ProviderAttempt.objects.filter(generation_id__in=batch).delete()
            Generation.objects.filter(pk__in=batch).delete()
            return files, True
        files = _stored_files(SourceImage.objects.filter(org=org))
        LedgerEntry.objects.filter(org=org).delete()
        ProviderAttempt.objects.filter(provider__org=org).delete()
        org.delete()
        return files, False


def _stored_files(images) -> list[str]:
    return [name for pair in images.values_list("file", "thumbnail") for name in pair if name]


def _lock_account(org_id: int) -> int | None:
    """Lock the organization's credit account; its balance (None without one). Not
    credits.services' own locking, which opens an account that is missing: the removal's last
    round has deleted it, and a late round must not open one for an organization gone."""
    return (
        CreditAccount.objects.select_for_update()
        .filter(org_id=org_id)
        .values_list("balance", flat=True)
        .first()
    )
