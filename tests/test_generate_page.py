"""The Generate page (uploads, model, options, live estimate, submission) and prompt history.

Tasks go to Celery's in-memory broker, where nothing consumes them, so the pipeline never runs
and every assertion is on the state the request itself left behind."""

import hashlib
import io
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from credits import services as credits
from credits.models import LedgerEntry
from generation.models import Generation, GenerationImage
from library.models import SourceImage
from providers.models import Provider
from providers.org_registry import clear_registry
from tests.factories import (
    GenerationFactory,
    ImageModelFactory,
    MembershipFactory,
    image_bytes,
    stored_source_image,
)
from tests.generate_form import form_data, png, stored_files, webp

GENERATE = reverse("generation:generate")
ESTIMATE = reverse("generation:estimate")
HISTORY = reverse("generation:history")

pytestmark = pytest.mark.usefixtures("generate_page")


def jpeg(name="product.jpg", **kwargs):
    return SimpleUploadedFile(name, image_bytes("JPEG", **kwargs), content_type="image/jpeg")


def noise_png(width, height) -> bytes:
    """A PNG that does not compress: its size is about width × height bytes."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 100).save(out, "PNG")
    return out.getvalue()


def selected(html: str, value: str) -> bool:
    return f'value="{value}" selected' in html


# --- Access ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", [GENERATE, ESTIMATE, HISTORY])
def test_anonymous_visitors_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


@pytest.mark.django_db
@pytest.mark.parametrize("url", [GENERATE, ESTIMATE, HISTORY])
def test_members_and_admins_can_open_the_pages(client, admin, member, url):
    for user in (admin, member):
        client.force_login(user)
        assert client.get(url).status_code == 200


# --- The form -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_preselects_the_orgs_default_model_with_its_options(admin_client, seedream):
    seedream.is_default = True
    seedream.save()

    html = admin_client.get(GENERATE).content.decode()

    assert selected(html, str(seedream.public_id))
    assert "Seedream 4.5 Edit — 3 credits/image" in html
    assert "Local renderer (offline) — 1 credit/image" in html
    assert selected(html, "16:9") and "16:9 landscape" in html
    assert selected(html, "draft")
    assert 'name="count" value="3"' in html
    assert 'type="file" name="products" multiple' in html
    assert "image/jpeg,image/png,image/webp" in html
    assert "js/generate.js" in html


@pytest.mark.django_db
def test_without_a_default_the_first_enabled_model_is_preselected(admin_client, local_model):
    assert local_model.is_default
    html = admin_client.get(GENERATE).content.decode()
    assert selected(html, str(local_model.public_id))
    assert selected(html, local_model.default_aspect_ratio)
    assert selected(html, local_model.default_quality)


@pytest.mark.django_db
def test_the_options_follow_the_chosen_model(admin_client, seedream):
    response = admin_client.get(
        GENERATE,
        {"model": seedream.public_id},
        headers={"HX-Request": "true", "HX-Target": "model-options"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="model-options"')  # the partial alone
    assert "<html" not in html
    assert selected(html, "16:9") and selected(html, "draft")
    assert "4:5" not in html  # the local renderer's ratio, not Seedream's
    assert "takes up to 2 product photos and 1 reference image" in html
    assert response["Vary"] and "HX-Request" in response["Vary"]


@pytest.mark.django_db
def test_switching_models_keeps_an_aspect_ratio_the_new_model_also_offers(admin_client, seedream):
    html = admin_client.get(
        GENERATE,
        {"model": seedream.public_id, "aspect_ratio": "9:16", "quality": "4K"},
        headers={"HX-Request": "true", "HX-Target": "model-options"},
    ).content.decode()
    assert selected(html, "9:16")
    assert selected(html, "draft")  # 4K is not Seedream's: its default instead


@pytest.mark.django_db
def test_a_model_without_quality_levels_shows_no_quality_choice(admin_client, org):
    plain = ImageModelFactory(org=org, quality_levels=["standard"], default_quality="standard")
    Provider.objects.filter(pk=plain.pk).update(quality_levels=[], default_quality="")
    clear_registry()
    html = admin_client.get(
        GENERATE,
        {"model": plain.public_id},
        headers={"HX-Request": "true", "HX-Target": "model-options"},
    ).content.decode()
    assert 'name="quality"' not in html


@pytest.mark.django_db
def test_reuse_prefills_the_prompt_and_model(admin_client, seedream):
    html = admin_client.get(
        GENERATE, {"prompt": "Lipstick on <marble>", "model": seedream.public_id}
    ).content.decode()
    assert "Lipstick on &lt;marble&gt;</textarea>" in html
    assert selected(html, str(seedream.public_id))


@pytest.mark.django_db
def test_without_an_enabled_image_model_admins_are_sent_to_providers(client, admin, member, org):
    for provider in Provider.objects.filter(org=org, kind="image"):
        provider.is_default = False
        provider.enabled = False
        provider.save()

    client.force_login(admin)
    html = client.get(GENERATE).content.decode()
    assert "No image model is enabled" in html
    assert reverse("providers:index") in html
    assert "generate-form" not in html

    client.force_login(member)
    html = client.get(GENERATE).content.decode()
    assert "Ask an admin to enable one" in html
    assert f'href="{reverse("providers:index")}"' not in html


# --- The live estimate ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_estimate_is_count_times_the_model_cost_with_the_balance(admin_client, org, seedream):
    credits.top_up(org=org, amount=100)

    response = admin_client.get(ESTIMATE, {"model": seedream.public_id, "count": 4})

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="estimate"')
    assert "12 credits" in html
    assert "4 images × 3 credits" in html
    assert "100 credits" in html
    assert "Not enough credits" not in html
    assert "Generate 4 images" in html
    assert "disabled" not in html


@pytest.mark.django_db
def test_the_estimate_refuses_when_the_balance_is_short(member_client, org, seedream):
    credits.top_up(org=org, amount=5)

    html = member_client.get(ESTIMATE, {"model": seedream.public_id, "count": 2}).content.decode()

    assert "6 credits" in html
    assert "Not enough credits: this needs 6 and your organization has 5." in html
    assert "Ask an admin to top up" in html
    assert '<button type="submit" class="generate-button" disabled>' in html


@pytest.mark.django_db
def test_the_full_page_shows_the_estimate_and_balance_for_the_defaults(admin_client, org):
    credits.top_up(org=org, amount=7)
    html = admin_client.get(GENERATE).content.decode()
    assert "3 images × 1 credit" in html
    assert "7 credits" in html


@pytest.mark.django_db
@pytest.mark.parametrize("count", ["0", "9", "lots"])
def test_the_estimate_asks_for_a_count_within_bounds(admin_client, org, count):
    credits.top_up(org=org, amount=100)
    html = admin_client.get(ESTIMATE, {"count": count}).content.decode()
    assert "Choose between 1 and 8 images." in html
    assert "disabled" in html


@pytest.mark.django_db
def test_the_estimate_never_prices_another_orgs_model(client, other_admin, seedream):
    client.force_login(other_admin)
    html = client.get(ESTIMATE, {"model": seedream.public_id, "count": 2}).content.decode()
    assert "2 images × 1 credit" in html  # their own default, not Seedream's 3 credits


# --- Submitting -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_valid_submission_holds_credits_stores_the_files_and_opens_the_generation(
    admin_client, admin, org, seedream, settings, django_capture_on_commit_callbacks
):
    credits.top_up(org=org, amount=50)
    products = [png("front.png", size=(30, 20)), jpeg("side.jpg", size=(20, 30))]
    reference = webp("mood.webp")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(
            GENERATE,
            form_data(
                seedream,
                products=products,
                references=[reference],
                count=4,
                aspect_ratio="9:16",
                quality="standard",
            ),
        )

    generation = Generation.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("generation:detail", args=[generation.public_id])
    # The pipeline and the product photos' staging, each sent to the broker once, after commit.
    assert len(callbacks) == 2
    assert (generation.org, generation.user, generation.provider) == (org, admin, seedream)
    assert (generation.count, generation.credit_cost) == (4, 3)
    assert (generation.aspect_ratio, generation.quality) == ("9:16", "standard")
    assert generation.prompt == "A bottle on wet slate at dusk"
    assert GenerationImage.objects.filter(generation=generation).count() == 4
    assert credits.balance_of(org) == 50 - 4 * 3
    hold = LedgerEntry.objects.get(kind="hold")
    assert (hold.delta, hold.generation, hold.actor) == (-12, generation, admin)

    assert generation.products.count() == 2 and generation.references.count() == 1
    for source in SourceImage.objects.all():
        path = Path(settings.MEDIA_ROOT) / source.file.name
        assert (
            source.file.name == f"uploads/{org.public_id}/{source.sha256}.{source.format.lower()}"
        )
        # The stored bytes are the re-encoded copy (library/uploads.py); hash and size are its.
        assert hashlib.sha256(path.read_bytes()).hexdigest() == source.sha256
        assert source.size == path.stat().st_size
        # and a small WebP for the library's grids
        assert source.thumbnail.name == f"uploads/{org.public_id}/thumbs/{source.sha256}.webp"
        with Image.open(Path(settings.MEDIA_ROOT) / source.thumbnail.name) as thumbnail:
            assert thumbnail.format == "WEBP"
            assert max(thumbnail.size) <= settings.NERSTUDIO_THUMBNAIL_SIDE
    assert len(stored_files(settings)) == 6  # three images, three thumbnails


@pytest.mark.django_db
def test_the_same_photo_uploaded_twice_is_stored_once(admin_client, org, seedream, settings):
    credits.top_up(org=org, amount=50)
    for _ in range(2):
        response = admin_client.post(GENERATE, form_data(seedream, count=1))
        assert response.status_code == 302
    assert Generation.objects.count() == 2
    assert SourceImage.objects.count() == 1
    assert len(stored_files(settings)) == 2  # the image and its thumbnail


@pytest.mark.django_db
def test_uploads_past_the_members_megapixel_budget_are_refused_before_any_is_decoded(
    admin_client, org, seedream, settings
):
    credits.top_up(org=org, amount=50)
    settings.NERSTUDIO_UPLOAD_MEGAPIXELS_PER_MEMBER_PER_MINUTE = 3
    big = png(size=(2000, 1000))  # 2 megapixels
    assert (
        admin_client.post(GENERATE, form_data(seedream, count=1, products=[big])).status_code == 302
    )

    again = png(size=(2000, 1000), colour=(1, 2, 3))
    response = admin_client.post(GENERATE, form_data(seedream, count=1, products=[again]))

    assert response.status_code == 429
    assert "Too many images uploaded in the last minute; try again in" in response.content.decode()
    assert Generation.objects.count() == 1
    assert SourceImage.objects.count() == 1  # the second photo was not kept either


@pytest.mark.django_db
def test_an_invalid_submission_charges_nothing_and_keeps_only_the_good_photo(
    admin_client, org, seedream, settings
):
    credits.top_up(org=org, amount=50)
    settings.NERSTUDIO_UPLOAD_MAX_BYTES = 2048
    gif = SimpleUploadedFile("photo.png", image_bytes("GIF"), content_type="image/png")
    big = SimpleUploadedFile("big.png", noise_png(100, 100), content_type="image/png")
    good = png("fine.png")

    response = admin_client.post(
        GENERATE, form_data(seedream, products=[gif, big], references=[good], prompt="   ")
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "photo.png is not a JPEG, PNG or WebP image." in html  # every bad file named
    assert "big.png is larger than 2.0\N{NO-BREAK SPACE}KB." in html
    assert "Write a prompt: what should the images show?" in html
    # The good photo is kept in the brand library and comes back picked; the bad ones are not.
    kept = SourceImage.objects.get()
    assert kept.original_name == "fine.png"
    assert f'name="library_references" value="{kept.public_id}" checked' in html
    assert "is kept in the brand library and picked below" in html
    assert len(stored_files(settings)) == 2  # fine.png and its thumbnail
    assert not Generation.objects.exists()
    assert credits.balance_of(org) == 50
    assert list(LedgerEntry.objects.values_list("kind", flat=True)) == ["topup"]


@pytest.mark.django_db
def test_a_submission_without_product_photos_is_refused(admin_client, org, seedream):
    credits.top_up(org=org, amount=50)
    response = admin_client.post(GENERATE, form_data(seedream, products=[]))
    assert response.status_code == 422
    assert "Add at least one product photo." in response.content.decode()
    assert not Generation.objects.exists()


@pytest.mark.django_db
def test_the_chosen_models_file_limits_apply(admin_client, org, seedream, settings):
    credits.top_up(org=org, amount=50)
    response = admin_client.post(
        GENERATE,
        form_data(
            seedream,
            products=[png("a.png"), png("b.png", size=(5, 5)), png("c.png", size=(6, 6))],
            references=[webp("x.webp"), webp("y.webp", size=(5, 5))],
        ),
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert "Seedream 4.5 Edit takes at most 2 product photos; you chose 3." in html
    assert "Seedream 4.5 Edit takes at most 1 reference image; you chose 2." in html
    # All five are kept and picked: unticking one is all it takes to try again.
    assert SourceImage.objects.count() == 5
    assert len(re.findall(r'name="library_products" value="[^"]+" checked', html)) == 3
    assert len(re.findall(r'name="library_references" value="[^"]+" checked', html)) == 2
    assert not Generation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"), [("aspect_ratio", "4:5"), ("quality", "4K"), ("count", 9)]
)
def test_options_the_model_does_not_offer_are_refused(admin_client, org, seedream, field, value):
    credits.top_up(org=org, amount=100)
    response = admin_client.post(GENERATE, form_data(seedream, **{field: value}))
    assert response.status_code == 422
    assert not Generation.objects.exists()
    assert credits.balance_of(org) == 100


@pytest.mark.django_db
def test_a_submission_the_balance_does_not_cover_is_refused(admin_client, org, seedream, settings):
    credits.top_up(org=org, amount=8)

    response = admin_client.post(GENERATE, form_data(seedream, count=3))  # needs 9

    html = response.content.decode()
    assert response.status_code == 422
    assert "This needs 9 credits but your organization has 8 credits." in html
    assert not Generation.objects.exists()
    assert SourceImage.objects.count() == 1  # the photo, kept for when there are credits
    assert credits.balance_of(org) == 8


@pytest.mark.django_db
def test_a_member_of_another_org_cannot_pick_this_orgs_model(
    client, other_admin_membership, seedream, settings
):
    credits.top_up(org=other_admin_membership.org, amount=100)
    client.force_login(other_admin_membership.user)

    response = client.post(GENERATE, form_data(seedream))

    assert response.status_code == 422
    assert "Choose one of your organization&#x27;s image models." in response.content.decode()
    assert not Generation.objects.exists()
    # The photo is kept in the library of the person's own organization, nowhere else.
    assert list(SourceImage.objects.values_list("org", flat=True)) == [
        other_admin_membership.org_id
    ]
    assert credits.balance_of(other_admin_membership.org) == 100


@pytest.mark.django_db
def test_a_disabled_model_cannot_be_picked(admin_client, org, seedream):
    credits.top_up(org=org, amount=100)
    seedream.enabled = False
    seedream.save()
    response = admin_client.post(GENERATE, form_data(seedream))
    assert response.status_code == 422
    assert not Generation.objects.exists()


@pytest.mark.django_db
def test_the_model_is_checked_as_it_is_now_not_as_a_process_cached_it(
    admin_client, org, seedream, settings
):
    settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS = 3600
    credits.top_up(org=org, amount=100)
    assert admin_client.get(GENERATE).status_code == 200  # this process now caches Seedream
    Provider.objects.filter(pk=seedream.pk).update(credit_cost=5)

    admin_client.post(GENERATE, form_data(seedream, count=2))
    assert Generation.objects.get().credit_cost == 5
    assert credits.balance_of(org) == 90

    Provider.objects.filter(pk=seedream.pk).update(enabled=False)
    response = admin_client.post(GENERATE, form_data(seedream, count=2))
    assert response.status_code == 422
    assert Generation.objects.count() == 1


# --- Prompt history -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_members_see_their_own_prompts_newest_first(member_client, member, admin, org):
    GenerationFactory(org=org, user=member, prompt="Older idea")
    GenerationFactory(org=org, user=member, prompt="Newer idea")
    GenerationFactory(org=org, user=admin, prompt="The admin's idea")
    GenerationFactory(user=member, prompt="From another org")  # not possible today; never shown

    html = member_client.get(HISTORY).content.decode()

    assert html.index("Newer idea") < html.index("Older idea")
    assert "The admin&#x27;s idea" not in html
    assert "From another org" not in html


@pytest.mark.django_db
def test_a_history_search_ignores_nul_characters(member_client, member, org):
    """PostgreSQL refuses a NUL in a text parameter: the search would be a 500 there."""
    GenerationFactory(org=org, user=member, prompt="Amber bottle")
    GenerationFactory(org=org, user=member, prompt="Blue mug")

    response = member_client.get(HISTORY, {"q": "Amb\x00er"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Amber bottle" in html
    assert "Blue mug" not in html


@pytest.mark.django_db
def test_admins_see_the_whole_orgs_prompts_with_who_and_which_model(admin_client, member, org):
    generation = GenerationFactory(
        org=org,
        user=member,
        prompt="Perfume on sand",
        provider_name="Seedream 4.5 Edit",
        count=4,
        status=Generation.Status.DONE,
    )
    GenerationFactory(prompt="Another org's prompt")

    html = admin_client.get(HISTORY).content.decode()

    assert "Perfume on sand" in html
    assert "Max Member" in html
    assert "Seedream 4.5 Edit" in html
    assert "Done" in html
    assert reverse("generation:detail", args=[generation.public_id]) in html
    assert "Another org" not in html


@pytest.mark.django_db
def test_reuse_links_to_generate_with_every_setting_and_the_same_images(
    admin_client, admin, org, seedream
):
    product = stored_source_image(org)
    reference = stored_source_image(org, colour=(1, 2, 3))
    generation = GenerationFactory(
        org=org,
        user=admin,
        prompt="Red & gold, 50% off",
        provider=seedream,
        count=4,
        aspect_ratio="4:5",
        quality="high",
    )
    generation.products.set([product])
    generation.references.set([reference])
    html = admin_client.get(HISTORY).content.decode()
    expected = (
        "prompt=Red+%26+gold%2C+50%25+off&amp;count=4&amp;aspect_ratio=4%3A5&amp;quality=high"
        f"&amp;model={seedream.public_id}&amp;library_products={product.public_id}"
        f"&amp;library_references={reference.public_id}"
    )
    assert f"{GENERATE}?{expected}" in html


@pytest.mark.django_db
def test_the_search_box_filters_prompts(admin_client, admin, org):
    GenerationFactory(org=org, user=admin, prompt="Sneakers on a rooftop")
    GenerationFactory(org=org, user=admin, prompt="Watch on velvet")

    html = admin_client.get(HISTORY, {"q": "ROOFTOP"}).content.decode()
    assert "Sneakers on a rooftop" in html and "Watch on velvet" not in html

    html = admin_client.get(HISTORY, {"q": "nothing like it"}).content.decode()
    assert "No prompts match" in html


@pytest.mark.django_db
def test_an_htmx_search_returns_only_the_results(admin_client, admin, org):
    GenerationFactory(org=org, user=admin, prompt="Sneakers on a rooftop")
    response = admin_client.get(
        HISTORY, {"q": "sneakers"}, headers={"HX-Request": "true", "HX-Target": "history-results"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="history-results"')
    assert "Sneakers on a rooftop" in html and "<html" not in html


@pytest.mark.django_db
def test_history_pages_by_twenty(admin_client, admin, org):
    for i in range(25):
        GenerationFactory(org=org, user=admin, prompt=f"Idea {i:02d}")

    first = admin_client.get(HISTORY).content.decode()
    second = admin_client.get(HISTORY, {"page": 2}).content.decode()

    assert first.count(">Reuse</a>") == 20 and "Idea 24" in first and "Idea 04" not in first
    assert second.count(">Reuse</a>") == 5 and "Idea 04" in second
    assert "Page 2 of 2" in second


@pytest.mark.django_db
def test_history_queries_do_not_grow_with_the_rows(admin_client, admin, org, seedream):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(HISTORY).status_code == 200
        return len(captured.captured_queries)

    GenerationFactory(org=org, user=admin, provider=seedream)
    few = queries()
    for membership in MembershipFactory.create_batch(4, org=org):
        GenerationFactory.create_batch(4, org=org, user=membership.user, provider=seedream)
    assert queries() == few <= 8  # with the products and references the Reuse links carry


@pytest.mark.django_db
def test_starting_a_generation_reads_each_row_once(admin_client, org, seedream):
    """The member once, the credit account once for the hold (which locks it), and nothing read
    back from the new generation's product and reference lists."""
    credits.top_up(org=org, amount=50)
    data = form_data(seedream, products=[png()], references=[webp()], count=2)

    with CaptureQueriesContext(connection) as captured:
        assert admin_client.post(GENERATE, data).status_code == 302

    statements = [q["sql"] for q in captured.captured_queries]
    reads = [s for s in statements if s.startswith("SELECT")]
    assert sum('FROM "accounts_user"' in s for s in reads) == 1
    # The balance checked before any upload is decoded, and the hold's (locked) read.
    assert sum('FROM "credits_creditaccount"' in s for s in reads) == 2
    assert not [s for s in reads if "generation_generation_products" in s]
    assert not [s for s in reads if "generation_generation_references" in s]
    assert len(statements) <= 29, statements  # savepoints included
