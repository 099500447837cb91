"""The pipeline's Celery tasks, and the order its steps run in (generation/pipeline/ has one
module per step; a step never queues the next one, the tasks here do).

    generate (web request)  start.start_generation → queue run_generation
    run_generation          prompts.write_prompts → queue submit_image for every image
    stage_products          submit.stage_products (meanwhile: product photos to the provider)
    submit_image            submit.submit_image (the provider calls back, or reconcile polls)
    collect_result          results.collect_result (queued by the callback view or reconcile)
    add_thumbnail           results.add_thumbnail (queued by collect_result once the image is
                            done, at the lowest priority: a waiting result goes first)
    reconcile (periodic)    reconcile.reconcile → queue what it found: collect_result,
                            submit_image, run_generation
    add_missing_thumbnails  results.add_missing_thumbnails (periodic: a worker stopped between
                            an image's result and its thumbnail)

Tasks take ids. A step that must wait (a transient provider error, the organization's share of
provider calls in use) raises lib.tasks.TryLater; the base Task re-queues it after that wait, the
one retry policy for every task. The task names are in the beat schedule and in CELERY_TASK_ROUTES
(settings), which puts each kind of work on its own queue: run_generation on `pipeline`,
stage_products and submit_image on `submit`, collect_result and add_thumbnail on `results`,
reconcile and add_missing_thumbnails on `maintenance`. add_thumbnail's route gives it priority 9,
and kombu's Redis transport takes a queue's messages of priority 0, the default, first."""

import logging
from typing import Any

from celery import shared_task

from generation.models import Generation
from generation.pipeline import prompts, results, start, submit
from generation.pipeline import reconcile as reconciliation
from lib.tasks import Task, enqueue

logger = logging.getLogger(__name__)


def generate(**request: Any) -> Generation:
    """Start a generation (start.start_generation: its arguments and errors) and run the rest of
    its pipeline in the background once that has committed. Should this process stop in between,
    reconcile finds the generation queued and runs it. The product photos go to the image
    provider meanwhile (stage_products), so no image's submission waits for that upload."""
    generation = start.start_generation(**request)
    enqueue(run_generation, generation_id=generation.pk)
    enqueue(stage_products, generation_id=generation.pk)
    return generation


@shared_task(base=Task, acks_late=True)
def stage_products(generation_id: int) -> None:
    submit.stage_products(generation_id)


@shared_task(base=Task, acks_late=True)
def run_generation(generation_id: int) -> None:
    for image_id in prompts.write_prompts(generation_id):
        enqueue(submit_image, image_id=image_id)


@shared_task(base=Task, acks_late=True)
def submit_image(image_id: int) -> None:
    submit.submit_image(image_id)


@shared_task(base=Task, acks_late=True)
def collect_result(image_id: int) -> None:
    if results.collect_result(image_id):
        enqueue(add_thumbnail, image_id=image_id)


@shared_task(base=Task, acks_late=True)
def add_thumbnail(image_id: int) -> None:
    results.add_thumbnail(image_id)


@shared_task
def add_missing_thumbnails() -> int:
    made = results.add_missing_thumbnails()
    if made:
        logger.info("Missing thumbnails made: %d", made)
    return made


@shared_task
def reconcile() -> dict[str, int]:
    found = reconciliation.reconcile()
    for image_id in found.collect:
        enqueue(collect_result, image_id=image_id)
    for image_id in found.submit:
        enqueue(submit_image, image_id=image_id)
    for generation_id in found.run:
        enqueue(run_generation, generation_id=generation_id)
    if any(found.counts.values()):  # a quiet round logs nothing (lib.log_filters)
        logger.info(
            "Reconciled: %(polled)d polled, %(timed_out)d timed out, %(resumed)d resumed",
            found.counts,
        )
    return found.counts
