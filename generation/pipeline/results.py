"""Results: finding the image a callback is for, collecting a reported result (the collect_result
task), and finishing images and generations, with the credits captured or released."""

import hashlib
import io
import logging
import time
from datetime import timedelta
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.utils import timezone
from PIL import Image

from credits import services as credit_services
from generation import live
from generation.downloads import TOTAL_SECONDS as DOWNLOAD_SECONDS
from generation.downloads import DownloadError, download_image
from generation.models import Generation, GenerationImage
from lib.low_priority import run_at_low_priority
from lib.tokens import hash_token
from library.uploads import ALLOWED_FORMATS, webp_thumbnail
from providers import attempts
from providers.adapters.errors import GenerationFailed, ProviderError
from providers.fairshare import provider_slot

logger = logging.getLogger(__name__)

Status = Generation.Status
ImageStatus = GenerationImage.Status
# The thumbnail sweep's window (add_missing_thumbnails).
THUMBNAIL_SWEEP_AFTER = timedelta(minutes=2)
THUMBNAIL_SWEEP_WITHIN = timedelta(hours=1)
THUMBNAIL_SWEEP_BATCH = 100  # per round
# A collection's lease: the poll (the model's timeout), the download (downloads.TOTAL_SECONDS)
# and storing the result. A worker that dies mid-collection holds the image no longer than this.
STORE_SECONDS = 30


def find_image_for_callback(public_id, token: str) -> GenerationImage | None:
    """The image whose callback URL carries `token`; None for an unknown or forged token."""
    return (
        GenerationImage.objects.select_related("generation__provider__catalogue")
        .filter(public_id=public_id, callback_token_hash=hash_token(token))
        .first()
    )


def collect_result(image_id: int) -> bool:
    """Ask the provider for the image's state (never trusting a callback body) and act on it;
    True when this call stored the result (its thumbnail is to be made: add_thumbnail).

    The image is claimed first (a lease, `collecting_until`), so of several duplicate callbacks
    arriving at once exactly one downloads and stores the result. The organization's provider
    slot is held for the provider calls (the poll and the download) only: storing the result is
    our own work, and holding a slot through it made the images beyond
    NERSTUDIO_ORG_MAX_INFLIGHT wait for a slot and be sent back (TryLater) for up to a second."""
    image = (
        GenerationImage.objects.select_related("generation__provider__catalogue", "generation__org")
        .filter(pk=image_id, status=ImageStatus.GENERATING)
        .first()
    )
    if image is None:
        return False  # finished before: a duplicate or late callback
    provider = image.generation.provider
    timeout = provider.timeout_seconds if provider is not None else 0
    lease = timedelta(seconds=(timeout or 0) + DOWNLOAD_SECONDS + STORE_SECONDS)
    with provider_slot(image.generation.org_id):
        now = timezone.now()
        claimed = (
            GenerationImage.objects.filter(pk=image_id, status=ImageStatus.GENERATING)
            .filter(Q(collecting_until__isnull=True) | Q(collecting_until__lt=now))
            .update(collecting_until=now + lease)
        )
        if not claimed:
            return False  # another worker is collecting it right now
        try:
            data = _fetch_result(image)
        except BaseException:
            _end_lease(image_id)
            raise
    stored = False
    try:
        stored = data is not None and _store_result(image, data)
    finally:
        if not stored:  # a stored image's lease ended with it
            _end_lease(image_id)
    return stored


def _end_lease(image_id: int) -> None:
    GenerationImage.objects.filter(pk=image_id).update(collecting_until=None)


