"""Downloads of generated images: one image (inline or as an attachment), a generation's images
as a zip, and a selection as a zip. Files are named `<organization>-<prompt>-<n>.<ext>`; anything
the person may not see is a 404, for the whole request. And the download of a result from a
provider's server, bounded in time and size (generation/downloads.py)."""

import io
import itertools
import os
import re
import time
import uuid
import warnings
import zipfile

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from gallery import media
from gallery.media import MAX_ZIP_IMAGES
from gallery.models import Collection, CollectionItem
from generation import downloads
from generation.downloads import DownloadError, download_image
from generation.models import Generation, GenerationImage
from lib.streaming import FILE_CHUNK
from tests.factories import GenerationFactory, MembershipFactory, finished_image, image_bytes
from tests.hostile_server import drip, hold, read_request, serving

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

_colours = itertools.count(1)


# --- Helpers --------------------------------------------------------------------------------------


def add_image(generation, index, *, status=GenerationImage.Status.DONE) -> GenerationImage:
    """Another image of `generation`, with its own real PNG in storage (failed ones too, so only
    their status keeps them out)."""
    n = next(_colours)
    data = image_bytes("PNG", (20 + n % 7, 12), (n * 41 % 256, n * 13 % 256, 90))
    folder = f"generated/{generation.org.public_id}"
    name = default_storage.save(
        f"{folder}/{generation.public_id.hex}-{index}.png", ContentFile(data)
    )
    return GenerationImage.objects.create(
        generation=generation,
        index=index,
        status=status,
        finished_at=timezone.now(),
        file=name,
        width=20,
        height=12,
    )


def stored(name) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def unzip(response) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def zip_generation(client, generation):
    return client.get(reverse("gallery:download-generation", args=[generation.public_id]))


def zip_selection(client, *ids):
    return client.post(reverse("gallery:download-images"), {"images": [str(i) for i in ids]})


def share(image):
    """Put `image` on one of its organization's collections (boards everyone there sees)."""
    board, _ = Collection.objects.get_or_create(org=image.org, name="Spring campaign")
    CollectionItem.objects.create(collection=board, image=image)


@pytest.fixture
def someone_else(org):
    """Another member of Acme, with a finished image of their own."""
    return MembershipFactory(org=org, user__email="sam@acme.test")


# --- One image ------------------------------------------------------------------------------------


