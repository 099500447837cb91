"""Using the brand library again: Generate with images picked from the library (alone or with
uploads), the Reuse and Vary links that prefill Generate, Again (the same generation once more,
at today's price) and uploads that survive a form coming back.

Tasks go to Celery's in-memory broker, where nothing consumes them, so the pipeline never runs
and every assertion is on the state the request itself left behind."""

import datetime
import html as html_lib
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from credits import services as credits
from credits.models import LedgerEntry
from generation.models import Generation
from library.models import SourceImage
from providers.models import Provider
from tests.factories import (
    GenerationFactory,
    MembershipFactory,
    finished_image,
    stored_source_image,
)
from tests.generate_form import form_data, png, stored_files, webp

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("generate_page")]

GENERATE = reverse("generation:generate")
HISTORY = reverse("generation:history")
LONG_AGO = timezone.now() - datetime.timedelta(days=30)


@pytest.fixture
def bottle(org, admin):
    """A product photo in the library, last used a month ago."""
    source = stored_source_image(org, colour=(46, 134, 222), uploaded_by=admin)
    SourceImage.objects.filter(pk=source.pk).update(last_used_at=LONG_AGO, name="Blue bottle")
    source.refresh_from_db()
    return source


@pytest.fixture
def moodboard(org, admin):
    """A reference image in the library, last used a month ago."""
    source = stored_source_image(org, colour=(230, 126, 34), uploaded_by=admin)
    SourceImage.objects.filter(pk=source.pk).update(last_used_at=LONG_AGO, name="Autumn mood")
    source.refresh_from_db()
    return source


def selected(html: str, value) -> bool:
    return f'value="{value}" selected' in html


def picked(html: str, role: str, source) -> bool:
    """Whether the Generate page shows `source` ticked in the library picker for `role`."""
    return f'name="library_{role}" value="{source.public_id}" checked' in html


def picked_ids(html: str, role: str) -> list[str]:
    return re.findall(rf'name="library_{role}" value="([^"]+)" checked', html)


def kinds_in_ledger() -> list[str]:
    return list(LedgerEntry.objects.order_by("pk").values_list("kind", flat=True))


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def ids(*sources) -> list[str]:
    return sorted(str(s.public_id) for s in sources)


# --- Generate with library images -----------------------------------------------------------------


def test_a_generation_can_use_library_images_alone_without_storing_anything_new(
    admin_client, admin, org, seedream, bottle, moodboard, settings
):
    credits.top_up(org=org, amount=50)
    files_before = stored_files(settings)

    response = admin_client.post(
        GENERATE,
        form_data(
            seedream,
            products=[],
            library_products=[str(bottle.public_id)],
            library_references=[str(moodboard.public_id)],
            count=2,
        ),
    )

    generation = Generation.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("generation:detail", args=[generation.public_id])
    assert list(generation.products.all()) == [bottle]
    assert list(generation.references.all()) == [moodboard]
    assert SourceImage.objects.count() == 2  # no new library image
    assert stored_files(settings) == files_before  # and no new file
    assert credits.balance_of(org) == 50 - 2 * 3
    hold = LedgerEntry.objects.get(kind="hold")
    assert (hold.delta, hold.generation, hold.actor) == (-6, generation, admin)
    for source in (bottle, moodboard):
        source.refresh_from_db()
        assert source.last_used_at > LONG_AGO + datetime.timedelta(days=29)


def test_uploads_and_library_picks_go_into_one_generation(admin_client, org, seedream, bottle):
    credits.top_up(org=org, amount=50)

    response = admin_client.post(
        GENERATE,
        form_data(seedream, products=[png("side.png")], library_products=[bottle.public_id]),
    )

    assert response.status_code == 302
    generation = Generation.objects.get()
    uploaded = SourceImage.objects.get(original_name="side.png")
    assert set(generation.products.all()) == {uploaded, bottle}
    assert credits.balance_of(org) == 50 - 3 * 3


