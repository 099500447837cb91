"""Every organization at a glance, for operators: what to type to the other commands (slug, public
id), who is in it, what it holds and whether it is waiting for credits.

    manage.py list_organizations --search acme
    manage.py list_organizations --pending
"""

from django.core.management.base import BaseCommand
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce

from credits.management.operator import table
from credits.models import TopUpRequest
from orgs.models import Organization


class Command(BaseCommand):
    help = (
        "List organizations: name, slug, public id, members, balance and pending top-up requests."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--search", default="", help="Only those whose name or slug contains this (any case)."
        )
        parser.add_argument(
            "--pending",
            action="store_true",
            help="Only those with top-up requests waiting for a decision.",
        )

    def handle(self, *args, search, pending, **options):
        pending_requests = Q(top_up_requests__status=TopUpRequest.Status.PENDING)
        orgs = (
            Organization.objects.active()
            .annotate(
                members=Count("memberships", distinct=True),
                pending=Count("top_up_requests", filter=pending_requests, distinct=True),
                balance=Coalesce(F("credits__balance"), 0),
            )
            .order_by("name", "pk")
        )
        if search.strip():
            orgs = orgs.filter(
                Q(name__icontains=search.strip()) | Q(slug__icontains=search.strip())
            )
        if pending:
            orgs = orgs.filter(pending__gt=0)
        rows = [
            (
                org.name,
                org.slug,
                str(org.public_id),
                f"{org.members}",
                f"{org.balance:,}",
                f"{org.pending}",
            )
            for org in orgs
        ]
        if not rows:
            self.stdout.write(
                "No organization matches." if search or pending else "No organizations yet."
            )
            return
        headers = ("Name", "Slug", "Public id", "Members", "Balance", "Pending")
        self.stdout.write(table(rows, headers))
        if search or pending:
            self.stdout.write(
                f"{len(rows)} of {Organization.objects.active().count()} organizations."
            )
