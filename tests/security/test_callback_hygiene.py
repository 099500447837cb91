"""Callbacks: tokens stay out of the logs, duplicates store one file, and no body a provider (or
anyone) sends makes the endpoint answer 500."""

import io
import json
import logging
import threading

import pytest
import responses
from django.core.files.storage import default_storage
from django.db import connection
from django.urls import reverse

from credits import services as credits
from generation.models import Generation, GenerationImage
from generation.pipeline import results
from lib.tokens import hash_token
from tests.images import png_bytes

KIE = "https://api.kie.ai"
TOKEN = "s3cret-callback-token-Zq8xW1"


@pytest.fixture
def console():
    """What the production log handler (settings.LOGGING "console") writes."""
    handler = logging.getHandlerByName("console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def generating_image(org, provider, *, token=TOKEN, task_id="task-1") -> GenerationImage:
    """An image submitted to `provider`, waiting for its callback, its credits held."""
    generation = Generation.objects.create(
        org=org,
        provider=provider,
        provider_name=provider.name,
        credit_cost=provider.credit_cost,
        prompt="A mug",
        aspect_ratio="1:1",
        count=1,
        status=Generation.Status.GENERATING,
    )
    credits.top_up(org=org, amount=10)
    credits.hold(generation=generation)
    return GenerationImage.objects.create(
        generation=generation,
        index=0,
        status=GenerationImage.Status.GENERATING,
        provider_task_id=task_id,
        callback_token_hash=hash_token(token),
    )


@pytest.fixture
def kie_image(admin_membership, platform_keys):
    platform_keys(kie="kie-platform-key")
    org = admin_membership.org
    seedream = org.providers.get(adapter="kie-seedream-4.5-edit")
    seedream.enabled = True
    seedream.save()
    return generating_image(org, seedream)


def callback_url(image, token=TOKEN):
    return reverse("generation:callback", args=[image.public_id, token])


# --- Logs ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_callback_token_never_reaches_the_logs_on_a_refused_callback(client, kie_image, console):
    response = client.post(
        reverse("generation:callback", args=[kie_image.public_id, "guessed-token-123"]),
        data=b"{}",
        content_type="application/json",
    )

    assert response.status_code == 404
    written = console.getvalue()
    assert f"/callbacks/images/{kie_image.public_id}/[redacted]" in written  # it was logged
    assert "guessed-token-123" not in written


def test_a_callback_url_quoted_in_a_message_or_traceback_is_redacted(console):
    logger = logging.getLogger("nerstudio.tests.redaction")
    logger.setLevel(logging.INFO)
    url = f"https://studio.example/callbacks/images/4a7b/{TOKEN}/"
    logger.warning("Callback to %s failed", url)
    try:
        raise RuntimeError(f"404 Client Error: Not Found for url: {url}")
    except RuntimeError:
        logger.exception("Task failed")

    written = console.getvalue()
    assert TOKEN not in written
    assert written.count("/callbacks/images/4a7b/[redacted]") == 2  # message, traceback


# --- Duplicates ---------------------------------------------------------------------------------


def record(task_id, urls):
    data = {
        "taskId": task_id,
        "model": "seedream/4.5-edit",
        "state": "success",
        "param": "{}",
        "resultJson": json.dumps({"resultUrls": urls}),
        "failCode": "",
        "failMsg": "",
    }
    return {"code": 200, "msg": "success", "data": data}


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_callbacks_store_the_result_once(kie_image, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.NERSTUDIO_ORG_MAX_INFLIGHT = 8  # all eight race for the claim itself
    result = "https://tempfile.aiquickdraw.com/r.png"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as fake:
        fake.get(f"{KIE}/api/v1/jobs/recordInfo", json=record("task-1", [result]))
        download = fake.get(result, body=png_bytes("#16a085"), content_type="image/png")
        start = threading.Barrier(8)

        def duplicate():
            start.wait()
            try:
                results.collect_result(kie_image.pk)
            finally:
                connection.close()

        threads = [threading.Thread(target=duplicate) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    kie_image.refresh_from_db()
    assert kie_image.status == "done"
    assert download.call_count == 1
    _, stored = default_storage.listdir(f"generated/{kie_image.generation.org.public_id}")
    assert len(stored) == 1
    assert credits.balance_of(kie_image.generation.org) == 10 - kie_image.generation.credit_cost


# --- Any body answers 4xx -----------------------------------------------------------------------

BODIES = {
    "nested": b"[" * 100_000 + b"]" * 100_000,
    "nested object": b'{"data":' * 50_000 + b"1" + b"}" * 50_000,
    "binary": bytes(range(256)) * 64,
    "not utf-8": b'{"taskId": "\xff\xfe"}',
    "a list": b"[1, 2, 3]",
    "a string": b'"hello"',
    "null": b"null",
    "an object id": b'{"taskId": {"$gt": ""}, "data": []}',
    "empty": b"",
    "another task": b'{"code": 200, "data": {"taskId": "task-999", "state": "success"}}',
}


@pytest.mark.django_db
@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_any_callback_body_answers_4xx_never_500(client, kie_image, body):
    response = client.post(callback_url(kie_image), data=body, content_type="application/json")

    assert 400 <= response.status_code < 500 or response.status_code == 204
    kie_image.refresh_from_db()
    assert kie_image.status == "generating"  # nothing was acted on


@pytest.mark.django_db
@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_any_body_to_the_local_providers_callback_answers_4xx_never_500(
    client, admin_membership, body
):
    local = admin_membership.org.providers.get(adapter="local-image")
    image = generating_image(admin_membership.org, local)

    response = client.post(callback_url(image), data=body, content_type="application/json")

    assert 400 <= response.status_code < 500


@pytest.mark.django_db
def test_a_signed_callback_with_a_nested_body_is_refused_not_crashed(
    client, kie_image, platform_keys
):
    platform_keys(kie_webhook_secret="hmac-key")
    headers = {"X-Webhook-Timestamp": "1", "X-Webhook-Signature": "AAAA"}

    response = client.post(
        callback_url(kie_image),
        data=BODIES["nested"],
        content_type="application/json",
        headers=headers,
    )

    assert response.status_code == 401


@pytest.mark.django_db
def test_a_huge_callback_body_is_refused(client, kie_image, settings):
    body = b'{"pad": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'

    response = client.post(callback_url(kie_image), data=body, content_type="application/json")

    assert 400 <= response.status_code < 500
