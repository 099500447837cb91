"""Faults bench/faults.py found on the production stack, pinned down here: a callback that
arrives while the image's submission has not recorded its task (the createTask reply still on its
way, or the worker that sent it killed); a submission that stopped half-way (its task failed on a
lost database connection) left claimed until the deadline; the deadline's wording when it is
under a minute. kie.ai is faked at the HTTP seam with its real shapes (PROVIDERS.md §1)."""

import json
from datetime import timedelta
from unittest import mock

import pytest
import responses
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from credits import services as credits
from credits.models import LedgerEntry
from generation.models import GenerationImage
from generation.pipeline import reconcile, results, start
from lib.tokens import hash_token, new_token
from tests.images import png_bytes, validated

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("provider_pipeline")]

KIE = "https://api.kie.ai"
RESULT = "https://tempfile.aiquickdraw.com/faults.png"


@pytest.fixture
def seedream_on_kie(admin_membership, platform_keys):
    platform_keys(kie="key-kie")
    org = admin_membership.org
    provider = org.providers.get(name="Seedream 4.5 Edit")
    provider.enabled, provider.is_default = True, True
    provider.save()
    credits.top_up(org=org, amount=100)
    return admin_membership, provider


def submitting_image(membership, provider) -> tuple[GenerationImage, str]:
    """An image whose createTask call is in flight: claimed for submission with a callback
    token, as submit.submit_image leaves it until the provider's reply is recorded."""
    generation = start.start_generation(
        membership=membership,
        provider=provider,
        prompt="A ceramic mug",
        count=1,
        aspect_ratio="1:1",
        quality="basic",
        products=[validated()],
        references=[],
    )
    token = new_token()
    image = generation.images.get()
    GenerationImage.objects.filter(pk=image.pk).update(
        status=GenerationImage.Status.SUBMITTING,
        callback_token_hash=hash_token(token),
        submitted_at=timezone.now(),
        deadline_at=timezone.now() + timedelta(minutes=10),
    )
    return image, token


def kie_record(task_id: str, state: str = "success") -> dict:
    data = {
        "taskId": task_id,
        "model": "seedream/4.5-edit",
        "state": state,
        "param": "{}",
        "resultJson": json.dumps({"resultUrls": [RESULT]}) if state == "success" else "",
        "failCode": "",
        "failMsg": "",
    }
    return {"code": 200, "msg": "success", "data": data}


def call_back(client, image, token, task_id):
    return client.post(
        reverse("generation:callback", args=[image.public_id, token]),
        data=json.dumps(kie_record(task_id)),
        content_type="application/json",
    )


def test_a_callback_before_the_submission_recorded_its_task_is_taken_for_the_image(
    client, seedream_on_kie
):
    membership, provider = seedream_on_kie
    image, token = submitting_image(membership, provider)

    assert call_back(client, image, token, "task_early").status_code == 204

    image.refresh_from_db()
    assert image.status == GenerationImage.Status.GENERATING
    assert image.provider_task_id == "task_early"
    with responses.RequestsMock() as mock:
        mock.get(f"{KIE}/api/v1/jobs/recordInfo", json=kie_record("task_early"))
        mock.get(RESULT, body=png_bytes("#16a085", (160, 120)), content_type="image/png")
        results.collect_result(image.pk)  # the task the callback queued
    image.refresh_from_db()
    assert image.status == GenerationImage.Status.DONE
    assert LedgerEntry.objects.filter(image=image, kind="capture").count() == 1
    assert credits.balance_of(membership.org) == 100 - 3


def test_a_callback_for_an_image_whose_submit_worker_died_saves_it_from_its_deadline(
    client, seedream_on_kie
):
    membership, provider = seedream_on_kie
    image, token = submitting_image(membership, provider)  # and its worker was killed

    call_back(client, image, token, "task_orphaned")
    found = reconcile.reconcile(now=timezone.now() + timedelta(minutes=5))

    image.refresh_from_db()
    assert image.status == GenerationImage.Status.GENERATING
    assert found.timed_out == 0


def test_a_second_callback_with_another_task_for_an_adopted_image_is_refused(
    client, seedream_on_kie
):
    membership, provider = seedream_on_kie
    image, token = submitting_image(membership, provider)
    call_back(client, image, token, "task_first")

    assert call_back(client, image, token, "task_other").status_code == 400
    image.refresh_from_db()
    assert image.provider_task_id == "task_first"


def test_a_callback_for_an_image_back_to_waiting_changes_nothing(client, seedream_on_kie):
    membership, provider = seedream_on_kie
    image, token = submitting_image(membership, provider)
    GenerationImage.objects.filter(pk=image.pk).update(status=GenerationImage.Status.WAITING)

    assert call_back(client, image, token, "task_retried").status_code == 204

    image.refresh_from_db()
    assert image.status == GenerationImage.Status.WAITING and image.provider_task_id == ""


def test_an_image_whose_submission_stopped_half_way_is_submitted_again(settings, seedream_on_kie):
    membership, provider = seedream_on_kie
    image, _ = submitting_image(membership, provider)  # its task failed on a lost database
    # One upload (the product photo) and createTask, each within the model's timeout.
    longest = settings.NERSTUDIO_STALLED_AFTER_SECONDS + 2 * provider.timeout_seconds

    found = reconcile.reconcile(now=timezone.now() + timedelta(seconds=longest + 5))

    assert found.submit == [image.pk]
    image.refresh_from_db()
    assert image.status == GenerationImage.Status.WAITING
    assert LedgerEntry.objects.filter(generation=image.generation, kind="hold").count() == 1


