"""Celery tasks: thin wrappers that take ids; the work is in generation/services.py."""

from celery import shared_task

from generation import services
from nerstudio.tasks import Task
from providers.adapters.base import RetryableError

RETRY = {"retry_backoff": 2, "retry_backoff_max": 60, "retry_jitter": True, "max_retries": 3}


@shared_task(base=Task, acks_late=True)
def run_generation(generation_id: int) -> None:
    services.run_generation(generation_id)


@shared_task(base=Task, acks_late=True, autoretry_for=(RetryableError,), **RETRY)
def submit_image(image_id: int) -> None:
    services.submit_image(image_id)


@shared_task(base=Task, acks_late=True)
def collect_result(image_id: int) -> None:
    services.collect_result(image_id)


@shared_task
def reconcile() -> dict:
    return services.reconcile()
