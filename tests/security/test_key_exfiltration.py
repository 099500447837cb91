"""A platform key is only ever sent to the platform's configured host for it.

The platform's accounts point at one real listener (the "platform endpoint"); the attacker's
listener is another. Loopback is allowed, so nothing but the key rules stands between a request and
the attacker: the attacker's listener fails the test when it sees the platform key.
"""

import contextlib
import io

import pytest
from django.db import IntegrityError
from django.urls import reverse
from PIL import Image

from providers import services
from providers.adapters.errors import ProviderError
from providers.adapters.types import ImageJobRequest, ProviderConfig, VariantsRequest
from providers.models import Provider
from providers.registry import ADAPTERS, build_adapter
from tests.factories import CatalogueEntryFactory, OwnKeyProviderFactory

pytestmark = pytest.mark.django_db

KEYS = {
    "kie": "PLATFORM-KIE-KEY-7f3a",
    "openai": "PLATFORM-OPENAI-KEY-9c1d",
    "gemini": "PLATFORM-GEMINI-KEY-2b8e",
}
REMOTE = sorted(slug for slug, cls in ADAPTERS.items() if cls.vendor)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    return out.getvalue()


def exercise(adapter) -> None:
    """Every kind of call the adapter makes: connection test, submit, poll, upload, chat,
    vision. Failures are expected (the listeners answer nonsense); only what was sent matters."""
    calls = [adapter.test_connection]
    if adapter.kind == "image":
        job = ImageJobRequest(prompt="a lamp on a desk", image_urls=("https://cdn.example/p.png",))
        calls += [lambda: adapter.submit(job), lambda: adapter.poll("task-1")]
        if hasattr(adapter, "upload_file"):
            calls.append(lambda: adapter.upload_file(png(), "p.png"))
    elif adapter.kind == "llm":
        calls.append(lambda: adapter.generate_variants(VariantsRequest(prompt="a lamp", n=2)))
    else:
        calls.append(lambda: adapter.describe(png()))
    for call in calls:
        with contextlib.suppress(ProviderError):
            call()


@pytest.fixture
def platform(second_listener, platform_keys, loopback_egress):
    """Every vendor's platform account points at the platform endpoint listener."""
    url = second_listener.url
    platform_keys(
        kie=KEYS["kie"],
        kie_base_url=url,
        kie_upload_base_url=url,
        openai=KEYS["openai"],
        openai_base_url=url,
        gemini=KEYS["gemini"],
        gemini_base_url=url,
    )
    return second_listener


def platform_row(org, slug) -> Provider:
    """The org's row for a catalogue model on adapter `slug` (one entry per adapter)."""
    row = org.providers.filter(adapter=slug, catalogue__isnull=False).first()
    if row is None:
        entry = CatalogueEntryFactory(
            adapter=slug,
            aspect_ratios=[],
            default_aspect_ratio="",
            quality_levels=[],
            default_quality="",
            max_product_images=1,
        )
        row = Provider.objects.create(org=org, catalogue=entry, name=entry.name)
    return Provider.objects.select_related("catalogue").get(pk=row.pk)


@pytest.mark.parametrize("slug", REMOTE)
def test_the_platform_key_reaches_the_platform_endpoint_it_is_configured_for(org, platform, slug):
    exercise(platform_row(org, slug).build())

    vendor = ADAPTERS[slug].vendor
    assert platform.saw(KEYS[vendor])  # the control: the listeners do see keys


@pytest.mark.parametrize("slug", REMOTE)
def test_an_org_admin_cannot_point_a_platform_model_at_their_listener(
    admin_client, org, platform, listener, slug
):
    row = platform_row(org, slug)
    url = reverse("admin:providers_platformmodel_change", args=[row.pk])
    response = admin_client.post(
        url,
        {
            "name": row.name,
            "priority": row.priority,
            "enabled": "on",
            "base_url": listener.url,
            "options": f'{{"upload_base_url": "{listener.url}"}}',
            "api_key": "",
            "credit_cost": 0,
            "timeout_seconds": 120,
        },
    )
    assert response.status_code == 302  # saved: the extra fields are simply not the admin's
    row = Provider.objects.select_related("catalogue").get(pk=row.pk)

    exercise(row.build())
    services.test_connection(row)

    assert (row.base_url, row.api_key) == ("", "")
    assert listener.requests == []
    assert not listener.saw(KEYS[ADAPTERS[slug].vendor])


def test_the_database_refuses_a_platform_model_with_an_endpoint_of_its_own(org, listener):
    row = org.providers.filter(catalogue__isnull=False).first()

    with pytest.raises(IntegrityError):
        Provider.objects.filter(pk=row.pk).update(base_url=listener.url)


@pytest.mark.parametrize("slug", [s for s in REMOTE if s.startswith("kie-") and s != "kie-chat"])
def test_an_upload_host_smuggled_into_a_platform_models_options_is_ignored(
    org, platform, listener, slug
):
    row = platform_row(org, slug)
    Provider.objects.filter(pk=row.pk).update(options={"upload_base_url": listener.url})
    row = Provider.objects.select_related("catalogue").get(pk=row.pk)

    with contextlib.suppress(ProviderError):  # the platform endpoint answers nonsense
        row.build().upload_file(png(), "p.png")

    assert listener.requests == []
    assert platform.saw(KEYS["kie"])


@pytest.mark.parametrize("slug", REMOTE)
def test_an_own_key_provider_without_a_key_sends_no_key_to_its_endpoint(
    org, platform, listener, slug
):
    own = OwnKeyProviderFactory(org=org, adapter=slug, base_url="https://public.example")
    Provider.objects.filter(pk=own.pk).update(api_key="", base_url=listener.url)
    own = Provider.objects.get(pk=own.pk)

    exercise(own.build())

    assert not own.is_runnable
    assert not any(listener.saw(key) for key in KEYS.values())


@pytest.mark.parametrize("slug", REMOTE)
def test_a_platform_key_in_any_adapter_pointed_elsewhere_is_refused_before_sending(
    platform, listener, slug
):
    """The backstop below every configuration path: the egress layer itself."""
    key = KEYS[ADAPTERS[slug].vendor]
    adapter = build_adapter(
        slug, ProviderConfig(base_url=listener.url, upload_base_url=listener.url, api_key=key)
    )

    exercise(adapter)
    result = adapter.test_connection()

    assert not result.ok and "may only be sent to the platform's own endpoint" in result.message
    assert listener.requests == []


def test_a_platform_key_in_a_result_download_is_refused(platform, listener):
    from generation.downloads import DownloadError, download_image

    with pytest.raises(DownloadError, match="platform's own endpoint"):
        download_image(f"{listener.url}/r.png?k={KEYS['kie']}")

    assert listener.requests == []


def test_an_own_key_provider_sends_its_own_key_where_its_admin_points_it(org, platform, listener):
    own = OwnKeyProviderFactory(
        org=org, adapter="openai-vision", api_key="org-own-key-1234", base_url="https://x.example"
    )
    Provider.objects.filter(pk=own.pk).update(base_url=listener.url)  # loopback: tests only

    exercise(Provider.objects.get(pk=own.pk).build())

    assert listener.saw("org-own-key-1234")
    assert not any(listener.saw(key) for key in KEYS.values())
