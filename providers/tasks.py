from celery import shared_task

from providers.local_service import render_and_call_back


@shared_task(acks_late=True)
def render_local_image(**job) -> None:
    render_and_call_back(**job)
