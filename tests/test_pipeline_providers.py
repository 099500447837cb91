"""The pipeline with kie.ai, OpenAI and Gemini faked at the HTTP seam (real request/response
shapes from PROVIDERS.md). The steps (generation/pipeline/) are driven one by one: inside a test
transaction nothing that `enqueue` queues ever runs, so each step is called the way its task
calls it."""

import base64
import hashlib
import hmac
import json
import time
import zlib
from datetime import timedelta
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest
import responses
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from credits import services as credits
from credits.models import LedgerEntry
from generation import live, tasks
from generation.models import Generation, GenerationImage
from generation.pipeline import prompts, reconcile, results, start, submit
from lib.tasks import TryLater
from library.models import ReferenceAnalysis
from providers.health import result_latency_p50
from providers.models import ProviderAttempt
from providers.org_registry import clear_registry
from tests.images import png_bytes, validated

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("provider_pipeline")]

KIE = "https://api.kie.ai"
OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"
UPLOAD = "https://kieai.redpandaai.co/api/file-base64-upload"


def completion(content: dict) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": json.dumps(content), "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def record(task_id, state, urls=(), fail_msg=""):
    data = {
        "taskId": task_id,
        "model": "seedream/4.5-edit",
        "state": state,
        "param": "{}",
        "resultJson": json.dumps({"resultUrls": list(urls)}) if state == "success" else "",
        "failCode": "" if state != "fail" else "500",
        "failMsg": fail_msg,
        "costTime": 15000,
        "completeTime": 1787567409000,
        "createTime": 1787567320000,
        "updateTime": 1787567409000,
    }
    return {"code": 200, "msg": "success", "data": data}


def callback_body(task_id, state="success"):
    body = record(task_id, state, ["https://tempfile.aiquickdraw.com/r.png"])
    body["msg"] = "Playground task completed successfully."
    return body


@pytest.fixture
def kie_org(admin_membership, platform_keys):
    platform_keys(kie="key-kie", openai="key-openai", gemini="key-gemini")
    org = admin_membership.org
    for name in ("Seedream 4.5 Edit", "Gemini 3 Pro (kie.ai)", "GPT-4o vision (OpenAI)"):
        provider = org.providers.get(name=name)
        provider.enabled = True
        provider.is_default = provider.kind == "image"
        provider.save()
    credits.top_up(org=org, amount=100)
    return admin_membership, org.providers.get(name="Seedream 4.5 Edit")


