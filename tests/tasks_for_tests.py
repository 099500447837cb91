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
