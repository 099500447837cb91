"""The gallery: who sees which images, its filters and keyset paging, the image page, favourites,
collections, and Reuse/Vary."""

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from gallery.models import Collection, CollectionItem, Favourite
from gallery.search import PAGE_SIZE, Cursor, GalleryQuery, find_images
from generation.models import Generation, GenerationImage
from library.models import ReferenceAnalysis
from providers.models import ProviderAttempt
from tests.factories import MembershipFactory, finished_image, stored_source_image

pytestmark = pytest.mark.django_db

INDEX = reverse("gallery:index")
HTMX_LOAD_MORE = {"HX-Request": "true", "HX-Target": "load-more"}
HTMX_RESULTS = {"HX-Request": "true", "HX-Target": "gallery-results"}
_NOW = object()  # finished_at: now, unless a time (or None: not finished) is given


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


# --- Helpers --------------------------------------------------------------------------------------


def _generation(membership, *, prompt="A ceramic mug", provider=None, count=1, **fields):
    provider = provider or membership.org.providers.get(adapter="local-image")
    values = {
        "provider_name": provider.name,
        "credit_cost": 2,
        "aspect_ratio": "1:1",
        "quality": "",
        "status": Generation.Status.DONE,
        "finished_at": timezone.now(),
        **fields,
    }
    return Generation.objects.create(
        org=membership.org,
        user=membership.user,
        provider=provider,
        prompt=prompt,
        count=count,
        **values,
    )


def _image(
    membership=None,
    *,
    generation=None,
    index=0,
    prompt="A ceramic mug",
    variant=None,
    status="done",
    finished_at=_NOW,
    provider=None,
):
    """A finished image (no stored file: the gallery pages never read it) of a new generation
    by `membership`, or of `generation`."""
    if generation is None:
        generation = _generation(membership, prompt=prompt, provider=provider)
    return GenerationImage.objects.create(
        generation=generation,
        index=index,
        status=status,
        finished_at=timezone.now() if finished_at is _NOW else finished_at,
        prompt=variant if variant is not None else f"{generation.prompt}, variant {index + 1}",
        file=f"generated/{generation.public_id.hex}-{index}.png",
        thumbnail=f"generated/thumbs/{generation.public_id.hex}-{index}.webp",
        width=64,
        height=48,
        error="The model refused the prompt." if status == "failed" else "",
    )


def _collection(membership, name="Spring campaign", images=()):
    collection = Collection.objects.create(
        org=membership.org, name=name, created_by=membership.user
    )
    for image in images:
        CollectionItem.objects.create(collection=collection, image=image, added_by=membership.user)
    return collection


def _client_for(user):
    client = Client()
    client.force_login(user)
    return client


def _shown(response) -> list[str]:
    """The public ids of the image cards on a gallery page, in order."""
    assert response.status_code == 200
    body = response.content.decode()
    return re.findall(r'<figure class="gallery-item".*?data-id="([0-9a-f-]{36})"', body, re.S)


def _ids(*images) -> list[str]:
    return [str(image.public_id) for image in images]


def _load_more(response) -> str | None:
    """The "Load more" link's URL, or None when there is no more."""
    match = re.search(r'<div id="load-more".*?href="([^"]+)"', response.content.decode(), re.S)
    return INDEX + html.unescape(match.group(1)) if match else None


def _group_heads(response) -> list[str]:
    """The prompts the group headers on a gallery page show, in order."""
    body = response.content.decode()
    return re.findall(r'class="gallery-group-head">\s*<strong>(.*?)</strong>', body)


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


# --- Visibility -----------------------------------------------------------------------------------


def test_a_member_sees_only_their_own_images(member_client, member_membership, admin_membership):
    mine = _image(member_membership, prompt="Mine")
    _image(admin_membership, prompt="The admins")
    _image(MembershipFactory(org=member_membership.org), prompt="A colleagues")
    response = member_client.get(INDEX)
    assert _shown(response) == _ids(mine)
    assert "Mine, variant 1" in response.content.decode()


def test_a_member_sees_another_members_image_through_their_orgs_collection(
    member_client, member_membership, org
):
    colleague = MembershipFactory(org=org)
    shared = finished_image(colleague, prompt="Shared teapot")
    _image(colleague, prompt="Private teapot")
    collection = _collection(colleague, images=[shared])

    assert _shown(member_client.get(INDEX, {"collection": collection.public_id})) == _ids(shared)
    assert member_client.get(reverse("gallery:image", args=[shared.public_id])).status_code == 200
    file = member_client.get(reverse("gallery:image-file", args=[shared.public_id]))
    assert file.status_code == 200
    assert file["Content-Type"] == "image/png"


def test_an_admin_sees_the_whole_organizations_images(
    admin_client, admin_membership, member_membership, other_admin_membership
):
    own = _image(admin_membership, prompt="Admin work")
    members = _image(member_membership, prompt="Member work")
    _image(other_admin_membership, prompt="Rival work")
    response = admin_client.get(INDEX)
    assert _shown(response) == _ids(members, own)
    assert "Rival work" not in response.content.decode()


def test_an_admins_scope_mine_shows_only_their_own_images(
    admin_client, admin_membership, member_membership
):
    own = _image(admin_membership, prompt="Admin work")
    _image(member_membership, prompt="Member work")
    assert _shown(admin_client.get(INDEX, {"scope": "mine"})) == _ids(own)


