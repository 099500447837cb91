"""Delete an organization and everything in it from the command line (platform operators): the
same deletion as an admin's on the Settings page (workspace.tasks.delete_organization): its
members at once, its rows and files in the background, and the audit log keeps the event.
`--confirm` must repeat the organization's name.

    manage.py delete_organization acme-creative --confirm "Acme Creative" --by root@example.com
"""

from django.core.management.base import BaseCommand, CommandError

from credits.management.operator import find_operator, find_organization
from orgs.models import OrgError
from workspace import tasks


class Command(BaseCommand):
    help = "Delete an organization for good, with its members, images, library and credits."

    def add_arguments(self, parser):
        parser.add_argument("org", help="The organization: its id, public id, slug or name.")
        parser.add_argument(
            "--confirm", required=True, metavar="NAME", help="The organization's name, again."
        )
        parser.add_argument(
            "--by",
            default="",
            metavar="EMAIL",
            help="The operator doing this: a superuser's email, recorded in the audit log.",
        )

    def handle(self, *args, org, confirm, by, **options):
        organization = find_organization(org)
        operator = find_operator(by) if by.strip() else None
        try:
            tasks.delete_organization(org=organization, actor=operator, confirm_name=confirm)
        except OrgError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {organization} ({organization.slug}); its data and files follow."
            )
        )
