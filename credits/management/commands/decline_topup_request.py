"""Decline an organization admin's top-up request from the command line; no credits move
(credits.services.decline_top_up_request). `--note` says why: the organization's admins read it
in their audit log.

    manage.py decline_topup_request 3f2a9c1e --note "Invoice 2026-014 is unpaid"
"""

from django.core.management.base import BaseCommand, CommandError

from credits import limits, services
from credits.management.operator import find_operator, find_top_up_request


class Command(BaseCommand):
    help = "Decline a pending top-up request; no credits move."

    def add_arguments(self, parser):
        parser.add_argument(
            "reference", help="The request's reference (8 characters, see list_topup_requests)."
        )
        parser.add_argument(
            "--note", default="", help="Why, for the organization's audit log (optional)."
        )
        parser.add_argument(
            "--by",
            default="",
            metavar="EMAIL",
            help="The operator deciding: a superuser's email, recorded as the decision's actor.",
        )

    def handle(self, *args, reference, note, by, **options):
        top_up_request = find_top_up_request(reference)
        operator = find_operator(by) if by.strip() else None
        try:
            declined = services.decline_top_up_request(
                top_up_request=top_up_request, operator=operator, note=note
            )
        except services.TopUpRequestError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Declined request {declined.reference} ({limits.credits(declined.amount)} for "
                f"{declined.org}). No credits moved."
            )
        )