def test_another_organizations_images_never_appear_whatever_the_filters(
    admin_client, admin_membership, other_admin_membership
):
    _image(other_admin_membership, prompt="Rival teapot")
    _image(other_admin_membership, prompt="Rival failure", status="failed")
    for params in ({}, {"status": "all"}, {"q": "rival"}, {"view": "grouped"}):
        assert _shown(admin_client.get(INDEX, params)) == []


def test_images_not_finished_are_never_listed(admin_client, admin_membership):
    done = _image(admin_membership, prompt="Done")
    _image(admin_membership, prompt="Still generating", status="generating", finished_at=None)
    _image(admin_membership, prompt="Done without a time", finished_at=None)
    assert _shown(admin_client.get(INDEX, {"status": "all"})) == _ids(done)


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(INDEX)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


# --- Filters --------------------------------------------------------------------------------------


def test_an_admin_filters_by_member(admin_client, admin_membership, member_membership):
    _image(admin_membership, prompt="Admin work")
    members = _image(member_membership, prompt="Member work")
    response = admin_client.get(INDEX, {"member": member_membership.public_id})
    assert _shown(response) == _ids(members)


def test_a_members_member_filter_is_ignored(member_client, member_membership, admin_membership):
    """Members have no member filter: the parameter names nothing, so it neither widens their
    view to the admin's images nor is an error."""
    mine = _image(member_membership, prompt="Mine")
    _image(admin_membership, prompt="Admin work")
    response = member_client.get(INDEX, {"member": admin_membership.public_id})
    assert _shown(response) == _ids(mine)
    assert 'name="member"' not in response.content.decode()
    assert _shown(member_client.get(INDEX, {"member": "not-a-uuid"})) == _ids(mine)


def test_filtering_by_model_shows_only_that_models_images(admin_client, admin_membership, org):
    local = org.providers.get(adapter="local-image")
    banana = org.providers.get(adapter="kie-nano-banana-pro")
    _image(admin_membership, prompt="Local", provider=local)
    other = _image(admin_membership, prompt="Banana", provider=banana)
    assert _shown(admin_client.get(INDEX, {"model": banana.public_id})) == _ids(other)


def test_status_filter_defaults_to_done_and_offers_failed_and_both(
    member_client, member_membership
):
    done = _image(member_membership, prompt="Good", finished_at=timezone.now())
    failed = _image(
        member_membership,
        prompt="Bad",
        status="failed",
        finished_at=timezone.now() + timedelta(seconds=1),
    )
    assert _shown(member_client.get(INDEX)) == _ids(done)
    assert _shown(member_client.get(INDEX, {"status": "done"})) == _ids(done)
    assert _shown(member_client.get(INDEX, {"status": "failed"})) == _ids(failed)
    assert _shown(member_client.get(INDEX, {"status": "all"})) == _ids(failed, done)
    assert _shown(member_client.get(INDEX, {"status": "bogus"})) == _ids(done)


def test_the_date_range_includes_both_days_whole(member_client, member_membership):
    def at(*args):
        return _image(member_membership, finished_at=datetime(*args, tzinfo=UTC))

    at(2025, 2, 28, 23, 59, 59, 999999)
    first = at(2025, 3, 1, 0, 0)
    last = at(2025, 3, 2, 23, 59, 59, 999999)
    at(2025, 3, 3, 0, 0)
    response = member_client.get(INDEX, {"since": "2025-03-01", "until": "2025-03-02"})
    assert _shown(response) == _ids(last, first)
    assert len(_shown(member_client.get(INDEX, {"since": "2025-03-01"}))) == 3
    assert len(_shown(member_client.get(INDEX, {"until": "2025-03-02"}))) == 3


def test_an_end_date_before_the_start_date_is_shown_as_an_error(member_client, member_membership):
    _image(member_membership, finished_at=datetime(2025, 3, 1, 12, tzinfo=UTC))
    response = member_client.get(INDEX, {"since": "2025-03-05", "until": "2025-03-01"})
    assert response.status_code == 200
    assert "The end date is before the start date." in response.content.decode()
    assert _shown(response) == []  # the start date still applies


@pytest.mark.parametrize("field,day", [("until", "9999-12-31"), ("since", "1999-12-31")])
def test_a_date_out_of_range_is_shown_as_an_error(field, day, member_client, member_membership):
    _image(member_membership, finished_at=datetime(2025, 3, 1, 12, tzinfo=UTC))
    response = member_client.get(INDEX, {field: day})
    assert response.status_code == 200
    assert "Pick a date between 2000 and 2999." in response.content.decode()
    assert len(_shown(response)) == 1  # the date is left out


def test_the_favourites_filter_shows_only_the_requesters_favourites(
    admin_client, admin_membership, member_membership, admin
):
    mine = _image(admin_membership, prompt="Admin favourite")
    _image(admin_membership, prompt="Not a favourite")
    members = _image(member_membership, prompt="Member favourite")
    Favourite.objects.create(user=admin, image=mine)
    Favourite.objects.create(user=member_membership.user, image=members)
    assert _shown(admin_client.get(INDEX, {"favourites": "on"})) == _ids(mine)


