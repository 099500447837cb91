"""One way to start background work, with or without a broker.

With REDIS_URL set, tasks go to Celery workers. Without it (the embedded default) the same Celery
task bodies run on thread pools inside the web process, so a page never waits for them and results
still arrive one by one. Either way the task is sent only after the current transaction commits,
so a worker never looks for rows that are not there yet.

Tasks go to queues by kind of work (CELERY_TASK_ROUTES in settings, the one place that decides):
pipeline steps, provider submissions, result collection, the offline renderer, maintenance. With a
broker each queue has its own worker process (Procfile); without one each has its own thread pool
here, so in both modes a backlog of renders never delays another generation's submission.

A task that cannot proceed yet (its organization already has its share of provider calls in
flight) raises `TryLater`: it runs again after a short wait, without holding a worker meanwhile —
a Celery retry with a countdown, or a timer in the embedded mode.
"""

import logging
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import celery
from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import close_old_connections, transaction

from lib.request_id import task_headers

logger = logging.getLogger(__name__)

_pools: dict[str, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def route_of(task_name: str) -> tuple[str, int]:
    """The queue Celery routes `task_name` to (settings.CELERY_TASK_ROUTES, else the default)
    and the route's priority (0, the default, goes first; kombu's Redis transport has 0–9)."""
    route = celery.current_app.amqp.router.route({}, task_name)
    return route["queue"].name, route.get("priority") or 0


def queue_of(task_name: str) -> str:
    return route_of(task_name)[0]


def _embedded_pool(queue: str) -> ThreadPoolExecutor:
    """The queue's own thread pool (threads start only as work arrives)."""
    with _pool_lock:
        if queue not in _pools:
            size = settings.NERSTUDIO_EMBEDDED_POOL_SIZES.get(
                queue, settings.NERSTUDIO_EMBEDDED_WORKERS
            )
            _pools[queue] = ThreadPoolExecutor(
                max_workers=size, thread_name_prefix=f"nerstudio-task-{queue}"
            )
        return _pools[queue]


class TryLater(Exception):
    """Run this task again after `seconds`; nothing went wrong."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"try again in {seconds:.1f} s")
        self.seconds = seconds


class Task(DjangoTask):
    """Our tasks' base (Celery's task for Django, which sends on commit): `TryLater` re-queues
    the task instead of failing or blocking it."""

    # However often: each step bounds its own waiting (an image's deadline, a generation's).
    # Celery's default (3) turned a fourth "try later" under load into a failed task.
    max_retries = None

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except TryLater as later:
            if self.request.is_eager:  # the embedded runner: back on the pool after a timer
                submit_embedded(self.name, kwargs, later.seconds, self.request.retries + 1)
                return None
            raise self.retry(countdown=later.seconds) from None


def _run_embedded(
    task_name: str, kwargs: dict, retries: int = 0, headers: dict | None = None
) -> None:
    try:
        task = celery.current_app.tasks[task_name]
        result = task.apply(kwargs=kwargs, retries=retries, headers=headers)
        if result.failed():
            logger.error("Task %s failed: %r", task_name, result.result)
    finally:
        close_old_connections()


def enqueue(task: DjangoTask, /, *, countdown: float = 0, **kwargs: Any) -> None:
    """Run `task(**kwargs)` in the background once the current transaction commits (at once
    outside one), after `countdown` seconds: to the broker with Celery's own on-commit send,
    or without a broker to the embedded pool. The message headers carry the request and
    generation ids into the task's log lines (lib.request_id)."""
    headers = task_headers()
    if settings.CELERY_BROKER_URL:
        task.apply_async_on_commit(kwargs=kwargs, countdown=countdown, headers=headers)  # 0: no ETA
    else:
        transaction.on_commit(
            partial(submit_embedded, task.name, kwargs, countdown, headers=headers)
        )


_timers: set[threading.Timer] = set()


