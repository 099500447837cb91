"""Reconciliation (the periodic reconcile task): poll images whose callback is late, fail those
past their deadline, and find generations and images whose worker stopped. Safe to run in
several processes at once: every row it acts on is claimed first. It queues nothing itself; it
returns what to run again, and the task queues that."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from generation.models import Generation, GenerationImage
from generation.pipeline.results import fail_generation, fail_image

Status = Generation.Status
ImageStatus = GenerationImage.Status


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
        minutes = settings.NERSTUDIO_IMAGE_DEADLINE_SECONDS // 60
        if fail_image(image_id, f"No result within {minutes} minutes."):
            found.timed_out += 1

    due = GenerationImage.objects.filter(status=ImageStatus.GENERATING, next_poll_at__lte=now)
    for image_id, polls in due.values_list("pk", "polls"):
        backoff = min(settings.NERSTUDIO_POLL_MIN_SECONDS * 2**polls, 60)
        claimed = GenerationImage.objects.filter(
            pk=image_id, status=ImageStatus.GENERATING, next_poll_at__lte=now
        ).update(next_poll_at=now + timedelta(seconds=backoff), polls=F("polls") + 1)
        if claimed:  # another reconciler did not take it first
            found.collect.append(image_id)

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

    unprompted = [Status.QUEUED, Status.ANALYSING, Status.WRITING]
    stalled = Generation.objects.filter(status__in=unprompted, updated_at__lt=stalled_since)
    for generation_id in stalled.values_list("pk", flat=True):
        Generation.objects.filter(pk=generation_id).update(updated_at=now)
        found.run.append(generation_id)
    too_late = Generation.objects.filter(status__in=unprompted, created_at__lt=deadline)
    for generation_id in too_late.values_list("pk", flat=True):
        fail_generation(generation_id, "The generation did not start in time.")
    return found