def test_a_downloaded_image_is_an_attachment_named_for_organization_prompt_and_number(
    member_client, member_membership
):
    image = finished_image(member_membership, prompt="A Ceramic Mug, on linen!", index=2)
    response = member_client.get(
        reverse("gallery:image-file", args=[image.public_id]), {"download": "1"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-creative-a-ceramic-mug-on-linen-3.png"'
    )
    assert body(response) == stored(image.file.name)


def test_an_image_without_download_is_shown_inline(member_client, member_membership):
    image = finished_image(member_membership, prompt="A ceramic mug on linen")
    response = member_client.get(reverse("gallery:image-file", args=[image.public_id]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        'inline; filename="acme-creative-a-ceramic-mug-on-linen-1.png"'
    )
    assert body(response) == stored(image.file.name)


def test_the_thumbnail_is_named_as_the_images_thumbnail(member_client, member_membership):
    image = finished_image(member_membership, prompt="A ceramic mug on linen")
    response = member_client.get(reverse("gallery:image-thumbnail", args=[image.public_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["Content-Disposition"] == (
        'inline; filename="acme-creative-a-ceramic-mug-on-linen-1-thumbnail.webp"'
    )
    assert body(response) == stored(image.thumbnail.name)


def test_until_its_thumbnail_is_made_an_image_is_its_own_thumbnail_and_not_cached(
    member_client, member_membership
):
    image = finished_image(member_membership, prompt="A ceramic mug on linen")
    thumbnail = image.thumbnail.name
    GenerationImage.objects.filter(pk=image.pk).update(thumbnail="")
    url = reverse("gallery:image-thumbnail", args=[image.public_id])

    response = member_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert body(response) == stored(image.file.name)
    assert response["Cache-Control"] == "private, no-store"  # the browser asks again later

    GenerationImage.objects.filter(pk=image.pk).update(thumbnail=thumbnail)
    response = member_client.get(url)
    assert body(response) == stored(thumbnail)
    assert "max-age" in response["Cache-Control"]


def test_a_long_prompt_is_cut_in_the_file_name(member_client, member_membership):
    image = finished_image(member_membership, prompt="word " * 40)
    response = member_client.get(
        reverse("gallery:image-file", args=[image.public_id]), {"download": "1"}
    )
    filename = response["Content-Disposition"].split('filename="')[1].rstrip('"')
    stem = filename.removeprefix("acme-creative-").removesuffix("-1.png")
    assert 0 < len(stem) <= 48
    assert not stem.endswith("-")


def test_another_members_image_is_404_for_a_member(member_client, someone_else):
    image = finished_image(someone_else)
    url = reverse("gallery:image-file", args=[image.public_id])
    assert member_client.get(url, {"download": "1"}).status_code == 404


# --- A generation's zip ---------------------------------------------------------------------------


def test_a_generation_zip_streams_its_finished_images(member_client, member_membership):
    first = finished_image(member_membership, prompt="A ceramic mug on linen")
    generation = first.generation
    third = add_image(generation, 2)
    add_image(generation, 1, status=GenerationImage.Status.FAILED)
    add_image(generation, 3, status=GenerationImage.Status.GENERATING)
    response = zip_generation(member_client, generation)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response.streaming is True
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-creative-a-ceramic-mug-on-linen.zip"'
    )
    assert unzip(response) == {
        "acme-creative-a-ceramic-mug-on-linen-1.png": stored(first.file.name),
        "acme-creative-a-ceramic-mug-on-linen-3.png": stored(third.file.name),
    }


def test_a_generation_zip_holds_only_that_generations_images(member_client, member_membership):
    image = finished_image(member_membership, prompt="Mug")
    finished_image(member_membership, prompt="Mug")  # same prompt, another generation
    assert list(unzip(zip_generation(member_client, image.generation))) == [
        "acme-creative-mug-1.png"
    ]


def test_a_generation_without_a_finished_image_has_no_zip(member_client, member_membership):
    generation = GenerationFactory(
        org=member_membership.org, user=member_membership.user, status=Generation.Status.FAILED
    )
    add_image(generation, 0, status=GenerationImage.Status.FAILED)
    assert zip_generation(member_client, generation).status_code == 404


def test_another_members_generation_zip_is_404_for_a_member(member_client, someone_else):
    image = finished_image(someone_else)
    assert zip_generation(member_client, image.generation).status_code == 404


def test_another_organizations_generation_zip_is_404(admin_client, other_admin_membership):
    image = finished_image(other_admin_membership)
    assert zip_generation(admin_client, image.generation).status_code == 404


def test_an_anonymous_visitor_gets_404_for_a_generation_zip(member_membership):
    image = finished_image(member_membership)
    response = zip_generation(Client(), image.generation)
    assert response.status_code == 404
    assert "Location" not in response


def test_an_admin_downloads_a_members_generation(admin_client, member_membership):
    image = finished_image(member_membership, prompt="Tea for two")
    response = zip_generation(admin_client, image.generation)
    assert response.status_code == 200
    assert unzip(response) == {"acme-creative-tea-for-two-1.png": stored(image.file.name)}


def test_a_generation_zip_takes_get_only(member_client, member_membership):
    image = finished_image(member_membership)
    url = reverse("gallery:download-generation", args=[image.generation.public_id])
    assert member_client.post(url).status_code == 405


# --- A selection's zip ----------------------------------------------------------------------------


def test_a_selection_zip_holds_exactly_the_selected_images(member_client, member_membership):
    mug = finished_image(member_membership, prompt="A ceramic mug")
    vase = finished_image(member_membership, prompt="A glass vase", index=1)
    finished_image(member_membership, prompt="Not selected")
    response = zip_selection(member_client, mug.public_id, vase.public_id)
    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="acme-creative-2-images.zip"'
    assert unzip(response) == {
        "acme-creative-a-ceramic-mug-1.png": stored(mug.file.name),
        "acme-creative-a-glass-vase-2.png": stored(vase.file.name),
    }


def test_a_selection_with_an_id_twice_zips_it_once(member_client, member_membership):
    mug = finished_image(member_membership, prompt="A ceramic mug")
    response = zip_selection(member_client, mug.public_id, mug.public_id)
    assert response.status_code == 200
    assert list(unzip(response)) == ["acme-creative-a-ceramic-mug-1.png"]


def test_images_that_would_share_a_name_get_distinct_names(member_client, member_membership):
    first = finished_image(member_membership, prompt="A ceramic mug!")
    second = finished_image(member_membership, prompt="a CERAMIC mug")
    response = zip_selection(member_client, first.public_id, second.public_id)
    files = unzip(response)
    assert len(files) == 2
    assert sorted(files.values()) == sorted([stored(first.file.name), stored(second.file.name)])
    assert "acme-creative-a-ceramic-mug-1.png" in files
    assert all(name.startswith("acme-creative-a-ceramic-mug-1") for name in files)


def test_a_selection_with_another_members_image_is_404(
    member_client, member_membership, someone_else
):
    mine = finished_image(member_membership)
    theirs = finished_image(someone_else)
    assert zip_selection(member_client, mine.public_id, theirs.public_id).status_code == 404


def test_a_selection_with_another_organizations_image_is_404(
    admin_client, admin_membership, other_admin_membership
):
    mine = finished_image(admin_membership)
    theirs = finished_image(other_admin_membership)
    assert zip_selection(admin_client, mine.public_id, theirs.public_id).status_code == 404


def test_a_selection_with_an_unknown_id_is_404(member_client, member_membership):
    mine = finished_image(member_membership)
    assert zip_selection(member_client, mine.public_id, uuid.uuid4()).status_code == 404


def test_a_selection_with_a_failed_image_is_404(member_client, member_membership):
    mine = finished_image(member_membership)
    failed = add_image(mine.generation, 1, status=GenerationImage.Status.FAILED)
    assert zip_selection(member_client, mine.public_id, failed.public_id).status_code == 404


@pytest.mark.parametrize("bad", ["not-a-uuid", "1; DROP TABLE", ""])
def test_a_selection_with_a_malformed_id_is_404(member_client, member_membership, bad):
    mine = finished_image(member_membership)
    assert zip_selection(member_client, mine.public_id, bad).status_code == 404


def test_an_empty_selection_is_404(member_client):
    assert member_client.post(reverse("gallery:download-images"), {}).status_code == 404


def test_a_selection_may_hold_up_to_the_limit_and_no_more(admin_client, admin_membership):
    first = finished_image(admin_membership, prompt="Many")
    generation = first.generation
    GenerationImage.objects.bulk_create(
        GenerationImage(
            generation=generation,
            org_id=generation.org_id,
            user_id=generation.user_id,
            index=i,
            status=GenerationImage.Status.DONE,
            finished_at=timezone.now(),
            file=first.file.name,
        )
        for i in range(1, MAX_ZIP_IMAGES + 1)
    )
    ids = list(generation.images.order_by("index").values_list("public_id", flat=True))
    assert len(ids) == MAX_ZIP_IMAGES + 1
    at_limit = zip_selection(admin_client, *ids[:MAX_ZIP_IMAGES])
    assert at_limit.status_code == 200
    assert len(unzip(at_limit)) == MAX_ZIP_IMAGES
    assert zip_selection(admin_client, *ids).status_code == 404


def test_a_selection_zip_takes_post_only(member_client, member_membership):
    mine = finished_image(member_membership)
    response = member_client.get(reverse("gallery:download-images"), {"images": mine.public_id})
    assert response.status_code == 405


def test_a_selection_zip_needs_the_csrf_token(member, member_membership):
    mine = finished_image(member_membership)
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    assert zip_selection(client, mine.public_id).status_code == 403


def test_a_selection_zip_is_404_for_an_anonymous_visitor(member_membership):
    mine = finished_image(member_membership)
    response = zip_selection(Client(), mine.public_id)
    assert response.status_code == 404
    assert "Location" not in response


def test_a_member_may_zip_another_members_image_once_it_is_in_a_collection(
    member_client, member_membership, someone_else
):
    mine = finished_image(member_membership, prompt="Mine")
    theirs = finished_image(someone_else, prompt="Theirs")
    assert zip_selection(member_client, mine.public_id, theirs.public_id).status_code == 404
    share(theirs)
    response = zip_selection(member_client, mine.public_id, theirs.public_id)
    assert response.status_code == 200
    assert unzip(response) == {
        "acme-creative-mine-1.png": stored(mine.file.name),
        "acme-creative-theirs-1.png": stored(theirs.file.name),
    }


# --- The whole organization's images (admins) -----------------------------------------------------

ARCHIVE = reverse("gallery:download-organization")


def test_an_admin_downloads_every_finished_image_of_the_organization(
    admin_client, admin_membership, member_membership, other_admin_membership
):
    mine = finished_image(admin_membership, prompt="Mug")
    theirs = finished_image(member_membership, prompt="Mug")  # the same name: told apart
    add_image(theirs.generation, 1, status=GenerationImage.Status.FAILED)
    finished_image(other_admin_membership, prompt="Rival")

    response = admin_client.get(ARCHIVE)

    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="acme-creative-images.zip"'
    files = unzip(response)
    assert sorted(files.values()) == sorted([stored(mine.file.name), stored(theirs.file.name)])
    assert "acme-creative-mug-1.png" in files and len(files) == 2


def test_the_organization_archive_is_read_in_a_fixed_number_of_queries(
    admin_client, admin_membership, django_assert_max_num_queries
):
    for n in range(5):
        finished_image(admin_membership, prompt=f"Mug {n}")

    with django_assert_max_num_queries(8):
        assert len(unzip(admin_client.get(ARCHIVE))) == 5


def test_the_settings_and_delete_pages_offer_the_archive_as_a_plain_link(admin_client):
    # Not boosted: htmx would fetch the zip and swap it into the page as HTML.
    for page in ("workspace:settings", "workspace:delete-organization"):
        html = admin_client.get(reverse(page)).content.decode()
        assert re.search(rf'<a [^>]*href="{ARCHIVE}"[^>]* hx-boost="false"', html), page


def test_a_member_cannot_download_the_organization_archive(member_client, member_membership):
    finished_image(member_membership)

    assert member_client.get(ARCHIVE).status_code == 403


def test_an_organization_without_images_is_told_there_is_nothing_to_download(admin_client):
    response = admin_client.get(ARCHIVE, follow=True)

    assert response.redirect_chain[-1][0] == reverse("workspace:settings")
    assert "No finished images to download yet." in response.content.decode()


def test_the_organization_archive_is_limited_to_a_few_an_hour(
    admin_client, admin_membership, monkeypatch
):
    finished_image(admin_membership)
    monkeypatch.setattr(media, "ARCHIVES_PER_HOUR", 2)
    for _ in range(2):
        assert admin_client.get(ARCHIVE).status_code == 200

    response = admin_client.get(ARCHIVE, follow=True)

    assert response.redirect_chain[-1][0] == reverse("workspace:settings")
    assert "All of Acme Creative&#x27;s images were downloaded 2 times this hour" in (
        response.content.decode()
    )


# --- Under ASGI (the web server's protocol): streamed, never read whole first -------------------


def get_over_asgi(user, url) -> tuple:
    """The response to a GET through Django's ASGI handler, and its body's chunks as sent. Fails
    if Django had to read a synchronous body whole into memory first (it warns then)."""
    client = AsyncClient()
    client.force_login(user)

    async def get():
        response = await client.get(url)
        return response, [chunk async for chunk in response.streaming_content]

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        return async_to_sync(get)()


def test_under_asgi_an_image_is_sent_in_large_chunks_as_it_is_read(member_membership):
    image = finished_image(member_membership)
    data = os.urandom(2 * FILE_CHUNK + 1000)  # a 0.5 MB result
    default_storage.delete(image.file.name)
    default_storage.save(image.file.name, ContentFile(data))

    url = reverse("gallery:image-file", args=[image.public_id])
    response, chunks = get_over_asgi(member_membership.user, url)

    assert response.status_code == 200 and response.is_async
    assert [len(chunk) for chunk in chunks] == [FILE_CHUNK, FILE_CHUNK, 1000]
    assert b"".join(chunks) == data
    assert response["Content-Length"] == str(len(data))


def test_under_asgi_a_zip_is_streamed_not_built_in_memory(member_membership):
    first = finished_image(member_membership, prompt="A ceramic mug on linen")
    second = add_image(first.generation, 1)

    url = reverse("gallery:download-generation", args=[first.generation.public_id])
    response, chunks = get_over_asgi(member_membership.user, url)

    assert response.status_code == 200 and response.is_async
    assert len(chunks) > 2  # the archive's parts as they are made, not one buffer
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert sorted(archive.read(i) for i in archive.infolist()) == sorted(
            [stored(first.file.name), stored(second.file.name)]
        )


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_database_connection_is_handed_back_before_the_file_is_sent(
    member_membership, media_root
):
    """A slow reader must not hold a pooled connection; and Django's own close at the end of the
    response may run on another thread than the view's (lib/streaming.py)."""
    from django.db import connection

    image = finished_image(member_membership)
    client = AsyncClient()
    client.force_login(member_membership.user)
    url = reverse("gallery:image-file", args=[image.public_id])

    async def get():
        response = await client.get(url)
        # On the thread the view ran on (this test's: async_to_sync lends it to sync code).
        held = await sync_to_async(lambda: connection.connection is not None)()
        return held, b"".join([chunk async for chunk in response.streaming_content])

    held, body = async_to_sync(get)()

    assert not held
    assert body == stored(image.file.name)


def test_under_asgi_another_organizations_image_and_zip_are_404(
    member_membership, other_admin_membership
):
    image = finished_image(member_membership)
    client = AsyncClient()
    client.force_login(other_admin_membership.user)
    for url in (
        reverse("gallery:image-file", args=[image.public_id]),
        reverse("gallery:download-generation", args=[image.generation.public_id]),
    ):
        response = async_to_sync(client.get)(url)
        assert response.status_code == 404
        assert not response.streaming


# --- A result from a provider's server: bounded in time and size, whatever the server does -----

PNG = image_bytes("PNG", (4, 4))


def result_answer(data: bytes, *, length: int | None = None, header_seconds=0.0, body_seconds=0.0):
    """An HTTP answer with `data` as its body, its headers and body dripped over the seconds
    given; `length` is the declared length (None: none, the body ends when the server closes)."""
    headers = "Content-Type: image/png\r\nConnection: close\r\n"
    if length is not None:
        headers += f"Content-Length: {length}\r\n"

    def answer(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        drip(conn, f"{headers}\r\n".encode(), seconds=header_seconds)
        drip(conn, data, seconds=body_seconds)
        if length is not None and length > len(data):
            hold(conn)

    return answer


@pytest.mark.usefixtures("loopback_egress")
def test_a_result_is_downloaded_whole():
    with serving(result_answer(PNG, length=len(PNG))) as url:
        assert download_image(f"{url}/result.png") == PNG


@pytest.mark.usefixtures("loopback_egress")
def test_a_result_trickled_past_the_time_limit_is_cut_off_at_the_limit(monkeypatch):
    monkeypatch.setattr(downloads, "TOTAL_SECONDS", 0.5)

    with serving(result_answer(PNG, length=len(PNG), body_seconds=5)) as url:
        started = time.monotonic()
        with pytest.raises(DownloadError, match="took too long"):
            download_image(f"{url}/result.png")

    assert time.monotonic() - started < 1  # every byte came well within any read timeout


@pytest.mark.usefixtures("loopback_egress")
def test_a_result_whose_headers_are_trickled_is_cut_off_at_the_time_limit(monkeypatch):
    monkeypatch.setattr(downloads, "TOTAL_SECONDS", 0.5)

    with serving(result_answer(PNG, length=len(PNG), header_seconds=5)) as url:
        started = time.monotonic()
        with pytest.raises(DownloadError, match="took too long"):
            download_image(f"{url}/result.png")

    assert time.monotonic() - started < 1


@pytest.mark.usefixtures("loopback_egress")
def test_a_result_declared_larger_than_allowed_is_refused_before_it_is_read(settings):
    settings.NERSTUDIO_RESULT_MAX_BYTES = 1000

    with serving(result_answer(PNG, length=1001)) as url:  # the rest never comes
        started = time.monotonic()
        with pytest.raises(DownloadError, match="larger than allowed"):
            download_image(f"{url}/result.png")

    assert time.monotonic() - started < 1


@pytest.mark.usefixtures("loopback_egress")
def test_a_result_growing_past_the_size_cap_is_cut_off(settings):
    settings.NERSTUDIO_RESULT_MAX_BYTES = 100_000

    answer = result_answer(PNG + b"\0" * 1_000_000)  # no declared length
    with serving(answer) as url, pytest.raises(DownloadError, match="larger than allowed"):
        download_image(f"{url}/result.png")
