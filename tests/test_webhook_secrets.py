"""Webhook secrets per provider (issue 8): set by whoever owns the provider's account, stored
encrypted, the environment as the platform's default, and a grace period when one is rotated."""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from generation.models import Generation, GenerationImage
from lib.tokens import hash_token
from providers.fields import decrypt
from providers.models import Provider
from tests.factories import OwnKeyProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "callback-token-for-webhook-tests"


def waiting_image(org, provider) -> GenerationImage:
    generation = Generation.objects.create(
        org=org,
        provider=provider,
        provider_name=provider.name,
        credit_cost=1,
        prompt="A mug",
        aspect_ratio="1:1",
        count=1,
        status=Generation.Status.GENERATING,
    )
    return GenerationImage.objects.create(
        generation=generation,
        index=0,
        status=GenerationImage.Status.GENERATING,
        provider_task_id="task-42",
        callback_token_hash=hash_token(TOKEN),
    )


def signed(secret: str, task_id="task-42", ts=None) -> dict:
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{task_id}.{ts}".encode(), hashlib.sha256).digest()
    return {"X-Webhook-Timestamp": str(ts), "X-Webhook-Signature": base64.b64encode(mac).decode()}


def call_back(client, image, headers=None):
    body = {"code": 200, "msg": "ok", "data": {"taskId": "task-42", "state": "generating"}}
    url = reverse("generation:callback", args=[image.public_id, TOKEN])
    return client.post(
        url, data=json.dumps(body), content_type="application/json", headers=headers or {}
    )


@pytest.fixture
def own_kie(org):
    return OwnKeyProviderFactory(org=org, adapter="kie-seedream-4.5-edit", name="Our Seedream")


def test_an_own_key_providers_secret_is_required_once_set(client, org, own_kie):
    own_kie.change_webhook_secret("org-hmac-key")
    own_kie.save()
    image = waiting_image(org, own_kie)

    assert call_back(client, image).status_code == 401
    assert call_back(client, image, signed("platform-key")).status_code == 401
    assert call_back(client, image, signed("org-hmac-key")).status_code == 204


def test_without_a_secret_the_token_alone_is_checked(client, org, own_kie):
    assert call_back(client, waiting_image(org, own_kie)).status_code == 204


def test_a_rotated_secret_is_accepted_for_the_grace_period_only(client, org, own_kie, settings):
    own_kie.change_webhook_secret("first-key")
    own_kie.save()
    own_kie.change_webhook_secret("second-key")
    own_kie.save()
    image = waiting_image(org, own_kie)

    assert call_back(client, image, signed("second-key")).status_code == 204
    assert call_back(client, image, signed("first-key")).status_code == 204  # in flight still
    Provider.objects.filter(pk=own_kie.pk).update(
        webhook_secret_changed_at=timezone.now()
        - timedelta(seconds=settings.NERSTUDIO_WEBHOOK_SECRET_GRACE_SECONDS + 1)
    )
    assert call_back(client, image, signed("first-key")).status_code == 401


def test_a_catalogue_model_uses_the_operators_secret_or_the_platform_default(
    client, org, platform_keys
):
    platform_keys(
        kie="kie-platform", kie_webhook_secret="env-key", kie_previous_webhook_secret="old-env-key"
    )
    seedream = org.providers.get(adapter="kie-seedream-4.5-edit")
    image = waiting_image(org, seedream)

    assert call_back(client, image, signed("env-key")).status_code == 204
    assert call_back(client, image, signed("old-env-key")).status_code == 204  # rotation
    entry = seedream.catalogue
    entry.change_webhook_secret("operator-key")
    entry.save()
    assert call_back(client, image, signed("env-key")).status_code == 401
    assert call_back(client, image, signed("operator-key")).status_code == 204


def test_the_secret_is_encrypted_at_rest_and_never_shown_back(admin_client, org, own_kie):
    url = reverse("admin:providers_ownkeyprovider_change", args=[own_kie.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(
        new_webhook_secret="whsec-very-secret-9876",
        aspect_ratios="",
        quality_levels="",
        enabled="on",
    )
    data = {k: v for k, v in data.items() if v is not False}

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM providers_provider WHERE id = %s", [own_kie.pk])
        stored = cursor.fetchone()[0]
    assert "very-secret" not in stored and decrypt(stored) == "whsec-very-secret-9876"
    assert "whsec-very-secret" not in admin_client.get(url).content.decode()


def test_an_org_admin_cannot_set_the_secret_of_a_platform_model(admin_client, org):
    seedream = org.providers.get(adapter="kie-seedream-4.5-edit")
    url = reverse("admin:providers_platformmodel_change", args=[seedream.pk])

    admin_client.post(
        url,
        {"name": seedream.name, "priority": 1, "enabled": "on", "new_webhook_secret": "tenant-key"},
    )

    seedream.refresh_from_db()
    assert seedream.webhook_secret == "" and seedream.catalogue.webhook_secret == ""


def test_an_operator_sets_a_catalogue_models_secret(client, org):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    entry = org.providers.get(adapter="kie-seedream-4.5-edit").catalogue
    url = reverse("admin:providers_catalogueentry_change", args=[entry.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update(
        new_webhook_secret="operator-hmac",
        aspect_ratios=", ".join(entry.aspect_ratios),
        quality_levels=", ".join(entry.quality_levels),
        offered="on",
    )
    data = {k: v for k, v in data.items() if v is not False}

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    entry.refresh_from_db()
    assert entry.webhook_secret == "operator-hmac"
