"""Re-encrypt every stored secret (provider API keys, webhook secrets…) with the first
NERSTUDIO_ENCRYPTION_KEYS key.

Rotation: prepend a new key to NERSTUDIO_ENCRYPTION_KEYS, deploy, run this command, then drop the
old key from the list. The secrets are found by field class (EncryptedTextField) on every model,
so a secret field added later is rotated too: one missed here could not be read once the old key
is dropped.
"""

from collections import Counter

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import models, transaction

from providers.fields import EncryptedTextField


def encrypted_fields() -> list[tuple[type[models.Model], list[str]]]:
    """Each model with a table of its own that stores secrets, and those fields' names."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue  # same table as its concrete model
        names = [
            f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)
        ]
        if names:
            found.append((model, names))
    return found


class Command(BaseCommand):
    help = "Re-encrypt stored provider keys and webhook secrets with the newest encryption key."

    @transaction.atomic
    def handle(self, *args, **options):
        rows = 0
        counts: list[tuple[str, list[str], Counter[str]]] = []
        for model, names in encrypted_fields():
            counted: Counter[str] = Counter()
            counts.append((model._meta.label, names, counted))
            locked = model._base_manager.select_for_update()
            for values in locked.values("pk", *names):  # decrypted with any listed key
                pk = values.pop("pk")
                secrets = {name: value for name, value in values.items() if value}
                if not secrets:
                    continue
                model._base_manager.filter(pk=pk).update(**secrets)  # encrypted with the newest
                counted.update(secrets.keys())
                rows += 1
        total = sum(counted.total() for _, _, counted in counts)
        detail = "; ".join(
            f"{label}: " + ", ".join(f"{name} {counted[name]}" for name in names if counted[name])
            for label, names, counted in counts
            if counted
        )
        summary = f"Re-encrypted {total} secret(s) in {rows} row(s)"
        self.stdout.write(self.style.SUCCESS(f"{summary} ({detail})." if detail else f"{summary}."))
