"""The generation pipeline.

start_generation (web request) stores the uploads, holds the credits and enqueues run_generation.
Celery tasks (generation/tasks.py) are thin wrappers over the functions below; every one takes
ids, claims its rows with a conditional UPDATE and can run twice without a second submission or a
second charge:

    run_generation   vision (parallel, cached by content hash) → LLM chain → submit_image × N
    submit_image     one image to the image provider, with an unguessable per-image callback URL
    collect_result   after a callback or a due poll: confirm with the provider's status endpoint,
                     download SSRF-safely, store image + thumbnail, capture credits
    reconcile        periodic: poll images without callback (backing off), fail and release past
                     the deadline, resume generations whose worker died
"""

import hashlib
import io
import logging
import random
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from generation import credits, live
from generation.downloads import DownloadError, download_image
from generation.models import (
    Generation,
    GenerationImage,
    ReferenceAnalysis,
    SourceImage,
    source_image_path,
)
from generation.uploads import CheckedUpload, ValidatedImage, ingest_image
from lib import ratelimit
from lib.tasks import TryLater, enqueue
from lib.tokens import hash_token, new_token
from providers import services as provider_services
from providers.adapters.base import (
    GenerationFailed,
    ImageJobRequest,
    ProviderError,
    VariantsRequest,
)
from providers.adapters.local import local_variants
from providers.chain import ChainFailed
from providers.fairshare import provider_slot
from providers.models import Provider

logger = logging.getLogger(__name__)

Status = Generation.Status
ImageStatus = GenerationImage.Status


class GenerationError(Exception):
    """A refused generation request, with a message safe to show the user."""


class TooManyGenerations(GenerationError):
    def __init__(self, retry_after: int, *, whole_org: bool):
        who = "Your organization is" if whole_org else "You are"
        super().__init__(
            f"{who} starting generations faster than allowed; try again in {retry_after} s."
        )
        self.retry_after = retry_after


def check_generate_rate(membership) -> None:
    """Count one generate request for the member and for the organization (shared cache), or
    raise TooManyGenerations with the time until the next one is allowed."""
    limits = [
        (f"member:{membership.user_id}", settings.NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE, False),
        (f"org:{membership.org_id}", settings.NERSTUDIO_GENERATE_PER_ORG_PER_MINUTE, True),
    ]
    for key, limit, whole_org in limits:
        if wait := ratelimit.hit(f"generate:{key}", limit=limit, window=60):
            raise TooManyGenerations(wait, whole_org=whole_org)


# --- Starting a generation (web request) ----------------------------------------------------------