def test_a_members_favourite_from_a_shared_collection_is_in_their_favourites(
    member_client, member_membership, org, member
):
    colleague = MembershipFactory(org=org)
    shared = _image(colleague, prompt="Shared teapot")
    _collection(colleague, images=[shared])
    favourite = member_client.post(reverse("gallery:favourite", args=[shared.public_id]))
    assert favourite.status_code == 302
    assert Favourite.objects.filter(user=member, image=shared).exists()
    assert _shown(member_client.get(INDEX, {"favourites": "on"})) == _ids(shared)


def test_filtering_by_collection_shows_its_images_only(admin_client, admin_membership):
    inside = _image(admin_membership, prompt="Inside")
    _image(admin_membership, prompt="Outside")
    collection = _collection(admin_membership, images=[inside])
    response = admin_client.get(INDEX, {"collection": collection.public_id})
    assert _shown(response) == _ids(inside)
    assert "<h1>Spring campaign</h1>" in response.content.decode()


def test_a_collections_page_keeps_its_title_when_the_dates_are_wrong(
    admin_client, admin_membership
):
    inside = _image(admin_membership, prompt="Inside")
    collection = _collection(admin_membership, images=[inside])
    response = admin_client.get(
        INDEX,
        {"collection": collection.public_id, "since": "2000-01-02", "until": "2000-01-01"},
    )
    assert "The end date is before the start date." in response.content.decode()
    assert "<h1>Spring campaign</h1>" in response.content.decode()


def test_text_search_matches_the_image_prompt_and_the_generation_prompt_in_any_case(
    member_client, member_membership
):
    by_variant = _image(member_membership, prompt="A mug", variant="Teal KETTLE on slate")
    by_request = _image(member_membership, prompt="Velvet backdrop", variant="Soft light")
    _image(member_membership, prompt="A lamp", variant="Brass lamp")
    assert _shown(member_client.get(INDEX, {"q": "kettle"})) == _ids(by_variant)
    assert _shown(member_client.get(INDEX, {"q": "VELVET"})) == _ids(by_request)
    assert _shown(member_client.get(INDEX, {"q": "  velvet  "})) == _ids(by_request)
    empty = member_client.get(INDEX, {"q": "zebra"})
    assert _shown(empty) == []
    assert "No images match these filters" in empty.content.decode()


@pytest.mark.parametrize("name", ["member", "model", "collection"])
def test_another_organizations_object_in_a_filter_is_404(
    name, admin_client, admin_membership, other_admin_membership
):
    rival = other_admin_membership.org
    other = {
        "member": other_admin_membership.public_id,
        "model": rival.providers.get(adapter="local-image").public_id,
        "collection": _collection(other_admin_membership).public_id,
    }[name]
    assert admin_client.get(INDEX, {name: other}).status_code == 404


@pytest.mark.parametrize("name", ["member", "model", "collection"])
@pytest.mark.parametrize("value", ["not-a-uuid", "12345", "00000000-0000-0000-0000-000000000000"])
def test_a_malformed_or_unknown_id_in_a_filter_is_404(name, value, admin_client, admin_membership):
    assert admin_client.get(INDEX, {name: value}).status_code == 404


def test_a_member_filtering_by_another_organizations_collection_gets_404(
    member_client, member_membership, other_admin_membership
):
    rival = _collection(other_admin_membership, images=[_image(other_admin_membership)])
    assert member_client.get(INDEX, {"collection": rival.public_id}).status_code == 404
    assert member_client.get(INDEX, {"collection": "garbage"}).status_code == 404


# --- Grouped view ---------------------------------------------------------------------------------


def test_the_grouped_view_orders_by_generation_newest_first_then_by_index(
    admin_client, admin_membership
):
    older = _generation(admin_membership, prompt="Older request", count=3)
    newer = _generation(admin_membership, prompt="Newer request", count=2)
    # Finished out of order: the flat view would interleave them.
    old = [_image(generation=older, index=i, finished_at=timezone.now()) for i in (2, 0, 1)]
    new = [_image(generation=newer, index=i, finished_at=timezone.now()) for i in (1, 0)]
    response = admin_client.get(INDEX, {"view": "grouped"})
    assert _shown(response) == _ids(new[1], new[0], old[1], old[2], old[0])
    body = response.content.decode()
    assert _group_heads(response) == ["Newer request", "Older request"]
    for generation in (older, newer):
        link = reverse("gallery:download-generation", args=[generation.public_id])
        assert f'href="{link}"' in body
    assert "Download all" in body
    assert _group_heads(admin_client.get(INDEX)) == []  # the flat view has no headers


def test_load_more_continuing_a_generation_starts_no_second_header(admin_client, admin_membership):
    generations = [_generation(admin_membership, prompt=f"Request {n}", count=4) for n in range(10)]
    for generation in generations:
        for index in range(4):
            _image(generation=generation, index=index)
    first = admin_client.get(INDEX, {"view": "grouped"})
    assert len(_shown(first)) == PAGE_SIZE
    # 7 whole generations, then 2 images of the 8th.
    assert _group_heads(first) == [f"Request {n}" for n in range(9, 1, -1)]

    second = admin_client.get(_load_more(first), headers=HTMX_LOAD_MORE)
    assert len(_shown(second)) == 10
    # The 8th generation's last 2 images continue under the first page's header.
    assert _group_heads(second) == ["Request 1", "Request 0"]
    assert _load_more(second) is None
    seen = _shown(first) + _shown(second)
    expected = [
        str(image.public_id)
        for generation in reversed(generations)
        for image in generation.images.order_by("index")
    ]
    assert seen == expected