def test_the_models_file_limits_count_uploads_and_picks_together(
    admin_client, org, seedream, bottle, moodboard
):
    credits.top_up(org=org, amount=50)
    second = stored_source_image(org, colour=(10, 200, 10))
    other_reference = stored_source_image(org, colour=(90, 90, 200))

    response = admin_client.post(
        GENERATE,
        form_data(
            seedream,
            products=[png("front.png")],
            library_products=[bottle.public_id, second.public_id],
            library_references=[moodboard.public_id, other_reference.public_id],
        ),
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "Seedream 4.5 Edit takes at most 2 product photos; you chose 3." in html
    assert "Seedream 4.5 Edit takes at most 1 reference image; you chose 2." in html
    assert not Generation.objects.exists()
    assert credits.balance_of(org) == 50
    assert kinds_in_ledger() == ["topup"]
    # What was chosen comes back chosen: the picks and the upload, now in the library too.
    uploaded = SourceImage.objects.get(original_name="front.png")
    assert sorted(picked_ids(html, "products")) == ids(bottle, second, uploaded)
    assert sorted(picked_ids(html, "references")) == ids(moodboard, other_reference)


@pytest.fixture
def unpickable(request, org, other_admin_membership):
    """A library id Generate must refuse: another organization's image, or one deleted here."""
    if request.param == "another org's":
        return stored_source_image(other_admin_membership.org, colour=(1, 1, 1))
    source = stored_source_image(org, colour=(2, 2, 2))
    SourceImage.objects.filter(pk=source.pk).update(deleted_at=timezone.now(), file="")
    source.refresh_from_db()
    return source


UNPICKABLE = ["another org's", "deleted"]


@pytest.mark.parametrize("unpickable", UNPICKABLE, indirect=True)
def test_a_library_image_of_another_org_or_deleted_is_refused_and_nothing_charged(
    admin_client, org, seedream, unpickable
):
    credits.top_up(org=org, amount=50)

    response = admin_client.post(
        GENERATE, form_data(seedream, products=[], library_products=[unpickable.public_id])
    )

    assert response.status_code == 422
    assert str(unpickable.public_id) not in response.content.decode()
    assert not Generation.objects.exists()
    assert credits.balance_of(org) == 50
    assert kinds_in_ledger() == ["topup"]
    assert not unpickable.used_as_product.exists()


@pytest.mark.parametrize("unpickable", UNPICKABLE, indirect=True)
def test_a_refused_library_image_is_explained_on_the_page(admin_client, org, seedream, unpickable):
    credits.top_up(org=org, amount=50)

    response = admin_client.post(
        GENERATE, form_data(seedream, products=[], library_products=[unpickable.public_id])
    )

    assert response.status_code == 422
    assert "One of the chosen library images is no longer in the library." in (
        response.content.decode()
    )


def test_an_archived_library_image_can_still_be_used(admin_client, org, seedream, bottle):
    credits.top_up(org=org, amount=50)
    SourceImage.objects.filter(pk=bottle.pk).update(archived_at=timezone.now())

    response = admin_client.post(
        GENERATE, form_data(seedream, products=[], library_products=[bottle.public_id], count=1)
    )

    assert response.status_code == 302
    assert list(Generation.objects.get().products.all()) == [bottle]
    assert credits.balance_of(org) == 50 - 3


def test_a_malformed_library_id_is_a_form_error_not_a_crash(admin_client, org, seedream):
    credits.top_up(org=org, amount=50)
    response = admin_client.post(
        GENERATE, form_data(seedream, products=[], library_products=["not-a-uuid"])
    )
    assert response.status_code == 422
    assert not Generation.objects.exists()


def test_a_rate_limited_submission_keeps_its_library_picks(
    admin_client, org, seedream, bottle, settings
):
    credits.top_up(org=org, amount=50)
    settings.NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE = 0

    response = admin_client.post(
        GENERATE, form_data(seedream, products=[], library_products=[bottle.public_id])
    )

    assert response.status_code == 429
    assert response["Retry-After"]
    assert picked(response.content.decode(), "products", bottle)
    assert not Generation.objects.exists()


# --- Reuse and Vary: Generate, prefilled ----------------------------------------------------------


def test_the_reuse_query_prefills_every_setting_and_picks_the_library_images(
    admin_client, admin, org, seedream, bottle, moodboard
):
    SourceImage.objects.filter(pk=moodboard.pk).update(archived_at=timezone.now())
    unrelated = stored_source_image(org, colour=(5, 5, 5))
    generation = GenerationFactory(
        org=org,
        user=admin,
        provider=seedream,
        provider_name=seedream.name,
        prompt="Perfume on <black> sand",
        count=4,
        aspect_ratio="9:16",
        quality="standard",
    )
    generation.products.set([bottle])
    generation.references.set([moodboard])

    response = admin_client.get(f"{GENERATE}?{generation.reuse_query()}")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Perfume on &lt;black&gt; sand</textarea>" in html
    assert 'name="count" value="4"' in html
    assert selected(html, seedream.public_id)
    assert selected(html, "9:16") and selected(html, "standard")
    assert picked(html, "products", bottle)
    assert picked(html, "references", moodboard)  # archived, but the generation used it
    assert picked_ids(html, "products") == [str(bottle.public_id)]
    assert picked_ids(html, "references") == [str(moodboard.public_id)]
    assert not picked(html, "products", unrelated)  # offered, not ticked
    assert f'name="library_products" value="{unrelated.public_id}"' in html


def test_library_ids_in_the_url_that_are_not_ours_or_not_ids_are_ignored(
    admin_client, org, seedream, bottle, other_admin_membership
):
    theirs = stored_source_image(other_admin_membership.org, colour=(1, 1, 1))
    deleted = stored_source_image(org, colour=(2, 2, 2))
    SourceImage.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now(), file="")

    response = admin_client.get(
        GENERATE,
        {
            "model": seedream.public_id,
            "library_products": [
                "not-a-uuid",
                "'; drop table",
                str(theirs.public_id),
                str(deleted.public_id),
                str(bottle.public_id),
            ],
            "library_references": ["12345"],
        },
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert picked_ids(html, "products") == [str(bottle.public_id)]
    assert picked_ids(html, "references") == []
    assert str(theirs.public_id) not in html
    assert str(deleted.public_id) not in html


def test_another_orgs_model_in_the_url_falls_back_to_the_default(
    client, other_admin, seedream, org
):
    client.force_login(other_admin)
    html = client.get(GENERATE, {"model": seedream.public_id}).content.decode()
    own = Provider.objects.get(org__memberships__user=other_admin, adapter="local-image")
    assert selected(html, own.public_id)
    assert str(seedream.public_id) not in html


def test_history_reuse_links_carry_every_setting_and_library_image(
    admin_client, admin, org, seedream, bottle, moodboard
):
    second = stored_source_image(org, colour=(10, 200, 10))
    gone = stored_source_image(org, colour=(20, 20, 20))
    SourceImage.objects.filter(pk=gone.pk).update(deleted_at=timezone.now(), file="")
    generation = GenerationFactory(
        org=org,
        user=admin,
        provider=seedream,
        provider_name=seedream.name,
        prompt="Red & gold, 50% off",
        count=2,
        aspect_ratio="1:1",
        quality="standard",
    )
    generation.products.set([bottle, second, gone])
    generation.references.set([moodboard])

    html = admin_client.get(HISTORY).content.decode()

    links = re.findall(r'href="([^"]+)"[^>]*>Reuse</a>', html)
    assert len(links) == 1
    link = html_lib.unescape(links[0])
    assert link.startswith(f"{GENERATE}?")
    query = query_of(link)
    assert query["prompt"] == ["Red & gold, 50% off"]
    assert query["count"] == ["2"]
    assert query["aspect_ratio"] == ["1:1"]
    assert query["quality"] == ["standard"]
    assert query["model"] == [str(seedream.public_id)]
    assert sorted(query["library_products"]) == ids(bottle, second)  # not the deleted one
    assert query["library_references"] == [str(moodboard.public_id)]

    # and following it opens Generate with all of that chosen
    page = admin_client.get(link).content.decode()
    assert "Red &amp; gold, 50% off</textarea>" in page
    assert sorted(picked_ids(page, "products")) == ids(bottle, second)
    assert picked_ids(page, "references") == [str(moodboard.public_id)]


def test_vary_uses_the_images_own_prompt_and_reuse_the_generations(
    admin_client, admin_membership, seedream, bottle, moodboard
):
    image = finished_image(
        admin_membership, prompt="A ceramic mug on linen", products=[bottle], references=[moodboard]
    )
    generation = image.generation
    Generation.objects.filter(pk=generation.pk).update(
        provider=seedream, aspect_ratio="9:16", quality="standard", count=1
    )
    assert image.prompt == "A ceramic mug on linen, variant 1"

    vary = admin_client.get(reverse("gallery:vary", args=[image.public_id]))
    reuse = admin_client.get(reverse("gallery:reuse", args=[image.public_id]))

    for response in (vary, reuse):
        assert response.status_code == 302
        assert response.url.startswith(f"{GENERATE}?")
        query = query_of(response.url)
        assert query["model"] == [str(seedream.public_id)]
        assert (query["aspect_ratio"], query["quality"]) == (["9:16"], ["standard"])
        assert query["library_products"] == [str(bottle.public_id)]
        assert query["library_references"] == [str(moodboard.public_id)]
    assert query_of(vary.url)["prompt"] == ["A ceramic mug on linen, variant 1"]
    assert query_of(reuse.url)["prompt"] == ["A ceramic mug on linen"]

    page = admin_client.get(vary.url).content.decode()
    assert "A ceramic mug on linen, variant 1</textarea>" in page
    assert picked(page, "products", bottle) and picked(page, "references", moodboard)


# --- Again ----------------------------------------------------------------------------------------


@pytest.fixture
def past(org, admin, seedream, bottle, moodboard):
    """An admin's finished Seedream generation, charged at 1 credit an image back then."""
    generation = GenerationFactory(
        org=org,
        user=admin,
        provider=seedream,
        provider_name=seedream.name,
        credit_cost=1,
        prompt="Sneakers on a rooftop at noon",
        count=2,
        aspect_ratio="9:16",
        quality="standard",
        status=Generation.Status.DONE,
    )
    generation.products.set([bottle])
    generation.references.set([moodboard])
    return generation


def again_url(generation) -> str:
    return reverse("generation:again", args=[generation.public_id])


def test_again_shows_the_cost_at_todays_price_and_the_balance(admin_client, org, past):
    credits.top_up(org=org, amount=50)

    response = admin_client.get(again_url(past))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Sneakers on a rooftop at noon" in html
    assert "This costs <strong>6 credits</strong>" in html  # 2 × 3 today, not 2 × 1 then
    assert "(2 × 3, today's price)" in html
    assert "Your organization has 50." in html
    assert "Generate 2 images</button>" in html
    assert not Generation.objects.exclude(pk=past.pk).exists()  # showing it runs nothing
    assert credits.balance_of(org) == 50


def test_again_runs_the_same_generation_once_more_and_holds_its_credits(
    admin_client, admin, org, seedream, past, bottle, moodboard
):
    credits.top_up(org=org, amount=50)

    response = admin_client.post(again_url(past))

    new = Generation.objects.exclude(pk=past.pk).get()
    assert response.status_code == 302
    assert response.url == reverse("generation:detail", args=[new.public_id])
    assert (new.prompt, new.count, new.aspect_ratio, new.quality) == (
        "Sneakers on a rooftop at noon",
        2,
        "9:16",
        "standard",
    )
    assert (new.provider, new.user, new.credit_cost) == (seedream, admin, 3)
    assert new.status == Generation.Status.QUEUED
    assert list(new.products.all()) == [bottle]
    assert list(new.references.all()) == [moodboard]
    assert new.images.count() == 2
    assert SourceImage.objects.count() == 2
    assert credits.balance_of(org) == 50 - 6
    hold = LedgerEntry.objects.get(kind="hold")
    assert (hold.delta, hold.generation) == (-6, new)
    bottle.refresh_from_db()
    assert bottle.last_used_at > LONG_AGO + datetime.timedelta(days=29)


def test_a_member_can_run_their_own_generation_again(member_client, member, org, local_model):
    credits.top_up(org=org, amount=10)
    product = stored_source_image(org, uploaded_by=member)
    mine = GenerationFactory(
        org=org,
        user=member,
        provider=local_model,
        provider_name=local_model.name,
        count=1,
        aspect_ratio="1:1",
        quality=local_model.default_quality,
    )
    mine.products.set([product])

    response = member_client.post(again_url(mine))

    assert response.status_code == 302
    new = Generation.objects.exclude(pk=mine.pk).get()
    assert new.user == member and list(new.products.all()) == [product]
    assert credits.balance_of(org) == 9


def test_again_without_enough_credits_says_so_and_charges_nothing(admin_client, org, past):
    credits.top_up(org=org, amount=5)
    message = "Not enough credits: this needs 6 and your organization has 5."

    page = admin_client.get(again_url(past))
    assert page.status_code == 200
    assert message in page.content.decode()
    assert "Generate 2 images</button>" not in page.content.decode()

    response = admin_client.post(again_url(past))

    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Generation.objects.exclude(pk=past.pk).exists()
    assert credits.balance_of(org) == 5
    assert kinds_in_ledger() == ["topup"]


def test_again_refuses_a_model_disabled_since(admin_client, org, seedream, past):
    credits.top_up(org=org, amount=50)
    seedream.enabled = False
    seedream.save()

    response = admin_client.post(again_url(past))

    html = response.content.decode()
    assert response.status_code == 422
    assert "Seedream 4.5 Edit is no longer available to you; Reuse to pick another model." in html
    assert "Generate 2 images</button>" not in html
    assert not Generation.objects.exclude(pk=past.pk).exists()
    assert credits.balance_of(org) == 50


def test_again_refuses_a_model_since_kept_to_admins_for_a_member(
    member_client, member, org, seedream, bottle
):
    credits.top_up(org=org, amount=50)
    mine = GenerationFactory(
        org=org,
        user=member,
        provider=seedream,
        provider_name=seedream.name,
        count=1,
        aspect_ratio="1:1",
        quality="draft",
    )
    mine.products.set([bottle])
    seedream.visible_to_members = False
    seedream.save()

    response = member_client.post(again_url(mine))

    assert response.status_code == 422
    assert "Seedream 4.5 Edit is no longer available to you" in response.content.decode()
    assert Generation.objects.count() == 1
    assert credits.balance_of(org) == 50


def test_again_refuses_when_an_image_was_deleted_from_the_library(admin_client, org, past, bottle):
    credits.top_up(org=org, amount=50)
    SourceImage.objects.filter(pk=bottle.pk).update(deleted_at=timezone.now(), file="")

    response = admin_client.post(again_url(past))

    assert response.status_code == 422
    assert "Blue bottle was deleted from the library; Reuse to choose other images." in (
        response.content.decode()
    )
    assert not Generation.objects.exclude(pk=past.pk).exists()
    assert credits.balance_of(org) == 50


def test_again_applies_the_models_limits_as_they_are_now(admin_client, org, seedream, past):
    credits.top_up(org=org, amount=50)
    second = stored_source_image(org, colour=(10, 200, 10))
    past.products.add(second)
    entry = seedream.catalogue
    entry.max_product_images = 1  # the operator lowered the limit since
    entry.save()

    response = admin_client.post(again_url(past))

    assert response.status_code == 422
    assert "Seedream 4.5 Edit takes at most 1 product photo; you chose 2." in (
        response.content.decode()
    )
    assert not Generation.objects.exclude(pk=past.pk).exists()
    assert credits.balance_of(org) == 50


def test_again_too_often_is_refused_with_the_wait_and_charges_nothing(
    admin_client, org, past, settings
):
    credits.top_up(org=org, amount=50)
    settings.NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE = 0

    response = admin_client.post(again_url(past))

    assert response.status_code == 429  # as on Generate, with the wait
    assert int(response["Retry-After"]) >= 1
    assert "You are starting generations faster than allowed; try again in" in (
        response.content.decode()
    )
    assert not Generation.objects.exclude(pk=past.pk).exists()
    assert credits.balance_of(org) == 50


def test_again_still_uses_an_archived_image(admin_client, org, past, moodboard):
    credits.top_up(org=org, amount=50)
    SourceImage.objects.filter(pk=moodboard.pk).update(archived_at=timezone.now())

    response = admin_client.post(again_url(past))

    assert response.status_code == 302
    assert list(Generation.objects.exclude(pk=past.pk).get().references.all()) == [moodboard]


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_member_cannot_run_another_members_generation_again(client, org, past, method):
    credits.top_up(org=org, amount=50)
    client.force_login(MembershipFactory(org=org).user)

    response = getattr(client, method)(again_url(past))

    assert response.status_code == 404
    assert Generation.objects.count() == 1
    assert credits.balance_of(org) == 50


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_org_cannot_run_a_generation_again(client, org, past, other_admin, method):
    credits.top_up(org=org, amount=50)
    client.force_login(other_admin)

    response = getattr(client, method)(again_url(past))

    assert response.status_code == 404
    assert Generation.objects.count() == 1
    assert credits.balance_of(org) == 50


def test_again_requires_the_csrf_token(admin, org, past):
    credits.top_up(org=org, amount=50)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)

    response = client.post(again_url(past))

    assert response.status_code == 403
    assert Generation.objects.count() == 1
    assert credits.balance_of(org) == 50