@pytest.fixture
def fake(kie_org):
    """The providers' happy path; tests override single routes."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(
            OPENAI_CHAT,
            json=completion(
                {"description": "Warm terracotta tones, soft window light.", "palette": ["#d35400"]}
            ),
        )
        mock.post(
            f"{KIE}/gemini-3-pro/v1/chat/completions",
            json=completion(
                {
                    "variants": [
                        "Mug on linen, morning light",
                        "Mug beside a croissant",
                        "Mug in a sunlit cafe window",
                    ]
                }
            ),
        )
        mock.post(
            UPLOAD,
            json={
                "success": True,
                "code": 200,
                "msg": "ok",
                "data": {
                    "fileName": "p.png",
                    "filePath": "p.png",
                    "downloadUrl": "https://tempfile.redpandaai.co/p.png",
                    "fileSize": 1,
                    "mimeType": "image/png",
                    "uploadedAt": "2026-01-01T00:00:00.000Z",
                },
            },
        )
        task_ids = iter(f"task_seedream_{n}" for n in range(100))
        mock.add_callback(
            responses.POST,
            f"{KIE}/api/v1/jobs/createTask",
            callback=lambda req: (
                200,
                {},
                json.dumps({"code": 200, "msg": "success", "data": {"taskId": next(task_ids)}}),
            ),
        )
        mock.get(
            "https://tempfile.aiquickdraw.com/r.png",
            body=png_bytes("#16a085", (640, 800)),
            content_type="image/png",
        )
        yield mock


def started(membership, provider, count=3, *, products=None, references=()):
    """A generation of `count` images of a ceramic mug, started as the Generate form does:
    credits held, one new product photo unless `products` are given."""
    return start.start_generation(
        membership=membership,
        provider=provider,
        prompt="A ceramic mug",
        count=count,
        aspect_ratio="1:1",
        quality="basic",
        products=[validated()] if products is None else products,
        references=list(references),
    )


def run_until_submitted(membership, provider, count=3):
    generation = started(membership, provider, count, references=[validated("#e67e22", (100, 100))])
    prompts.write_prompts(generation.pk)
    for image in generation.images.all():
        submit.submit_image(image.pk)
    return generation


def callback_path(mock, index):
    created = [c for c in mock.calls if c.request.url.endswith("/createTask")]
    return urlsplit(json.loads(created[index].request.body)["callBackUrl"]).path


def deliver(client, mock, generation, index, state="success", **headers):
    image = generation.images.get(index=index)
    return client.post(
        callback_path(mock, index),
        data=json.dumps(callback_body(image.provider_task_id, state)),
        content_type="application/json",
        headers=headers,
    )


def reports_success(fake, image):
    """kie's status endpoint reports `image`'s task done, its result at r.png."""
    fake.get(
        f"{KIE}/api/v1/jobs/recordInfo",
        json=record(image.provider_task_id, "success", ["https://tempfile.aiquickdraw.com/r.png"]),
    )


def ledger_agrees(org):
    total = sum(LedgerEntry.objects.filter(org=org).values_list("delta", flat=True))
    return total == credits.balance_of(org)


def test_the_pipeline_with_kie_and_openai_delivers_and_captures(client, fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream)

    created = [
        json.loads(c.request.body) for c in fake.calls if c.request.url.endswith("/createTask")
    ]
    assert [c["model"] for c in created] == ["seedream/4.5-edit"] * 3
    assert created[0]["input"]["image_urls"] == ["https://tempfile.redpandaai.co/p.png"]
    assert created[0]["input"]["prompt"] == "Mug on linen, morning light"
    assert (created[0]["input"]["aspect_ratio"], created[0]["input"]["quality"]) == ("1:1", "basic")
    assert created[0]["callBackUrl"].startswith("https://studio.example.com/callbacks/images/")
    assert len({c["callBackUrl"] for c in created}) == 3  # one unguessable URL per image
    llm_request = json.loads(
        next(
            c for c in fake.calls if "chat/completions" in c.request.url and "kie" in c.request.url
        ).request.body
    )
    sent_to_llm = json.dumps(llm_request, ensure_ascii=False)
    assert "Warm terracotta tones" in sent_to_llm  # the reference description
    assert "PNG photo, 320×240 px" in sent_to_llm  # the product context

    for index in range(3):
        fake.get(
            f"{KIE}/api/v1/jobs/recordInfo",
            json=record(
                generation.images.get(index=index).provider_task_id,
                "success",
                ["https://tempfile.aiquickdraw.com/r.png"],
            ),
        )
        assert deliver(client, fake, generation, index).status_code == 204
        results.collect_result(generation.images.get(index=index).pk)
        fake.remove(responses.GET, f"{KIE}/api/v1/jobs/recordInfo")

    generation.refresh_from_db()
    assert generation.status == Generation.Status.DONE
    assert set(generation.images.values_list("status", flat=True)) == {"done"}
    assert credits.balance_of(membership.org) == 100 - 3 * 3
    assert ledger_agrees(membership.org)


def test_a_product_photo_is_uploaded_once_ahead_of_the_prompts_for_every_image(fake, kie_org):
    membership, seedream = kie_org
    generation = started(membership, seedream, 3)
    submit.stage_products(generation.pk)
    assert [c.request.url for c in fake.calls] == [UPLOAD]

    prompts.write_prompts(generation.pk)
    for image in generation.images.all():
        submit.submit_image(image.pk)

    created = [
        json.loads(c.request.body) for c in fake.calls if c.request.url.endswith("/createTask")
    ]
    assert [c["input"]["image_urls"] for c in created] == [
        ["https://tempfile.redpandaai.co/p.png"]
    ] * 3
    assert [c.request.url for c in fake.calls].count(UPLOAD) == 1


def test_a_failed_image_is_refunded_and_the_rest_captured(client, fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=2)
    ok, bad = generation.images.order_by("index")
    fake.add_callback(
        responses.GET,
        f"{KIE}/api/v1/jobs/recordInfo",
        callback=lambda req: (
            200,
            {},
            json.dumps(
                record(ok.provider_task_id, "success", ["https://tempfile.aiquickdraw.com/r.png"])
                if ok.provider_task_id in req.url
                else record(bad.provider_task_id, "fail", fail_msg="Content moderated")
            ),
        ),
    )

    results.collect_result(ok.pk)
    results.collect_result(bad.pk)

    bad.refresh_from_db()
    assert bad.status == "failed"
    assert bad.error == "The image service could not generate this image."  # for members
    attempt = ProviderAttempt.objects.get(
        generation_id=generation.pk, purpose="result", outcome="permanent"
    )
    assert "Content moderated" in attempt.error  # for admins
    generation.refresh_from_db()
    assert generation.status == Generation.Status.DONE  # some images arrived
    kinds = sorted(LedgerEntry.objects.filter(generation=generation).values_list("kind", flat=True))
    assert kinds == ["capture", "hold", "release"]
    assert credits.balance_of(membership.org) == 100 - 3
    assert ledger_agrees(membership.org)


def test_a_duplicate_callback_changes_nothing(client, fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    image = generation.images.get()
    reports_success(fake, image)
    deliver(client, fake, generation, 0)
    results.collect_result(image.pk)
    entries = LedgerEntry.objects.count()

    assert deliver(client, fake, generation, 0).status_code == 204
    results.collect_result(image.pk)  # a redelivered task too

    assert LedgerEntry.objects.count() == entries
    assert credits.balance_of(membership.org) == 100 - 3


def test_a_forged_callback_is_rejected_and_changes_nothing(client, fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    image = generation.images.get()
    real_path = callback_path(fake, 0)
    forged_path = real_path.rsplit("/", 2)[0] + "/forged-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAA/"

    response = client.post(
        forged_path,
        data=json.dumps(callback_body(image.provider_task_id)),
        content_type="application/json",
    )

    assert response.status_code == 404
    image.refresh_from_db()
    assert image.status == "generating"
    assert not any("recordInfo" in c.request.url for c in fake.calls)


def test_with_a_webhook_key_unsigned_and_stale_callbacks_are_rejected(
    client, fake, kie_org, platform_keys
):
    platform_keys(kie_webhook_secret="hmac-key")
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    task_id = generation.images.get().provider_task_id

    def signed(ts):
        mac = hmac.new(b"hmac-key", f"{task_id}.{ts}".encode(), hashlib.sha256).digest()
        return {
            "X-Webhook-Timestamp": str(ts),
            "X-Webhook-Signature": base64.b64encode(mac).decode(),
        }

    assert deliver(client, fake, generation, 0).status_code == 401
    assert (
        deliver(client, fake, generation, 0, **signed(int(time.time()) - 3600)).status_code == 401
    )
    bad = {"X-Webhook-Timestamp": str(int(time.time())), "X-Webhook-Signature": "AAAA"}
    assert deliver(client, fake, generation, 0, **bad).status_code == 401
    assert deliver(client, fake, generation, 0, **signed(int(time.time()))).status_code == 204


def test_a_result_url_on_a_private_address_is_refused_and_refunded(fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    image = generation.images.get()
    fake.add_passthru("https://169.254.169.254")
    fake.get(
        f"{KIE}/api/v1/jobs/recordInfo",
        json=record(
            image.provider_task_id, "success", ["https://169.254.169.254/latest/meta-data/x.png"]
        ),
    )

    results.collect_result(image.pk)

    image.refresh_from_db()
    assert image.status == "failed" and image.error == "The finished image could not be downloaded."
    attempt = ProviderAttempt.objects.get(generation_id=generation.pk, purpose="download")
    assert "private, loopback, link-local or reserved" in attempt.error
    assert credits.balance_of(membership.org) == 100


def test_an_image_past_its_deadline_fails_and_is_released(fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=2)

    counts = reconcile.reconcile(now=timezone.now() + timedelta(minutes=11)).counts

    assert counts["timed_out"] == 2
    assert set(generation.images.values_list("status", flat=True)) == {"failed"}
    generation.refresh_from_db()
    assert generation.status == Generation.Status.FAILED
    assert credits.balance_of(membership.org) == 100
    assert ledger_agrees(membership.org)


def test_reconciliation_polls_late_images_with_backoff(
    fake, kie_org, django_capture_on_commit_callbacks
):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    image = generation.images.get()
    now = timezone.now()
    GenerationImage.objects.filter(pk=image.pk).update(next_poll_at=now)  # no callback came

    with django_capture_on_commit_callbacks() as queued:
        assert tasks.reconcile()["polled"] == 1
        assert tasks.reconcile()["polled"] == 0  # not due again yet
    assert len(queued) == 1  # one collect_result task
    image.refresh_from_db()
    assert image.next_poll_at >= now + timedelta(seconds=5) and image.polls == 1


def test_the_llm_chain_falls_back_to_gemini(fake, kie_org):
    membership, seedream = kie_org
    gemini = membership.org.providers.get(adapter="gemini-chat")
    gemini.enabled, gemini.api_key = True, "gemini-key"
    gemini.save()
    fake.replace(
        responses.POST,
        f"{KIE}/gemini-3-pro/v1/chat/completions",
        json={"code": 500, "msg": "Server error"},
    )
    fake.post(
        GEMINI,
        json={
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": json.dumps({"variants": ["Gemini one", "Gemini two"]})}],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 1,
                "candidatesTokenCount": 1,
                "totalTokenCount": 2,
            },
        },
    )

    generation = run_until_submitted(membership, seedream, count=2)

    assert sorted(generation.images.values_list("prompt", flat=True)) == [
        "Gemini one",
        "Gemini two",
    ]
    assert fake.calls[-1].request.url.startswith("https://api.kie.ai/api/v1/jobs/createTask")


def test_when_every_prompt_writer_fails_the_prompts_are_variations_of_the_members_own(
    fake, kie_org
):
    """The last resort is never to fail (issue 8): deterministic variations, marked as such."""
    membership, seedream = kie_org
    membership.org.providers.filter(adapter="local-llm").update(enabled=False)
    clear_registry()
    fake.replace(
        responses.POST,
        f"{KIE}/gemini-3-pro/v1/chat/completions",
        json={"code": 401, "msg": "You do not have access permissions"},
    )

    generation = run_until_submitted(membership, seedream, count=2)

    generation.refresh_from_db()
    assert generation.status == Generation.Status.GENERATING
    assert generation.prompt_writer == "Built-in variations"
    assert any("variations of your own prompt" in n for n in generation.notices)
    prompts = list(generation.images.values_list("prompt", flat=True))
    assert len(set(prompts)) == 2 and all(p.startswith("A ceramic mug") for p in prompts)
    assert sum(c.request.url.endswith("/createTask") for c in fake.calls) == 2


def test_a_restarted_worker_neither_resubmits_nor_charges_twice(fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=2)
    created_before = sum(c.request.url.endswith("/createTask") for c in fake.calls)

    prompts.write_prompts(generation.pk)  # a redelivered message after a crash
    for image in generation.images.all():
        submit.submit_image(image.pk)

    assert sum(c.request.url.endswith("/createTask") for c in fake.calls) == created_before
    assert LedgerEntry.objects.filter(generation=generation, kind="hold").count() == 1
    assert credits.balance_of(membership.org) == 100 - 6


def test_a_generation_stopped_mid_pipeline_resumes(fake, kie_org):
    membership, seedream = kie_org
    generation = started(membership, seedream, 1)
    Generation.objects.filter(pk=generation.pk).update(status="writing")  # the worker died here
    later = timezone.now() + timedelta(minutes=3)

    assert reconcile.reconcile(now=later).counts["resumed"] == 1
    prompts.write_prompts(generation.pk)  # what the re-enqueued task does
    submit.submit_image(generation.images.get().pk)

    assert generation.images.get().status == GenerationImage.Status.GENERATING


def test_images_left_unsubmitted_by_a_dead_worker_are_submitted_or_failed(
    fake, kie_org, django_capture_on_commit_callbacks
):
    membership, seedream = kie_org
    generation = started(membership, seedream, 2)
    prompts.write_prompts(generation.pk)  # prompts written; the submissions were never sent
    Generation.objects.filter(pk=generation.pk).update(
        updated_at=timezone.now() - timedelta(minutes=5)
    )

    with django_capture_on_commit_callbacks() as queued:
        assert tasks.reconcile()["resumed"] == 2
    assert len(queued) == 2  # two submit_image tasks

    counts = reconcile.reconcile(now=timezone.now() + timedelta(minutes=11)).counts
    assert counts["timed_out"] == 2
    assert credits.balance_of(membership.org) == 100


# --- Recovery within the deadline, and errors people can act on (issue 8) -------------------------


def create_task_replies(fake, *replies):
    """createTask answers these (status, body, headers) in turn, then succeeds."""
    queue = list(replies)
    task_ids = iter(f"task_retry_{n}" for n in range(100))

    def reply(request):
        if queue:
            status, body, headers = queue.pop(0)
            return status, headers, json.dumps(body)
        return (
            200,
            {},
            json.dumps({"code": 200, "msg": "success", "data": {"taskId": next(task_ids)}}),
        )

    fake.replace(responses.POST, f"{KIE}/api/v1/jobs/createTask", body="")  # drop the default
    fake.remove(responses.POST, f"{KIE}/api/v1/jobs/createTask")
    fake.add_callback(responses.POST, f"{KIE}/api/v1/jobs/createTask", callback=reply)


def submit_until_settled(image_id, attempts=10):
    """Run the submit step as its task would, collecting each TryLater's wait."""
    waits = []
    for _ in range(attempts):
        try:
            submit.submit_image(image_id)
        except TryLater as later:
            waits.append(later.seconds)
            continue
        break
    return waits