def start_generation(
    *,
    membership,
    provider: Provider,
    prompt: str,
    count: int,
    aspect_ratio: str,
    quality: str,
    products: list[CheckedUpload | ValidatedImage],
    references: list[CheckedUpload | ValidatedImage],
) -> Generation:
    """Hold the credits, store the uploads and queue the pipeline, all or nothing.

    Uploads come header-checked from the form (CheckedUpload) and are decoded here, only after
    every cheaper check passed. Raises credits.InsufficientCredits or GenerationError (naming a
    file that cannot be decoded); nothing is stored or charged then.
    """
    offered = provider.enabled and provider.kind == "image" and provider.is_runnable
    visible = membership.is_admin or provider.visible_to_members
    if provider.org_id != membership.org_id or not (offered and visible):
        raise GenerationError("Choose one of your organization's enabled image models.")
    if not 1 <= count <= settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION:
        limit = settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION
        raise GenerationError(f"Generate between 1 and {limit} images.")
    if aspect_ratio not in provider.aspect_ratios:
        raise GenerationError(f"{provider} does not offer the aspect ratio {aspect_ratio}.")
    if provider.quality_levels and quality not in provider.quality_levels:
        raise GenerationError(f"{provider} does not offer the quality {quality}.")
    if not 1 <= len(products) <= provider.max_product_images:
        raise GenerationError(
            f"{provider} takes 1 to {provider.max_product_images} product images."
        )
    if len(references) > provider.max_reference_images:
        raise GenerationError(
            f"{provider} takes at most {provider.max_reference_images} references."
        )
    available = credits.balance_of(membership.org)
    if available < count * provider.credit_cost:
        raise credits.InsufficientCredits(needed=count * provider.credit_cost, available=available)
    # Only now are the images decoded and re-encoded (generation/uploads.py): one at a time per
    # process, each into a temporary file, so a damaged last file still leaves nothing stored.
    uploads = [*products, *references]
    images: list[ValidatedImage] = []
    try:
        for upload in uploads:
            try:
                images.append(ingest_image(upload))
            except ValidationError as exc:
                raise GenerationError(" ".join(exc.messages)) from None
        # Files first, outside the transaction: the hold below locks the org's credit account, and
        # no storage round trip should happen while it is held. Names are content hashes, so a
        # request that then loses a race for the last credits leaves at most a file a later upload
        # reuses.
        names = {image.sha256: _save_blob(membership.org, image) for image in images}
        with transaction.atomic():
            generation = Generation.objects.create(
                org_id=membership.org_id,
                user_id=membership.user_id,
                provider=provider,
                provider_name=provider.name,
                credit_cost=provider.credit_cost,
                prompt=prompt.strip(),
                aspect_ratio=aspect_ratio,
                quality=quality,
                count=count,
            )
            sources = [_source(membership, image, names[image.sha256]) for image in images]
            generation.products.set(sources[: len(products)])
            generation.references.set(sources[len(products) :])
            GenerationImage.objects.bulk_create(
                GenerationImage(generation=generation, index=i) for i in range(count)
            )
            credits.hold(generation=generation)  # raises InsufficientCredits: all rolled back
            from generation import tasks

            enqueue(tasks.run_generation, generation_id=generation.pk)
    finally:
        for upload, image in zip(uploads, images, strict=False):
            if image is not upload:
                image.close()  # our temporary file, not a caller's
    return generation


def _save_blob(org, image: ValidatedImage) -> str:
    """Store the (re-encoded) bytes once per organization under their content hash."""
    name = source_image_path(SourceImage(org=org, sha256=image.sha256, format=image.format), "")
    if not default_storage.exists(name):
        saved = default_storage.save(name, image.content())
        if saved != name:  # the same bytes arrived concurrently: keep one copy
            default_storage.delete(saved)
    return name


def _source(membership, image: ValidatedImage, name: str) -> SourceImage:
    source, _ = SourceImage.objects.get_or_create(
        org_id=membership.org_id,
        sha256=image.sha256,
        defaults={
            "file": name,
            "format": image.format,
            "width": image.width,
            "height": image.height,
            "size": image.size,
            "uploaded_by_id": membership.user_id,
        },
    )
    return source


# --- Stage 1 and 2: references and prompts --------------------------------------------------------


def run_generation(generation_id: int) -> None:
    org_id = (
        Generation.objects.filter(
            pk=generation_id, status__in=[Status.QUEUED, Status.ANALYSING, Status.WRITING]
        )
        .values_list("org_id", flat=True)
        .first()
    )
    if org_id is None:
        return  # already past these stages: a redelivered message
    with provider_slot(org_id):  # the organization's share of provider calls, or try later
        _run_generation(generation_id)


def _run_generation(generation_id: int) -> None:
    claimed = Generation.objects.filter(pk=generation_id, status=Status.QUEUED).update(
        status=Status.ANALYSING
    )
    generation = Generation.objects.select_related("org").get(pk=generation_id)
    if not claimed and generation.status not in (Status.ANALYSING, Status.WRITING):
        return  # already past these stages: a redelivered message
    live.push_generation(generation.pk)

    notes, notices = _analyse_references(generation)
    Generation.objects.filter(pk=generation.pk).update(
        status=Status.WRITING, reference_notes=notes, notices=notices, updated_at=timezone.now()
    )
    live.push_generation(generation.pk)

    variants, writer, more_notices = _write_prompts(generation, notes)
    images = list(generation.images.order_by("index"))
    for image, variant in zip(images, variants, strict=True):
        GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.WAITING).update(
            prompt=variant
        )
    Generation.objects.filter(pk=generation.pk, status=Status.WRITING).update(
        status=Status.GENERATING,
        prompt_writer=writer,
        notices=notices + more_notices,
        updated_at=timezone.now(),
    )
    live.push_generation(generation.pk)
    from generation import tasks

    for image in images:
        enqueue(tasks.submit_image, image_id=image.pk)