def _fetch_result(image: GenerationImage) -> bytes | None:
    """The provider calls: the image's state, and its result downloaded (and checked: see
    generation.downloads). None when there is nothing to store (still pending, failed, or a
    poll to retry later)."""
    provider = image.generation.provider
    if provider is None:
        fail_image(image.pk, "The image model was removed while generating.")
        return None
    started = time.monotonic()
    try:
        status = provider.build().poll(image.provider_task_id)
    except ProviderError as exc:
        attempts.record_attempt(
            provider, "poll", exc, latency_ms=ms_since(started), generation_id=image.generation_id
        )
        if not exc.retryable:
            fail_image(image.pk, member_reason(exc))
        return None  # retryable: the next poll tries again, until the image's deadline
    if status.state == "pending":
        return None
    if status.state == "failed" or not status.result_urls:
        failure = GenerationFailed(status.error or "No result.", code=status.error_code or None)
        attempts.record_attempt(provider, "result", failure, generation_id=image.generation_id)
        fail_image(image.pk, member_reason(failure))
        return None
    try:
        return download_image(status.result_urls[0])
    except DownloadError as exc:
        attempts.record_download_failure(provider, str(exc), generation_id=image.generation_id)
        fail_image(image.pk, "The finished image could not be downloaded.")
        return None


def _store_result(image: GenerationImage, data: bytes) -> bool:
    """Store a downloaded result, pay for it, show it and record the provider's time to the
    result; False if the image was finished before. download_image has checked the bytes, so
    only the header is read here: the thumbnail is made afterwards (add_thumbnail, a task of its
    own), and until then the image serves as its own."""
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as im:
        width, height = im.size
        ext = (im.format or "PNG").lower().replace("jpeg", "jpg")
    digest = hashlib.sha256(data).hexdigest()
    generation = image.generation
    folder = f"generated/{generation.org.public_id}"
    name = default_storage.save(f"{folder}/{digest}.{ext}", ContentFile(data))
    with transaction.atomic():
        done = GenerationImage.objects.filter(pk=image.pk, status=ImageStatus.GENERATING).update(
            status=ImageStatus.DONE,
            file=name,
            width=width,
            height=height,
            finished_at=timezone.now(),
            next_poll_at=None,
            collecting_until=None,
        )
        if done:
            credit_services.capture(image=image)
    if not done:
        return False
    live.push_image(image)
    _finish_generation_if_complete(generation)
    if generation.provider is not None:  # always, as _fetch_result needs one: for the types
        waited = (timezone.now() - image.submitted_at).total_seconds() if image.submitted_at else 0
        attempts.record_attempt(
            generation.provider,
            "result",
            None,
            latency_ms=int(waited * 1000),
            generation_id=generation.pk,
        )
    return True


def add_thumbnail(image_id: int) -> bool:
    """The thumbnail of a done image that has none, from its stored file; False if none was made
    (it has one, or its file cannot be read or decoded: logged). Decoding a result costs more
    than everything else its collection does (30–60 ms for a 1.9 MB PNG), so it is not done
    while the collection's worker could be storing the next result."""
    name = (
        GenerationImage.objects.filter(pk=image_id, status=ImageStatus.DONE, thumbnail="")
        .exclude(file="")
        .values_list("file", flat=True)
        .first()
    )
    if name is None:
        return False
    try:
        with default_storage.open(name) as stored:
            data = stored.read()
    except OSError:
        logger.warning("No thumbnail for image %s: its file cannot be read", image_id)
        return False
    return _add_thumbnail(image_id, name, data)


def _add_thumbnail(image_id: int, name: str, data: bytes) -> bool:
    """The stored result's WebP thumbnail, beside it; False if this call did not give it one.
    (One that passed download_image's checks but does not decode keeps none, and is logged: a
    provider's forgery, not an accident.) The decoding runs at a low CPU priority: collections
    in the worker's other processes go first."""
    try:
        thumbnail = run_at_low_priority(_webp_thumbnail, data)
    except Exception:  # any decoder failure on a provider's bytes means the same thing
        logger.warning("No thumbnail for image %s: its result does not decode", image_id)
        return False
    path = PurePosixPath(name)
    thumb_name = default_storage.save(
        f"{path.parent}/thumbs/{path.stem}.webp", ContentFile(thumbnail)
    )
    if GenerationImage.objects.filter(pk=image_id, thumbnail="").update(thumbnail=thumb_name):
        return True
    default_storage.delete(thumb_name)  # made meanwhile by the queued task or a sweep
    return False