def prepared(membership, provider, count=1):
    generation = started(membership, provider, count)
    prompts.write_prompts(generation.pk)
    return generation


def test_a_provider_outage_shorter_than_the_deadline_costs_time_not_images(fake, kie_org):
    membership, seedream = kie_org
    outage = ({"code": 500, "msg": "Server error"}, {})
    create_task_replies(fake, (200, *outage), (503, {"error": "down"}, {}), (200, *outage))
    generation = prepared(membership, seedream)
    image = generation.images.get()

    waits = submit_until_settled(image.pk)

    image.refresh_from_db()
    assert len(waits) == 3 and all(0 < w <= 60 for w in waits)
    assert image.status == "generating" and image.submit_attempts == 3
    assert credits.balance_of(membership.org) == 100 - 3  # still held, not refunded
    outcomes = list(
        ProviderAttempt.objects.filter(generation_id=generation.pk, purpose="image")
        .order_by("pk")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["retryable", "retryable", "retryable", "success"]


def test_a_rate_limited_submission_waits_as_long_as_the_provider_asks(fake, kie_org):
    membership, seedream = kie_org
    create_task_replies(fake, (429, {"code": 429, "msg": "Rate limited"}, {"Retry-After": "7"}))
    image = prepared(membership, seedream).images.get()

    assert submit_until_settled(image.pk) == [7.0]


def test_a_transient_error_near_the_deadline_fails_the_image_and_refunds(fake, kie_org):
    membership, seedream = kie_org
    create_task_replies(fake, *[(500, {"code": 500, "msg": "Server error"}, {})] * 3)
    generation = prepared(membership, seedream)
    image = generation.images.get()
    GenerationImage.objects.filter(pk=image.pk).update(
        deadline_at=timezone.now() + timedelta(seconds=0.5)
    )

    submit_until_settled(image.pk)

    image.refresh_from_db()
    assert image.status == "failed"
    assert image.error == "The image service is unavailable."
    assert credits.balance_of(membership.org) == 100


def test_members_see_a_short_reason_and_admins_the_providers_own_text(fake, kie_org):
    membership, seedream = kie_org
    refusal = {"code": 422, "msg": "Invalid prompt: prompt contains prohibited content"}
    create_task_replies(fake, (200, refusal, {}))
    generation = prepared(membership, seedream)
    image = generation.images.get()

    submit_until_settled(image.pk)

    image.refresh_from_db()
    assert image.error == "The image service refused the request."
    attempt = ProviderAttempt.objects.get(generation_id=generation.pk, purpose="image")
    assert "prohibited content" in attempt.error and attempt.outcome == "permanent"


def test_the_first_poll_comes_at_the_providers_median_time_plus_a_margin(fake, kie_org, settings):
    membership, seedream = kie_org
    for seconds in (8, 10, 12):
        ProviderAttempt.objects.create(
            provider=seedream, purpose="result", outcome="success", latency_ms=seconds * 1000
        )
    generation = prepared(membership, seedream)
    image = generation.images.get()

    before = timezone.now()
    submit.submit_image(image.pk)

    image.refresh_from_db()
    delay = (image.next_poll_at - before).total_seconds()
    assert 12.3 <= delay <= 13  # p50 10 s + a quarter of it


def test_without_observations_the_first_poll_comes_at_the_configured_bound(fake, kie_org):
    membership, seedream = kie_org
    image = prepared(membership, seedream).images.get()

    before = timezone.now()
    submit.submit_image(image.pk)

    image.refresh_from_db()
    assert 19.5 <= (image.next_poll_at - before).total_seconds() <= 21


def test_a_finished_image_records_how_long_the_provider_took(client, fake, kie_org):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    image = generation.images.get()
    reports_success(fake, image)

    results.collect_result(image.pk)

    result = ProviderAttempt.objects.get(generation_id=generation.pk, purpose="result")
    assert result.outcome == "success" and result.latency_ms >= 0
    cache.clear()  # the median is cached for a minute
    assert result_latency_p50(seedream) is not None


def collected(fake, generation, index=0, body=None):
    """Collect image `index`, whose provider reports its result at r.png (served as `body`)."""
    image = generation.images.get(index=index)
    reports_success(fake, image)
    if body is not None:
        fake.replace(
            responses.GET,
            "https://tempfile.aiquickdraw.com/r.png",
            body=body,
            content_type="image/png",
        )
    if results.collect_result(image.pk):
        results.add_thumbnail(image.pk)  # the task the collection queues (tasks.collect_result)
    fake.remove(responses.GET, f"{KIE}/api/v1/jobs/recordInfo")
    image.refresh_from_db()
    return image


def queued_tasks(callbacks) -> list[tuple[str, dict]]:
    """The Celery tasks among on-commit callbacks (lib.tasks.enqueue with a broker:
    apply_async_on_commit)."""
    return [
        (c.func.__self__.name, c.keywords["kwargs"])
        for c in callbacks
        if getattr(getattr(c, "func", None), "__name__", "") == "apply_async"
    ]


def test_the_collection_queues_the_thumbnail_once_the_result_is_stored(
    fake, kie_org, settings, memory_broker, django_capture_on_commit_callbacks
):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    image = generation.images.get()
    reports_success(fake, image)

    with django_capture_on_commit_callbacks() as queued:
        tasks.collect_result(image.pk)
    image.refresh_from_db()
    assert (image.status, image.thumbnail.name) == ("done", "")  # done before any decoding
    assert queued_tasks(queued) == [("generation.tasks.add_thumbnail", {"image_id": image.pk})]
    with django_capture_on_commit_callbacks() as queued_again:
        tasks.collect_result(image.pk)  # a duplicate callback's collection
    assert queued_tasks(queued_again) == []

    tasks.add_thumbnail(image.pk)  # what the queued task runs
    tasks.add_thumbnail(image.pk)  # and a redelivery of it: nothing more

    image.refresh_from_db()
    with default_storage.open(image.thumbnail.name) as f, Image.open(f) as thumbnail:
        assert max(thumbnail.size) == settings.NERSTUDIO_THUMBNAIL_SIDE
    thumbs = PurePosixPath(image.thumbnail.name)
    assert default_storage.listdir(str(thumbs.parent))[1] == [thumbs.name]


def test_a_result_is_shown_as_done_before_its_thumbnail_is_decoded(
    fake, kie_org, settings, monkeypatch
):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    shown = []
    monkeypatch.setattr(
        results.live,
        "push_image",
        lambda image: shown.append(
            GenerationImage.objects.values_list("status", "thumbnail").get(pk=image.pk)
        ),
    )

    image = collected(fake, generation)

    assert shown == [("done", "")]  # pushed to the page before the decoding began
    assert image.status == "done" and (image.width, image.height) == (640, 800)
    assert image.thumbnail.name == f"{PurePosixPath(image.file.name).parent}/thumbs/" + (
        f"{PurePosixPath(image.file.name).stem}.webp"
    )
    with default_storage.open(image.thumbnail.name) as f, Image.open(f) as thumbnail:
        assert thumbnail.format == "WEBP"
        assert max(thumbnail.size) == settings.NERSTUDIO_THUMBNAIL_SIDE


def test_a_jpeg_result_gets_its_thumbnail_from_a_scaled_decode(fake, kie_org, settings):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)

    image = collected(fake, generation, body=png_bytes("#2980b9", (1600, 2000), fmt="JPEG"))

    assert image.file.name.endswith(".jpg") and image.thumbnail.name.endswith(".webp")
    with default_storage.open(image.thumbnail.name) as f, Image.open(f) as thumbnail:
        assert max(thumbnail.size) == settings.NERSTUDIO_THUMBNAIL_SIDE


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="a PNG cut in half"),
        pytest.param(lambda data: data[:-20], id="a PNG without its end"),
        pytest.param(
            lambda data: data[:200] + bytes([data[200] ^ 0xFF]) + data[201:], id="a flipped byte"
        ),
        pytest.param(
            lambda _: png_bytes("#2980b9", (640, 800), fmt="JPEG")[:-3000], id="a JPEG cut short"
        ),
    ],
)
def test_a_cut_or_damaged_result_is_refused_and_refunded(fake, kie_org, damage):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)

    image = collected(fake, generation, body=damage(png_bytes("#16a085", (640, 800))))

    assert image.status == "failed" and image.error == "The finished image could not be downloaded."
    attempt = ProviderAttempt.objects.get(generation_id=generation.pk, purpose="download")
    assert attempt.error.endswith(": the result is not a PNG, JPEG or WebP image")
    assert credits.balance_of(membership.org) == 100


