"""Provider configuration: defaults, encryption at rest, the in-memory registry, connection tests,
health and the fallback chain as wired into Django."""

import io
import json
import time

import pytest
import responses
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from providers import services
from providers.adapters.types import VariantsRequest
from providers.fields import decrypt
from providers.health import provider_health
from providers.models import Provider, ProviderAttempt
from providers.org_registry import clear_registry, providers_for
from tests.factories import OrganizationFactory, OwnKeyProviderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_registry():
    clear_registry()
    cache.clear()  # cooldown state lives in the cache
    yield
    clear_registry()


def test_a_new_organization_starts_on_the_local_providers_without_keys(org):
    enabled = {(p.kind, p.adapter) for p in org.providers.filter(enabled=True)}
    assert enabled == {("image", "local-image"), ("llm", "local-llm"), ("vision", "local-vision")}
    assert org.providers.get(is_default=True).adapter == "local-image"
    names = list(org.providers.filter(kind="llm").values_list("name", flat=True))
    assert names == [
        "Gemini 3 Pro (kie.ai)",
        "Gemini 2.5 Pro (kie.ai)",
        "Gemini 2.5 Pro (Google)",
        "Local prompt writer (offline)",
    ]
    image_names = set(org.providers.filter(kind="image").values_list("name", flat=True))
    assert {"Seedream 4.5 Edit", "Nano Banana Pro", "FLUX.2 Pro"} <= image_names
    assert org.providers.get(kind="vision", adapter="openai-vision").model_id == "gpt-4o"


def test_with_a_kie_key_new_organizations_use_kie_for_images_and_prompts(platform_keys):
    platform_keys(kie="kie-platform")
    org = OrganizationFactory()
    default = org.providers.get(is_default=True)
    assert (default.name, default.enabled, default.credit_cost) == ("Seedream 4.5 Edit", True, 3)
    assert not org.providers.get(adapter="local-image").enabled
    assert not org.providers.get(adapter="local-llm").enabled
    assert org.providers.get(adapter="local-vision").enabled  # no OpenAI key: vision stays local
    resolved = providers_for(org.pk)
    assert [p.name for p in resolved.llm] == ["Gemini 3 Pro (kie.ai)", "Gemini 2.5 Pro (kie.ai)"]


def test_the_api_key_is_not_readable_in_the_database(org):
    provider = OwnKeyProviderFactory(org=org, api_key="sk-live-very-secret-1234")
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM providers_provider WHERE id = %s", [provider.pk])
        stored = cursor.fetchone()[0]
    assert "very-secret" not in stored and stored.startswith("gAAAA")
    assert decrypt(stored) == "sk-live-very-secret-1234"
    assert Provider.objects.get(pk=provider.pk).api_key == "sk-live-very-secret-1234"
    assert provider.masked_api_key == "••••••••1234"


def test_keys_survive_rotation_to_a_new_encryption_key(org, settings):
    from cryptography.fernet import Fernet

    provider = OwnKeyProviderFactory(org=org, api_key="kie-secret-abcd")
    old_keys = list(settings.NERSTUDIO_ENCRYPTION_KEYS)
    settings.NERSTUDIO_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *old_keys]
    assert Provider.objects.get(pk=provider.pk).api_key == "kie-secret-abcd"
    call_command("rotate_provider_keys", stdout=io.StringIO())
    settings.NERSTUDIO_ENCRYPTION_KEYS = settings.NERSTUDIO_ENCRYPTION_KEYS[:1]  # old key dropped
    assert Provider.objects.get(pk=provider.pk).api_key == "kie-secret-abcd"


@override_settings(NERSTUDIO_PROVIDER_REFRESH_SECONDS=0.2)
def test_a_change_reaches_the_registry_within_the_refresh_interval(org, platform_keys):
    platform_keys(gemini="gemini-platform")
    assert [p.adapter for p in providers_for(org.pk).llm] == ["local-llm"]
    gemini = org.providers.get(adapter="gemini-chat")
    gemini.enabled = True
    gemini.save()
    started = time.monotonic()
    while [p.adapter for p in providers_for(org.pk).llm] == ["local-llm"]:
        assert time.monotonic() - started < 1.0
        time.sleep(0.01)
    assert [p.adapter for p in providers_for(org.pk).llm] == ["gemini-chat", "local-llm"]


def test_the_registry_does_not_query_the_database_between_refreshes(org, django_assert_num_queries):
    providers_for(org.pk)
    with django_assert_num_queries(0):
        for _ in range(50):
            providers_for(org.pk)


def test_there_is_one_default_image_model_per_organization(org, platform_keys):
    platform_keys(kie="kie-platform")
    nano = org.providers.get(adapter="kie-nano-banana-pro")
    nano.enabled = True
    nano.is_default = True
    nano.full_clean()
    nano.save()
    assert list(org.providers.filter(is_default=True)) == [nano]


def test_an_llm_cannot_be_the_default_image_model(org):
    from django.core.exceptions import ValidationError

    llm = org.providers.get(adapter="local-llm")
    llm.is_default = True
    with pytest.raises(ValidationError, match="Only an image model"):
        llm.full_clean()


def test_aspect_ratios_and_options_are_validated_by_the_adapter(org):
    from django.core.exceptions import ValidationError

    seedream = org.providers.get(adapter="kie-seedream-4.5-edit").catalogue  # the operator's
    seedream.aspect_ratios = ["1:1", "7:5"]
    seedream.options = {"no_such_option": 1}
    with pytest.raises(ValidationError) as excinfo:
        seedream.full_clean()
    assert "7:5" in str(excinfo.value.message_dict["aspect_ratios"])
    assert "Unknown option" in str(excinfo.value.message_dict["options"])