def test_every_download_all_link_a_member_is_shown_works(member_client, member_membership, org):
    colleague = MembershipFactory(org=org)
    shared = finished_image(colleague, prompt="Shared teapot")
    collection = _collection(colleague, images=[shared])
    response = member_client.get(INDEX, {"collection": collection.public_id, "view": "grouped"})
    assert _shown(response) == _ids(shared)
    links = re.findall(r'href="(/generations/[^"]+/download/)"', response.content.decode())
    for link in links:
        assert member_client.get(link).status_code == 200


# --- Keyset paging --------------------------------------------------------------------------------


def _many(membership, count):
    """`count` images, several finishing at the same instant (the order then falls back to id)."""
    base = datetime(2025, 5, 1, 12, tzinfo=UTC)
    images = [
        _image(membership, prompt=f"Batch {n}", finished_at=base + timedelta(seconds=n // 3))
        for n in range(count)
    ]
    return sorted(images, key=lambda i: (i.finished_at, i.pk), reverse=True)


def test_walking_load_more_visits_every_image_once_newest_first(admin_client, admin_membership):
    assert PAGE_SIZE == 30
    expected = _ids(*_many(admin_membership, 65))
    seen, sizes, url = [], [], INDEX
    while url:
        response = admin_client.get(url)
        page = _shown(response)
        seen += page
        sizes.append(len(page))
        url = _load_more(response)
    assert sizes == [30, 30, 5]
    assert seen == expected


def test_find_images_pages_through_everything_with_its_cursors(member_membership):
    expected = [image.pk for image in _many(member_membership, 65)]
    for grouped in (False, True):
        query = GalleryQuery(grouped=grouped)
        seen, after = [], None
        while True:
            page = find_images(member_membership, query, after)
            seen += [image.pk for image in page.images]
            if page.next_cursor is None:
                break
            after = Cursor.parse(str(page.next_cursor))
        assert len(seen) == len(set(seen)) == 65
        if not grouped:
            assert seen == expected
        else:  # one image per generation: newest generation first
            generation_of = dict(GenerationImage.objects.values_list("pk", "generation_id"))
            assert seen == sorted(expected, key=lambda pk: -generation_of[pk])


def test_an_htmx_load_more_returns_only_the_next_cards_and_link(admin_client, admin_membership):
    expected = _ids(*_many(admin_membership, 65))
    first = admin_client.get(INDEX)
    response = admin_client.get(_load_more(first), headers=HTMX_LOAD_MORE)
    body = response.content.decode()
    assert "<html" not in body
    assert 'id="gallery-results"' not in body and 'class="gallery-filters"' not in body
    assert _shown(response) == expected[30:60]
    assert _load_more(response) is not None
    assert "HX-Request" in response["Vary"]


def test_an_htmx_filter_request_returns_the_results_partial(member_client, member_membership):
    match = _image(member_membership, prompt="Teapot")
    _image(member_membership, prompt="Lamp")
    response = member_client.get(INDEX, {"q": "teapot"}, headers=HTMX_RESULTS)
    body = response.content.decode().strip()
    assert body.startswith('<div id="gallery-results"')
    assert "<html" not in body and 'class="gallery-filters"' not in body
    assert _shown(response) == _ids(match)


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "1.2.3", "-5.3", "99999999999999999999.1", "9999999999999999999.1", "1.9" * 19, ""],
)
@pytest.mark.parametrize("view", ["flat", "grouped"])
def test_a_garbage_cursor_shows_the_first_page(cursor, view, member_client, member_membership):
    _many(member_membership, 35)
    first_page = _shown(member_client.get(INDEX, {"view": view}))
    response = member_client.get(INDEX, {"cursor": cursor, "view": view})
    assert response.status_code == 200
    assert _shown(response) == first_page


@pytest.mark.parametrize(
    "params",
    [{}, {"view": "grouped"}, {"status": "all", "q": "batch", "favourites": ""}],
    ids=["flat", "grouped", "filtered"],
)
def test_the_gallery_runs_a_fixed_number_of_queries_whatever_the_page_size(
    params, admin_client, admin_membership, org
):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(INDEX, params).status_code == 200
        return len(captured.captured_queries)

    _image(MembershipFactory(org=org), prompt="Batch")
    few = queries()
    for n in range(40):  # more than a page, by several people
        image = _image(MembershipFactory(org=org), prompt=f"Batch {n}")
        Favourite.objects.create(user=admin_membership.user, image=image)
    assert queries() == few <= 10, few


def test_a_members_collection_page_runs_a_fixed_number_of_queries(
    member_client, member_membership, org
):
    colleague = MembershipFactory(org=org)
    collection = _collection(colleague, images=[_image(colleague)])

    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = member_client.get(INDEX, {"collection": collection.public_id})
            assert response.status_code == 200
        return len(captured.captured_queries)

    few = queries()
    for _ in range(40):
        CollectionItem.objects.create(collection=collection, image=_image(colleague))
    assert queries() == few


# --- Image detail ---------------------------------------------------------------------------------


