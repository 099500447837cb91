"""Founding an organization: the one way an organization comes to be.

It sits above the apps it brings together (orgs, credits, providers), so none of them reaches up
into another: onboarding, seed_demo and the test factories all call `open_organization`, and no
signal does this behind the scenes.
"""

from django.db import transaction

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