BUILT_IN_WRITER = "Built-in variations"


def _write_prompts(generation: Generation, notes: list[str]) -> tuple[tuple[str, ...], str, list]:
    """N prompts, who wrote them, and what the member should know. The last resort is never to
    fail: when every prompt writer failed, deterministic variations of the member's own prompt."""
    n = generation.count
    products = tuple(
        f"{p.format} photo, {p.width}×{p.height} px" for p in generation.products.all()
    )
    request = VariantsRequest(
        prompt=generation.prompt, n=n, references=tuple(notes), products=products
    )
    try:
        result = provider_services.write_variants(
            request, org_id=generation.org_id, generation_id=generation.pk
        )
    except ChainFailed:
        notice = "No prompt writer could answer, so the prompts are variations of your own prompt."
        return local_variants(request), BUILT_IN_WRITER, [notice]
    writer = Provider.objects.filter(pk=result.provider_id).values_list("name", flat=True)
    notices = []
    if varied := result.value.varied:
        notices.append(
            f"{n - varied} of {n} prompts came from the prompt writer; the other {varied} are "
            "variations of them."
        )
    return result.value.variants, writer.first() or "", notices


def _analyse_references(generation: Generation) -> tuple[list[str], list[str]]:
    """Descriptions of the references, from the per-org cache or the vision chain (in parallel),
    and a notice for each reference no vision provider could describe: it is used without its
    description rather than failing the whole generation."""
    through = Generation.references.through.objects.filter(generation_id=generation.pk)
    references = [row.sourceimage for row in through.select_related("sourceimage").order_by("pk")]
    cached = {
        a.sha256: a.description
        for a in ReferenceAnalysis.objects.filter(
            org_id=generation.org_id, sha256__in=[r.sha256 for r in references]
        )
    }
    missing = list({r.sha256: r for r in references if r.sha256 not in cached}.values())
    images = []
    for reference in missing:
        with reference.file.open("rb") as fh:
            images.append(fh.read())
    outcomes = provider_services.describe_references(
        org_id=generation.org_id, images=images, generation_id=generation.pk
    )
    for reference, outcome in zip(missing, outcomes, strict=True):
        if isinstance(outcome, ChainFailed):
            continue  # the attempts are in the lineage; the notice below tells the member
        ReferenceAnalysis.objects.get_or_create(
            org_id=generation.org_id,
            sha256=reference.sha256,
            defaults={
                "description": outcome.value.description,
                "palette": list(outcome.value.palette),
                "provider_id": outcome.provider_id,
            },
        )
        cached[reference.sha256] = outcome.value.description
    notices = [
        f"Reference {number} could not be analysed; it was used without its description."
        for number, r in enumerate(references, start=1)
        if r.sha256 not in cached
    ]
    return [cached[r.sha256] for r in references if r.sha256 in cached], notices


# --- Stage 3: submitting images -------------------------------------------------------------------


def callback_url(image: GenerationImage, token: str) -> str:
    return settings.NERSTUDIO_PUBLIC_URL + reverse(
        "generation:callback", args=[image.public_id, token]
    )


def submit_image(image_id: int) -> None:
    org_id = (
        GenerationImage.objects.filter(pk=image_id, status=ImageStatus.WAITING)
        .values_list("generation__org_id", flat=True)
        .first()
    )
    if org_id is None:
        return  # submitted before (redelivery) or already finished
    with provider_slot(org_id):
        _submit_image(image_id)


