"""Providers in the Django admin: the operator's catalogue, and an organization admin's platform
models and own-key providers."""

import json

import pytest
import responses
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from providers.models import CatalogueEntry, Provider, ProviderAttempt
from tests.factories import CatalogueEntryFactory, OwnKeyProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

OWN_ADD = reverse("admin:providers_ownkeyprovider_add")
OWN_LIST = reverse("admin:providers_ownkeyprovider_changelist")
PLATFORM_ADD = reverse("admin:providers_platformmodel_add")
PLATFORM_LIST = reverse("admin:providers_platformmodel_changelist")


def own_key_form(provider=None, **changes):
    """The own-key change form's fields, as the admin posts them."""
    data = {
        "name": "Nano Banana 2",
        "adapter": "kie-nano-banana-2",
        "model_id": "",
        "base_url": "",
        "api_key": "",
        "priority": 40,
        "timeout_seconds": 60,
        "credit_cost": 6,
        "aspect_ratios": "",
        "default_aspect_ratio": "",
        "quality_levels": "",
        "default_quality": "",
        "max_product_images": 4,
        "max_reference_images": 4,
        "enabled": "on",
    }
    if provider is not None:
        data.update(
            name=provider.name,
            adapter=provider.adapter,
            model_id=provider.model_id,
            base_url=provider.base_url,
            priority=provider.priority,
            timeout_seconds=provider.timeout_seconds,
            credit_cost=provider.credit_cost,
            aspect_ratios=", ".join(provider.aspect_ratios),
            default_aspect_ratio=provider.default_aspect_ratio,
            quality_levels=", ".join(provider.quality_levels),
            default_quality=provider.default_quality,
        )
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def own_change_url(provider):
    return reverse("admin:providers_ownkeyprovider_change", args=[provider.pk])


def platform_change_url(provider):
    return reverse("admin:providers_platformmodel_change", args=[provider.pk])


# --- Own-key providers ------------------------------------------------------------------------


def test_an_org_admin_adds_an_own_key_provider_to_their_own_organization(admin_client, org):
    response = admin_client.post(OWN_ADD, own_key_form(api_key="kie-new-key-5678"))

    assert response.status_code == 302, response.content.decode()[:3000]
    provider = Provider.objects.get(name="Nano Banana 2")
    assert provider.org == org and provider.kind == "image" and provider.catalogue is None
    assert provider.api_key == "kie-new-key-5678"
    assert provider.default_aspect_ratio == "auto"
    assert provider.is_runnable


def test_an_own_key_provider_needs_the_organizations_key(admin_client):
    response = admin_client.post(OWN_ADD, own_key_form(api_key=""))

    assert response.status_code == 200
    assert "needs the organization&#x27;s API key" in response.content.decode()
    assert not Provider.objects.filter(name="Nano Banana 2").exists()


def test_own_key_models_may_cost_nothing(admin_client):
    response = admin_client.post(OWN_ADD, own_key_form(api_key="k-1234", credit_cost=0))

    assert response.status_code == 302
    assert Provider.objects.get(name="Nano Banana 2").credit_cost == 0


def test_the_offline_providers_cannot_be_added_as_own_key_rows(admin_client):
    response = admin_client.post(
        OWN_ADD, own_key_form(name="Free renderer", adapter="local-image", api_key="x")
    )

    assert response.status_code == 200
    assert not Provider.objects.filter(name="Free renderer").exists()


def test_the_change_form_never_shows_the_stored_key(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, api_key="sk-flux-secret-4321")

    body = admin_client.get(own_change_url(provider)).content.decode()

    assert "sk-flux-secret" not in body
    assert "••••••••4321" in body


def test_saving_with_a_blank_key_keeps_the_stored_key(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, api_key="sk-flux-secret-4321")

    response = admin_client.post(own_change_url(provider), own_key_form(provider, priority=5))

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.priority, provider.api_key) == (5, "sk-flux-secret-4321")


def test_re_keying_replaces_the_key(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, api_key="sk-old-key-1111")

    admin_client.post(own_change_url(provider), own_key_form(provider, api_key="sk-rotated-0000"))

    provider.refresh_from_db()
    assert provider.api_key == "sk-rotated-0000"


def test_an_unsupported_aspect_ratio_is_a_form_error(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, adapter="kie-flux-2-pro-edit")

    response = admin_client.post(
        own_change_url(provider), own_key_form(provider, aspect_ratios="1:1, 5:7")
    )

    assert response.status_code == 200
    assert "does not support 5:7" in response.content.decode()
    provider.refresh_from_db()
    assert "5:7" not in provider.aspect_ratios


