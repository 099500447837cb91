"""Top-up requests for operators to decide: the pending ones by default, oldest first (the first
asked is the first answered), with the reference approve_topup_request and decline_topup_request
take.

    manage.py list_topup_requests
    manage.py list_topup_requests --org acme-creative --status all
"""

from django.core.management.base import BaseCommand, CommandError

from credits.management.operator import find_organization, table
from credits.models import TopUpRequest

STATUSES = [*TopUpRequest.Status.values, "all"]


class Command(BaseCommand):
    help = "List top-up requests (pending ones unless --status says otherwise), oldest first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--org", default="", help="Only this organization's: its id, public id, slug or name."
        )
        parser.add_argument(
            "--status",
            default=TopUpRequest.Status.PENDING.value,
            help=f"One of {', '.join(STATUSES)} (default: pending).",
        )

    def handle(self, *args, org, status, **options):
        status = status.strip().lower()
        if status not in STATUSES:
            raise CommandError(f'--status must be one of {", ".join(STATUSES)}, not "{status}".')
        requests = TopUpRequest.objects.select_related("org", "requested_by").order_by(
            "created_at", "pk"
        )
        if status != "all":
            requests = requests.filter(status=status)
        if org.strip():
            requests = requests.filter(org=find_organization(org))
        rows = [
            (
                r.reference,
                r.org.name,
                r.org.slug,
                f"{r.amount:,}",
                r.requested_by.email if r.requested_by else "(former admin)",
                f"{r.created_at:%Y-%m-%d %H:%M}",
                r.get_status_display(),
                r.note,
            )
            for r in requests
        ]
        if not rows:
            what = "pending top-up requests" if status == "pending" else "top-up requests"
            self.stdout.write(f"No {what}.")
            return
        headers = (
            "Reference",
            "Organization",
            "Slug",
            "Amount",
            "Requested by",
            "Asked (UTC)",
            "Status",
            "Note",
        )
        self.stdout.write(table(rows, headers))
