"""Reconciliation (the periodic reconcile task): poll images whose callback is late, fail those
past their deadline, and find generations and images whose worker stopped. Safe to run in
several processes at once: every row it acts on is claimed first. It queues nothing itself; it
returns what to run again, and the task queues that.

Polls follow each image's expected time: the first is due after its model's observed median time
to a result (submit.first_poll_after), the next ones a quarter of that median apart (at least
NERSTUDIO_POLL_MIN_SECONDS), doubling up to once a minute. Under overload, when results are late
everywhere, polls would only add to the load: a round polls at most NERSTUDIO_POLLS_PER_ROUND
images per model, the longest overdue first, and never one whose callback arrived (its collection
is queued) or that is being collected."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Q
from django.template.defaultfilters import pluralize
from django.utils import timezone

from generation.models import Generation, GenerationImage
from generation.pipeline.results import fail_generation, fail_image
from providers import health
from providers.models import Provider

Status = Generation.Status
ImageStatus = GenerationImage.Status
MAX_POLL_INTERVAL = 60.0
# After a callback the collection it queued runs; a poll only if that got lost meanwhile.
CALLBACK_GRACE_SECONDS = 60.0


@dataclass
class Reconciled:
    """What one round found: images to collect (a poll is due), images to submit and
    generations to run again (their worker stopped), and how many images it failed."""

    collect: list[int] = field(default_factory=list)
    submit: list[int] = field(default_factory=list)
    run: list[int] = field(default_factory=list)
    timed_out: int = 0

    @property
    def counts(self) -> dict[str, int]:
        resumed = len(self.submit) + len(self.run)
        return {"polled": len(self.collect), "timed_out": self.timed_out, "resumed": resumed}


def reconcile(now: datetime | None = None) -> Reconciled:
    now = now or timezone.now()
    found = Reconciled()

    overdue = GenerationImage.objects.filter(
        ~Q(status__in=[ImageStatus.DONE, ImageStatus.FAILED, ImageStatus.WAITING]),
        deadline_at__lt=now,
    ).values_list("pk", flat=True)
    for image_id in overdue:
        if fail_image(image_id, f"No result within {deadline_wording()}."):
            found.timed_out += 1

    found.collect = _claim_polls(now)

    # Images never submitted although their generation reached the image stage (the worker died
    # between writing the prompts and queueing the submissions): submit them, or give up.
    stalled_since = now - timedelta(seconds=settings.NERSTUDIO_STALLED_AFTER_SECONDS)
    waiting = GenerationImage.objects.filter(
        status=ImageStatus.WAITING,
        generation__status=Status.GENERATING,
        generation__updated_at__lt=stalled_since,
    )
    deadline = now - timedelta(seconds=settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS)
    for image_id, created_at in waiting.values_list("pk", "generation__created_at"):
        if created_at >= deadline:
            found.submit.append(image_id)
        elif fail_image(image_id, "The image was never submitted."):
            found.timed_out += 1

    found.submit += _put_back_stopped_submissions(now)

    unprompted = [Status.QUEUED, Status.ANALYSING, Status.WRITING]
    stalled = Generation.objects.filter(status__in=unprompted, updated_at__lt=stalled_since)
    for generation_id in stalled.values_list("pk", flat=True):
        Generation.objects.filter(pk=generation_id).update(updated_at=now)
        found.run.append(generation_id)
    too_late = Generation.objects.filter(status__in=unprompted, created_at__lt=deadline)
    for generation_id in too_late.values_list("pk", flat=True):
        fail_generation(generation_id, "The generation did not start in time.")
    return found


def _put_back_stopped_submissions(now: datetime) -> list[int]:
    """Images whose submission stopped half-way, to submit again: claimed for submission but
    neither handed over to the provider nor put back to waiting, because the worker died or the
    task failed on a lost database connection. A live submission makes one call per product
    photo (the upload) and createTask, each bounded by the model's timeout; past that (and
    NERSTUDIO_STALLED_AFTER_SECONDS) none is running any more. If the provider did accept the
    first job, its callback adopted it meanwhile (callbacks.py), or it stays an orphan there:
    the member is charged once either way. Images past their deadline were failed before."""
    stalled_since = now - timedelta(seconds=settings.NERSTUDIO_STALLED_AFTER_SECONDS)
    stopped = (
        GenerationImage.objects.filter(
            status=ImageStatus.SUBMITTING, provider_task_id="", submitted_at__lt=stalled_since
        )
        .annotate(products=Count("generation__products"))
        .values_list("pk", "submitted_at", "generation__provider__timeout_seconds", "products")
    )
    put_back = []
    for pk, submitted_at, timeout, products in stopped:
        longest = timedelta(seconds=(products + 1) * (timeout or 0))
        if submitted_at is None or submitted_at >= stalled_since - longest:
            continue  # it may still be talking to the provider
        if GenerationImage.objects.filter(
            pk=pk, status=ImageStatus.SUBMITTING, provider_task_id="", submitted_at=submitted_at
        ).update(status=ImageStatus.WAITING):
            put_back.append(pk)
    return put_back


def deadline_wording() -> str:
    """NERSTUDIO_IMAGE_DEADLINE_SECONDS as a member reads it: "10 minutes", "90 seconds"."""
    seconds = settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS
    if seconds % 60:
        return f"{seconds} second{pluralize(seconds)}"
    return f"{seconds // 60} minute{pluralize(seconds // 60)}"


def poll_interval(polls: int, expected: float | None) -> float:
    """Seconds from an image's poll number `polls + 1` to the next, for a model whose median time
    to a result is `expected` (None: nothing observed yet)."""
    base = max(float(settings.NERSTUDIO_POLL_MIN_SECONDS), (expected or 0.0) / 4)
    return min(base * 2 ** min(polls, 10), MAX_POLL_INTERVAL)


def _claim_polls(now: datetime) -> list[int]:
    """The images to poll this round, each claimed (its next poll moved on) so that another
    reconciler running at the same time does not poll it too."""
    due = (
        GenerationImage.objects.filter(status=ImageStatus.GENERATING, next_poll_at__lte=now)
        .filter(Q(collecting_until__isnull=True) | Q(collecting_until__lt=now))
        .order_by("next_poll_at", "pk")
        .values_list("pk", "generation__provider_id", "polls")
    )
    chosen: list[tuple[int, int | None, int]] = []
    per_model: Counter[int | None] = Counter()
    for image_id, provider_id, polls in due:
        if per_model[provider_id] < settings.NERSTUDIO_POLLS_PER_ROUND:
            per_model[provider_id] += 1
            chosen.append((image_id, provider_id, polls))
    providers = Provider.objects.in_bulk([p for p in per_model if p is not None])
    expected = {pk: health.result_latency_p50(provider) for pk, provider in providers.items()}

    claimed_ids = []
    for pk, model_id, polled in chosen:
        wait = poll_interval(polled, expected.get(model_id) if model_id else None)
        claimed = GenerationImage.objects.filter(
            pk=pk, status=ImageStatus.GENERATING, next_poll_at__lte=now
        ).update(next_poll_at=now + timedelta(seconds=wait), polls=F("polls") + 1)
        if claimed:  # another reconciler did not take it first
            claimed_ids.append(pk)
    return claimed_ids


def callback_received(image_id: int) -> None:
    """The provider called back and the image's collection is queued: no poll meanwhile (one
    only if that collection got lost)."""
    GenerationImage.objects.filter(pk=image_id, status=ImageStatus.GENERATING).update(
        next_poll_at=timezone.now() + timedelta(seconds=CALLBACK_GRACE_SECONDS)
    )


def adopt_task(image_id: int, task_id: str) -> bool:
    """The provider called back for an image whose submission never recorded its task: the
    submit call has not returned yet, or its worker died after the provider accepted the job.
    The callback URL's token was made for this very submission, so the task is this image's:
    record it and treat the image as generating (the result is still confirmed with the
    provider before it counts). False if the submission recorded a task or moved on meanwhile."""
    if not task_id:
        return False
    return bool(
        GenerationImage.objects.filter(
            pk=image_id, status=ImageStatus.SUBMITTING, provider_task_id=""
        ).update(
            status=ImageStatus.GENERATING,
            provider_task_id=task_id,
            polls=0,
            next_poll_at=timezone.now() + timedelta(seconds=CALLBACK_GRACE_SECONDS),
        )
    )
