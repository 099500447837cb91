"""A Celery task the infrastructure tests run through both execution paths."""

import threading

from lib.tasks import Task, TryLater
from nerstudio.celery import app
from orgs.models import Organization

runs: list[tuple[str, str]] = []
ran = threading.Event()


@app.task(name="tests.rename_org")
def rename_org(org_id: int, name: str) -> None:
    Organization.objects.filter(pk=org_id).update(name=name)
    runs.append((threading.current_thread().name, name))
    ran.set()


@app.task(base=Task, name="tests.always_busy")
def always_busy() -> None:
    raise TryLater(0.5)


@app.task(name="tests.report_backend_pid")
def report_backend_pid(redis_url: str, key: str) -> None:
    """Push the PostgreSQL server process this task's query ran on to a Redis list."""
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    redis.Redis.from_url(redis_url).rpush(key, pid)


@app.task(name="tests.report_frozen_objects")
def report_frozen_objects(redis_url: str, key: str) -> None:
    """Push how many objects the garbage collector leaves alone in the process running this."""
    import gc

    import redis

    redis.Redis.from_url(redis_url).rpush(key, gc.get_freeze_count())
