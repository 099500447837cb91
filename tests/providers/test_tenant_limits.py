"""What an organization admin (a tenant, not the operator) may do with the platform's accounts:
test them without reading the platform's balance or endpoints, run paid deep tests on them only a
few times an hour, and not raise the number of references (vision calls) a generation makes."""

import json

import pytest
import responses
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse

from providers import services
from providers.models import MAX_REFERENCE_IMAGES, ProviderAttempt
from tests.factories import OwnKeyProviderFactory

pytestmark = pytest.mark.django_db

CREDIT = "https://api.kie.ai/api/v1/chat/credit"
UPLOAD = "https://kieai.redpandaai.co/api/file-base64-upload"
MISSING_DATA = {"code": 400, "msg": "Missing required parameter: base64Data"}
KIE_CHAT = "https://api.kie.ai/gemini-3-pro/v1/chat/completions"


def shown(response) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def connection_test_url(provider) -> str:
    return reverse("providers:test-connection", args=[provider.public_id])


def chat_answer(text="OK") -> dict:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "gemini-3-pro",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": text},
            }
        ],
    }


@pytest.fixture
def platform_llm(org, platform_keys):
    """The platform's kie.ai chat model, enabled in the organization."""
    platform_keys(kie="PLATFORM-KIE-KEY")
    row = org.providers.get(name="Gemini 3 Pro (kie.ai)")
    row.enabled = True
    row.save()
    return row


# --- The connection test of a platform model ----------------------------------------------------


def test_testing_a_platform_model_says_the_platform_key_works_without_its_balance_or_endpoint(
    admin_client, org, platform_keys
):
    platform_keys(kie="PLATFORM-KIE-KEY", kie_base_url="https://kie-gateway.platform.example")
    row = org.providers.get(adapter="kie-nano-banana-pro")
    with responses.RequestsMock() as mock:
        mock.get(
            "https://kie-gateway.platform.example/api/v1/chat/credit",
            json={"code": 200, "msg": "success", "data": 98765.43},
        )
        mock.post(UPLOAD, json=MISSING_DATA)
        response = admin_client.post(connection_test_url(row))

    message = shown(response)
    assert "connection test passed" in message
    assert "The platform's kie.ai key was accepted." in message
    for secret in ("98765", "credits left", "kie-gateway.platform.example", "redpandaai"):
        assert secret not in message


def test_a_failed_platform_model_test_names_neither_the_balance_nor_the_endpoints(
    admin_client, org, platform_keys
):
    platform_keys(kie="PLATFORM-KIE-KEY")
    row = org.providers.get(adapter="kie-nano-banana-pro")
    with responses.RequestsMock() as mock:
        mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 98765.43})
        mock.post(UPLOAD, json={"code": 401, "msg": "Authentication failed"})  # after the balance
        response = admin_client.post(connection_test_url(row))

    message = shown(response)
    assert "connection test failed" in message and "platform operator" in message
    recorded = ProviderAttempt.objects.get(provider=row).error
    for text in (message, recorded):
        for secret in ("98765", "api.kie.ai", "redpandaai"):
            assert secret not in text


def test_a_deep_test_of_a_platform_model_says_what_it_cost_without_the_balance(
    admin_client, platform_llm
):
    with responses.RequestsMock() as mock:
        mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 98765.43})
        mock.post(KIE_CHAT, json=chat_answer())
        response = admin_client.post(connection_test_url(platform_llm), {"deep": "1"})

    message = shown(response)
    assert "deep test passed" in message and platform_llm.deep_test_cost in message
    assert "98765" not in message and "api.kie.ai" not in message


def test_an_own_key_providers_test_shows_its_own_balance_and_endpoint(admin_client, org):
    own = OwnKeyProviderFactory(org=org, api_key="tenant-kie-key")
    with responses.RequestsMock() as mock:
        mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 35.95})
        mock.post(UPLOAD, json=MISSING_DATA)
        response = admin_client.post(connection_test_url(own))

    assert "Key accepted by https://api.kie.ai (35.95 credits left)" in shown(response)


