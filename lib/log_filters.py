"""Periodic tasks stay quiet when they had nothing to do.

The beat runs reconciliation every few seconds. Celery logs every run three times at INFO — the
beat's "Sending due task …", the worker's "Task … received" and "Task … succeeded …" (the last in
the embedded mode too) — which buries everything else a developer or operator reads, such as the
sign-in codes `make run` prints. This filter, installed on those loggers (nerstudio/settings:
LOGGING), drops those routine lines for the tasks in CELERY_BEAT_SCHEDULE; each periodic task logs
a line of its own when it did something. Warnings and failures always pass.
"""

import logging

from django.conf import settings


def periodic_task_names() -> set[str]:
    return {str(entry["task"]) for entry in settings.CELERY_BEAT_SCHEDULE.values()}


class QuietPeriodicTasks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        return self.task_name(record) not in periodic_task_names()

    @staticmethod
    def task_name(record: logging.LogRecord) -> str | None:
        data = getattr(record, "data", None)  # "Task %(name)s[%(id)s] received/succeeded…"
        if isinstance(data, dict):
            return data.get("name")
        message = str(record.msg)
        if message.startswith("Scheduler: Sending due task") and isinstance(record.args, tuple):
            return str(record.args[-1])  # celery.beat: (entry name, task name)
        return None