def test_a_submission_that_may_still_be_talking_to_the_provider_is_left_alone(
    settings, seedream_on_kie
):
    membership, provider = seedream_on_kie
    image, _ = submitting_image(membership, provider)
    longest = settings.NERSTUDIO_STALLED_AFTER_SECONDS + 2 * provider.timeout_seconds

    found = reconcile.reconcile(now=timezone.now() + timedelta(seconds=longest - 5))

    assert found.submit == []
    image.refresh_from_db()
    assert image.status == GenerationImage.Status.SUBMITTING


@pytest.mark.parametrize(
    ("seconds", "reason"),
    [
        (600, "No result within 10 minutes."),
        (60, "No result within 1 minute."),
        (45, "No result within 45 seconds."),
        (90, "No result within 90 seconds."),
    ],
)
def test_an_image_past_its_deadline_is_told_the_deadline_in_words(
    settings, seedream_on_kie, seconds, reason
):
    settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS = seconds
    membership, provider = seedream_on_kie
    image, _ = submitting_image(membership, provider)

    reconcile.reconcile(now=timezone.now() + timedelta(minutes=11))

    image.refresh_from_db()
    assert image.status == GenerationImage.Status.FAILED and image.error == reason
    assert credits.balance_of(membership.org) == 100


def generating_image(membership, provider) -> GenerationImage:
    image, _ = submitting_image(membership, provider)
    GenerationImage.objects.filter(pk=image.pk).update(
        status=GenerationImage.Status.GENERATING, provider_task_id="task_lease"
    )
    return image


def test_a_collection_holds_its_image_no_longer_than_a_poll_a_download_and_storing(
    seedream_on_kie,
):
    """A results worker killed mid-download must not keep the image from the next collection
    for long: the lease is the model's timeout + the download limit + storing, not minutes."""
    membership, provider = seedream_on_kie
    image = generating_image(membership, provider)
    leases = []

    def record_info(request):
        leases.append(GenerationImage.objects.get(pk=image.pk).collecting_until - timezone.now())
        return 200, {}, json.dumps(kie_record("task_lease"))

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, f"{KIE}/api/v1/jobs/recordInfo", callback=record_info)
        mock.get(RESULT, body=png_bytes("#16a085", (160, 120)), content_type="image/png")
        results.collect_result(image.pk)

    expected = provider.timeout_seconds + results.DOWNLOAD_SECONDS + results.STORE_SECONDS
    assert len(leases) == 1
    assert expected - 5 < leases[0].total_seconds() <= expected
    image.refresh_from_db()
    assert (image.status, image.collecting_until) == (GenerationImage.Status.DONE, None)


def test_a_submission_that_fails_on_something_else_than_the_provider_goes_back_to_waiting(
    seedream_on_kie,
):
    """Say the database connection drops mid-submission: the image is not left "submitting"
    until its deadline, and the error still fails the task (the worker logs it)."""
    from generation.pipeline import submit

    membership, provider = seedream_on_kie
    image, _ = submitting_image(membership, provider)
    GenerationImage.objects.filter(pk=image.pk).update(status=GenerationImage.Status.WAITING)

    with responses.RequestsMock() as mock:
        mock.post("https://kieai.redpandaai.co/api/file-base64-upload", body=RuntimeError("lost"))
        with pytest.raises(RuntimeError, match="lost"):
            submit.submit_image(image.pk)

    image.refresh_from_db()
    assert (image.status, image.provider_task_id) == (GenerationImage.Status.WAITING, "")


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="the connection pool needs PostgreSQL (CI sets it)",
)
def test_a_pooled_connection_the_database_dropped_is_replaced_not_handed_out():
    """After a database restart the pool's idle connections are dead; a task taking one must
    get a live one instead of failing (bench/faults.py's db-outage)."""
    import psycopg
    from django.db import connection
    from django.db.backends.postgresql.base import DatabaseWrapper

    # The production settings' pool (the test settings run without one), built by Django.
    options = {**connection.settings_dict["OPTIONS"], "pool": settings.NERSTUDIO_DB_POOL_OPTIONS}
    wrapper = DatabaseWrapper({**connection.settings_dict, "OPTIONS": options}, alias="pooled")
    params = {k: v for k, v in connection.get_connection_params().items() if k != "context"}
    pool = wrapper.pool
    pool.open()
    try:
        with pool.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(**params, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # waits for its exit

        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != pid
    finally:
        wrapper.close_pool()


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="needs PostgreSQL (CI sets it)",
)
def test_the_pools_check_of_a_live_connection_sends_nothing_to_the_database():
    import psycopg
    from django.db import connection

    from lib.db_pool import check_connection

    params = {k: v for k, v in connection.get_connection_params().items() if k != "context"}
    with psycopg.connect(**params, autocommit=True) as conn:
        with mock.patch.object(conn, "execute", wraps=conn.execute) as execute:
            check_connection(conn)
        assert not execute.called  # alive: no query, no round trip

        with psycopg.connect(**params, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s, 5000)", [conn.info.backend_pid])
        with pytest.raises(psycopg.OperationalError):
            check_connection(conn)  # dropped: the real check runs, and fails
