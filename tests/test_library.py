"""The brand library: what the organization uploaded, kept once by content hash, searched, named
and tagged by admins, archived (hidden from Generate) and deleted (files gone, the row kept for
past generations). Its files reach the organization's members only; everyone else gets 404."""

import io
import itertools
import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.messages import get_messages
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from generation.models import Generation
from library import services
from library.models import ReferenceAnalysis, SourceImage, Tag
from library.picker import PICKER_SIZE
from library.uploads import check_image, ingest_image
from tests.factories import (
    GenerationFactory,
    MembershipFactory,
    OrganizationFactory,
    finished_image,
    image_bytes,
)
from tests.generate_form import upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]

_colours = itertools.count(1)


# --- Helpers --------------------------------------------------------------------------------------


def png(size=(40, 30), colour=None) -> bytes:
    """A real PNG, a different one on every call unless `colour` is given."""
    if colour is None:
        n = next(_colours)
        colour = (n * 37 % 256, n * 91 % 256, n * 53 % 256)
    return image_bytes("PNG", size, colour)


def library_image(org, *, name="", original_name="photo.png", data=None, user=None, **fields):
    """A library image stored as an upload stores it (file and thumbnail), then given `fields`."""
    validated = ingest_image(check_image(upload(original_name, data or png())))
    try:
        source = services.store_image(org=org, user=user, image=validated)
    finally:
        validated.close()
    if name or fields:
        SourceImage.objects.filter(pk=source.pk).update(name=name, **fields)
        source.refresh_from_db()
    return source


def row(org, **fields):
    """A library image without files, for what only reads the rows (search, picker)."""
    n = next(_colours)
    defaults = {
        "sha256": f"{n:064x}",
        "format": "PNG",
        "width": 10,
        "height": 10,
        "size": 100,
    }
    return SourceImage.objects.create(org=org, **{**defaults, **fields})


def tag(image, *names):
    for name in names:
        image.tags.add(Tag.objects.get_or_create(org_id=image.org_id, name=name)[0])


def labels(response) -> list[str]:
    """The library grid's labels, in the order shown."""
    return re.findall(r'<span class="library-label">(.*?)</span>', response.content.decode())


def picks(response) -> list[tuple[str, str, bool]]:
    """The picker's checkboxes: (role, public id, checked), in the order shown."""
    found = re.findall(
        r'<input type="checkbox" name="library_(\w+)" value="([^"]+)"( checked)?>',
        response.content.decode(),
    )
    return [(role, value, bool(checked)) for role, value, checked in found]


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def stored(name) -> bytes:
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def ago(**delta):
    return timezone.now() - timedelta(**delta)


# --- The library page -----------------------------------------------------------------------------


def test_the_library_lists_the_organizations_images_most_recently_used_first(
    member_client, org, other_admin_membership
):
    row(org, name="Middle", last_used_at=ago(days=2))
    row(org, name="Newest", last_used_at=ago(minutes=5))
    row(org, name="Oldest", last_used_at=ago(days=30))
    row(other_admin_membership.org, name="Rival bottle", last_used_at=timezone.now())
    response = member_client.get(reverse("library:index"))
    assert response.status_code == 200
    assert labels(response) == ["Newest", "Middle", "Oldest"]
    assert "Rival bottle" not in response.content.decode()


def test_using_an_image_brings_it_to_the_top_of_the_library(member_client, org):
    old = row(org, name="Old favourite", last_used_at=ago(days=9))
    row(org, name="Recent", last_used_at=ago(days=1))
    services.mark_used([old])
    assert labels(member_client.get(reverse("library:index"))) == ["Old favourite", "Recent"]


