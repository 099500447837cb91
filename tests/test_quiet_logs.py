"""The periodic reconciliation runs every few seconds: its routine lines (Celery's "Task …
succeeded", the beat's "Sending due task") never reach the log; a round that did something says
so in one line. Other tasks' lines, and any warning, pass."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import Generation, GenerationImage
from generation.tasks import reconcile
from lib.log_filters import QuietPeriodicTasks
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def info_logs(caplog):
    # A Celery worker logs task successes at INFO (the embedded mode raises that logger to WARNING).
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    caplog.set_level(logging.INFO)
    return caplog


def lines(caplog) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO]


def test_an_idle_round_logs_nothing(info_logs):
    result = reconcile.apply()

    assert result.successful()
    assert lines(info_logs) == []


def test_a_round_that_did_something_logs_one_line(info_logs, org):
    generation = GenerationFactory(org=org, status=Generation.Status.GENERATING, count=1)
    GenerationImage.objects.create(
        generation=generation,
        org=org,
        index=0,
        status=GenerationImage.Status.GENERATING,
        next_poll_at=timezone.now() - timedelta(seconds=1),
    )

    reconcile.apply()

    assert lines(info_logs) == ["generation.tasks: Reconciled: 1 polled, 0 timed out, 0 resumed"]


def record(name: str, msg: str, args=None, level=logging.INFO, **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


SUCCEEDED = "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"
RECEIVED = "Task %(name)s[%(id)s] received"


@pytest.mark.parametrize(
    ("task", "shown"),
    [("generation.tasks.reconcile", False), ("generation.tasks.submit_image", True)],
)
def test_only_the_periodic_tasks_routine_lines_are_dropped(task, shown):
    quiet = QuietPeriodicTasks()
    data = {"name": task, "id": "1", "runtime": 0.01, "return_value": "{}"}

    assert quiet.filter(record("celery.app.trace", SUCCEEDED, (data,), data=data)) is shown
    received = record("celery.worker.strategy", RECEIVED, (data,), data=data)
    assert quiet.filter(received) is shown
    sent = record("celery.beat", "Scheduler: Sending due task %s (%s)", ("any-entry", task))
    assert quiet.filter(sent) is shown


def test_a_periodic_tasks_warnings_always_pass():
    data = {"name": "generation.tasks.reconcile", "id": "1", "exc": "boom"}
    failed = record("celery.app.trace", "Task failed", (data,), logging.ERROR, data=data)

    assert QuietPeriodicTasks().filter(failed)