# --- Adapter options: each adapter's own form ---------------------------------------------------


def test_the_change_form_shows_the_adapters_options_as_fields(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, options={"output_format": "jpg"})

    form = admin_client.get(own_change_url(provider)).context["adminform"].form

    assert "options" not in form.fields  # no JSON to edit
    assert form["option_output_format"].value() == "jpg"
    assert "option_upload_base_url" in form.fields  # an own-key row says where uploads go
    assert form.fields["option_output_format"].label == "Output format"


def test_options_are_saved_from_their_fields(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, adapter="kie-seedream-v4-edit")

    response = admin_client.post(
        own_change_url(provider),
        own_key_form(
            provider,
            option_max_images="3",
            option_seed="",
            option_upload_base_url="https://uploads.example/kie/",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    provider.refresh_from_db()
    assert provider.options == {"max_images": 3, "upload_base_url": "https://uploads.example/kie"}


def test_an_invalid_option_is_an_error_on_its_field(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, adapter="kie-seedream-v4-edit")

    response = admin_client.post(
        own_change_url(provider), own_key_form(provider, option_max_images="7")
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "less than or equal to 6" in str(errors["option_max_images"])
    provider.refresh_from_db()
    assert provider.options == {}


def test_the_upload_host_follows_the_egress_policy(admin_client, org):
    provider = OwnKeyProviderFactory(org=org)

    response = admin_client.post(
        own_change_url(provider), own_key_form(provider, option_upload_base_url="https://10.1.2.3")
    )

    assert response.status_code == 200
    assert "private" in str(response.context["adminform"].form.errors["option_upload_base_url"])
    provider.refresh_from_db()
    assert provider.options == {}


def test_the_add_page_asks_for_the_adapter_before_its_options(admin_client):
    page = admin_client.get(OWN_ADD).content.decode()

    assert "Choose the adapter, then Save and continue editing to set its options." in page
    chosen = admin_client.get(OWN_ADD, {"adapter": "kie-seedream-v4-edit"})
    assert {"option_max_images", "option_seed"} <= set(chosen.context["adminform"].form.fields)


def test_a_refused_add_shows_the_options_of_the_submitted_adapter(admin_client):
    response = admin_client.post(OWN_ADD, own_key_form(adapter="kie-chat", api_key=""))

    assert response.status_code == 200
    assert "option_response_format" in response.context["adminform"].form.fields


def test_a_new_adapter_keeps_the_options_it_shares_and_drops_the_others(admin_client, org):
    provider = OwnKeyProviderFactory(org=org, options={"output_format": "png"})

    response = admin_client.post(
        own_change_url(provider),
        own_key_form(
            provider,
            adapter="kie-nano-banana-2",
            option_output_format="png",
            option_upload_base_url="https://uploads.example",
            aspect_ratios="",
            default_aspect_ratio="",
            quality_levels="",
            default_quality="",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    provider.refresh_from_db()
    assert provider.adapter == "kie-nano-banana-2"
    # The new adapter's form cleaned what it also has; google_search, unseen, is off (unstored).
    assert provider.options == {
        "output_format": "png",
        "upload_base_url": "https://uploads.example",
    }


def test_the_catalogue_form_leaves_the_upload_host_to_the_platform_account(client, org):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    entry = CatalogueEntry.objects.get(adapter="kie-nano-banana-pro")

    form = (
        client.get(reverse("admin:providers_catalogueentry_change", args=[entry.pk]))
        .context["adminform"]
        .form
    )

    assert "option_output_format" in form.fields
    assert "option_upload_base_url" not in form.fields


# --- Platform models ----------------------------------------------------------------------------


def test_an_org_admin_adds_a_catalogue_model_with_the_platforms_price_and_limits(admin_client, org):
    entry = CatalogueEntry.objects.get(adapter="kie-nano-banana-pro")
    org.providers.filter(catalogue=entry).delete()

    response = admin_client.post(
        PLATFORM_ADD,
        {
            "catalogue": entry.pk,
            "name": "",
            "priority": 15,
            "enabled": "on",
            "visible_to_members": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    row = org.providers.get(catalogue=entry)
    assert (row.name, row.credit_cost, row.adapter) == ("Nano Banana Pro", 5, "kie-nano-banana-pro")
    assert row.api_key == "" and row.base_url == ""


def test_a_catalogue_model_is_added_once(admin_client, org):
    entry = CatalogueEntry.objects.get(adapter="kie-nano-banana-pro")

    response = admin_client.post(PLATFORM_ADD, {"catalogue": entry.pk, "priority": 15})

    assert response.status_code == 200
    assert org.providers.filter(catalogue=entry).count() == 1


def test_a_platform_model_is_renamed_reordered_and_kept_from_members(admin_client, org):
    row = org.providers.get(adapter="local-image")

    response = admin_client.post(
        platform_change_url(row),
        {
            "name": "Quick drafts",
            "priority": 3,
            "enabled": "on",
            "is_default": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    row.refresh_from_db()
    assert (row.name, row.priority, row.visible_to_members) == ("Quick drafts", 3, False)


def test_disabling_and_reordering_from_the_list(admin_client, org):
    llm = list(org.providers.filter(kind="llm").order_by("kind", "priority", "pk"))
    rows = list(Provider.objects.filter(org=org).order_by("kind", "priority", "pk"))
    data = {"form-TOTAL_FORMS": len(rows), "form-INITIAL_FORMS": len(rows), "_save": "Save"}
    for i, p in enumerate(rows):
        data[f"form-{i}-id"] = p.pk
        data[f"form-{i}-priority"] = 1 if p.pk == llm[2].pk else p.priority
        if p.enabled or p.pk == llm[2].pk:
            data[f"form-{i}-enabled"] = "on"
        if p.visible_to_members:
            data[f"form-{i}-visible_to_members"] = "on"

    response = admin_client.post(PLATFORM_LIST, data)

    assert response.status_code == 302
    llm[2].refresh_from_db()
    assert (llm[2].enabled, llm[2].priority) == (True, 1)


def test_another_orgs_provider_cannot_be_opened_or_changed(admin_client, org, other_admin):
    theirs = other_admin.membership.org.providers.get(adapter="local-image")

    assert admin_client.get(platform_change_url(theirs)).status_code in (302, 404)
    admin_client.post(platform_change_url(theirs), {"name": "Hijacked", "priority": 1})

    theirs.refresh_from_db()
    assert theirs.name == "Local renderer (offline)"
    listing = admin_client.get(PLATFORM_LIST)
    assert {p.org_id for p in listing.context["cl"].result_list} == {org.pk}


@responses.activate
def test_the_admin_test_connection_button_reports_the_result(admin_client, org, platform_keys):
    platform_keys(openai="sk-openai")
    provider = org.providers.get(adapter="openai-vision")
    responses.get(
        "https://api.openai.com/v1/models",
        json={"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]},
    )

    url = reverse("admin:providers_platformmodel_test_connection", args=[provider.pk])
    response = admin_client.post(url, follow=True)

    body = response.content.decode()
    assert "GPT-4o vision (OpenAI): connection test passed" in body
    # The platform's account: whether it works, not its endpoint (test_tenant_limits.py).
    assert "The platform&#x27;s OpenAI key was accepted." in body
    assert responses.calls[0].request.headers["Authorization"] == "Bearer sk-openai"


@responses.activate
def test_the_deep_test_runs_the_model_once_and_says_what_it_cost(admin_client, org, platform_keys):
    platform_keys(kie="kie-key")
    provider = org.providers.filter(adapter="kie-chat").first()
    responses.get(
        "https://api.kie.ai/api/v1/chat/credit", json={"code": 200, "msg": "success", "data": 9}
    )
    chat = responses.post(
        f"https://api.kie.ai/{provider.model_id}/v1/chat/completions",
        json={
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": provider.model_id,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": "OK"},
                }
            ],
        },
    )
    change = reverse("admin:providers_platformmodel_change", args=[provider.pk])
    assert "One minimal chat call" in admin_client.get(change).content.decode()  # before it runs

    url = reverse("admin:providers_platformmodel_test_connection", args=[provider.pk])
    body = admin_client.post(url, {"deep": "1"}, follow=True).content.decode()

    assert "deep test passed" in body and "One minimal chat call" in body
    assert json.loads(chat.calls[0].request.body)["max_tokens"] == 5
    assert ProviderAttempt.objects.filter(provider=provider, purpose="deep-test").exists()


# --- Removing an own-key provider, with its record of calls ---------------------------------------


def used_own_key_provider(org):
    """An own-key provider that has been called (its test and a generation's call)."""
    own = OwnKeyProviderFactory(org=org, api_key="sk-org-secret-0001")
    ProviderAttempt.objects.create(provider=own, purpose="test", outcome="success")
    ProviderAttempt.objects.create(provider=own, purpose="image", outcome="permanent")
    return own


def test_an_org_admin_deletes_an_own_key_provider_that_has_been_called(admin_client, org):
    own = used_own_key_provider(org)
    delete = reverse("admin:providers_ownkeyprovider_delete", args=[own.pk])

    confirm = admin_client.get(delete)
    assert confirm.status_code == 200 and not confirm.context["perms_lacking"]
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302

    assert not Provider.objects.filter(pk=own.pk).exists()  # and with it the tenant's key
    assert not ProviderAttempt.objects.filter(provider_id=own.pk).exists()
    removed = AuditEvent.objects.get(action="provider.removed")
    assert (removed.org, removed.target_label) == (org, own.name)


def test_an_org_admin_deletes_used_own_key_providers_from_the_list(admin_client, org):
    own = used_own_key_provider(org)

    admin_client.post(
        OWN_LIST, {"action": "delete_selected", "_selected_action": [own.pk], "post": "yes"}
    )

    assert not Provider.objects.filter(pk=own.pk).exists()
    assert AuditEvent.objects.filter(action="provider.removed").count() == 1


def test_an_org_admin_still_cannot_delete_the_record_of_calls_itself(admin_client, org):
    own = used_own_key_provider(org)
    attempt = own.attempts.first()
    delete = reverse("admin:providers_providerattempt_delete", args=[attempt.pk])

    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert ProviderAttempt.objects.filter(pk=attempt.pk).exists()


def test_an_org_admin_cannot_delete_another_organizations_provider(admin_client, other_admin):
    theirs = used_own_key_provider(other_admin.membership.org)
    delete = reverse("admin:providers_ownkeyprovider_delete", args=[theirs.pk])

    admin_client.post(delete, {"post": "yes"})

    assert Provider.objects.filter(pk=theirs.pk).exists()
    assert theirs.attempts.count() == 2


def test_a_member_cannot_use_the_providers_admin(member_client, org):
    provider = org.providers.first()

    assert member_client.get(platform_change_url(provider)).status_code == 403
    url = reverse("admin:providers_platformmodel_test_connection", args=[provider.pk])
    assert member_client.post(url).status_code == 403


def list_queries(client, url) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def more_rows(org):
    for _ in range(3):
        OwnKeyProviderFactory(org=org)
        Provider.objects.create(org=org, catalogue=CatalogueEntryFactory(), name="More")


@pytest.mark.parametrize("url", [OWN_LIST, PLATFORM_LIST])
def test_the_status_key_and_availability_columns_query_nothing_per_row(admin_client, org, url):
    """They read the row and its catalogue entry, which come with the page's query, and health
    for the whole page at once."""

    def column_queries():
        tables = ("providers_catalogueentry", "providers_providerattempt")
        return [q for q in list_queries(admin_client, url) if any(t in q for t in tables)]

    OwnKeyProviderFactory(org=org)
    before = column_queries()
    more_rows(org)

    assert len(column_queries()) == len(before)


@pytest.mark.parametrize("url", [OWN_LIST, PLATFORM_LIST])
def test_the_lists_of_providers_query_the_same_for_more_rows(admin_client, org, url):
    OwnKeyProviderFactory(org=org)
    before = list_queries(admin_client, url)
    more_rows(org)

    assert len(list_queries(admin_client, url)) == len(before)


# --- The catalogue (platform operator) ----------------------------------------------------------


def test_the_catalogue_is_for_the_platform_operator_only(admin_client):
    entry = CatalogueEntry.objects.first()

    assert admin_client.get(reverse("admin:providers_catalogueentry_changelist")).status_code == 403
    change = reverse("admin:providers_catalogueentry_change", args=[entry.pk])
    assert admin_client.post(change, {"credit_cost": 0}).status_code == 403


def test_an_operator_price_change_reaches_every_organizations_rows(client, org, other_admin):
    operator = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(operator)
    entry = CatalogueEntry.objects.get(adapter="local-image")
    data = {
        "name": entry.name,
        "adapter": entry.adapter,
        "model_id": "",
        "base_url": "",
        "offered": "on",
        "priority": entry.priority,
        "timeout_seconds": 20,
        "credit_cost": 7,
        "aspect_ratios": ", ".join(entry.aspect_ratios),
        "default_aspect_ratio": entry.default_aspect_ratio,
        "quality_levels": ", ".join(entry.quality_levels),
        "default_quality": entry.default_quality,
        "max_product_images": 4,
        "max_reference_images": 4,
    }

    data["option_delay_seconds"] = "0.5"

    response = client.post(reverse("admin:providers_catalogueentry_change", args=[entry.pk]), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    rows = Provider.objects.filter(catalogue=entry)
    assert {r.credit_cost for r in rows} == {7}
    assert [r.options for r in rows] == [{"delay_seconds": 0.5}] * 2  # both organizations