@pytest.mark.parametrize(
    ("field", "value", "query"),
    [
        ("name", "Summer Bottle", "summer"),
        ("original_name", "IMG_0042_Bottle.PNG", "img_0042"),
        ("tag", "seasonal", "SEASON"),
        ("description", "A frosted glass bottle on wet sand", "FROSTED GLASS"),
    ],
)
def test_searching_the_library_matches_name_file_name_tag_and_description_in_any_case(
    member_client, org, field, value, query
):
    target = row(org, name="" if field != "name" else value, original_name="target.png")
    row(org, name="Unrelated mug", original_name="mug.png")
    if field == "original_name":
        SourceImage.objects.filter(pk=target.pk).update(original_name=value)
    elif field == "tag":
        tag(target, value)
    elif field == "description":
        ReferenceAnalysis.objects.create(org=org, sha256=target.sha256, description=value)
    target.refresh_from_db()
    response = member_client.get(reverse("library:index"), {"q": query})
    assert labels(response) == [target.label]


def test_a_description_of_another_organizations_copy_does_not_match(
    member_client, org, other_admin_membership
):
    target = row(org, name="Plain bottle")
    ReferenceAnalysis.objects.create(
        org=other_admin_membership.org, sha256=target.sha256, description="frosted glass"
    )
    response = member_client.get(reverse("library:index"), {"q": "frosted"})
    assert labels(response) == []
    assert "Nothing matches" in response.content.decode()


def test_the_tag_filter_shows_only_images_with_that_tag(member_client, org):
    summer = row(org, name="Beach bottle")
    tag(summer, "summer", "hero")
    winter = row(org, name="Snow bottle")
    tag(winter, "winter")
    row(org, name="Untagged bottle")
    response = member_client.get(reverse("library:index"), {"tag": "summer"})
    assert labels(response) == ["Beach bottle"]


def test_archived_images_are_hidden_by_default(admin_client, org):
    row(org, name="Current", last_used_at=ago(days=1))
    row(org, name="Retired", archived_at=timezone.now())
    assert labels(admin_client.get(reverse("library:index"))) == ["Current"]


def test_an_admin_sees_archived_images_on_request(admin_client, org):
    row(org, name="Current", last_used_at=ago(days=1))
    row(org, name="Retired", archived_at=timezone.now())
    response = admin_client.get(reverse("library:index"), {"archived": "on"})
    assert labels(response) == ["Retired", "Current"]
    assert "Archived · " in response.content.decode()


def test_a_members_request_for_archived_images_is_ignored(member_client, org):
    row(org, name="Current")
    row(org, name="Retired", archived_at=timezone.now())
    response = member_client.get(reverse("library:index"), {"archived": "on"})
    assert labels(response) == ["Current"]


def test_deleted_images_are_never_shown(admin_client, org):
    row(org, name="Current", last_used_at=ago(days=1))
    row(org, name="Gone", deleted_at=timezone.now())
    row(org, name="Gone too", deleted_at=timezone.now(), archived_at=timezone.now())
    assert labels(admin_client.get(reverse("library:index"))) == ["Current"]
    assert labels(admin_client.get(reverse("library:index"), {"archived": "on"})) == ["Current"]
    assert labels(admin_client.get(reverse("library:index"), {"q": "gone"})) == []


