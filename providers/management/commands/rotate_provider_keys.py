"""Re-encrypt every stored provider API key with the first NERSTUDIO_ENCRYPTION_KEYS key.

Rotation: prepend a new key to NERSTUDIO_ENCRYPTION_KEYS, deploy, run this command, then drop the
old key from the list.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from providers.models import Provider


class Command(BaseCommand):
    help = "Re-encrypt stored provider API keys with the newest encryption key."

    @transaction.atomic
    def handle(self, *args, **options):
        rotated = 0
        rows = Provider.objects.exclude(api_key="").select_for_update()
        for pk, plain in rows.values_list("pk", "api_key"):  # decrypted with any listed key
            Provider.objects.filter(pk=pk).update(api_key=plain)  # encrypted with the newest
            rotated += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rotated} provider key(s)."))