def _submit_image(image_id: int) -> None:
    token = new_token()
    now = timezone.now()
    claimed = GenerationImage.objects.filter(pk=image_id, status=ImageStatus.WAITING).update(
        status=ImageStatus.SUBMITTING,
        callback_token_hash=hash_token(token),
        submitted_at=now,
        # The first submission sets the deadline; retries live within it.
        deadline_at=Coalesce(
            "deadline_at", Value(now + timedelta(seconds=settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS))
        ),
    )
    if not claimed:
        return  # submitted before (redelivery) or already finished
    image = GenerationImage.objects.select_related("generation__provider__catalogue").get(
        pk=image_id
    )
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
                palette=_reference_palette(generation),
            )
        )
    except ProviderError as exc:
        provider_services.record_attempt(
            provider, "image", exc, latency_ms=_ms_since(started), generation_id=generation.pk
        )
        wait = retry_delay(image.submit_attempts, exc.retry_after)
        if exc.retryable and timezone.now() + timedelta(seconds=wait) < image.deadline_at:
            # A transient error (network, 429, 5xx): back to waiting, and again after a backoff
            # (or the provider's Retry-After) for as long as the image's deadline allows.
            GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.SUBMITTING).update(
                status=ImageStatus.WAITING, submit_attempts=F("submit_attempts") + 1
            )
            raise TryLater(wait) from None
        fail_image(image.pk, member_reason(exc))
        return
    provider_services.record_attempt(
        provider, "image", None, latency_ms=_ms_since(started), generation_id=generation.pk
    )
    GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.SUBMITTING).update(
        status=ImageStatus.GENERATING,
        provider_task_id=submitted.task_id,
        polls=0,
        next_poll_at=timezone.now() + timedelta(seconds=first_poll_after(provider)),
    )
    live.push_image(image.pk)


RETRY_BACKOFF_CAP = 60.0


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
    p50 = provider_services.result_latency_p50(provider)
    if p50 is None:
        return settings.NERSTUDIO_POLL_AFTER_SECONDS
    after = p50 + max(2.0, p50 / 4)
    return min(
        max(after, settings.NERSTUDIO_POLL_MIN_SECONDS), settings.NERSTUDIO_POLL_AFTER_SECONDS
    )


def member_reason(exc: ProviderError) -> str:
    """What a member is told about a failed image: short and safe. The provider's own text, the
    HTTP status and the request id go to the admins (the attempt record and provider health)."""
    if isinstance(exc, GenerationFailed):
        return "The image service could not generate this image."
    if exc.retryable:
        return "The image service is unavailable."
    return "The image service refused the request."


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _reference_palette(generation: Generation) -> tuple[str, ...]:
    shas = [r.sha256 for r in generation.references.all()]
    palettes = ReferenceAnalysis.objects.filter(org_id=generation.org_id, sha256__in=shas)
    colours = [colour for p in palettes.values_list("palette", flat=True) for colour in p]
    return tuple(dict.fromkeys(c if isinstance(c, str) else c[0] for c in colours))[:6]


def _product_url(adapter, source: SourceImage) -> str:
    """A URL the provider can fetch: a short-lived presigned URL with a bucket (R2/S3); without
    one, the provider's own upload API when it has one (this server may not be reachable from
    it), otherwise a short-lived URL signed for this one file."""
    from gallery import media

    if media.storage_presigns() or not hasattr(adapter, "upload_file"):
        return media.fetch_url(source.file.name)
    with source.file.open("rb") as fh:
        return adapter.upload_file(fh.read(), f"{source.sha256}.{source.format.lower()}")


# --- Stage 4: results -----------------------------------------------------------------------------


def find_image_for_callback(public_id, token: str) -> GenerationImage | None:
    """The image whose callback URL carries `token`; None for an unknown or forged token."""
    token_hash = hash_token(token)
    image = (
        GenerationImage.objects.select_related("generation__provider__catalogue")
        .filter(public_id=public_id, callback_token_hash=token_hash)
        .first()
    )
    return image


