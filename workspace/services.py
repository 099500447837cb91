"""Founding an organization: the one way an organization comes to be.

It sits above the apps it brings together (orgs, credits, providers), so none of them reaches up
into another: onboarding, seed_demo and the test factories all call `open_organization`, and no
signal does this behind the scenes.
"""

from django.db import transaction

from audit.services import changes, record_event
from credits import services as credit_services
from orgs.models import Membership, Organization, OrgError
from providers.defaults import install_default_providers


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
