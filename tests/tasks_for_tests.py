"""A Celery task the infrastructure tests run through both execution paths."""

import threading

from nerstudio.celery import app
from orgs.models import Organization

runs: list[tuple[str, str]] = []
ran = threading.Event()


@app.task(name="tests.rename_org")
def rename_org(org_id: int, name: str) -> None:
    Organization.objects.filter(pk=org_id).update(name=name)
    runs.append((threading.current_thread().name, name))
    ran.set()
