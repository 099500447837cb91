"""One way to start background work, with or without a broker.

With REDIS_URL set, tasks go to Celery workers. Without it (the embedded default) the same Celery
task bodies run on a thread pool inside the web process, so a page never waits for them and results
still arrive one by one. Either way the task is sent only after the current transaction commits,
so a worker never looks for rows that are not there yet.
"""

import logging
import threading
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


def _run_embedded(task_name: str, kwargs: dict) -> None:
    try:
        result = celery_app.tasks[task_name].apply(kwargs=kwargs)
        if result.failed():
            logger.error("Task %s failed: %r", task_name, result.result)
    finally:
        close_old_connections()


def enqueue(task: Task, /, **kwargs) -> None:
    """Run `task(**kwargs)` in the background once the current transaction commits."""
    if settings.CELERY_BROKER_URL:
        transaction.on_commit(lambda: task.apply_async(kwargs=kwargs))
    else:
        transaction.on_commit(lambda: submit_embedded(task.name, kwargs))


def submit_embedded(task_name: str, kwargs: dict) -> Future:
    return _embedded_pool().submit(_run_embedded, task_name, kwargs)
