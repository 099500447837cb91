"""Fair share: one organization's slow or hanging provider cannot delay another's work, and nobody
can start generations faster than the rate limits allow."""

import os
import time

import pytest
from django.test import Client
from django.urls import reverse

from credits import services as credits
from generation import tasks
from generation.models import GenerationImage
from generation.pipeline import results, submit
from lib.tasks import cancel_deferred
from providers import fairshare
from providers.models import Provider
from providers.org_registry import clear_registry
from tests.factories import AdminMembershipFactory, OwnKeyProviderFactory
from tests.images import validated

TASK = b'{"code": 200, "msg": "success", "data": {"taskId": "task-1", "downloadUrl": "https://cdn.example/p.png"}}'


def own_kie_model(org, url, **extra) -> Provider:
    """An own-key Nano Banana Pro row whose API and upload host are the given server."""
    row = OwnKeyProviderFactory(org=org, base_url="https://kie.example", **extra)
    org.providers.update(is_default=False)
    Provider.objects.filter(pk=row.pk).update(
        base_url=url, options={"upload_base_url": url}, is_default=True
    )
    return Provider.objects.get(pk=row.pk)


def start(membership, provider, count):
    return tasks.generate(
        membership=membership,
        provider=provider,
        prompt="A ceramic mug on linen",
        count=count,
        aspect_ratio=provider.default_aspect_ratio,
        quality=provider.default_quality,
        products=[validated()],
        references=[],
    )


@pytest.mark.django_db(transaction=True)
def test_a_hanging_provider_with_16_images_in_flight_does_not_delay_another_organization(
    live_server, settings, tmp_path, listener, second_listener, loopback_egress
):
    settings.CELERY_BROKER_URL = None  # the embedded runner: one shared pool of worker threads
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.NERSTUDIO_PUBLIC_URL = live_server.url
    settings.NERSTUDIO_ORG_MAX_INFLIGHT = 3
    clear_registry()
    hanging, healthy = listener, second_listener
    hanging.hang = True
    healthy.body = TASK

    noisy = AdminMembershipFactory(org__name="Noisy")
    credits.top_up(org=noisy.org, amount=1000)
    noisy_model = own_kie_model(noisy.org, hanging.url, timeout_seconds=30)
    victim = AdminMembershipFactory(org__name="Victim")
    credits.top_up(org=victim.org, amount=1000)
    victim_model = own_kie_model(victim.org, healthy.url)

    noisy_generations = [start(noisy, noisy_model, count=8) for _ in range(2)]  # 16 images
    deadline = time.monotonic() + 10
    while len(hanging.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let every other noisy task find its organization's slots taken
    assert len(hanging.requests) == 3  # exactly its share is stuck, not the whole pool

    started = time.monotonic()
    start(victim, victim_model, count=1)
    while not healthy.requests and time.monotonic() - started < 10:
        time.sleep(0.01)
    reached = time.monotonic() - started

    in_flight = fairshare.slots().in_flight(noisy.org_id)
    for generation in noisy_generations:  # stop the noisy work before the database goes
        results.fail_generation(generation.pk, "The test is over.")
    cancel_deferred()
    hanging.released.set()  # the stuck calls end now and find their images failed
    time.sleep(0.3)

    assert healthy.requests, "the other organization's generation never reached its provider"
    assert reached < 2.0, f"it took {reached:.1f} s"
    print(f"reached its provider in {reached * 1000:.0f} ms")
    assert in_flight == 3


@pytest.mark.django_db
def test_an_organization_gets_no_more_than_its_share_of_slots(settings):
    settings.NERSTUDIO_ORG_MAX_INFLIGHT = 2
    with fairshare.provider_slot(101), fairshare.provider_slot(101):
        with pytest.raises(fairshare.OrgBusy), fairshare.provider_slot(101):
            pass
        with fairshare.provider_slot(202):  # another organization is unaffected
            pass
    with fairshare.provider_slot(101):  # given back
        pass


@pytest.mark.django_db
def test_a_task_whose_organization_is_busy_waits_without_claiming_anything(
    admin_membership, settings, monkeypatch
):
    settings.NERSTUDIO_ORG_MAX_INFLIGHT = 1
    org = admin_membership.org
    credits.top_up(org=org, amount=100)
    provider = org.providers.get(adapter="local-image")
    generation = start(admin_membership, provider, count=1)
    image = generation.images.get()
    GenerationImage.objects.filter(pk=image.pk).update(prompt="A mug")

    with fairshare.provider_slot(org.pk), pytest.raises(fairshare.OrgBusy):
        submit.submit_image(image.pk)

    image.refresh_from_db()
    assert image.status == "waiting" and image.polls == 0


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis (CI)")
def test_slots_are_shared_by_every_process_through_redis(settings):
    settings.NERSTUDIO_ORG_MAX_INFLIGHT = 2
    url = os.environ["REDIS_URL"]
    web, worker = fairshare.RedisSlots(url), fairshare.RedisSlots(url)  # two processes' views
    org_id = int(time.time() * 1000)  # a fresh key
    first = web.acquire(org_id, 2, lease=30)
    second = worker.acquire(org_id, 2, lease=30)

    assert first and second and worker.acquire(org_id, 2, lease=30) is None
    assert web.in_flight(org_id) == 2
    web.release(org_id, first)
    assert worker.acquire(org_id, 2, lease=30)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis (CI)")
def test_a_slot_a_crashed_worker_never_gave_back_lapses(settings):
    slots = fairshare.RedisSlots(os.environ["REDIS_URL"])
    org_id = int(time.time() * 1000) + 1
    assert slots.acquire(org_id, 1, lease=0.3)  # then the worker dies holding it
    assert slots.acquire(org_id, 1, lease=30) is None
    time.sleep(0.4)
    assert slots.acquire(org_id, 1, lease=30)


# --- Rate limits ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_member_starting_generations_too_fast_gets_a_clear_429_with_the_retry_time(
    member_client, member_membership, settings
):
    settings.NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE = 2
    url = reverse("generation:generate")
    for _ in range(2):
        assert member_client.post(url, {"prompt": "A mug"}).status_code == 422  # counted

    response = member_client.post(url, {"prompt": "A mug on slate"})

    assert response.status_code == 429
    wait = int(response["Retry-After"])
    assert 1 <= wait <= 60
    body = response.content.decode()
    assert f"try again in {wait} s" in body
    assert "A mug on slate" in body  # what they wrote is kept


@pytest.mark.django_db
def test_an_organization_is_limited_as_a_whole(
    member_client, member_membership, admin_membership, settings
):
    settings.NERSTUDIO_GENERATE_PER_ORG_PER_MINUTE = 3
    url = reverse("generation:generate")
    admin = Client()
    admin.force_login(admin_membership.user)
    statuses = [c.post(url, {"prompt": "x"}).status_code for c in (member_client, admin) * 2]

    assert statuses[:3] == [422, 422, 422] and statuses[3] == 429
    assert "Your organization is starting generations" in admin.post(url).content.decode()
