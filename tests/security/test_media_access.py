"""Private media: stored files reach members of the right organization only, through access-checked
views; machines get short-lived URLs for exactly one file. Every outsider gets 404."""

import importlib
import io
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig
from django.core import signing
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import Resolver404, clear_url_caches, resolve, reverse
from PIL import Image

from generation import live
from lib import fetch_urls
from tests.factories import MembershipFactory, UserFactory, finished_image, stored_source_image

SALT = fetch_urls.FETCH_SALT

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

KINDS = ["file", "thumbnail", "product", "reference"]
GENERATED = ["file", "thumbnail"]  # a member's own; the library's images are the organization's


@pytest.fixture
def maxs_image(member_membership):
    """A finished image of Max (a member of Acme), made from one product and one reference."""
    org = member_membership.org
    product = stored_source_image(org, colour=(46, 134, 222), uploaded_by=member_membership.user)
    reference = stored_source_image(org, colour=(230, 126, 34), uploaded_by=member_membership.user)
    return finished_image(
        member_membership,
        prompt="A ceramic mug on linen!",
        products=[product],
        references=[reference],
    )


def _stored_name(image, kind) -> str:
    if kind == "file":
        return image.file.name
    if kind == "thumbnail":
        return image.thumbnail.name
    sources = image.generation.products if kind == "product" else image.generation.references
    return sources.get().file.name


def _url(image, kind) -> str:
    if kind in GENERATED:
        name = "gallery:image-file" if kind == "file" else "gallery:image-thumbnail"
        return reverse(name, args=[image.public_id])
    sources = image.generation.products if kind == "product" else image.generation.references
    return reverse("library:file", args=[sources.get().public_id])


def _stored_bytes(name) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- Who may see a file ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_anonymous_visitor_gets_404_for_a_generated_image(client, maxs_image, kind):
    response = client.get(_url(maxs_image, kind))
    assert response.status_code == 404
    assert "Location" not in response  # not sent to sign-in: the URL reveals nothing


@pytest.mark.parametrize("kind", KINDS)
def test_a_signed_in_user_without_an_organization_gets_404(client, maxs_image, kind):
    client.force_login(UserFactory())
    assert client.get(_url(maxs_image, kind)).status_code == 404


@pytest.mark.parametrize("kind", KINDS)
def test_another_organization_gets_404_for_a_generated_image(client, maxs_image, other_admin, kind):
    client.force_login(other_admin)
    assert client.get(_url(maxs_image, kind)).status_code == 404


@pytest.mark.parametrize("kind", GENERATED)
def test_a_member_gets_404_for_another_members_image(client, org, maxs_image, kind):
    client.force_login(MembershipFactory(org=org).user)
    assert client.get(_url(maxs_image, kind)).status_code == 404


@pytest.mark.parametrize("kind", GENERATED)
def test_a_member_sees_another_members_image_once_it_is_in_a_shared_collection(
    client, org, maxs_image, kind
):
    from gallery.models import Collection, CollectionItem

    client.force_login(MembershipFactory(org=org).user)
    board = Collection.objects.create(org=org, name="Spring")
    CollectionItem.objects.create(collection=board, image=maxs_image)
    response = client.get(_url(maxs_image, kind))
    assert response.status_code == 200
    assert _body(response) == _stored_bytes(_stored_name(maxs_image, kind))


@pytest.mark.parametrize("kind", ["product", "reference"])
def test_the_brand_library_is_shared_by_the_organization(client, org, maxs_image, kind):
    client.force_login(MembershipFactory(org=org).user)
    response = client.get(_url(maxs_image, kind))
    assert response.status_code == 200
    assert _body(response) == _stored_bytes(_stored_name(maxs_image, kind))


@pytest.mark.parametrize("kind", KINDS)
def test_a_member_sees_their_own_images(member_client, maxs_image, kind):
    response = member_client.get(_url(maxs_image, kind))
    assert response.status_code == 200
    assert _body(response) == _stored_bytes(_stored_name(maxs_image, kind))


@pytest.mark.parametrize("kind", KINDS)
def test_an_admin_sees_the_organizations_images(admin_client, maxs_image, kind):
    response = admin_client.get(_url(maxs_image, kind))
    assert response.status_code == 200
    assert _body(response) == _stored_bytes(_stored_name(maxs_image, kind))


def test_a_library_image_deleted_by_an_admin_is_gone_for_everyone(admin_client, maxs_image):
    from library import services as library

    product = maxs_image.generation.products.get()
    name = product.file.name
    url = _url(maxs_image, "product")
    library.delete_image(image=product)
    assert admin_client.get(url).status_code == 404
    assert not default_storage.exists(name)


def test_an_unfinished_image_is_not_served(member_client, maxs_image):
    maxs_image.status = maxs_image.Status.GENERATING
    maxs_image.save()
    assert member_client.get(_url(maxs_image, "file")).status_code == 404


