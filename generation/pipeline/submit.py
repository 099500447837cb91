"""Submitting one image to the image provider (the submit_image task), with an unguessable
per-image callback URL. A transient provider error puts the image back to waiting and raises
lib.tasks.TryLater with a backoff, for as long as the image's deadline allows."""

import hashlib
import logging
import random
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from generation import live
from generation.models import Generation, GenerationImage
from generation.pipeline.results import fail_image, member_reason, ms_since
from lib import fetch_urls
from lib.tasks import TryLater
from lib.tokens import hash_token, new_token
from library.models import SourceImage
from providers import attempts, health
from providers.adapters.errors import ProviderError
from providers.adapters.types import ImageJobRequest
from providers.fairshare import provider_slot
from providers.models import Provider

logger = logging.getLogger(__name__)

ImageStatus = GenerationImage.Status
RETRY_BACKOFF_CAP = 60.0
# A provider upload's URL is reused this long (kie.ai keeps uploads for 3 days).
UPLOAD_REUSE_SECONDS = 24 * 3600


def submit_image(image_id: int) -> None:
    """Submit a waiting image, within the organization's share of provider calls (or TryLater).
    Does nothing for an image submitted before (a redelivered message) or already finished."""
    image = (
        GenerationImage.objects.select_related("generation__provider__catalogue")
        .filter(pk=image_id, status=ImageStatus.WAITING)
        .first()
    )
    if image is None:
        return  # submitted before (redelivery) or already finished
    with provider_slot(image.generation.org_id):
        _submit_image(image)


def _submit_image(image: GenerationImage) -> None:
    token = new_token()
    now = timezone.now()
    # The first submission sets the deadline; retries live within it.
    deadline = image.deadline_at or now + timedelta(
        seconds=settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS
    )
    claimed = GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.WAITING).update(
        status=ImageStatus.SUBMITTING,
        callback_token_hash=hash_token(token),
        submitted_at=now,
        deadline_at=Coalesce("deadline_at", Value(deadline)),
    )
    if not claimed:
        return  # submitted meanwhile (a redelivery, reconcile) or already finished
    generation = image.generation
    provider = generation.provider
    if provider is None:
        fail_image(image.pk, "The image model was removed before this image was submitted.")
        return
    adapter = provider.build()
    started = time.monotonic()
    try:
        urls = tuple(_product_url(adapter, p) for p in generation.products.all())
        submitted = adapter.submit(
            ImageJobRequest(
                prompt=image.prompt or generation.prompt,
                image_urls=urls,
                aspect_ratio=generation.aspect_ratio,
                quality=generation.quality or None,
                callback_url=callback_url(image, token),
                palette=tuple(generation.palette),
            )
        )
    except ProviderError as exc:
        attempts.record_attempt(
            provider, "image", exc, latency_ms=ms_since(started), generation_id=generation.pk
        )
        wait = retry_delay(image.submit_attempts, exc.retry_after)
        if exc.retryable and timezone.now() + timedelta(seconds=wait) < deadline:
            # A transient error (network, 429, 5xx): back to waiting, and again after a backoff
            # (or the provider's Retry-After) for as long as the image's deadline allows.
            GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.SUBMITTING).update(
                status=ImageStatus.WAITING, submit_attempts=F("submit_attempts") + 1
            )
            raise TryLater(wait) from None
        fail_image(image.pk, member_reason(exc))
        return
    except BaseException:
        # Anything else (a lost database connection, the task's time limit): back to waiting,
        # for reconcile to submit again, rather than "submitting" until the deadline.
        GenerationImage.objects.filter(
            pk=image.pk, status=ImageStatus.SUBMITTING, provider_task_id=""
        ).update(status=ImageStatus.WAITING)
        raise
    attempts.record_attempt(
        provider, "image", None, latency_ms=ms_since(started), generation_id=generation.pk
    )
    GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.SUBMITTING).update(
        status=ImageStatus.GENERATING,
        provider_task_id=submitted.task_id,
        polls=0,
        next_poll_at=timezone.now() + timedelta(seconds=first_poll_after(provider)),
    )
    live.push_image(image)