def collect_result(image_id: int) -> None:
    """Ask the provider for the image's state (never trusting a callback body) and act on it.

    The image is claimed first (a lease, `collecting_until`), so of several duplicate callbacks
    arriving at once exactly one downloads and stores the result."""
    org_id = (
        GenerationImage.objects.filter(pk=image_id, status=ImageStatus.GENERATING)
        .values_list("generation__org_id", flat=True)
        .first()
    )
    if org_id is None:
        return  # finished before: a duplicate or late callback
    with provider_slot(org_id):
        now = timezone.now()
        claimed = (
            GenerationImage.objects.filter(pk=image_id, status=ImageStatus.GENERATING)
            .filter(Q(collecting_until__isnull=True) | Q(collecting_until__lt=now))
            .update(collecting_until=now + timedelta(seconds=COLLECT_LEASE_SECONDS))
        )
        if not claimed:
            return  # another worker is collecting it right now
        try:
            _collect_result(image_id)
        finally:
            GenerationImage.objects.filter(pk=image_id).update(collecting_until=None)


COLLECT_LEASE_SECONDS = 300  # a poll and a download, each bounded well below this


def _collect_result(image_id: int) -> None:
    image = GenerationImage.objects.select_related("generation__provider__catalogue").get(
        pk=image_id
    )
    provider = image.generation.provider
    if provider is None:
        fail_image(image.pk, "The image model was removed while generating.")
        return
    started = time.monotonic()
    try:
        status = provider.build().poll(image.provider_task_id)
    except ProviderError as exc:
        provider_services.record_attempt(
            provider, "poll", exc, latency_ms=_ms_since(started), generation_id=image.generation_id
        )
        if not exc.retryable:
            fail_image(image.pk, member_reason(exc))
        return  # retryable: the next poll tries again, until the image's deadline
    if status.state == "pending":
        return
    if status.state == "failed" or not status.result_urls:
        failure = GenerationFailed(status.error or "No result.", code=status.error_code or None)
        provider_services.record_attempt(
            provider, "result", failure, generation_id=image.generation_id
        )
        fail_image(image.pk, member_reason(failure))
        return
    try:
        data = download_image(status.result_urls[0])
    except DownloadError as exc:
        provider_services.record_download_failure(
            provider, str(exc), generation_id=image.generation_id
        )
        fail_image(image.pk, "The finished image could not be downloaded.")
        return
    if _store_result(image, data):
        waited = (timezone.now() - image.submitted_at).total_seconds() if image.submitted_at else 0
        provider_services.record_attempt(
            provider, "result", None, latency_ms=int(waited * 1000),
            generation_id=image.generation_id,
        )  # fmt: skip


