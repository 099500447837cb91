"""SSRF: no URL a tenant or a provider chooses reaches an internal address.

The same matrix runs against provider base URLs (the admin's validation and the calls themselves)
and against result URLs (downloads). DNS is the outside world here: a name is made to resolve to
an internal address by patching the resolver, never the code under test.
"""

import socket

import pytest
import responses
from django.core.exceptions import ValidationError
from django.urls import reverse

from generation.downloads import DownloadError, download_image
from lib.egress import EgressRefused, check_url
from providers.models import Provider
from tests.factories import OwnKeyProviderFactory

pytestmark = pytest.mark.django_db

INTERNAL = [
    "https://127.0.0.1/",
    "http://127.0.0.1:8000/",
    "https://10.0.0.5/",
    "https://172.16.3.4/",
    "https://192.168.1.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://224.0.0.1/",
    "https://240.0.0.1/",
    "https://[::1]/",
    "https://[fd00::1]/",
    "https://[fe80::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::7f00:1]/",
    "https://2130706433/",
    "https://0177.0.0.1/",
    "https://0x7f000001/",
    "https://127.1/",
    "https://localhost/",
    "https://metadata.localhost/",
]
NOT_HTTPS = ["http://public.example/", "ftp://public.example/", "file:///etc/passwd"]
CREDENTIALS = ["https://user:secret@public.example/"]


