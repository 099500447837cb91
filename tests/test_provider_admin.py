"""Providers in the Django admin, as an organization admin uses them."""

import pytest
import responses
from django.urls import reverse

from providers.models import Provider

pytestmark = pytest.mark.django_db


def _form_data(provider, **changes):
    data = {
        "name": provider.name, "adapter": provider.adapter, "model_id": provider.model_id,
        "base_url": provider.base_url, "api_key": "", "priority": provider.priority,
        "timeout_seconds": provider.timeout_seconds, "options": "{}",
        "credit_cost": provider.credit_cost, "aspect_ratios": ", ".join(provider.aspect_ratios),
        "default_aspect_ratio": provider.default_aspect_ratio,
        "quality_levels": ", ".join(provider.quality_levels),
        "default_quality": provider.default_quality,
        "max_product_images": provider.max_product_images,
        "max_reference_images": provider.max_reference_images,
    }  # fmt: skip
    if provider.enabled:
        data["enabled"] = "on"
    if provider.is_default:
        data["is_default"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _change_url(provider):
    return reverse("admin:providers_provider_change", args=[provider.pk])


def test_an_org_admin_adds_a_provider_to_their_own_organization(admin_client, org):
    response = admin_client.post(reverse("admin:providers_provider_add"), {
        "name": "Nano Banana 2", "adapter": "kie-nano-banana-2", "model_id": "", "base_url": "",
        "api_key": "kie-new-key-5678", "priority": 40, "timeout_seconds": 60, "options": "{}",
        "credit_cost": 6, "aspect_ratios": "", "default_aspect_ratio": "", "quality_levels": "",
        "default_quality": "", "max_product_images": 4, "max_reference_images": 4,
        "enabled": "on",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    provider = Provider.objects.get(name="Nano Banana 2")
    assert provider.org == org and provider.kind == "image"
    assert provider.api_key == "kie-new-key-5678"
    assert provider.default_aspect_ratio == "auto"


def test_the_change_form_never_shows_the_stored_key(admin_client, org):
    provider = org.providers.get(adapter="kie-flux-2-pro-edit")
    provider.api_key = "sk-flux-secret-4321"
    provider.save()
    body = admin_client.get(_change_url(provider)).content.decode()
    assert "sk-flux-secret" not in body
    assert "••••••••4321" in body


def test_saving_with_a_blank_key_keeps_the_stored_key_and_clearing_removes_it(admin_client, org):
    provider = org.providers.get(adapter="kie-flux-2-pro-edit")
    provider.api_key = "sk-flux-secret-4321"
    provider.save()

    response = admin_client.post(_change_url(provider), _form_data(provider, priority=5))
    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.priority, provider.api_key) == (5, "sk-flux-secret-4321")

    admin_client.post(_change_url(provider), _form_data(provider, clear_api_key="on"))
    provider.refresh_from_db()
    assert provider.api_key == ""


def test_re_keying_replaces_the_key(admin_client, org):
    provider = org.providers.get(adapter="kie-flux-2-pro-edit")
    admin_client.post(_change_url(provider), _form_data(provider, api_key="sk-rotated-0000"))
    provider.refresh_from_db()
    assert provider.api_key == "sk-rotated-0000"


def test_an_unsupported_aspect_ratio_is_a_form_error(admin_client, org):
    provider = org.providers.get(adapter="kie-flux-2-pro-edit")
    response = admin_client.post(
        _change_url(provider), _form_data(provider, aspect_ratios="1:1, 5:7")
    )
    assert response.status_code == 200
    assert "does not support 5:7" in response.content.decode()
    provider.refresh_from_db()
    assert "5:7" not in provider.aspect_ratios


def test_disabling_and_reordering_from_the_list(admin_client, org):
    llm = list(org.providers.filter(kind="llm").order_by("pk"))
    url = reverse("admin:providers_provider_changelist")
    providers = list(Provider.objects.filter(org=org).order_by("kind", "priority", "pk"))
    data = {
        "form-TOTAL_FORMS": len(providers),
        "form-INITIAL_FORMS": len(providers),
        "_save": "Save",
    }
    for i, p in enumerate(providers):
        data[f"form-{i}-id"] = p.pk
        data[f"form-{i}-priority"] = 1 if p.pk == llm[2].pk else p.priority
        if p.enabled or p.pk == llm[2].pk:
            data[f"form-{i}-enabled"] = "on"
    response = admin_client.post(url, data)
    assert response.status_code == 302
    llm[2].refresh_from_db()
    assert (llm[2].enabled, llm[2].priority) == (True, 1)


def test_another_orgs_provider_cannot_be_opened_or_changed(admin_client, org, other_admin):
    theirs = other_admin.membership.org.providers.get(adapter="local-image")
    assert admin_client.get(_change_url(theirs)).status_code in (302, 404)
    admin_client.post(_change_url(theirs), _form_data(theirs, name="Hijacked"))
    theirs.refresh_from_db()
    assert theirs.name == "Local renderer (offline)"
    listing = admin_client.get(reverse("admin:providers_provider_changelist"))
    assert {p.org_id for p in listing.context["cl"].result_list} == {org.pk}


@responses.activate
def test_the_admin_test_connection_button_reports_the_result(admin_client, org):
    provider = org.providers.get(adapter="openai-vision")
    provider.api_key = "sk-openai"
    provider.save()
    responses.get(
        "https://api.openai.com/v1/models",
        json={"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]},
    )
    url = reverse("admin:providers_provider_test_connection", args=[provider.pk])
    response = admin_client.post(url, follow=True)
    assert "GPT-4o vision (OpenAI): connected" in response.content.decode()


def test_a_member_cannot_use_the_providers_admin(member_client, org):
    provider = org.providers.first()
    assert member_client.get(_change_url(provider)).status_code == 403
    url = reverse("admin:providers_provider_test_connection", args=[provider.pk])
    assert member_client.post(url).status_code == 403