def test_a_result_declaring_more_pixels_than_an_upload_may_have_is_refused_and_refunded(
    fake, kie_org, settings
):
    """A few kilobytes of PNG can declare a picture whose decoding takes gigabytes."""
    membership, seedream = kie_org
    settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS = 640 * 800 - 1  # the PNG limit, just below
    generation = run_until_submitted(membership, seedream, count=1)

    image = collected(fake, generation, body=png_bytes("#16a085", (640, 800)))

    assert image.status == "failed" and image.error == "The finished image could not be downloaded."
    attempt = ProviderAttempt.objects.get(generation_id=generation.pk, purpose="download")
    assert attempt.error.endswith(": the result has more pixels than allowed")
    assert credits.balance_of(membership.org) == 100


def test_a_result_whose_checksums_hold_but_pixels_do_not_decode_keeps_no_thumbnail(
    fake, kie_org, caplog
):
    """Only a provider sending such a file on purpose gets past the checksums; the image is
    then served as it came, and the failure is logged."""
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    header = (640).to_bytes(4, "big") + (800).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    forged = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"not deflate data at all" * 50)
        + png_chunk(b"IEND", b"")
    )

    image = collected(fake, generation, body=forged)

    assert image.status == "done" and image.thumbnail.name == ""
    assert f"No thumbnail for image {image.pk}: its result does not decode" in caplog.messages


