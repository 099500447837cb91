"""One way to start background work, with or without a broker.

With REDIS_URL set, tasks go to Celery workers. Without it (the embedded default) the same Celery
task bodies run on a thread pool inside the web process, so a page never waits for them and results
still arrive one by one. Either way the task is sent only after the current transaction commits,
so a worker never looks for rows that are not there yet.
"""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from celery import Task
from django.conf import settings
from django.db import close_old_connections, transaction

from nerstudio.celery import app as celery_app

logger = logging.getLogger(__name__)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.NERSTUDIO_EMBEDDED_WORKERS, thread_name_prefix="nerstudio-task"
            )
        return _pool


def _run_embedded(task_name: str, kwargs: dict, countdown: float = 0) -> None:
    if countdown:
        time.sleep(countdown)
    try:
        result = celery_app.tasks[task_name].apply(kwargs=kwargs)
        if result.failed():
            logger.error("Task %s failed: %r", task_name, result.result)
    finally:
        close_old_connections()


def enqueue(task: Task, /, *, countdown: float = 0, **kwargs) -> None:
    """Run `task(**kwargs)` in the background once the current transaction commits, after
    `countdown` seconds."""
    if settings.CELERY_BROKER_URL:
        transaction.on_commit(lambda: task.apply_async(kwargs=kwargs, countdown=countdown or None))
    else:
        transaction.on_commit(lambda: submit_embedded(task.name, kwargs, countdown))


def submit_embedded(task_name: str, kwargs: dict, countdown: float = 0) -> Future:
    return _embedded_pool().submit(_run_embedded, task_name, kwargs, countdown)


def start_embedded_beat() -> None:
    """Without a broker there is no `celery beat`: run the periodic tasks from a thread of the
    web process instead (once per process)."""
    global _beat
    with _pool_lock:
        if _beat is not None:
            return
        _beat = threading.Thread(target=_beat_loop, name="nerstudio-beat", daemon=True)
    _beat.start()


_beat: threading.Thread | None = None


def _beat_loop() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    due = {name: time.monotonic() + entry["schedule"] for name, entry in schedule.items()}
    while True:
        time.sleep(1)
        for name, entry in schedule.items():
            if time.monotonic() >= due[name]:
                due[name] = time.monotonic() + entry["schedule"]
                submit_embedded(entry["task"], {})