# --- No public route ------------------------------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["production", "debug"])
def urls_built_with_debug(request, settings):
    """nerstudio.urls imported afresh with DEBUG off, then on."""
    import nerstudio.urls

    settings.DEBUG = request.param
    importlib.reload(nerstudio.urls)
    clear_url_caches()
    yield request.param
    settings.DEBUG = False
    importlib.reload(nerstudio.urls)
    clear_url_caches()


def test_there_is_no_public_media_route(
    admin_client, maxs_image, media_root, urls_built_with_debug
):
    anonymous = Client()
    for kind in KINDS:
        name = _stored_name(maxs_image, kind)
        assert (media_root / name).is_file()
        for path in (f"/media/{name}", f"/{name}"):
            with pytest.raises(Resolver404):
                resolve(path)
            assert anonymous.get(path).status_code == 404
            assert admin_client.get(path).status_code == 404  # signed in makes no difference


def test_pages_link_files_only_through_access_checked_views(member_client, maxs_image):
    generation = maxs_image.generation
    detail = reverse("generation:detail", args=[generation.public_id])
    pages = {
        "gallery": member_client.get(reverse("gallery:index")).content.decode(),
        "detail": member_client.get(detail).content.decode(),
        "live card": live.render_generation(generation.pk),
    }
    for page, html in pages.items():
        assert "/media/" not in html, page
        assert _url(maxs_image, "thumbnail") in html, page
    assert f'href="{_url(maxs_image, "file")}?download=1"' in pages["gallery"]
    assert f'data-full="{_url(maxs_image, "file")}"' in pages["detail"]  # the lightbox's
    # The generation page shows the product and reference images it was made from (thumbnails
    # from the brand library).
    for source in (*maxs_image.generation.products.all(), *maxs_image.generation.references.all()):
        assert f'src="{reverse("library:thumbnail", args=[source.public_id])}"' in pages["detail"]


# --- Downloads ------------------------------------------------------------------------------------


def test_downloads_carry_a_meaningful_filename(member_client, maxs_image):
    url = _url(maxs_image, "file")

    download = member_client.get(url, {"download": "1"})
    shown = member_client.get(url)
    thumbnail = member_client.get(_url(maxs_image, "thumbnail"))
    product = member_client.get(_url(maxs_image, "product"))

    filename = "acme-creative-a-ceramic-mug-on-linen-1.png"  # <organization>-<prompt>-<n>
    assert download["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert shown["Content-Disposition"] == f'inline; filename="{filename}"'
    assert thumbnail["Content-Disposition"] == (
        'inline; filename="acme-creative-a-ceramic-mug-on-linen-1-thumbnail.webp"'
    )
    # A library image is named after its label (here: its format and size).
    assert product["Content-Disposition"] == 'inline; filename="acme-creative-png-4030.png"'
    assert (download["Content-Type"], thumbnail["Content-Type"]) == ("image/png", "image/webp")
    for response in (download, shown, thumbnail, product):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "private" in response["Cache-Control"] and "public" not in response["Cache-Control"]


# --- Signed URLs for machines (no bucket) --------------------------------------------------------


def _path(url: str) -> str:
    return urlsplit(url).path


def test_a_signed_file_url_serves_that_one_file_without_a_session(client, maxs_image, settings):
    name = _stored_name(maxs_image, "product")
    url = fetch_urls.fetch_url(name)

    response = client.get(_path(url))

    assert url.startswith(settings.NERSTUDIO_PUBLIC_URL + "/files/")
    assert response.status_code == 200
    assert _body(response) == _stored_bytes(name)
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-store"


class _SignerAnHourAgo(signing.TimestampSigner):
    def timestamp(self):
        return signing.b62_encode(int(time.time()) - 3600)


def test_a_tampered_or_expired_signed_file_url_is_refused(client, maxs_image, settings):
    product, other = _stored_name(maxs_image, "product"), _stored_name(maxs_image, "file")
    token = _path(fetch_urls.fetch_url(product)).split("/")[2]
    payload, timestamp, signature = token.split(":")
    other_payload = signing.b64_encode(signing.JSONSerializer().dumps({"name": other, "ttl": 900}))
    claim = {"name": product, "ttl": 900}
    refused = {
        "another file's name under this signature": f"{other_payload.decode()}:{timestamp}:"
        f"{signature}",
        "a longer lifetime under this signature": signing.b64_encode(
            signing.JSONSerializer().dumps({"name": product, "ttl": 10**9})
        ).decode()
        + f":{timestamp}:{signature}",
        "a changed signature": f"{payload}:{timestamp}:{signature[:-2]}{signature[-2:][::-1]}x",
        "a signature for another purpose (salt)": signing.TimestampSigner().sign_object(claim),
        "a signature with another key": signing.TimestampSigner(
            key="not-our-secret-key", salt=SALT
        ).sign_object(claim),
        "a token signed an hour ago": _SignerAnHourAgo(salt=fetch_urls.FETCH_SALT).sign_object(
            claim
        ),
        "a truncated token": token[:-10],
    }
    genuine = _path(fetch_urls.fetch_url(product))
    assert client.get(genuine).status_code == 200  # the genuine one works
    for attack, forged in refused.items():
        url = reverse("gallery:signed-file", args=[forged])
        assert client.get(url).status_code == 404, attack

    short_lived = _path(fetch_urls.fetch_url(product, expires=1))
    assert client.get(short_lived).status_code == 200
    time.sleep(2.1)
    assert client.get(short_lived).status_code == 404


# --- With a bucket (R2/S3), against moto's real S3 HTTP server ------------------------------------

BUCKET = "nerstudio-private-media"


@pytest.fixture
def bucket(settings, s3_endpoint):
    """Default storage on a private bucket, configured as nerstudio/settings/base.py does."""
    creds = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret"}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **creds)
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    settings.NERSTUDIO_S3_BUCKET = BUCKET
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "access_key": "test-key",
                "secret_key": "test-secret",
                "region_name": "us-east-1",
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 3600,
                "file_overwrite": False,
                "client_config": BotoConfig(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            },
        },
    }
    settings.NERSTUDIO_MEDIA_URL_EXPIRY = 120
    settings.NERSTUDIO_FETCH_URL_EXPIRY = 600
    assert fetch_urls.storage_presigns()
    return s3