def thumbnail_lost(image, minutes_ago):
    """`image` as a worker stopped between its result and its thumbnail leaves it, done
    `minutes_ago`."""
    default_storage.delete(image.thumbnail.name)
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    GenerationImage.objects.filter(pk=image.pk).update(thumbnail="", finished_at=finished)


def test_the_sweep_makes_the_thumbnail_a_stopped_worker_left_unmade(fake, kie_org, settings):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=3)
    lost, recent, old = (collected(fake, generation, index) for index in range(3))
    thumbnail_lost(lost, minutes_ago=5)
    thumbnail_lost(recent, minutes_ago=1)  # its collection may still be making it
    thumbnail_lost(old, minutes_ago=2 * 60)  # tried for an hour already

    assert tasks.add_missing_thumbnails() == 1

    assert [image.thumbnail.name for image in generation.images.order_by("index")][1:] == ["", ""]
    lost.refresh_from_db()
    with default_storage.open(lost.thumbnail.name) as f, Image.open(f) as thumbnail:
        assert thumbnail.format == "WEBP"
        assert max(thumbnail.size) == settings.NERSTUDIO_THUMBNAIL_SIDE
    assert tasks.add_missing_thumbnails() == 0  # made once, and no stray copy
    thumbs = PurePosixPath(lost.thumbnail.name)
    assert default_storage.listdir(str(thumbs.parent))[1] == [thumbs.name]


