"""Add credits to an organization's pool from the command line (platform operators).

Whoever can run manage.py operates the platform, so this is one of the two ways credits are added
(the other is the superuser-only admin). The ledger records where the top-up came from: its note
starts with COMMAND_LINE_NOTE, and `--by` names the operator (a superuser) as its actor; without
it the actor is none, which the audit log shows as "command line".

    manage.py topup_credits acme-creative 5000 --note "Invoice 2026-014"
"""

from django.core.management.base import BaseCommand, CommandError

from credits import limits, services
from credits.management.operator import find_operator, find_organization

COMMAND_LINE_NOTE = "[command line]"


class Command(BaseCommand):
    help = "Top up an organization's credits and record it in the ledger."

    def add_arguments(self, parser):
        parser.add_argument(
            "org",
            help="The organization: its id, public id, slug or name (any case). When that could "
            "be more than one, or none, the command stops and lists the candidates.",
        )
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
                f"Added {limits.credits(credits_to_add)} to {organization} ({organization.slug}). "
                f"New balance: {entry.balance_after}."
            )
        )


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