@responses.activate
def test_the_llm_chain_falls_back_and_records_every_attempt(org, platform_keys):
    platform_keys(kie="kie-key")
    kie = org.providers.get(name="Gemini 3 Pro (kie.ai)")
    kie.enabled = True
    kie.save()
    responses.post(
        "https://api.kie.ai/gemini-3-pro/v1/chat/completions",
        json={"code": 500, "msg": "Server error"},
    )

    result = services.write_variants(
        VariantsRequest(prompt="Sneaker on wet asphalt", n=3), org_id=org.pk
    )

    assert len(result.value.variants) == 3 and len(set(result.value.variants)) == 3
    assert result.provider_id == org.providers.get(adapter="local-llm").pk
    assert responses.calls[0].request.headers["Authorization"] == "Bearer kie-key"
    assert json.loads(responses.calls[0].request.body)["stream"] is False
    attempts = list(ProviderAttempt.objects.order_by("pk").values_list("provider__name", "outcome"))
    assert attempts == [
        ("Gemini 3 Pro (kie.ai)", "retryable"),
        ("Local prompt writer (offline)", "success"),
    ]


@responses.activate
def test_a_failing_provider_cools_down_and_is_skipped(org, platform_keys):
    platform_keys(kie="kie-key")
    kie = org.providers.get(name="Gemini 3 Pro (kie.ai)")
    kie.enabled = True
    kie.save()
    responses.post("https://api.kie.ai/gemini-3-pro/v1/chat/completions", status=503)
    for _ in range(3):
        services.write_variants(VariantsRequest(prompt="Watch on a wrist", n=2), org_id=org.pk)
    assert len(responses.calls) == 2  # the third request skipped it
    assert provider_health([kie])[kie.pk].cooldown_seconds > 0


@responses.activate
def test_the_connection_test_reports_an_own_key_kie_accounts_credit_balance(admin_client, org):
    provider = OwnKeyProviderFactory(
        org=org, name="Nano Banana Pro", adapter="kie-nano-banana-pro", api_key="kie-key"
    )
    responses.get(
        "https://api.kie.ai/api/v1/chat/credit", json={"code": 200, "msg": "success", "data": 35.95}
    )
    responses.post(
        "https://kieai.redpandaai.co/api/file-base64-upload",
        json={"success": False, "code": 400, "msg": "Missing required parameter: base64Data"},
    )

    response = admin_client.post(
        reverse("providers:test-connection", args=[provider.public_id]), follow=True
    )

    body = response.content.decode()
    assert "Nano Banana Pro: connection test passed" in body
    assert "35.95 credits left" in body
    assert "upload host https://kieai.redpandaai.co reachable and accepts the key" in body
    assert responses.calls[0].request.headers["Authorization"] == "Bearer kie-key"
    assert ProviderAttempt.objects.get(provider=provider).purpose == "test"


@responses.activate
def test_the_connection_test_shows_the_providers_error(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, name="Nano Banana Pro", api_key="bad-key")
    responses.get(
        "https://api.kie.ai/api/v1/chat/credit",
        json={"code": 401, "msg": "You do not have access permissions"},
    )
    response = admin_client.post(
        reverse("providers:test-connection", args=[provider.public_id]), follow=True
    )
    body = response.content.decode()
    assert "Nano Banana Pro: connection test failed" in body


def test_the_connection_test_without_any_key_says_so(admin_client, org):
    provider = org.providers.get(adapter="kie-nano-banana-pro")
    response = admin_client.post(
        reverse("providers:test-connection", args=[provider.public_id]), follow=True
    )
    assert "The platform has no kie.ai key configured yet." in response.content.decode()


def test_health_reports_success_rate_latency_and_last_error(org):
    provider = org.providers.get(adapter="local-llm")
    for latency in (100, 200, 300, 400):
        ProviderAttempt.objects.create(
            provider=provider, purpose="variants", outcome="success", latency_ms=latency
        )
    ProviderAttempt.objects.create(
        provider=provider,
        purpose="variants",
        outcome="retryable",
        latency_ms=5000,
        error="HTTP 503",
    )
    health = provider_health([provider])[provider.pk]
    assert health.calls == 5 and health.success_rate == pytest.approx(0.8)
    # Interpolated between observed latencies (statistics.quantiles, "inclusive"): the p95 of
    # 100, 200, 300 and 400 ms lies between the two slowest, not at the slowest one.
    assert (health.p50_ms, health.p95_ms) == (250, 385)
    assert health.last_error == "HTTP 503"


def test_the_providers_page_shows_masked_keys_and_never_the_key(admin_client, org):
    OwnKeyProviderFactory(org=org, api_key="sk-should-never-appear-9876")
    body = admin_client.get(reverse("providers:index")).content.decode()
    assert "••••••••9876" in body and "sk-should-never-appear" not in body
    assert "Local renderer (offline)" in body
    assert "FLUX.2 image-to-image (kie.ai)" in body  # the adapter behind each row


def test_the_providers_page_lists_only_this_organizations_providers(admin_client, other_admin):
    other = other_admin.membership.org.providers.first()
    other.name = "Rival secret model"
    other.save()
    assert "Rival secret model" not in admin_client.get(reverse("providers:index")).content.decode()
