"""rotate_provider_keys: after the documented rotation (a new key first, run the command, drop the
old key) every stored secret still decrypts: API keys and webhook secrets, on organizations'
providers and on the platform catalogue."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from providers.models import CatalogueEntry, Provider
from tests.factories import CatalogueEntryFactory, OwnKeyProviderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rotate(settings):
    """Rotate as the README says; returns what the command printed."""

    def run() -> str:
        old_keys = list(settings.NERSTUDIO_ENCRYPTION_KEYS)
        settings.NERSTUDIO_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old_keys]
        out = io.StringIO()
        call_command("rotate_provider_keys", stdout=out)
        settings.NERSTUDIO_ENCRYPTION_KEYS = settings.NERSTUDIO_ENCRYPTION_KEYS[:1]  # old dropped
        return out.getvalue()

    return run


def stored(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_an_own_key_providers_webhook_secrets_survive_rotation(org, rotate):
    provider = OwnKeyProviderFactory(org=org, api_key="kie-secret-abcd")
    provider.change_webhook_secret("first-webhook-hmac")
    provider.change_webhook_secret("second-webhook-hmac")  # the first is now the previous one
    provider.save()

    rotate()

    provider = Provider.objects.get(pk=provider.pk)
    assert provider.api_key == "kie-secret-abcd"
    assert provider.webhook_secret == "second-webhook-hmac"
    assert provider.previous_webhook_secret == "first-webhook-hmac"


def test_a_catalogue_models_webhook_secrets_survive_rotation(rotate):
    entry = CatalogueEntryFactory()
    entry.change_webhook_secret("platform-hmac-1")
    entry.change_webhook_secret("platform-hmac-2")
    entry.save()

    rotate()

    entry = CatalogueEntry.objects.get(pk=entry.pk)
    assert (entry.webhook_secret, entry.previous_webhook_secret) == (
        "platform-hmac-2",
        "platform-hmac-1",
    )


def test_rotation_rewrites_every_secret_with_the_new_key(org, rotate, settings):
    provider = OwnKeyProviderFactory(org=org, api_key="kie-secret-abcd")
    provider.change_webhook_secret("org-webhook-hmac")
    provider.save()
    before = stored("providers_provider", "webhook_secret", provider.pk)

    rotate()

    after = stored("providers_provider", "webhook_secret", provider.pk)
    assert after != before
    new_key = Fernet(settings.NERSTUDIO_ENCRYPTION_KEYS[0])
    assert new_key.decrypt(after.encode()).decode() == "org-webhook-hmac"


def test_rotation_says_how_many_secrets_of_each_kind_it_rewrote(org, rotate):
    for secret in ("hmac-a", ""):
        provider = OwnKeyProviderFactory(org=org)
        provider.change_webhook_secret(secret)
        provider.save()
    entry = CatalogueEntryFactory()
    entry.change_webhook_secret("platform-hmac")
    entry.save()

    out = rotate()

    assert "Re-encrypted 4 secret(s) in 3 row(s)" in out
    assert "providers.Provider: webhook_secret 1, api_key 2" in out
    assert "providers.CatalogueEntry: webhook_secret 1" in out
