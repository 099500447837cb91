"""Add credits to an organization's pool from the command line (platform operators).

Whoever can run manage.py operates the platform, so this is one of the two ways credits are added
(the other is the superuser-only admin). The ledger records where the top-up came from: its note
starts with COMMAND_LINE_NOTE, and `--by` names the operator (a superuser) as its actor.
"""

import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from credits import services
from orgs.models import Organization

COMMAND_LINE_NOTE = "[command line]"


class Command(BaseCommand):
    help = "Top up an organization's credits and record it in the ledger."

    def add_arguments(self, parser):
        parser.add_argument("org", help="The organization's public id or exact name.")
        parser.add_argument("amount", help="Credits to add: a positive whole number.")
        parser.add_argument("--note", default="", help="Why, for the ledger (e.g. an invoice).")
        parser.add_argument(
            "--by",
            default="",
            metavar="EMAIL",
            help="The operator doing this: a superuser's email, recorded as the ledger's actor.",
        )

    def handle(self, *args, org, amount, note, by, **options):
        organization = find_organization(org)
        credits_to_add = parse_amount(amount)
        operator = find_operator(by) if by.strip() else None
        note = f"{COMMAND_LINE_NOTE} {note.strip()}".strip()
        entry = services.top_up(org=organization, amount=credits_to_add, actor=operator, note=note)
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {credits_to_add} credits to {organization}. "
                f"New balance: {entry.balance_after}."
            )
        )


def find_organization(ref: str) -> Organization:
    ref = ref.strip()
    try:
        public_id = uuid.UUID(ref)
    except ValueError:
        public_id = None
    if public_id is not None:
        org = Organization.objects.filter(public_id=public_id).first()
        if org is None:
            raise CommandError(f"No organization has the public id {ref}.")
        return org
    matches = list(Organization.objects.filter(name=ref).order_by("created_at"))
    if not matches:
        raise CommandError(f'No organization is named "{ref}". Use its exact name or public id.')
    if len(matches) > 1:
        ids = ", ".join(str(o.public_id) for o in matches)
        raise CommandError(
            f'{len(matches)} organizations are named "{ref}"; give the public id instead: {ids}.'
        )
    return matches[0]


def find_operator(email: str):
    user = get_user_model().objects.filter(email__iexact=email.strip()).first()
    if user is None or not services.is_operator(user):
        raise CommandError(f"--by must be an active superuser's email; {email} is not.")
    return user


def parse_amount(raw: str) -> int:
    try:
        amount = int(raw.strip())
    except ValueError:
        raise CommandError(f'The amount must be a positive whole number, not "{raw}".') from None
    if amount <= 0:
        raise CommandError(f"The amount must be a positive whole number, not {amount}.")
    if amount > services.MAX_MOVEMENT:
        raise CommandError(f"Top-ups are limited to {services.MAX_MOVEMENT} credits at a time.")
    return amount