def test_a_thumbnail_made_meanwhile_is_kept_and_the_late_copy_removed(fake, kie_org):
    """The sweep and a collection (or two sweeps) making the same thumbnail: the first stays,
    the second copy leaves no stray file and is not counted."""
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)
    image = collected(fake, generation)
    with default_storage.open(image.file.name) as stored:
        data = stored.read()

    assert results._add_thumbnail(image.pk, image.file.name, data) is False

    thumbs = PurePosixPath(image.thumbnail.name)
    assert GenerationImage.objects.get(pk=image.pk).thumbnail.name == str(thumbs)
    assert default_storage.listdir(str(thumbs.parent))[1] == [thumbs.name]


def test_the_sweep_skips_an_image_whose_file_is_gone_and_goes_on(fake, kie_org, caplog):
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=2)
    gone, lost = (collected(fake, generation, index) for index in range(2))
    for image in (gone, lost):
        thumbnail_lost(image, minutes_ago=5)
    default_storage.delete(gone.file.name)

    assert results.add_missing_thumbnails() == 1

    assert f"No thumbnail for image {gone.pk}: its file cannot be read" in caplog.messages
    assert GenerationImage.objects.get(pk=lost.pk).thumbnail.name != ""


def test_the_sweep_is_scheduled_on_the_maintenance_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["add-missing-thumbnails"]
    assert settings.CELERY_TASK_ROUTES[entry["task"]] == {"queue": "maintenance"}
    assert tasks.add_missing_thumbnails.name == entry["task"]