def _presigned(url: str, endpoint: str, name: str) -> dict:
    assert url.startswith(f"{endpoint}/{BUCKET}/{name}?")
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and query["X-Amz-Signature"]
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60  # issued for this request
    return query


def test_with_a_bucket_the_view_redirects_to_a_short_lived_presigned_url(
    admin_client, bucket, s3_endpoint, maxs_image
):
    name = maxs_image.file.name
    stored = bucket.get_object(Bucket=BUCKET, Key=name)["Body"].read()

    response = admin_client.get(_url(maxs_image, "file"), {"download": "1"})

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    query = _presigned(response["Location"], s3_endpoint, name)
    assert query["X-Amz-Expires"] == "120"  # NERSTUDIO_MEDIA_URL_EXPIRY
    fetched = requests.get(response["Location"], timeout=5)
    assert fetched.status_code == 200 and fetched.content == stored
    assert fetched.headers["Content-Type"] == "image/png"
    assert fetched.headers["Content-Disposition"] == (
        'attachment; filename="acme-creative-a-ceramic-mug-on-linen-1.png"'
    )
    shown = admin_client.get(_url(maxs_image, "thumbnail"))
    assert requests.get(shown["Location"], timeout=5).headers["Content-Disposition"] == (
        'inline; filename="acme-creative-a-ceramic-mug-on-linen-1-thumbnail.webp"'
    )
    # The bucket itself is private: the object without a signature is refused.
    assert requests.get(f"{s3_endpoint}/{BUCKET}/{name}", timeout=5).status_code == 403
    # And outsiders still get 404, not a redirect.
    assert Client().get(_url(maxs_image, "file")).status_code == 404


def test_with_a_bucket_providers_get_presigned_urls_for_one_file(bucket, s3_endpoint, maxs_image):
    name = _stored_name(maxs_image, "product")

    url = fetch_urls.fetch_url(name)

    query = _presigned(url, s3_endpoint, name)
    assert query["X-Amz-Expires"] == "600"  # NERSTUDIO_FETCH_URL_EXPIRY
    assert requests.get(url, timeout=5).content == _stored_bytes(name)


def test_with_a_bucket_a_results_thumbnail_is_made_from_the_stored_object(
    bucket, s3_endpoint, maxs_image
):
    """The thumbnail task reads the result back from the bucket (results.add_thumbnail) and
    stores its thumbnail beside it, as private as the result."""
    from generation.pipeline import results

    maxs_image.thumbnail = ""
    maxs_image.save(update_fields=["thumbnail"])

    assert results.add_thumbnail(maxs_image.pk) is True

    maxs_image.refresh_from_db()
    name = maxs_image.thumbnail.name
    assert name.startswith(f"generated/{maxs_image.generation.org.public_id}/thumbs/")
    stored = bucket.get_object(Bucket=BUCKET, Key=name)["Body"].read()
    with Image.open(io.BytesIO(stored)) as thumbnail:
        assert thumbnail.format == "WEBP" and thumbnail.size == (64, 48)  # never enlarged
    assert requests.get(f"{s3_endpoint}/{BUCKET}/{name}", timeout=5).status_code == 403