def callback_url(image: GenerationImage, token: str) -> str:
    return settings.NERSTUDIO_PUBLIC_URL + reverse(
        "generation:callback", args=[image.public_id, token]
    )


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before retrying a transient failure: the provider's Retry-After when it gives a
    sensible one, else 1, 2, 4 … 60 s with jitter."""
    if retry_after is not None and 0 < retry_after <= 120:
        return retry_after
    return min(RETRY_BACKOFF_CAP, 2.0**attempt) * random.uniform(0.8, 1.2)


def first_poll_after(provider: Provider) -> float:
    """When to ask about a result no callback reported: the provider's observed median time to
    a result plus a margin (a quarter, at least 2 s), within NERSTUDIO_POLL_MIN/AFTER_SECONDS;
    with nothing observed yet, NERSTUDIO_POLL_AFTER_SECONDS."""
    p50 = health.result_latency_p50(provider)
    if p50 is None:
        return settings.NERSTUDIO_POLL_AFTER_SECONDS
    after = p50 + max(2.0, p50 / 4)
    return min(
        max(after, settings.NERSTUDIO_POLL_MIN_SECONDS), settings.NERSTUDIO_POLL_AFTER_SECONDS
    )


def _product_url(adapter, source: SourceImage) -> str:
    """A URL the provider can fetch: a short-lived presigned URL with a bucket (R2/S3); without
    one, the provider's own upload API when it has one (this server may not be reachable from
    it), otherwise a short-lived URL signed for this one file. An upload is reused (cached) for
    the next images of the generation, and the next generations using the same photo."""
    if not _uploads_to_provider(adapter):
        return fetch_urls.fetch_url(source.file.name or "")
    key = _upload_key(adapter, source)
    if url := cache.get(key):
        return url
    with source.file.open("rb") as fh:
        url = adapter.upload_file(fh.read(), f"{source.sha256}.{source.format.lower()}")
    cache.set(key, url, UPLOAD_REUSE_SECONDS)
    return url


def _uploads_to_provider(adapter) -> bool:
    return not fetch_urls.storage_presigns() and hasattr(adapter, "upload_file")


def _upload_key(adapter, source: SourceImage) -> str:
    """Per upload host and API key (an upload made with one account is not assumed to exist for
    another), per content."""
    host = getattr(adapter, "upload_base_url", "")
    api_key = getattr(getattr(adapter, "config", None), "api_key", "")
    account = hashlib.sha256(f"{host}|{api_key}".encode()).hexdigest()[:24]
    return f"nerstudio:provider-upload:{account}:{source.sha256}"


def stage_products(generation_id: int) -> None:
    """Upload the generation's product photos to its image provider (when it takes uploads)
    while the reference and prompt stage waits on other providers: each image's submission then
    finds the URL cached instead of uploading the same photo again, N times at once. Best effort
    and never waited for: whatever is not staged in time is uploaded by the submission."""
    generation = (
        Generation.objects.select_related("provider__catalogue")
        .filter(pk=generation_id)
        .exclude(status__in=[Generation.Status.DONE, Generation.Status.FAILED])
        .first()
    )
    if generation is None or generation.provider is None:
        return
    try:
        adapter = generation.provider.build()
    except Exception:  # an unusable model fails at submission, with its reason
        return
    if not _uploads_to_provider(adapter):
        return
    sources = [s for s in generation.products.all() if not cache.get(_upload_key(adapter, s))]
    if not sources:
        return
    try:
        with provider_slot(generation.org_id):  # an upload is a provider call like any other
            for source in sources:
                _product_url(adapter, source)
    except TryLater:
        return  # the organization's calls are all in use: the submissions upload
    except Exception:
        logger.info("Product photos not staged for the provider", exc_info=True)