def test_submitting_an_image_costs_a_fixed_number_of_queries(
    fake, kie_org, django_assert_num_queries
):
    """The image with its generation and model, its claim, the product photos, the provider's
    time on record, the submitted state: 5 statements. The references' palette was written on
    the generation with the prompts; the product's upload URL and the provider's time to a
    result come from the cache."""
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=1)  # the caches filled
    generation = started(
        membership,
        seedream,
        3,
        products=list(generation.products.all()),
        references=list(generation.references.all()),
    )
    prompts.write_prompts(generation.pk)

    for image in generation.images.order_by("index"):
        with django_assert_num_queries(5):
            submit.submit_image(image.pk)

    assert set(generation.images.values_list("status", flat=True)) == {"generating"}


def test_the_references_palette_is_written_once_with_the_prompts(fake, kie_org):
    membership, seedream = kie_org

    generation = run_until_submitted(membership, seedream, count=1)

    generation.refresh_from_db()
    assert generation.palette == ["#d35400"]  # the vision model's answer (fixture)
    assert ReferenceAnalysis.objects.get(org=membership.org).palette == ["#d35400"]


def test_the_page_is_sent_the_references_descriptions_once_they_are_analysed(
    fake, kie_org, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(live, "_send", lambda public_id, message: sent.append(message))
    membership, seedream = kie_org
    generation = started(membership, seedream, 1, references=[validated("#e67e22", (100, 100))])

    with django_capture_on_commit_callbacks(execute=True):
        prompts.write_prompts(generation.pk)

    # Analysing, writing (the descriptions are in), generating.
    assert [m.get("sources", False) for m in sent] == [False, True, False]


def test_collecting_results_costs_a_fixed_number_of_queries(
    fake, kie_org, django_assert_num_queries
):
    """The image, its claim, storing it, paying for it (the account, the ledger entry; a
    capture leaves the balance as it is), a look for an image still unfinished (and, for the
    last one, finishing the generation), the provider's time: 7 statements (8 for the last),
    and the savepoints of the payment's transaction (4 inside a test's). The thumbnail is a
    task of its own."""
    membership, seedream = kie_org
    generation = run_until_submitted(membership, seedream, count=2)
    images = list(generation.images.order_by("index"))
    fake.add_callback(
        responses.GET,
        f"{KIE}/api/v1/jobs/recordInfo",
        callback=lambda request: (
            200,
            {},
            json.dumps(
                record(
                    request.params["taskId"],
                    "success",
                    ["https://tempfile.aiquickdraw.com/r.png"],
                )
            ),
        ),
    )

    for image, statements in zip(images, (11, 12), strict=True):
        with django_assert_num_queries(statements):
            results.collect_result(image.pk)

    generation.refresh_from_db()
    assert generation.status == "done" and generation.finished_at is not None


def test_a_reference_no_vision_provider_could_describe_is_named_on_the_generation(
    fake, kie_org, client
):
    membership, seedream = kie_org
    membership.org.providers.filter(adapter="local-vision").update(enabled=False)
    clear_registry()
    fake.replace(responses.POST, OPENAI_CHAT, status=401, json={"error": {"message": "bad key"}})

    generation = run_until_submitted(membership, seedream, count=1)

    generation.refresh_from_db()
    notice = "Reference 1 could not be analysed; it was used without its description."
    assert notice in generation.notices
    assert ProviderAttempt.objects.filter(generation_id=generation.pk, purpose="vision").exists()
    client.force_login(membership.user)
    assert notice in client.get(f"/generations/{generation.public_id}/").content.decode()