@pytest.fixture
def resolve(monkeypatch):
    """Make host names resolve where a hostile DNS would send them."""
    real = socket.getaddrinfo
    names: dict[str, str] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return real(names[host], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


# --- The static rules --------------------------------------------------------------------------


@pytest.mark.parametrize("url", INTERNAL + NOT_HTTPS + CREDENTIALS)
def test_internal_and_non_https_urls_are_refused_without_touching_the_network(url):
    with pytest.raises(EgressRefused):
        check_url(url)


@pytest.mark.parametrize("url", ["https://api.example.com/v1?x=", "https://api.example.com/v1#x"])
def test_a_base_url_cannot_choose_the_path_with_a_query_or_fragment(url):
    with pytest.raises(EgressRefused, match="query string or fragment"):
        check_url(url, base=True)


def test_public_https_urls_pass():
    check_url("https://api.kie.ai/api/v1", base=True)
    check_url("https://[2606:4700::1111]/")


def test_the_development_allowance_opens_loopback_and_nothing_else():
    check_url("http://127.0.0.1:8000/", allow_loopback=True)
    check_url("https://localhost:8443/", allow_loopback=True)
    for url in ("https://10.0.0.5/", "https://169.254.169.254/", "http://192.168.1.1/"):
        with pytest.raises(EgressRefused):
            check_url(url, allow_loopback=True)


# --- Provider base URLs -----------------------------------------------------------------------


@pytest.mark.parametrize("url", INTERNAL + NOT_HTTPS + CREDENTIALS + ["https://x.example/v1?x="])
def test_an_own_key_provider_cannot_be_pointed_at_an_internal_address(org, url):
    with pytest.raises(ValidationError) as caught:
        OwnKeyProviderFactory(org=org, base_url=url)

    assert "base_url" in caught.value.message_dict


@pytest.mark.parametrize("url", INTERNAL)
def test_a_provider_call_to_an_internal_address_is_refused(org, url):
    """Even a row that got past validation (say, written before this rule) cannot call inward."""
    own = OwnKeyProviderFactory(org=org, adapter="openai-vision", base_url="https://x.example")
    Provider.objects.filter(pk=own.pk).update(base_url=url.rstrip("/"))

    result = Provider.objects.get(pk=own.pk).build().test_connection()

    assert not result.ok
    assert "not allowed" in result.message or "Only https" in result.message


def test_a_provider_host_that_resolves_to_an_internal_address_is_refused(org, resolve, listener):
    port = listener.url.rsplit(":", 1)[1]
    resolve["rebind.example"] = "127.0.0.1"
    resolve["cloud.example"] = "169.254.169.254"
    for host in (f"rebind.example:{port}", "cloud.example"):
        own = OwnKeyProviderFactory(org=org, adapter="openai-vision", base_url=f"https://{host}")

        result = own.build().test_connection()

        assert not result.ok and "not allowed" in result.message
    assert listener.requests == []


def test_the_refusal_is_the_same_whatever_the_port_no_scan_oracle(org, resolve):
    resolve["inside.example"] = "10.1.2.3"
    messages = set()
    for port in (22, 80, 5432, 6379):
        own = OwnKeyProviderFactory(
            org=org, adapter="openai-vision", base_url=f"https://inside.example:{port}"
        )
        result = own.build().test_connection()
        messages.add(result.message.replace(own.name, "X"))
    assert len(messages) == 1


def test_a_provider_redirect_is_never_followed(org, listener, second_listener, loopback_egress):
    listener.status, listener.headers = 302, {"Location": f"{second_listener.url}/steal"}
    own = OwnKeyProviderFactory(org=org, adapter="openai-vision", base_url="https://x.example")
    Provider.objects.filter(pk=own.pk).update(base_url=listener.url)

    result = Provider.objects.get(pk=own.pk).build().test_connection()

    assert not result.ok
    assert len(listener.requests) == 1 and second_listener.requests == []


# --- Result URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", INTERNAL + NOT_HTTPS + CREDENTIALS)
def test_a_result_url_on_an_internal_address_is_not_downloaded(url):
    with pytest.raises(DownloadError):
        download_image(url + "result.png")


def test_a_result_host_that_resolves_to_an_internal_address_is_not_downloaded(resolve, listener):
    port = listener.url.rsplit(":", 1)[1]
    resolve["results.example"] = "127.0.0.1"

    with pytest.raises(DownloadError, match="not allowed"):
        download_image(f"https://results.example:{port}/r.png")

    assert listener.requests == []


def test_a_result_redirect_to_an_internal_address_is_not_followed(
    listener, second_listener, loopback_egress
):
    listener.status, listener.headers = 302, {"Location": f"{second_listener.url}/meta-data"}

    with pytest.raises(DownloadError, match="HTTP 302"):
        download_image(f"{listener.url}/r.png")

    assert second_listener.requests == []


def test_our_own_signed_url_is_read_from_storage_without_a_request(settings, media_root):
    """The local provider's result: no loopback allowance needed, no request to ourselves."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from lib.fetch_urls import fetch_url
    from tests.factories import image_bytes

    settings.NERSTUDIO_PUBLIC_URL = "http://127.0.0.1:9"  # nothing listens: a request would fail
    data = image_bytes()
    name = default_storage.save("local-provider/r.png", ContentFile(data))

    assert download_image(fetch_url(name)) == data


def test_a_tampered_or_expired_own_url_is_an_ordinary_url_and_refused(settings, media_root):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from lib.fetch_urls import fetch_url
    from tests.factories import image_bytes

    settings.NERSTUDIO_PUBLIC_URL = "http://127.0.0.1:9"
    name = default_storage.save("local-provider/r.png", ContentFile(image_bytes()))
    url = fetch_url(name)
    tampered = url.replace("/files/", "/files/x")
    expired = fetch_url(name, expires=-1)

    for other in (tampered, expired):
        with pytest.raises(DownloadError, match="Only https"):  # egress refuses plain http
            download_image(other)


def test_an_own_stored_result_over_the_size_cap_is_refused(settings, media_root):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from lib.fetch_urls import fetch_url
    from tests.factories import image_bytes

    data = image_bytes()
    settings.NERSTUDIO_RESULT_MAX_BYTES = len(data) - 1
    name = default_storage.save("local-provider/r.png", ContentFile(data))

    with pytest.raises(DownloadError, match="larger than allowed"):
        download_image(fetch_url(name))


# --- What a hostile endpoint can make the admin pages say ----------------------------------------


@responses.activate
def test_a_providers_error_text_is_shortened_and_escaped_on_the_providers_page(admin_client, org):
    own = OwnKeyProviderFactory(org=org, adapter="kie-nano-banana-pro", name="Hostile kie")
    hostile = "<script>alert(1)</script> Call +1-555-PHISH now! " + "x" * 5000
    responses.get("https://api.kie.ai/api/v1/chat/credit", json={"code": 401, "msg": hostile})

    admin_client.post(reverse("providers:test-connection", args=[own.public_id]))
    body = admin_client.get(reverse("providers:index")).content.decode()

    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body
    assert "x" * 300 not in body
