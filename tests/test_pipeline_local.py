"""The whole pipeline on the built-in local providers, as the embedded default runs it: tasks on
the in-process thread pool, the local provider calling back over HTTP to a live server, results
downloaded from it and stored."""

import io
import os
import time
from unittest import mock

import pytest
import requests
from django.core.files.storage import default_storage
from PIL import Image

from credits import services as credits
from credits.models import LedgerEntry
from generation import tasks
from generation.models import Generation
from generation.pipeline import submit
from library.models import ReferenceAnalysis
from providers.local import image as local_image
from providers.models import ProviderAttempt
from providers.org_registry import clear_registry
from tests.images import validated

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def embedded(live_server, settings, tmp_path, loopback_egress):
    settings.CELERY_BROKER_URL = None  # tasks on the in-process pool
    settings.NERSTUDIO_PUBLIC_URL = live_server.url
    settings.MEDIA_ROOT = tmp_path / "media"
    clear_registry()
    return live_server


@pytest.fixture
def studio(embedded, admin_membership):
    org = admin_membership.org
    local = org.providers.get(adapter="local-image")
    entry = local.catalogue  # the platform operator sets the model's options and price
    entry.options, entry.credit_cost = {"delay_seconds": 0.2}, 2
    entry.save()
    local.refresh_from_db()
    credits.top_up(org=org, amount=50)
    return admin_membership, local


def _wait_until_finished(generation, seconds=45):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        generation.refresh_from_db()
        if generation.is_finished:
            return generation
        time.sleep(0.1)
    raise AssertionError(f"generation still {generation.status} after {seconds} s")


def _start(membership, provider, count=3, references=1):
    return tasks.generate(
        membership=membership,
        provider=provider,
        prompt="A ceramic mug on a linen tablecloth",
        count=count,
        aspect_ratio="4:5",
        quality="draft",
        products=[validated("#2e86de")],
        references=[validated("#e67e22", (200, 200))][:references],
    )


def test_a_generation_on_local_providers_delivers_every_image_and_captures_its_credits(studio):
    membership, local = studio

    generation = _wait_until_finished(_start(membership, local))

    assert generation.status == Generation.Status.DONE
    images = list(generation.images.order_by("index"))
    assert [i.status for i in images] == ["done"] * 3
    assert len({i.prompt for i in images}) == 3  # three distinct variants
    assert all(i.prompt.startswith("A ceramic mug on a linen tablecloth.") for i in images)
    for image in images:
        with default_storage.open(image.file.name) as fh, Image.open(io.BytesIO(fh.read())) as im:
            assert im.size == (image.width, image.height)
            assert abs(im.size[0] / im.size[1] - 4 / 5) < 0.02
        assert default_storage.exists(image.thumbnail.name)
    kinds = sorted(LedgerEntry.objects.filter(generation=generation).values_list("kind", flat=True))
    assert kinds == ["capture", "capture", "capture", "hold"]
    assert credits.balance_of(membership.org) == 50 - 3 * 2
    assert ReferenceAnalysis.objects.filter(org=membership.org).count() == 1
    attempts = ProviderAttempt.objects.filter(generation_id=generation.pk)
    lineage = set(attempts.values_list("purpose", "provider__name"))
    assert lineage == {
        ("vision", "Local image analysis (offline)"),
        ("variants", "Local prompt writer (offline)"),
        ("image", "Local renderer (offline)"),
        ("result", "Local renderer (offline)"),  # how long each image took: the first poll's timing
    }


def test_the_same_reference_is_analysed_once(studio):
    membership, local = studio
    _wait_until_finished(_start(membership, local, count=1))
    _wait_until_finished(_start(membership, local, count=1))
    assert ProviderAttempt.objects.filter(purpose="vision").count() == 1
    assert ReferenceAnalysis.objects.count() == 1


def test_every_image_is_drawn_in_the_colours_of_the_references(studio):
    membership, local = studio
    palettes = []
    original = local_image.render_image

    def spying(*args, **kwargs):
        palettes.append(args[2])  # the palette the renderer was given
        return original(*args, **kwargs)

    with mock.patch.object(local_image, "render_image", spying):
        generation = _wait_until_finished(_start(membership, local, count=2))

    analysed = ReferenceAnalysis.objects.get(org=membership.org).palette
    assert analysed and generation.palette == analysed[:6]
    assert palettes == [generation.palette] * 2


def test_ledger_and_balance_agree_after_generations(studio):
    membership, local = studio
    for _ in range(2):
        _wait_until_finished(_start(membership, local, count=2, references=0))
    total = sum(LedgerEntry.objects.filter(org=membership.org).values_list("delta", flat=True))
    assert total == credits.balance_of(membership.org) == 50 - 2 * 2 * 2


def test_the_local_provider_reads_products_and_publishes_results_through_signed_urls(
    studio, embedded
):
    """No public media route: the provider gets short-lived signed URLs for exactly these files.
    (Django's live server itself serves MEDIA_URL, so the absence of the route is tested with the
    test client in tests/security/test_media_access.py.)"""
    membership, local = studio
    generation = _wait_until_finished(_start(membership, local, count=1, references=0))
    product = generation.products.get()
    task_id = generation.images.get().provider_task_id
    adapter = local.build()

    urls = {
        product.file.name: submit._product_url(adapter, product),
        f"local-provider/{task_id}.png": adapter.poll(task_id).result_urls[0],
    }

    for name, url in urls.items():
        assert url.startswith(f"{embedded.url}/files/")
        with default_storage.open(name) as fh:
            assert requests.get(url, timeout=5).content == fh.read()


def test_with_reuse_renders_the_local_provider_draws_each_size_once(studio):
    membership, local = studio
    entry = local.catalogue
    entry.options = {"delay_seconds": 0.2, "reuse_renders": True}
    entry.save()
    local.refresh_from_db()
    drawn = []
    original = local_image.render_image

    def counting(*args, **kwargs):
        drawn.append(args[3])  # the aspect ratio
        return original(*args, **kwargs)

    local_image._rendered.clear()
    with mock.patch.object(local_image, "render_image", counting):
        generation = _wait_until_finished(_start(membership, local, count=3))

    assert drawn == ["4:5"]
    assert set(generation.images.values_list("status", flat=True)) == {"done"}
    stored = [default_storage.open(i.file.name).read() for i in generation.images.all()]
    assert len(set(stored)) == 1  # copies of the one drawing


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (CI sets it)")
def test_with_redis_a_separate_celery_worker_runs_the_whole_pipeline(studio, settings):
    """Production shape: web process enqueues to Redis, a Celery worker does the work."""
    from celery.contrib.testing.worker import start_worker

    from nerstudio.celery import app as celery_app

    settings.CELERY_BROKER_URL = os.environ["REDIS_URL"]
    membership, local = studio
    celery_app.control.purge()  # messages other tests left behind
    every_queue = list(celery_app.amqp.queues)  # pipeline, submit, results, render, maintenance…
    with start_worker(
        celery_app, pool="threads", concurrency=4, perform_ping_check=False, queues=every_queue
    ):
        generation = _wait_until_finished(_start(membership, local, count=2))
    assert generation.status == Generation.Status.DONE
    assert credits.balance_of(membership.org) == 50 - 2 * 2