# --- Uploads survive a form that comes back -------------------------------------------------------


def test_uploads_of_a_refused_form_come_back_picked_and_need_not_be_uploaded_again(
    admin_client, org, seedream, settings
):
    credits.top_up(org=org, amount=50)

    refused = admin_client.post(
        GENERATE,
        form_data(
            seedream, products=[png("front.png")], references=[webp("mood.webp")], prompt=" "
        ),
    )

    html = refused.content.decode()
    assert refused.status_code == 422
    assert "Write a prompt: what should the images show?" in html
    product = SourceImage.objects.get(original_name="front.png")
    reference = SourceImage.objects.get(original_name="mood.webp")
    assert picked_ids(html, "products") == [str(product.public_id)]
    assert picked_ids(html, "references") == [str(reference.public_id)]
    assert "Your 2 photos are kept in the brand library and picked below" in html
    assert not Generation.objects.exists()
    assert credits.balance_of(org) == 50
    assert kinds_in_ledger() == ["topup"]
    files = stored_files(settings)
    assert len(files) == 4  # two images, two thumbnails

    # Submitting again with what came back ticked, and a prompt: no upload this time.
    accepted = admin_client.post(
        GENERATE,
        form_data(
            seedream,
            products=[],
            library_products=picked_ids(html, "products"),
            library_references=picked_ids(html, "references"),
            prompt="A bottle on wet slate at dusk",
            count=1,
        ),
    )

    assert accepted.status_code == 302
    generation = Generation.objects.get()
    assert list(generation.products.all()) == [product]
    assert list(generation.references.all()) == [reference]
    assert SourceImage.objects.count() == 2
    assert stored_files(settings) == files
    assert credits.balance_of(org) == 50 - 3


def test_a_kept_upload_is_picked_beside_the_library_images_already_chosen(
    admin_client, org, seedream, bottle
):
    credits.top_up(org=org, amount=50)

    response = admin_client.post(
        GENERATE,
        form_data(
            seedream, products=[png("front.png")], library_products=[bottle.public_id], count=0
        ),
    )

    html = response.content.decode()
    assert response.status_code == 422
    uploaded = SourceImage.objects.get(original_name="front.png")
    assert sorted(picked_ids(html, "products")) == ids(bottle, uploaded)
    assert "Your 1 photo is kept in the brand library and picked below" in html
    assert credits.balance_of(org) == 50


def test_a_refused_form_keeps_uploads_in_its_own_org_only(
    client, other_admin_membership, org, seedream
):
    """Posting this org's model from another org is refused; the photo stays with the poster."""
    client.force_login(other_admin_membership.user)
    response = client.post(GENERATE, form_data(seedream, products=[png("theirs.png")]))
    assert response.status_code == 422
    assert not SourceImage.objects.filter(org=org).exists()
    assert SourceImage.objects.get().org == other_admin_membership.org
