import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nerstudio.settings.base")

app = Celery("nerstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def yield_the_cpu_to_the_web(**_kwargs) -> None:
    """On a box shared with web processes, a burst of result decoding or rendering must not slow
    the pages down: workers (and their pool processes, which inherit it) run at a lower CPU
    priority. On a box of their own this changes nothing."""
    from django.conf import settings

    if settings.NERSTUDIO_WORKER_NICENESS:
        os.nice(settings.NERSTUDIO_WORKER_NICENESS)
