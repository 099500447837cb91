"""Celery tasks: thin wrappers that take ids; the work is in generation/services.py. A step that
must wait (a transient provider error, the organization's share in use) raises TryLater; the base
Task re-queues it after that wait, the one retry policy for every task."""

from celery import shared_task

from generation import services
from lib.tasks import Task


@shared_task(base=Task, acks_late=True)
def run_generation(generation_id: int) -> None:
    services.run_generation(generation_id)


@shared_task(base=Task, acks_late=True)
def submit_image(image_id: int) -> None:
    services.submit_image(image_id)


@shared_task(base=Task, acks_late=True)
def collect_result(image_id: int) -> None:
    services.collect_result(image_id)


@shared_task
def reconcile() -> dict:
    return services.reconcile()