def test_an_htmx_search_gets_only_the_results(member_client, org):
    row(org, name="Blue bottle")
    row(org, name="Red mug")
    response = member_client.get(
        reverse("library:index"),
        {"q": "bottle"},
        headers={"HX-Request": "true", "HX-Target": "library-results"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="library-results"')
    assert "<html" not in html
    assert labels(response) == ["Blue bottle"]
    assert "HX-Target" in response["Vary"]


def test_the_whole_page_is_rendered_without_htmx(member_client, org):
    row(org, name="Blue bottle")
    html = member_client.get(reverse("library:index")).content.decode()
    assert "<html" in html
    assert '<div id="library-results"' in html


def test_an_anonymous_visitor_is_sent_to_sign_in_from_the_library(client):
    response = client.get(reverse("library:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


# --- Uploading ------------------------------------------------------------------------------------


def test_uploaded_images_are_stored_with_a_small_webp_thumbnail(settings, member_client, org):
    settings.NERSTUDIO_THUMBNAIL_SIDE = 64
    response = member_client.post(
        reverse("library:upload"),
        {"images": [upload("wide.png", png((300, 120))), upload("tall.png", png((50, 200)))]},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("library:index")
    assert messages_of(response) == ["Added 2 images to the library."]
    images = SourceImage.objects.filter(org=org).order_by("original_name")
    assert [i.original_name for i in images] == ["tall.png", "wide.png"]
    for image in images:
        assert default_storage.exists(image.file.name)
        with Image.open(io.BytesIO(stored(image.thumbnail.name))) as thumb:
            assert thumb.format == "WEBP"
            assert max(thumb.size) <= 64
    wide = images.get(original_name="wide.png")
    assert (wide.format, wide.width, wide.height) == ("PNG", 300, 120)


def test_the_thumbnail_is_at_most_the_configured_side(member_client, org):
    member_client.post(reverse("library:upload"), {"images": [upload("big.png", png((900, 600)))]})
    image = SourceImage.objects.get(org=org)
    with Image.open(io.BytesIO(stored(image.thumbnail.name))) as thumb:
        assert thumb.format == "WEBP"
        assert max(thumb.size) == django_settings.NERSTUDIO_THUMBNAIL_SIDE


def test_the_same_image_uploaded_twice_is_stored_once(member_client, org):
    data = png()
    member_client.post(reverse("library:upload"), {"images": [upload("a.png", data)]})
    member_client.post(
        reverse("library:upload"),
        {"images": [upload("again.png", data), upload("a copy.png", data)]},
    )
    image = SourceImage.objects.get(org=org)
    assert image.original_name == "a.png"  # the first upload's name is kept
    folder = f"uploads/{org.public_id}"
    assert sorted(default_storage.listdir(folder)[1]) == [f"{image.sha256}.png"]


def test_the_same_image_in_two_organizations_is_stored_for_each(
    member_client, org, other_admin_membership
):
    data = png()
    library_image(other_admin_membership.org, data=data)
    member_client.post(reverse("library:upload"), {"images": [upload("a.png", data)]})
    assert SourceImage.objects.filter(org=org).count() == 1
    assert SourceImage.objects.filter(org=other_admin_membership.org).count() == 1


def test_a_file_that_is_not_an_image_is_refused_with_its_name(member_client, org):
    response = member_client.post(
        reverse("library:upload"),
        {"images": [upload("notes.png", b"just some text, not a picture")]},
    )
    assert response.status_code == 302
    assert messages_of(response) == ["notes.png is not a JPEG, PNG or WebP image."]
    assert not SourceImage.objects.exists()


def test_a_gif_alone_is_refused(member_client, org):
    response = member_client.post(
        reverse("library:upload"), {"images": [upload("loop.gif", image_bytes("GIF"), "image/gif")]}
    )
    assert messages_of(response) == ["loop.gif is not a JPEG, PNG or WebP image."]
    assert not SourceImage.objects.exists()


def test_a_damaged_image_is_refused_while_the_good_ones_are_stored(member_client, org):
    data = png((64, 64))
    response = member_client.post(
        reverse("library:upload"),
        {"images": [upload("good.png", png()), upload("cut.png", data[: len(data) // 2])]},
    )
    assert messages_of(response) == [
        "cut.png could not be read: the file is damaged or incomplete.",
        "Added 1 image to the library.",
    ]
    assert [i.original_name for i in SourceImage.objects.filter(org=org)] == ["good.png"]


def test_a_gif_among_good_images_is_refused_while_the_good_ones_are_stored(member_client, org):
    response = member_client.post(
        reverse("library:upload"),
        {
            "images": [
                upload("first.png", png()),
                upload("loop.gif", image_bytes("GIF"), "image/gif"),
                upload("second.jpg", image_bytes("JPEG", (30, 20)), "image/jpeg"),
            ]
        },
    )
    assert "loop.gif is not a JPEG, PNG or WebP image." in messages_of(response)
    stored_names = sorted(i.original_name for i in SourceImage.objects.filter(org=org))
    assert stored_names == ["first.png", "second.jpg"]


def test_more_files_than_an_upload_takes_are_refused_without_looking_at_any(member_client):
    files = [upload(f"{i}.png", png(colour=(i, 0, 0))) for i in range(17)]
    response = member_client.post(reverse("library:upload"), {"images": files})
    assert messages_of(response) == ["Choose at most 16 images at a time; you chose 17."]
    assert not SourceImage.objects.exists()


def test_uploads_past_the_organizations_megapixel_budget_are_refused_and_stored_nowhere(
    member_client, admin, org, settings
):
    settings.NERSTUDIO_UPLOAD_MEGAPIXELS_PER_ORG_PER_MINUTE = 3
    first = [upload("a.png", png((1000, 1000))), upload("b.png", png((1000, 1000), (1, 1, 1)))]
    member_client.post(reverse("library:upload"), {"images": first})
    assert SourceImage.objects.filter(org=org).count() == 2
    colleague = Client()
    colleague.force_login(admin)

    response = colleague.post(
        reverse("library:upload"), {"images": [upload("c.png", png((1500, 1000), (2, 2, 2)))]}
    )

    (message,) = messages_of(response)
    assert message.startswith("Too many images uploaded in the last minute; try again in")
    assert SourceImage.objects.filter(org=org).count() == 2


def test_an_upload_without_files_asks_for_one(member_client):
    response = member_client.post(reverse("library:upload"), {})
    assert messages_of(response) == ["Choose at least one image."]
    assert not SourceImage.objects.exists()


def test_a_member_may_upload_and_is_recorded_as_the_uploader(member_client, member, org):
    member_client.post(reverse("library:upload"), {"images": [upload("mine.png", png())]})
    image = SourceImage.objects.get(org=org)
    assert image.uploaded_by == member


def test_an_anonymous_upload_is_sent_to_sign_in_and_stores_nothing(client):
    response = client.post(reverse("library:upload"), {"images": [upload("a.png", png())]})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not SourceImage.objects.exists()


def test_uploading_takes_post_only(member_client):
    assert member_client.get(reverse("library:upload")).status_code == 405


def test_the_library_upload_route_has_the_upload_body_limit():
    from lib.http_limits import LIBRARY_UPLOAD_PATH, limit_for

    assert reverse("library:upload") == LIBRARY_UPLOAD_PATH
    limit = limit_for(LIBRARY_UPLOAD_PATH, multipart=True)
    assert limit.max_bytes == django_settings.NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES
    assert limit.max_part_bytes is not None


# --- The detail page and describing ---------------------------------------------------------------


def test_the_detail_page_shows_label_tags_description_and_use(member_client, member_membership):
    org = member_membership.org
    image = library_image(org, name="Hero bottle")
    tag(image, "summer", "glass")
    ReferenceAnalysis.objects.create(
        org=org, sha256=image.sha256, description="A frosted bottle on sand"
    )
    finished_image(member_membership, products=[image])
    finished_image(member_membership, references=[image])
    html = member_client.get(reverse("library:detail", args=[image.public_id])).content.decode()
    assert "Hero bottle" in html
    assert ">summer</a>" in html
    assert ">glass</a>" in html
    assert "A frosted bottle on sand" in html
    assert "in 2 generations" in html
    assert reverse("library:file", args=[image.public_id]) in html


def test_a_member_sees_no_describe_form_on_the_detail_page(member_client, org):
    image = row(org, name="Hero bottle")
    html = member_client.get(reverse("library:detail", args=[image.public_id])).content.decode()
    assert reverse("library:describe", args=[image.public_id]) not in html
    assert reverse("library:delete", args=[image.public_id]) not in html


def test_the_detail_page_of_another_organizations_or_a_deleted_image_is_404(
    admin_client, org, other_admin_membership
):
    theirs = row(other_admin_membership.org, name="Rival")
    gone = row(org, name="Gone", deleted_at=timezone.now())
    assert admin_client.get(reverse("library:detail", args=[theirs.public_id])).status_code == 404
    assert admin_client.get(reverse("library:detail", args=[gone.public_id])).status_code == 404


def test_an_admin_names_and_tags_an_image(admin_client, org):
    image = row(org)
    response = admin_client.post(
        reverse("library:describe", args=[image.public_id]),
        {"name": "  Hero bottle ", "tags": "a, B ,a,  Summer   Sale ,"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("library:detail", args=[image.public_id])
    image.refresh_from_db()
    assert image.name == "Hero bottle"
    assert sorted(t.name for t in image.tags.all()) == ["a", "b", "summer sale"]
    assert Tag.objects.filter(org=org).count() == 3


def test_tags_are_shared_by_the_organizations_images(admin_client, org):
    first, second = row(org), row(org)
    admin_client.post(reverse("library:describe", args=[first.public_id]), {"tags": "hero"})
    admin_client.post(reverse("library:describe", args=[second.public_id]), {"tags": "HERO"})
    assert Tag.objects.filter(org=org).count() == 1
    assert set(Tag.objects.get(org=org).images.all()) == {first, second}


def test_more_than_twelve_tags_are_refused(admin_client, org):
    image = row(org, name="Before")
    tag(image, "kept")
    response = admin_client.post(
        reverse("library:describe", args=[image.public_id]),
        {"name": "After", "tags": ", ".join(f"tag{n}" for n in range(13))},
    )
    assert response.status_code == 422
    assert "At most 12 tags per image." in response.content.decode()
    image.refresh_from_db()
    assert image.name == "Before"
    assert [t.name for t in image.tags.all()] == ["kept"]


def test_twelve_tags_are_allowed(admin_client, org):
    image = row(org)
    response = admin_client.post(
        reverse("library:describe", args=[image.public_id]),
        {"tags": ", ".join(f"tag{n}" for n in range(12))},
    )
    assert response.status_code == 302
    assert image.tags.count() == 12


def test_a_member_may_not_describe_an_image(member_client, org):
    image = row(org, name="Before")
    response = member_client.post(
        reverse("library:describe", args=[image.public_id]), {"name": "After", "tags": "x"}
    )
    assert response.status_code == 403
    image.refresh_from_db()
    assert image.name == "Before"
    assert not Tag.objects.exists()


def test_tags_no_image_uses_any_more_are_deleted(admin_client, org):
    image, other = row(org), row(org)
    tag(image, "old", "shared")
    tag(other, "shared")
    admin_client.post(reverse("library:describe", args=[image.public_id]), {"tags": "new"})
    assert sorted(Tag.objects.filter(org=org).values_list("name", flat=True)) == ["new", "shared"]
    assert [t.name for t in image.tags.all()] == ["new"]


def test_an_admin_cannot_describe_another_organizations_image(admin_client, other_admin_membership):
    theirs = row(other_admin_membership.org, name="Rival")
    response = admin_client.post(
        reverse("library:describe", args=[theirs.public_id]), {"name": "Mine now"}
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Rival"


# --- Archiving ------------------------------------------------------------------------------------


def test_an_admin_archives_and_restores_an_image(admin_client, org):
    image = row(org, name="Bottle")
    url = reverse("library:archive", args=[image.public_id])
    response = admin_client.post(url)
    assert response.status_code == 302
    image.refresh_from_db()
    assert image.is_archived
    admin_client.post(url, {"restore": "1"})
    image.refresh_from_db()
    assert not image.is_archived


def test_a_member_may_not_archive_or_restore(member_client, org):
    current = row(org)
    archived = row(org, archived_at=timezone.now())
    assert (
        member_client.post(reverse("library:archive", args=[current.public_id])).status_code == 403
    )
    response = member_client.post(
        reverse("library:archive", args=[archived.public_id]), {"restore": "1"}
    )
    assert response.status_code == 403
    current.refresh_from_db()
    archived.refresh_from_db()
    assert not current.is_archived
    assert archived.is_archived


def test_an_archived_image_is_not_offered_on_generate(admin_client, member, org):
    image = row(org, name="Bottle")
    kept = row(org, name="Mug")
    admin_client.post(reverse("library:archive", args=[image.public_id]))
    member_client = Client()
    member_client.force_login(member)
    response = member_client.get(reverse("library:picker"), {"role": "products"})
    assert picks(response) == [("products", str(kept.public_id), False)]


def test_an_archived_image_already_chosen_stays_in_the_picker(member_client, org):
    archived = row(org, name="Retired", archived_at=timezone.now(), last_used_at=ago(days=9))
    current = row(org, name="Current")
    response = member_client.get(
        reverse("library:picker"),
        {"role": "products", "library_products": [str(archived.public_id)]},
    )
    assert picks(response) == [
        ("products", str(archived.public_id), True),
        ("products", str(current.public_id), False),
    ]


def test_an_archived_image_is_still_served_for_past_work(member_client, org):
    image = library_image(org, archived_at=timezone.now())
    response = member_client.get(reverse("library:file", args=[image.public_id]))
    assert response.status_code == 200
    assert body(response) == stored(image.file.name)


# --- Deleting -------------------------------------------------------------------------------------


def test_an_admin_deletes_an_image_files_and_all(admin_client, org):
    image = library_image(org, name="Bottle")
    names = [image.file.name, image.thumbnail.name]
    assert all(default_storage.exists(n) for n in names)
    response = admin_client.post(reverse("library:delete", args=[image.public_id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("library:index")
    assert not any(default_storage.exists(n) for n in names)
    image.refresh_from_db()
    assert image.is_deleted
    assert (image.file.name, image.thumbnail.name) == ("", "")
    assert image.name == "Bottle"  # the row stays, for past generations
    for view in ("library:file", "library:thumbnail", "library:detail"):
        assert admin_client.get(reverse(view, args=[image.public_id])).status_code == 404


def test_deleting_drops_the_images_tags(admin_client, org):
    image = library_image(org)
    tag(image, "summer")
    admin_client.post(reverse("library:delete", args=[image.public_id]))
    assert not image.tags.exists()


def test_a_member_may_not_delete(member_client, org):
    image = library_image(org)
    response = member_client.post(reverse("library:delete", args=[image.public_id]))
    assert response.status_code == 403
    image.refresh_from_db()
    assert not image.is_deleted
    assert default_storage.exists(image.file.name)


def test_a_past_generation_still_renders_after_its_image_is_deleted(admin_client, admin_membership):
    product = library_image(admin_membership.org, name="Blue bottle")
    generation = finished_image(admin_membership, products=[product]).generation
    admin_client.post(reverse("library:delete", args=[product.public_id]))
    response = admin_client.get(reverse("generation:detail", args=[generation.public_id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Deleted from the library" in html
    assert "Blue bottle" in html
    assert reverse("library:thumbnail", args=[product.public_id]) not in html


@pytest.mark.parametrize("role", ["products", "references"])
def test_an_image_a_running_generation_uses_is_not_deleted(admin_client, admin, org, role):
    image = library_image(org)
    generation = GenerationFactory(org=org, user=admin, status=Generation.Status.GENERATING)
    assert generation.finished_at is None
    getattr(generation, role).set([image])
    response = admin_client.post(reverse("library:delete", args=[image.public_id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("library:detail", args=[image.public_id])
    assert messages_of(response) == [
        "A generation that uses this image is still running; delete it once it has finished."
    ]
    image.refresh_from_db()
    assert not image.is_deleted
    assert default_storage.exists(image.file.name)
    assert default_storage.exists(image.thumbnail.name)


def test_an_image_is_deleted_once_the_generation_using_it_has_finished(admin_client, admin, org):
    image = library_image(org)
    running = GenerationFactory(org=org, user=admin, status=Generation.Status.GENERATING)
    running.products.set([image])
    Generation.objects.filter(pk=running.pk).update(
        status=Generation.Status.DONE, finished_at=timezone.now()
    )
    admin_client.post(reverse("library:delete", args=[image.public_id]))
    image.refresh_from_db()
    assert image.is_deleted


def test_uploading_a_deleted_image_again_brings_it_back(admin_client, org):
    data = png()
    admin_client.post(reverse("library:upload"), {"images": [upload("bottle.png", data)]})
    image = SourceImage.objects.get(org=org)
    admin_client.post(reverse("library:archive", args=[image.public_id]))
    admin_client.post(reverse("library:delete", args=[image.public_id]))
    image.refresh_from_db()
    assert image.is_deleted
    admin_client.post(reverse("library:upload"), {"images": [upload("again.png", data)]})
    back = SourceImage.objects.get(org=org)
    assert back.pk == image.pk
    assert back.deleted_at is None
    assert back.archived_at is None
    assert default_storage.exists(back.file.name)
    assert default_storage.exists(back.thumbnail.name)
    response = admin_client.get(reverse("library:file", args=[back.public_id]))
    assert response.status_code == 200
    assert body(response) == stored(back.file.name)


def test_an_admin_cannot_delete_another_organizations_image(admin_client, other_admin_membership):
    theirs = library_image(other_admin_membership.org)
    response = admin_client.post(reverse("library:delete", args=[theirs.public_id]))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert not theirs.is_deleted
    assert default_storage.exists(theirs.file.name)


# --- Generate's picker ----------------------------------------------------------------------------


def test_the_picker_shows_the_chosen_first_then_recent_ones_matching_the_search(member_client, org):
    chosen = row(org, name="Chosen mug", last_used_at=ago(days=40))
    old = row(org, name="Old bottle", last_used_at=ago(days=10))
    new = row(org, name="New bottle", last_used_at=ago(days=1))
    row(org, name="Red mug", last_used_at=timezone.now())
    response = member_client.get(
        reverse("library:picker"),
        {"role": "products", "library_products": [str(chosen.public_id)], "library_q": "BOTTLE"},
    )
    assert response.status_code == 200
    assert picks(response) == [
        ("products", str(chosen.public_id), True),
        ("products", str(new.public_id), False),
        ("products", str(old.public_id), False),
    ]


def test_the_pickers_search_ignores_nul_characters(member_client, org):
    """PostgreSQL refuses a NUL in a text parameter: the search would be a 500 there."""
    bottle = row(org, name="Old bottle")
    row(org, name="Red mug")
    response = member_client.get(
        reverse("library:picker"), {"role": "products", "library_q": "bot\x00tle"}
    )
    assert response.status_code == 200
    assert picks(response) == [("products", str(bottle.public_id), False)]


def test_the_picker_for_references_names_its_checkboxes_for_references(member_client, org):
    chosen = row(org, name="Mood board")
    response = member_client.get(
        reverse("library:picker"),
        {"role": "references", "library_references": [str(chosen.public_id)]},
    )
    assert 'id="picker-references"' in response.content.decode()
    assert picks(response) == [("references", str(chosen.public_id), True)]


def test_the_picker_ignores_other_organizations_and_malformed_ids(
    member_client, org, other_admin_membership
):
    mine = row(org, name="Mine")
    theirs = row(other_admin_membership.org, name="Theirs")
    gone = row(org, name="Gone", deleted_at=timezone.now())
    response = member_client.get(
        reverse("library:picker"),
        {
            "role": "products",
            "library_products": [
                str(theirs.public_id),
                "not-a-uuid",
                "1 OR 1=1",
                str(gone.public_id),
            ],
        },
    )
    assert response.status_code == 200
    assert picks(response) == [("products", str(mine.public_id), False)]
    assert "Theirs" not in response.content.decode()


@pytest.mark.parametrize("role", [None, "", "bogus", "../products"])
def test_the_picker_is_for_products_unless_asked_for_references(member_client, org, role):
    image = row(org)
    params = {} if role is None else {"role": role}
    response = member_client.get(reverse("library:picker"), params)
    assert response.status_code == 200
    assert 'id="picker-products"' in response.content.decode()
    assert picks(response) == [("products", str(image.public_id), False)]


def test_the_picker_shows_at_most_its_size(member_client, org):
    images = [row(org, last_used_at=ago(minutes=n)) for n in range(PICKER_SIZE + 3)]
    response = member_client.get(reverse("library:picker"), {"role": "products"})
    shown = [value for _, value, _ in picks(response)]
    assert shown == [str(i.public_id) for i in images[:PICKER_SIZE]]


def test_chosen_images_count_towards_the_pickers_size(member_client, org):
    images = [row(org, last_used_at=ago(minutes=n)) for n in range(PICKER_SIZE + 3)]
    oldest = images[-2:]
    response = member_client.get(
        reverse("library:picker"),
        {"role": "products", "library_products": [str(i.public_id) for i in oldest]},
    )
    found = picks(response)
    assert len(found) == PICKER_SIZE
    assert {value for _, value, checked in found[:2] if checked} == {
        str(i.public_id) for i in oldest
    }
    assert [value for _, value, _ in found[2:]] == [
        str(i.public_id) for i in images[: PICKER_SIZE - 2]
    ]


def test_an_empty_picker_says_so(member_client, org):
    response = member_client.get(reverse("library:picker"), {"library_q": "nothing"})
    assert "No library image matches “nothing”." in response.content.decode()


# --- The library's files --------------------------------------------------------------------------


def test_a_member_gets_the_image_file(member_client, org):
    image = library_image(org, name="Blue bottle")
    response = member_client.get(reverse("library:file", args=[image.public_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    assert body(response) == stored(image.file.name)


def test_download_makes_the_file_an_attachment_named_for_the_organization(member_client, org):
    image = library_image(org, name="Blue Bottle!")
    response = member_client.get(reverse("library:file", args=[image.public_id]), {"download": "1"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-creative-blue-bottle.png"'
    )
    assert body(response) == stored(image.file.name)


def test_a_member_gets_the_webp_thumbnail(member_client, org):
    image = library_image(org)
    response = member_client.get(reverse("library:thumbnail", args=[image.public_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert body(response) == stored(image.thumbnail.name)


@pytest.mark.parametrize("view", ["library:file", "library:thumbnail"])
def test_another_organization_gets_404_for_library_files(client, org, other_admin, view):
    image = library_image(org)
    client.force_login(other_admin)
    assert client.get(reverse(view, args=[image.public_id])).status_code == 404


@pytest.mark.parametrize("view", ["library:file", "library:thumbnail"])
def test_an_anonymous_visitor_gets_404_not_a_sign_in_redirect(org, view):
    image = library_image(org)
    response = Client().get(reverse(view, args=[image.public_id]))
    assert response.status_code == 404
    assert "Location" not in response


@pytest.mark.parametrize("view", ["library:file", "library:thumbnail"])
def test_a_deleted_images_files_are_404(member_client, org, view):
    image = library_image(org)
    services.delete_image(image=image)
    assert member_client.get(reverse(view, args=[image.public_id])).status_code == 404


def test_every_member_of_the_organization_gets_library_files(client, org, admin):
    image = library_image(org, user=admin)
    client.force_login(MembershipFactory(org=org).user)
    assert client.get(reverse("library:file", args=[image.public_id])).status_code == 200


def test_a_user_of_another_new_organization_gets_404(client, org):
    image = library_image(org)
    client.force_login(MembershipFactory(org=OrganizationFactory()).user)
    assert client.get(reverse("library:file", args=[image.public_id])).status_code == 404


def test_a_tag_only_a_deleted_image_used_is_no_longer_offered(admin_client, org):
    image = library_image(org)
    kept = library_image(org)
    tag(image, "discontinued")
    tag(kept, "current")
    admin_client.post(reverse("library:delete", args=[image.public_id]))
    assert list(Tag.objects.filter(org=org).values_list("name", flat=True)) == ["current"]
    assert "discontinued" not in admin_client.get(reverse("library:index")).content.decode()