def _store_result(image: GenerationImage, data: bytes) -> bool:
    """Store the result and capture the image's credits; False if it was finished before."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        width, height = im.size
        thumb = im.convert("RGB")
        thumb.thumbnail((settings.NERSTUDIO_THUMBNAIL_SIDE,) * 2)
        thumb_bytes = io.BytesIO()
        thumb.save(thumb_bytes, "WEBP", quality=82)
        ext = (im.format or "PNG").lower().replace("jpeg", "jpg")
    digest = hashlib.sha256(data).hexdigest()
    name = default_storage.save(f"generated/{image.generation.org.public_id}/{digest}.{ext}",
                                ContentFile(data))  # fmt: skip
    thumb_name = default_storage.save(
        f"generated/{image.generation.org.public_id}/thumbs/{digest}.webp",
        ContentFile(thumb_bytes.getvalue()),
    )
    with transaction.atomic():
        done = GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.GENERATING).update(
            status=ImageStatus.DONE, file=name, thumbnail=thumb_name, width=width, height=height,
            finished_at=timezone.now(), next_poll_at=None,
        )  # fmt: skip
        if done:
            credits.capture(image=image)
    if done:
        live.push_image(image.pk)
        _finish_generation_if_complete(image.generation_id)
    return bool(done)


def fail_image(image_id: int, reason: str) -> bool:
    """Fail an unfinished image and release its credits; False if it had already finished."""
    image = GenerationImage.objects.select_related("generation").get(pk=image_id)
    with transaction.atomic():
        failed = (
            GenerationImage.objects.filter(pk=image_id)
            .exclude(status__in=[ImageStatus.DONE, ImageStatus.FAILED])
            .update(
                status=ImageStatus.FAILED,
                error=reason[:1000],
                finished_at=timezone.now(),
                next_poll_at=None,
            )
        )
        if failed:
            credits.release(image=image, note=reason)
    if failed:
        live.push_image(image_id)
        _finish_generation_if_complete(image.generation_id)
    return bool(failed)


def fail_generation(generation_id: int, reason: str) -> None:
    Generation.objects.filter(pk=generation_id).update(error=reason[:1000])
    for image_id in GenerationImage.objects.filter(generation_id=generation_id).values_list(
        "pk", flat=True
    ):
        fail_image(image_id, reason)
    _finish_generation_if_complete(generation_id)


def _finish_generation_if_complete(generation_id: int) -> None:
    unfinished = GenerationImage.objects.filter(generation_id=generation_id).exclude(
        status__in=[ImageStatus.DONE, ImageStatus.FAILED]
    )
    if unfinished.exists():
        return
    any_done = GenerationImage.objects.filter(
        generation_id=generation_id, status=ImageStatus.DONE
    ).exists()
    finished = (
        Generation.objects.filter(pk=generation_id)
        .exclude(status__in=[Status.DONE, Status.FAILED])
        .update(status=Status.DONE if any_done else Status.FAILED, finished_at=timezone.now())
    )
    if finished:
        live.push_generation(generation_id)


# --- Reconciliation -------------------------------------------------------------------------------


def reconcile(now=None) -> dict[str, int]:
    """Poll images whose callback is late, fail those past their deadline, and resume
    generations whose worker stopped. Safe to run in several processes at once."""
    from generation import tasks

    now = now or timezone.now()
    counts = {"polled": 0, "timed_out": 0, "resumed": 0}

    overdue = GenerationImage.objects.filter(
        ~Q(status__in=[ImageStatus.DONE, ImageStatus.FAILED, ImageStatus.WAITING]),
        deadline_at__lt=now,
    ).values_list("pk", flat=True)
    for image_id in overdue:
        minutes = settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS // 60
        if fail_image(image_id, f"No result within {minutes} minutes."):
            counts["timed_out"] += 1

    due = GenerationImage.objects.filter(status=ImageStatus.GENERATING, next_poll_at__lte=now)
    for image_id, polls in due.values_list("pk", "polls"):
        backoff = min(settings.NERSTUDIO_POLL_MIN_SECONDS * 2**polls, 60)
        claimed = GenerationImage.objects.filter(
            pk=image_id, status=ImageStatus.GENERATING, next_poll_at__lte=now
        ).update(next_poll_at=now + timedelta(seconds=backoff), polls=F("polls") + 1)
        if claimed:  # another reconciler did not take it first
            enqueue(tasks.collect_result, image_id=image_id)
            counts["polled"] += 1

    # Images never submitted although their generation reached the image stage (the worker died
    # between writing the prompts and queueing the submissions): submit them, or give up.
    waiting = GenerationImage.objects.filter(
        status=ImageStatus.WAITING,
        generation__status=Status.GENERATING,
        generation__updated_at__lt=now
        - timedelta(seconds=settings.NERSTUDIO_STALLED_AFTER_SECONDS),
    )
    deadline = now - timedelta(seconds=settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS)
    for image_id, created_at in waiting.values_list("pk", "generation__created_at"):
        if created_at < deadline:
            if fail_image(image_id, "The image was never submitted."):
                counts["timed_out"] += 1
        else:
            enqueue(tasks.submit_image, image_id=image_id)
            counts["resumed"] += 1

    stalled = Generation.objects.filter(
        status__in=[Status.QUEUED, Status.ANALYSING, Status.WRITING],
        updated_at__lt=now - timedelta(seconds=settings.NERSTUDIO_STALLED_AFTER_SECONDS),
    )
    for generation_id in stalled.values_list("pk", flat=True):
        Generation.objects.filter(pk=generation_id).update(updated_at=now)
        enqueue(tasks.run_generation, generation_id=generation_id)
        counts["resumed"] += 1
    for generation_id in Generation.objects.filter(
        status__in=[Status.QUEUED, Status.ANALYSING, Status.WRITING],
        created_at__lt=now - timedelta(seconds=settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS),
    ).values_list("pk", flat=True):
        fail_generation(generation_id, "The generation did not start in time.")
    return counts