def _made_image(membership, org):
    """An image of a generation with a product and a described reference, and the prompt
    writers' lineage (one failed attempt with a provider error, one success)."""
    product = stored_source_image(org, colour=(10, 20, 30))
    product.name = "Blue mug"
    product.save()
    reference = stored_source_image(org, colour=(200, 180, 90))
    reference.name = "Oak mood board"
    reference.save()
    ReferenceAnalysis.objects.create(
        org=org, sha256=reference.sha256, description="Warm oak tabletop in soft daylight"
    )
    generation = _generation(
        membership,
        prompt="Our mug on a kitchen table",
        provider=org.providers.get(adapter="kie-nano-banana-pro"),
        credit_cost=5,
        prompt_writer="Local prompt writer (offline)",
    )
    generation.products.set([product])
    generation.references.set([reference])
    ProviderAttempt.objects.create(
        provider=org.providers.get(adapter="local-vision"),
        generation_id=generation.pk,
        purpose="vision",
        outcome="success",
        latency_ms=420,
    )
    ProviderAttempt.objects.create(
        provider=org.providers.get(adapter="local-llm"),
        generation_id=generation.pk,
        purpose="variants",
        outcome="retryable",
        latency_ms=30000,
        error="Gateway said 504 upstream-timeout",
    )
    image = _image(generation=generation, variant="The mug on oak, morning light, close crop")
    return image, product, reference