def submit_embedded(
    task_name: str,
    kwargs: dict,
    countdown: float = 0,
    retries: int = 0,
    headers: dict | None = None,
) -> None:
    """Run on the task's queue's pool now, or after `countdown` seconds from a timer: a waiting
    task never holds one of the pool's threads. `headers` default to the current log ids."""
    headers = task_headers() if headers is None else headers
    if countdown > 0:

        def fire():
            with _pool_lock:
                _timers.discard(timer)
            submit_embedded(task_name, kwargs, retries=retries, headers=headers)

        timer = threading.Timer(countdown, fire)
        timer.daemon = True
        with _pool_lock:
            _timers.add(timer)
        timer.start()
        return
    (queue, priority), job = route_of(task_name), (task_name, kwargs, retries, headers)
    with _quiet:
        if priority > 0:
            _low_priority_runner(queue)
            _low[queue].append(job)
            _quiet.notify_all()
            return
        _busy[queue] += 1
    _embedded_pool(queue).submit(_run_embedded, *job).add_done_callback(partial(_finished, queue))


# Low-priority tasks (a route priority above 0: add_thumbnail) without a broker. With one, kombu
# gives a worker every waiting task of priority 0 first, and the worker's processes run on their
# own cores. In one process the threads share the interpreter lock: a thumbnail decoding beside a
# generation's collections slowed them down even at a lower CPU priority (at 8 images, the last
# callback → done went from 140 to 190 ms). So each queue's low-priority tasks run one at a time
# on a thread of their own, when none of the queue's other tasks runs or waits, or after
# LOW_PRIORITY_WAIT_SECONDS at the latest.
LOW_PRIORITY_WAIT_SECONDS = 5.0
_quiet = threading.Condition()
# Per queue: its tasks running or waiting for a pool thread (a low-priority one while it runs).
_busy: dict[str, int] = defaultdict(int)
_low: dict[str, deque[tuple]] = defaultdict(deque)  # per queue: low-priority tasks waiting
_low_runners: set[str] = set()


def _finished(queue: str, _future=None) -> None:
    with _quiet:
        _busy[queue] -= 1
        _quiet.notify_all()


def _low_priority_runner(queue: str) -> None:
    """Start the queue's low-priority thread once (the caller holds `_quiet`)."""
    if queue not in _low_runners:
        _low_runners.add(queue)
        threading.Thread(
            target=_run_low_priority, args=(queue,), name=f"nerstudio-low-{queue}", daemon=True
        ).start()


def _run_low_priority(queue: str) -> None:
    while True:
        with _quiet:
            _quiet.wait_for(lambda: bool(_low[queue]))
            _quiet.wait_for(lambda: _busy[queue] == 0, timeout=LOW_PRIORITY_WAIT_SECONDS)
            if not _low[queue]:
                continue  # dropped meanwhile (cancel_deferred)
            job = _low[queue].popleft()
            _busy[queue] += 1
        try:
            _run_embedded(*job)
        except Exception:  # the pools' threads survive a failing task; so does this one
            logger.exception("Low-priority task %s failed", job[0])
        finally:
            _finished(queue)


def wait_until_idle(timeout: float) -> bool:
    """Wait until no embedded task runs or waits for a thread (those on a timer aside): False
    if some still did after `timeout` seconds. Tests end with it, so that no task of theirs
    runs on into the next test."""
    with _quiet:
        return _quiet.wait_for(lambda: not any(_busy.values()) and not any(_low.values()), timeout)


def cancel_deferred() -> int:
    """Drop the embedded tasks waiting on a timer or for a quiet queue (tests); returns how
    many."""
    with _pool_lock:
        timers = list(_timers)
        _timers.clear()
    for timer in timers:
        timer.cancel()
    with _quiet:
        waiting = sum(len(jobs) for jobs in _low.values())
        for jobs in _low.values():
            jobs.clear()
    return len(timers) + waiting


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
    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    due = {name: time.monotonic() + entry["schedule"] for name, entry in schedule.items()}
    while True:
        time.sleep(1)
        for name, entry in schedule.items():
            if time.monotonic() >= due[name]:
                due[name] = time.monotonic() + entry["schedule"]
                submit_embedded(entry["task"], {})


def embedded_backlog() -> dict[str, int]:
    """Tasks waiting for a thread, per queue, in this process's embedded pools (readyz)."""
    with _pool_lock:
        pools = dict(_pools)
    with _quiet:
        low = {queue: len(waiting) for queue, waiting in _low.items()}
    backlog = {queue: pool._work_queue.qsize() for queue, pool in pools.items()}
    return {queue: backlog.get(queue, 0) + low.get(queue, 0) for queue in backlog | low}
