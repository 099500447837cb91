"""Create (or refresh) the demo organization so a fresh install can be tried at once."""

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from credits import services as credit_services
from credits.limits import credits
from orgs.models import Membership, Organization
from workspace.services import open_organization

DEMO_ORG = "Demo Studio"
DEMO_CREDITS = 500
DEMO_USERS = [
    ("admin@demo.nerstudio.test", "Ada Admin", Membership.Role.ADMIN),
    ("member@demo.nerstudio.test", "Max Member", Membership.Role.MEMBER),
]


class Command(BaseCommand):
    help = "Create the demo organization with an admin and a member. Safe to run repeatedly."

    @transaction.atomic
    def handle(self, *args, **options):
        org = Organization.objects.filter(name=DEMO_ORG).order_by("pk").first()
        created = org is None
        if created:
            org = open_organization(name=DEMO_ORG)  # with its credit account and providers
        for email, name, role in DEMO_USERS:
            user = User.objects.filter(email__iexact=email).first()
            if user is None:
                user = User.objects.create_user(email=email, name=name)
            EmailAddress.objects.update_or_create(
                user=user, email=email, defaults={"verified": True, "primary": True}
            )
            membership = Membership.objects.filter(user=user).first()
            if membership is None:
                Membership.objects.create(org=org, user=user, role=role)
            elif membership.org_id != org.pk:
                self.stderr.write(f"{email} belongs to {membership.org}; left unchanged.")
        if created:  # once: a second run leaves the balance as the demo left it
            credit_services.top_up(org=org, amount=DEMO_CREDITS, note="Demo credits")
        self.stdout.write(
            self.style.SUCCESS(f"Demo organization '{org}' is ready: ")
            + ", ".join(f"{email} ({role})" for email, _, role in DEMO_USERS)
            + f"; {credits(credit_services.balance_of(org))}"
        )
