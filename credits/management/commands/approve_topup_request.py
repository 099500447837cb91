"""Approve an organization admin's top-up request from the command line: exactly the requested
credits are added, once (credits.services.approve_top_up_request); the ledger and the audit log
name `--by` as the operator, or "command line" without it.

    manage.py approve_topup_request 3f2a9c1e --by ops@example.com
"""

from django.core.management.base import BaseCommand, CommandError

from credits import limits, services
from credits.management.operator import find_operator, find_top_up_request


class Command(BaseCommand):
    help = "Approve a pending top-up request: add the credits it asks for."

    def add_arguments(self, parser):
        parser.add_argument(
            "reference", help="The request's reference (8 characters, see list_topup_requests)."
        )
        parser.add_argument(
            "--by",
            default="",
            metavar="EMAIL",
            help="The operator deciding: a superuser's email, recorded as the decision's actor.",
        )

    def handle(self, *args, reference, by, **options):
        top_up_request = find_top_up_request(reference)
        operator = find_operator(by) if by.strip() else None
        try:
            approved = services.approve_top_up_request(
                top_up_request=top_up_request, operator=operator
            )
        except services.TopUpRequestError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Approved request {approved.reference}: added {limits.credits(approved.amount)} "
                f"to {approved.org}. New balance: {approved.ledger_entry.balance_after}."
            )
        )