# --- Deep tests on the platform's keys: a few an hour per organization ----------------------------


def test_deep_tests_of_platform_models_are_limited_per_organization(admin_client, platform_llm):
    limit = services.DEEP_TESTS_PER_ORG_PER_HOUR
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 100})
        chat = mock.post(KIE_CHAT, json=chat_answer())
        for _ in range(limit):
            assert "deep test passed" in shown(
                admin_client.post(connection_test_url(platform_llm), {"deep": "1"})
            )
        refused = shown(admin_client.post(connection_test_url(platform_llm), {"deep": "1"}))

    assert chat.call_count == limit  # the refused one called nothing
    assert f"at most {limit} deep tests an hour" in refused and "try again in" in refused
    deep = ProviderAttempt.objects.filter(provider=platform_llm, purpose="deep-test")
    assert deep.count() == limit


def test_the_admins_deep_test_action_counts_against_the_same_limit(admin_client, platform_llm):
    limit = services.DEEP_TESTS_PER_ORG_PER_HOUR
    changelist = reverse("admin:providers_platformmodel_changelist")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 100})
        chat = mock.post(KIE_CHAT, json=chat_answer())
        for _ in range(limit + 3):
            admin_client.post(
                changelist, {"action": "deep_tests", "_selected_action": [platform_llm.pk]}
            )
        refused = shown(admin_client.post(connection_test_url(platform_llm), {"deep": "1"}))

    assert chat.call_count == limit
    assert f"at most {limit} deep tests an hour" in refused


def test_free_connection_tests_of_platform_models_are_not_limited(admin_client, platform_llm):
    with responses.RequestsMock() as mock:
        credit = mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 100})
        for _ in range(services.DEEP_TESTS_PER_ORG_PER_HOUR + 2):
            assert "connection test passed" in shown(
                admin_client.post(connection_test_url(platform_llm))
            )
    assert credit.call_count == services.DEEP_TESTS_PER_ORG_PER_HOUR + 2


def test_deep_tests_of_own_key_providers_are_not_limited(admin_client, org):
    own = OwnKeyProviderFactory(
        org=org, adapter="kie-chat", model_id="gemini-3-pro", api_key="tenant-kie-key"
    )
    with responses.RequestsMock() as mock:
        mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 100})
        chat = mock.post(KIE_CHAT, json=chat_answer())
        for _ in range(services.DEEP_TESTS_PER_ORG_PER_HOUR + 2):
            assert "deep test passed" in shown(
                admin_client.post(connection_test_url(own), {"deep": "1"})
            )
    assert chat.call_count == services.DEEP_TESTS_PER_ORG_PER_HOUR + 2
    assert json.loads(chat.calls[0].request.body)["max_tokens"] == 5


def test_another_organizations_deep_tests_do_not_use_up_this_ones(
    admin_client, platform_llm, other_admin_membership
):
    theirs = other_admin_membership.org.providers.get(name="Gemini 3 Pro (kie.ai)")
    theirs.enabled = True
    theirs.save()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(CREDIT, json={"code": 200, "msg": "success", "data": 100})
        mock.post(KIE_CHAT, json=chat_answer())
        for _ in range(services.DEEP_TESTS_PER_ORG_PER_HOUR):
            services.test_connection(theirs, deep=True)
        response = admin_client.post(connection_test_url(platform_llm), {"deep": "1"})

    assert "deep test passed" in shown(response)


# --- References: each one is a vision call ------------------------------------------------------


def test_an_own_key_image_model_takes_at_most_a_bounded_number_of_references(org):
    with pytest.raises(ValidationError) as refused:
        OwnKeyProviderFactory(org=org, max_reference_images=MAX_REFERENCE_IMAGES + 1)

    assert f"at most {MAX_REFERENCE_IMAGES} reference images" in str(
        refused.value.message_dict["max_reference_images"]
    )
    assert OwnKeyProviderFactory(org=org, max_reference_images=MAX_REFERENCE_IMAGES).pk