def test_the_image_page_shows_how_the_image_was_made(admin_client, admin_membership, org):
    image, product, reference = _made_image(admin_membership, org)
    response = admin_client.get(reverse("gallery:image", args=[image.public_id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "The mug on oak, morning light, close crop" in body
    assert "Our mug on a kitchen table" in body
    assert "Ada Admin" in body
    assert "Nano Banana Pro" in body
    assert "5 credits" in body
    for source in (product, reference):
        assert reverse("library:thumbnail", args=[source.public_id]) in body
    assert "Blue mug" in body and "Oak mood board" in body
    assert "Warm oak tabletop in soft daylight" in body
    assert "Reference analysis:</span> Local image analysis (offline) — answered in 420 ms" in body
    assert "Prompt writer:</span> Local prompt writer (offline) — retryable error in 30,000" in body
    assert "Gateway said 504 upstream-timeout" in body  # admins see the provider's error


def test_a_member_sees_the_lineage_but_not_the_providers_error_text(
    member_client, member_membership, org
):
    image, _, _ = _made_image(member_membership, org)
    body = member_client.get(reverse("gallery:image", args=[image.public_id])).content.decode()
    assert "Local prompt writer (offline) — retryable error" in body
    assert "Gateway said 504" not in body
    assert "Max Member" in body


def test_a_source_deleted_from_the_library_is_named_as_such(admin_client, admin_membership, org):
    image, product, reference = _made_image(admin_membership, org)
    product.deleted_at = timezone.now()
    product.file = ""
    product.thumbnail = ""
    product.save()
    response = admin_client.get(reverse("gallery:image", args=[image.public_id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Deleted from the library" in body
    assert reverse("library:thumbnail", args=[product.public_id]) not in body
    assert reverse("library:thumbnail", args=[reference.public_id]) in body


def test_another_members_image_page_is_404_to_a_member(
    member_client, member_membership, admin_membership
):
    image = _image(admin_membership)
    assert member_client.get(reverse("gallery:image", args=[image.public_id])).status_code == 404
    file = reverse("gallery:image-file", args=[image.public_id])
    assert member_client.get(file).status_code == 404


def test_another_organizations_image_page_is_404(admin_client, other_admin_membership):
    image = finished_image(other_admin_membership)
    assert admin_client.get(reverse("gallery:image", args=[image.public_id])).status_code == 404
    file = reverse("gallery:image-file", args=[image.public_id])
    assert admin_client.get(file).status_code == 404


def test_the_image_page_sends_anonymous_visitors_to_sign_in(client, member_membership):
    image = _image(member_membership)
    response = client.get(reverse("gallery:image", args=[image.public_id]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_a_collection_image_stops_being_visible_once_the_collection_is_deleted(
    member_client, member_membership, org
):
    colleague = MembershipFactory(org=org)
    shared = _image(colleague)
    collection = _collection(colleague, images=[shared])
    url = reverse("gallery:image", args=[shared.public_id])
    assert member_client.get(url).status_code == 200
    collection.delete()
    assert member_client.get(url).status_code == 404


# --- Favourites -----------------------------------------------------------------------------------


def test_favouriting_twice_turns_it_off_again(member_client, member_membership, member):
    image = _image(member_membership)
    url = reverse("gallery:favourite", args=[image.public_id])
    member_client.post(url)
    assert Favourite.objects.filter(user=member, image=image).count() == 1
    member_client.post(url)
    assert not Favourite.objects.filter(user=member, image=image).exists()


def test_an_htmx_favourite_returns_the_button(member_client, member_membership):
    image = _image(member_membership)
    url = reverse("gallery:favourite", args=[image.public_id])
    on = member_client.post(url, headers={"HX-Request": "true"})
    assert on.status_code == 200
    body = on.content.decode()
    assert "<html" not in body
    assert 'class="fav-form"' in body and 'aria-pressed="true"' in body
    off = member_client.post(url, headers={"HX-Request": "true"}).content.decode()
    assert 'aria-pressed="false"' in off


def test_a_favourite_without_htmx_goes_back_to_a_local_next(member_client, member_membership):
    image = _image(member_membership)
    url = reverse("gallery:favourite", args=[image.public_id])
    response = member_client.post(url, {"next": "/gallery/?q=mug"})
    assert response.status_code == 302 and response["Location"] == "/gallery/?q=mug"


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", ""])
def test_a_favourite_ignores_an_off_site_next(next_url, member_client, member_membership):
    image = _image(member_membership)
    url = reverse("gallery:favourite", args=[image.public_id])
    response = member_client.post(url, {"next": next_url})
    assert response.status_code == 302
    assert response["Location"] == reverse("gallery:image", args=[image.public_id])


def test_favourites_are_per_person(admin_membership, member_membership, admin, member):
    image = _image(member_membership)
    _collection(admin_membership, images=[image])
    url = reverse("gallery:favourite", args=[image.public_id])
    _client_for(admin).post(url)
    assert list(Favourite.objects.values_list("user_id", flat=True)) == [admin.pk]
    member_view = _client_for(member).get(reverse("gallery:image", args=[image.public_id]))
    assert 'aria-pressed="false"' in member_view.content.decode()
    admin_view = _client_for(admin).get(INDEX).content.decode()
    assert 'aria-pressed="true"' in admin_view


def test_favourite_answers_get_with_405(member_client, member_membership):
    image = _image(member_membership)
    url = reverse("gallery:favourite", args=[image.public_id])
    assert member_client.get(url).status_code == 405
    assert not Favourite.objects.exists()


def test_favouriting_an_image_the_person_cannot_see_is_404(
    member_client, admin_membership, member_membership, other_admin_membership
):
    for image in (_image(admin_membership), _image(other_admin_membership)):
        url = reverse("gallery:favourite", args=[image.public_id])
        assert member_client.post(url).status_code == 404
    assert not Favourite.objects.exists()


# --- Collections ----------------------------------------------------------------------------------


def test_creating_a_collection(member_client, member_membership, member, org):
    response = member_client.post(
        reverse("gallery:create-collection"), {"name": "  Spring   campaign "}, follow=True
    )
    assert response.status_code == 200
    collection = Collection.objects.get()
    assert (collection.name, collection.org, collection.created_by) == (
        "Spring campaign",
        org,
        member,
    )
    assert "Created the collection" in _messages(response)


def test_a_duplicate_collection_name_is_refused(member_client, member_membership, admin_membership):
    _collection(admin_membership, name="Spring campaign")
    response = member_client.post(
        reverse("gallery:create-collection"), {"name": "Spring campaign"}, follow=True
    )
    assert "There is already a collection named “Spring campaign”." in _messages(response)
    assert Collection.objects.count() == 1


def test_the_same_collection_name_in_another_organization_is_fine(
    member_client, member_membership, other_admin_membership
):
    _collection(other_admin_membership, name="Spring campaign")
    member_client.post(reverse("gallery:create-collection"), {"name": "Spring campaign"})
    assert Collection.objects.filter(org=member_membership.org, name="Spring campaign").exists()


@pytest.mark.parametrize("name", ["", "   "])
def test_a_collection_needs_a_name(name, member_client, member_membership):
    response = member_client.post(reverse("gallery:create-collection"), {"name": name}, follow=True)
    assert "Give the collection a name." in _messages(response)
    assert not Collection.objects.exists()


def test_creating_a_collection_with_images_adds_them(member_client, member_membership):
    images = [_image(member_membership), _image(member_membership)]
    response = member_client.post(
        reverse("gallery:create-collection"),
        {"name": "Picks", "images": _ids(*images), "next": "/gallery/"},
    )
    assert response["Location"] == "/gallery/"
    collection = Collection.objects.get()
    assert set(collection.items.values_list("image_id", flat=True)) == {i.pk for i in images}


def test_creating_a_collection_with_an_image_the_person_cannot_see_creates_nothing(
    member_client, member_membership, admin_membership
):
    hidden = _image(admin_membership)
    response = member_client.post(
        reverse("gallery:create-collection"), {"name": "Sneaky", "images": _ids(hidden)}
    )
    assert response.status_code == 404
    assert not Collection.objects.exists()


def test_the_creator_renames_and_deletes_their_collection(member_client, member_membership):
    image = _image(member_membership)
    collection = _collection(member_membership, images=[image])
    rename = reverse("gallery:rename-collection", args=[collection.public_id])
    response = member_client.post(rename, {"name": "Autumn"})
    assert response["Location"] == reverse("gallery:collections")
    collection.refresh_from_db()
    assert collection.name == "Autumn"

    delete = reverse("gallery:delete-collection", args=[collection.public_id])
    assert member_client.post(delete).status_code == 302
    assert not Collection.objects.exists() and not CollectionItem.objects.exists()
    assert GenerationImage.objects.filter(pk=image.pk).exists()  # its images are kept


def test_an_admin_renames_and_deletes_a_members_collection(admin_client, member_membership):
    collection = _collection(member_membership)
    admin_client.post(
        reverse("gallery:rename-collection", args=[collection.public_id]), {"name": "Renamed"}
    )
    collection.refresh_from_db()
    assert collection.name == "Renamed"
    admin_client.post(reverse("gallery:delete-collection", args=[collection.public_id]))
    assert not Collection.objects.exists()


def test_another_member_cannot_rename_or_delete_a_collection(member_client, member_membership, org):
    collection = _collection(MembershipFactory(org=org), name="Theirs")
    rename = reverse("gallery:rename-collection", args=[collection.public_id])
    delete = reverse("gallery:delete-collection", args=[collection.public_id])
    assert member_client.post(rename, {"name": "Mine now"}).status_code == 403
    assert member_client.post(delete).status_code == 403
    collection.refresh_from_db()
    assert collection.name == "Theirs"


def test_another_organizations_collection_cannot_be_changed(admin_client, other_admin_membership):
    collection = _collection(other_admin_membership, name="Rival board")
    rename = reverse("gallery:rename-collection", args=[collection.public_id])
    delete = reverse("gallery:delete-collection", args=[collection.public_id])
    assert admin_client.post(rename, {"name": "Taken"}).status_code == 404
    assert admin_client.post(delete).status_code == 404
    collection.refresh_from_db()
    assert collection.name == "Rival board"


def test_renaming_to_a_taken_or_blank_name_is_refused(admin_client, admin_membership):
    _collection(admin_membership, name="Taken")
    collection = _collection(admin_membership, name="Mine")
    url = reverse("gallery:rename-collection", args=[collection.public_id])
    taken = admin_client.post(url, {"name": "Taken"}, follow=True)
    assert "There is already a collection named “Taken”." in _messages(taken)
    blank = admin_client.post(url, {"name": " "}, follow=True)
    assert "Give the collection a name." in _messages(blank)
    collection.refresh_from_db()
    assert collection.name == "Mine"


def test_collecting_adds_an_image_once_and_remove_takes_it_out(member_client, member_membership):
    image = _image(member_membership)
    collection = _collection(member_membership)
    url = reverse("gallery:collect")
    data = {"collection": collection.public_id, "images": _ids(image)}
    first = member_client.post(url, data, follow=True)
    assert "Added 1 image to “Spring campaign”." in _messages(first)
    again = member_client.post(url, data, follow=True)
    assert "Added 0 images" in _messages(again)
    assert list(collection.items.values_list("image_id", flat=True)) == [image.pk]

    removed = member_client.post(url, {**data, "remove": "1"}, follow=True)
    assert "Removed 1 image from “Spring campaign”." in _messages(removed)
    assert not collection.items.exists()
    assert GenerationImage.objects.filter(pk=image.pk).exists()


def test_a_member_adds_their_image_to_a_colleagues_collection(
    member_client, member_membership, org
):
    image = _image(member_membership)
    collection = _collection(MembershipFactory(org=org))
    member_client.post(
        reverse("gallery:collect"), {"collection": collection.public_id, "images": _ids(image)}
    )
    assert collection.items.get().image == image


def test_a_member_takes_out_only_what_they_added_to_a_colleagues_collection(
    member_client, member_membership, org
):
    colleague = MembershipFactory(org=org)
    mine, theirs = _image(member_membership), _image(colleague)
    collection = _collection(colleague, images=[theirs])  # the colleague's, visible through it
    CollectionItem.objects.create(
        collection=collection, image=mine, added_by=member_membership.user
    )
    url = reverse("gallery:collect")

    refused = member_client.post(
        url,
        {"collection": collection.public_id, "images": _ids(mine, theirs), "remove": "1"},
        follow=True,
    )
    assert "nothing was removed" in _messages(refused)
    assert set(collection.items.values_list("image_id", flat=True)) == {mine.pk, theirs.pk}

    taken = member_client.post(
        url, {"collection": collection.public_id, "images": _ids(mine), "remove": "1"}, follow=True
    )
    assert "Removed 1 image from “Spring campaign”." in _messages(taken)
    assert list(collection.items.values_list("image_id", flat=True)) == [theirs.pk]


def test_an_admin_takes_any_image_out_of_a_members_collection(
    admin_client, admin_membership, member_membership
):
    image = _image(member_membership)
    collection = _collection(member_membership, images=[image])
    response = admin_client.post(
        reverse("gallery:collect"),
        {"collection": collection.public_id, "images": _ids(image), "remove": "1"},
        follow=True,
    )
    assert "Removed 1 image" in _messages(response)
    assert not collection.items.exists()


def test_the_image_page_offers_remove_only_where_the_person_may_take_it_out(
    member_client, member_membership, org
):
    colleague = MembershipFactory(org=org)
    image = _image(member_membership)
    _collection(colleague, name="Theirs", images=[image])
    mine = _collection(member_membership, name="Mine", images=[image])
    page = member_client.get(reverse("gallery:image", args=[image.public_id])).content.decode()

    assert "Theirs" in page and "Mine" in page
    assert 'title="Remove from Mine"' in page
    assert 'title="Remove from Theirs"' not in page
    assert mine.items.count() == 1


def test_collecting_an_image_the_person_cannot_see_is_404_and_adds_nothing(
    member_client, member_membership, org, other_admin_membership
):
    mine = _image(member_membership)
    collection = _collection(member_membership)
    for hidden in (_image(MembershipFactory(org=org)), _image(other_admin_membership)):
        response = member_client.post(
            reverse("gallery:collect"),
            {"collection": collection.public_id, "images": _ids(mine, hidden)},
        )
        assert response.status_code == 404
    assert not CollectionItem.objects.exists()


@pytest.mark.parametrize("collection", ["not-a-uuid", "", "00000000-0000-0000-0000-000000000000"])
def test_collecting_into_a_malformed_or_unknown_collection_is_404(
    collection, member_client, member_membership
):
    image = _image(member_membership)
    response = member_client.post(
        reverse("gallery:collect"), {"collection": collection, "images": _ids(image)}
    )
    assert response.status_code == 404
    assert not CollectionItem.objects.exists()


def test_collecting_into_another_organizations_collection_is_404(
    admin_client, admin_membership, other_admin_membership
):
    image = _image(admin_membership)
    rival = _collection(other_admin_membership)
    response = admin_client.post(
        reverse("gallery:collect"), {"collection": rival.public_id, "images": _ids(image)}
    )
    assert response.status_code == 404
    assert not CollectionItem.objects.exists()


def test_a_malformed_image_id_in_a_collect_is_404(member_client, member_membership):
    collection = _collection(member_membership)
    response = member_client.post(
        reverse("gallery:collect"), {"collection": collection.public_id, "images": "nope"}
    )
    assert response.status_code == 404


def test_the_collections_page_lists_counts_and_the_latest_cover(
    member_client, member_membership, admin_membership
):
    first, latest = _image(member_membership), _image(admin_membership)
    board = _collection(member_membership, name="Board", images=[first])
    CollectionItem.objects.create(collection=board, image=latest)
    _collection(member_membership, name="Empty board")
    _collection(admin_membership, name="Solo", images=[_image(admin_membership)])
    response = member_client.get(reverse("gallery:collections"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "2 images" in body and "1 image ·" in body and "0 images" in body
    assert reverse("gallery:image-thumbnail", args=[latest.public_id]) in body
    assert reverse("gallery:image-thumbnail", args=[first.public_id]) not in body
    assert "Empty</span>" in body
    # A member manages their own boards only.
    assert reverse("gallery:rename-collection", args=[board.public_id]) in body
    solo = Collection.objects.get(name="Solo")
    assert reverse("gallery:rename-collection", args=[solo.public_id]) not in body


def test_the_collections_page_never_lists_another_organizations_collections(
    member_client, member_membership, other_admin_membership
):
    _collection(other_admin_membership, name="Rival board")
    body = member_client.get(reverse("gallery:collections")).content.decode()
    assert "Rival board" not in body and "No collections yet" in body


# --- Reuse and Vary -------------------------------------------------------------------------------


def _redirect_query(response) -> tuple[str, dict]:
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    return location.path, parse_qs(location.query)


def _reusable(membership, org):
    products = [
        stored_source_image(org, colour=(1, 2, 3)),
        stored_source_image(org, colour=(4, 5, 6)),
    ]
    reference = stored_source_image(org, colour=(7, 8, 9))
    generation = _generation(
        membership,
        prompt="Our mug on a kitchen table",
        provider=org.providers.get(adapter="kie-nano-banana-pro"),
        count=4,
        aspect_ratio="16:9",
        quality="2K",
    )
    generation.products.set(products)
    generation.references.set([reference])
    image = _image(generation=generation, index=2, variant="The mug on oak, close crop")
    return image, products, reference


def test_reuse_opens_generate_with_the_generations_settings_and_images(
    member_client, member_membership, org
):
    image, products, reference = _reusable(member_membership, org)
    path, query = _redirect_query(
        member_client.get(reverse("gallery:reuse", args=[image.public_id]))
    )
    assert path == reverse("generation:generate")
    model = org.providers.get(adapter="kie-nano-banana-pro")
    assert sorted(query.pop("library_products")) == sorted(_ids(*products))
    assert query == {
        "prompt": ["Our mug on a kitchen table"],
        "count": ["4"],
        "aspect_ratio": ["16:9"],
        "quality": ["2K"],
        "model": [str(model.public_id)],
        "library_references": _ids(reference),
    }


def test_vary_starts_from_the_images_own_prompt(member_client, member_membership, org):
    image, products, reference = _reusable(member_membership, org)
    path, query = _redirect_query(
        member_client.get(reverse("gallery:vary", args=[image.public_id]))
    )
    assert path == reverse("generation:generate")
    assert query["prompt"] == ["The mug on oak, close crop"]
    assert query["count"] == ["4"] and query["aspect_ratio"] == ["16:9"]
    assert sorted(query["library_products"]) == sorted(_ids(*products))
    assert query["library_references"] == _ids(reference)


def test_reuse_leaves_out_images_deleted_from_the_library(member_client, member_membership, org):
    image, products, _ = _reusable(member_membership, org)
    products[0].deleted_at = timezone.now()
    products[0].file = ""
    products[0].save()
    _, query = _redirect_query(member_client.get(reverse("gallery:reuse", args=[image.public_id])))
    assert query["library_products"] == _ids(products[1])


def test_reuse_and_vary_of_an_image_the_person_cannot_see_are_404(
    member_client, member_membership, admin_membership
):
    image = _image(admin_membership)
    for name in ("gallery:reuse", "gallery:vary"):
        assert member_client.get(reverse(name, args=[image.public_id])).status_code == 404


@pytest.mark.parametrize(
    "name", ["gallery:image", "gallery:image-file", "gallery:image-thumbnail", "gallery:vary"]
)
def test_a_cached_uuid_url_is_the_url_reverse_gives(name):
    from django.urls import reverse

    from lib.urls import uuid_url

    value = uuid.uuid4()

    assert uuid_url(name, value) == reverse(name, args=[value])
    assert uuid_url(name, str(value)) == reverse(name, args=[value])