def _webp_thumbnail(data: bytes) -> bytes:
    side = settings.NERSTUDIO_THUMBNAIL_SIDE
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as im:
        im.draft(im.mode, (side, side))  # a JPEG is decoded at the smallest scale ≥ that
        return webp_thumbnail(im)


def add_missing_thumbnails() -> int:
    """Thumbnails for done images that have none: the collection queues add_thumbnail once its
    image is done, and a worker stopped in between (or a lost message) leaves the image without
    (the gallery then serves the image itself, uncached). Looks at images done within
    THUMBNAIL_SWEEP_WITHIN and at least THUMBNAIL_SWEEP_AFTER ago (the queued one is made by
    then), so one whose result does not decode is tried a few times, not forever. Returns how
    many it made."""
    now = timezone.now()
    missing = GenerationImage.objects.filter(
        status=ImageStatus.DONE,
        thumbnail="",
        finished_at__gte=now - THUMBNAIL_SWEEP_WITHIN,
        finished_at__lt=now - THUMBNAIL_SWEEP_AFTER,
    ).exclude(file="")
    ids = list(missing.values_list("pk", flat=True)[:THUMBNAIL_SWEEP_BATCH])
    return sum(add_thumbnail(image_id) for image_id in ids)


def member_reason(exc: ProviderError) -> str:
    """What a member is told about a failed image: short and safe. The provider's own text, the
    HTTP status and the request id go to the admins (the attempt record and provider health)."""
    if isinstance(exc, GenerationFailed):
        return "The image service could not generate this image."
    if exc.retryable:
        return "The image service is unavailable."
    return "The image service refused the request."


def ms_since(started: float) -> int:
    """Milliseconds since `started` (time.monotonic()), for the provider attempt records."""
    return int((time.monotonic() - started) * 1000)


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
            credit_services.release(image=image, note=reason)
    if failed:
        live.push_image(image)
        _finish_generation_if_complete(image.generation)
    return bool(failed)


def fail_generation(generation_id: int, reason: str) -> None:
    """Fail every unfinished image of the generation (their credits released), then the
    generation itself."""
    Generation.objects.filter(pk=generation_id).update(error=reason[:1000])
    for image_id in GenerationImage.objects.filter(generation_id=generation_id).values_list(
        "pk", flat=True
    ):
        fail_image(image_id, reason)
    _finish_generation_if_complete(Generation.objects.get(pk=generation_id))


def _finish_generation_if_complete(generation: Generation) -> None:
    """Done (some image arrived) or failed (none did) once every image has finished. Called
    once an image's change has committed (and two images' endings do not overlap: each takes
    the credit account's lock to settle its credits), so the last one's call sees every image
    ended. A plain look for an unfinished image first: it costs a third of the conditional
    update, which only that last call then runs."""
    ended = [ImageStatus.DONE, ImageStatus.FAILED]
    unfinished = GenerationImage.objects.filter(generation_id=generation.pk).exclude(
        status__in=ended
    )
    if unfinished.exists():
        return
    images = GenerationImage.objects.filter(generation_id=OuterRef("pk"))
    any_done = Exists(images.filter(status=ImageStatus.DONE))
    finished = (
        Generation.objects.filter(pk=generation.pk)
        .exclude(status__in=[Status.DONE, Status.FAILED])
        .exclude(Exists(images.exclude(status__in=ended)))
        .update(
            status=Case(When(any_done, then=Value(Status.DONE)), default=Value(Status.FAILED)),
            finished_at=timezone.now(),
        )
    )
    if finished:
        live.push_generation(generation)
