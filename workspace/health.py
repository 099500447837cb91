"""Probes for the load balancer, the orchestrator and whoever is on call.

/healthz/ (liveness) checks nothing: the process answers, so an outage of the database or Redis
never gets healthy web processes restarted in a loop.

/readyz/ (readiness) checks what a request needs — the database, the cache, the broker and the
media storage — and reports what the background work is doing: how long ago each queue's workers
last finished a task (the heartbeat) and how many tasks wait on each queue. It answers 503 when a
required check fails, 200 otherwise; a stale heartbeat or a long queue is reported, not a reason to
take this web process out of rotation (that would turn a worker outage into a site outage). Each
check runs on its own thread with a time limit (NERSTUDIO_READYZ_TIMEOUT), so a hung dependency
makes the answer late by at most that, never hang it. Errors are named by their type only: an
exception's text may quote a URL with credentials.

/readyz/ is public (load balancers call it without credentials), so anyone gets only the verdict
and its status code; the checks' details — queue names and depths, heartbeats, timings — go to a
caller with the operator's token (`Authorization: Bearer $NERSTUDIO_READYZ_TOKEN`), a signed-in
superuser, or anyone with DEBUG on. A verdict is reused for NERSTUDIO_READYZ_REUSE seconds and
concurrent calls share one run, so a flood of probes costs each process one round of checks per
that interval, not one per request.

Workers write the heartbeat as they finish tasks (`record_heartbeat`, on Celery's task_postrun);
the beat's reconcile round every few seconds keeps the maintenance queue's fresh. In the embedded
mode the web process's own task threads are the workers and write the same heartbeat.
"""

import contextlib
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import celery
import redis
from celery.signals import task_postrun, worker_ready
from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from kombu.transport import redis as redis_transport

from lib import request_id, tasks

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "nerstudio:health:heartbeat:"  # + queue name
HEARTBEAT_EVERY = 5.0  # seconds between a process's writes for one queue

# Bounded: a dependency that hangs holds at most these threads; later probes then time out.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="nerstudio-readyz")


@never_cache
def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


@never_cache
def readyz(request):
    body, status = _recent_readiness()
    if not _may_see_details(request):
        body = {"status": body["status"]}
    return JsonResponse(body, status=status)


def _may_see_details(request) -> bool:
    if settings.DEBUG:
        return True
    token = settings.NERSTUDIO_READYZ_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and constant_time_compare(given, token):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_superuser)


_recent: tuple[float, dict[str, Any], int] | None = None  # (when, body, status)
_recent_lock = threading.Lock()


def _recent_readiness() -> tuple[dict[str, Any], int]:
    """The last verdict while it is fresh, else a new one; callers arriving during a run wait
    for it rather than start their own."""
    global _recent
    with _recent_lock:
        now = time.monotonic()
        if _recent is None or now - _recent[0] >= settings.NERSTUDIO_READYZ_REUSE:
            body, status = _check_readiness()
            _recent = (time.monotonic(), body, status)
        return _recent[1], _recent[2]


def _check_readiness() -> tuple[dict[str, Any], int]:
    started = time.monotonic()
    broker = bool(settings.CELERY_BROKER_URL)
    checks: dict[str, tuple[Callable[[], dict[str, Any]], bool]] = {
        "database": (check_database, True),
        "cache": (check_cache, True),
        "broker": (check_broker if broker else _embedded("tasks run in this process"), broker),
        "storage": (check_storage, True),
        "worker": (check_heartbeat, False),
        "queues": (check_queues if broker else check_embedded_queues, False),
    }
    timeout = settings.NERSTUDIO_READYZ_TIMEOUT
    ids = request_id.current()  # the checks' own log lines name this request too
    futures = {name: _executor.submit(_timed, check, ids) for name, (check, _) in checks.items()}
    deadline = started + timeout
    results = {}
    for name, future in futures.items():
        try:
            result = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()  # not started yet (the pool was busy): never start it
            result = {"status": "timeout", "ms": round(timeout * 1000, 1)}
        result["required"] = checks[name][1]
        results[name] = result
    ready = all(r["status"] == "ok" for r in results.values() if r["required"])
    body = {
        "status": "ready" if ready else "not ready",
        "checks": results,
        "ms": round((time.monotonic() - started) * 1000, 1),
    }
    if not ready:
        failed = [name for name, r in results.items() if r["required"] and r["status"] != "ok"]
        logger.warning("Not ready: %s", ", ".join(failed))
    return body, 200 if ready else 503


def _timed(check: Callable[[], dict[str, Any]], ids: Mapping[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    with request_id.bound(**ids):
        try:
            result = {"status": "ok", **check()}
        except Exception as exc:
            logger.warning("Readiness check %s failed", check.__name__, exc_info=True)
            result = {"status": "fail", "error": type(exc).__name__}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _embedded(note: str) -> Callable[[], dict[str, Any]]:
    def check_embedded() -> dict[str, Any]:
        return {"mode": "embedded", "note": note}

    return check_embedded


# --- Required: what a request needs ---------------------------------------------------------------
def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # this thread's connection (back to the pool, where there is one)
    return {}


def check_cache() -> dict[str, Any]:
    key, value = f"nerstudio:health:probe:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    try:
        if cache.get(key) != value:
            raise LookupError("the cache did not return what was stored")
    finally:
        cache.delete(key)
    return {}


def _broker() -> redis.Redis:
    timeout = settings.NERSTUDIO_READYZ_TIMEOUT
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )


def check_broker() -> dict[str, Any]:
    with contextlib.closing(_broker()) as client:
        client.ping()
    return {}


def check_storage() -> dict[str, Any]:
    """Local media: the folder can be written (a probe file, created and removed). A bucket: a
    HEAD request for an object that need not exist (reachable, credentials accepted)."""
    storage = default_storage
    if isinstance(storage, FileSystemStorage):
        location = Path(storage.location)
        location.mkdir(parents=True, exist_ok=True)  # as the first upload would
        with tempfile.NamedTemporaryFile(dir=location, prefix=".readyz-"):
            pass
        return {"backend": "local"}
    storage.exists(".readyz-probe")
    return {"backend": "bucket"}


# --- Reported: the background work ----------------------------------------------------------------
def queue_names() -> list[str]:
    """Every queue Celery is configured with, read at run time: the default queue, CELERY_TASK_
    QUEUES, the queues CELERY_TASK_ROUTES names and any task's own `queue`."""
    app = celery.current_app
    conf = app.conf
    names = {conf.task_default_queue}
    names.update(getattr(queue, "name", queue) for queue in conf.task_queues or ())
    routes = conf.task_routes if isinstance(conf.task_routes, dict) else {}
    names.update(route.get("queue") for route in routes.values() if isinstance(route, dict))
    names.update(getattr(task, "queue", None) for task in app.tasks.values())
    return sorted(str(getattr(name, "name", name)) for name in names if name)


def periodic_queues() -> set[str]:
    """The queues the beat schedule sends to: their heartbeat must stay fresh."""
    return {tasks.queue_of(str(entry["task"])) for entry in settings.CELERY_BEAT_SCHEDULE.values()}


def check_heartbeat() -> dict[str, Any]:
    names = queue_names()
    stamps = cache.get_many([HEARTBEAT_KEY + name for name in names])
    now = time.time()
    ages = {
        name: round(now - stamps[HEARTBEAT_KEY + name], 1)
        for name in names
        if HEARTBEAT_KEY + name in stamps
    }
    # The queues the beat feeds must all be fresh; without a schedule, any worker will do.
    watched = periodic_queues() or set(names)
    known = [ages[name] for name in watched if name in ages]
    if periodic_queues():
        age = max(known) if len(known) == len(watched) else None
    else:
        age = min(known, default=None)
    result: dict[str, Any] = {"heartbeat_age_s": age, "queues": ages}
    if not settings.CELERY_BROKER_URL:
        result["mode"] = "embedded"  # the task threads of this process
        if age is None:
            return result  # nothing ran yet; the threads start with the first task
    if age is None:
        result["status"] = "missing"  # no worker has finished a periodic task (since Redis began)
    elif age > settings.NERSTUDIO_HEARTBEAT_MAX_AGE:
        result["status"] = "stale"
    return result


def check_queues() -> dict[str, Any]:
    """Tasks waiting on each queue and those workers hold unacknowledged. kombu's Redis transport
    keeps a queue as one list per priority step: the queue's name for priority 0, the default,
    and the name with a suffix for the others (the thumbnails' 9)."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    prefix = options.get("global_keyprefix", "")
    names = queue_names()
    steps = [s for s in options.get("priority_steps", redis_transport.PRIORITY_STEPS) if s]
    sep = options.get("sep", redis_transport.Channel.sep)
    with contextlib.closing(_broker()) as client:
        pipe = client.pipeline(transaction=False)
        for name in names:
            for key in [name, *(f"{name}{sep}{step}" for step in steps)]:
                pipe.llen(prefix + key)
        pipe.hlen(prefix + options.get("unacked_key", "unacked"))
        *lengths, unacked = pipe.execute()
    per_queue = len(steps) + 1
    depths = {
        name: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, name in enumerate(names)
    }
    return {"depths": depths, "unacked": unacked}


def check_embedded_queues() -> dict[str, Any]:
    return {"mode": "embedded", "depths": tasks.embedded_backlog()}


# --- The heartbeat --------------------------------------------------------------------------------
_last_beat: dict[str, float] = {}


def record_heartbeat(queue: str, *, force: bool = False) -> None:
    """Note that a worker of `queue` is alive (at most every few seconds per process); never
    fails the task that triggered it."""
    now = time.monotonic()
    if not force and now - _last_beat.get(queue, -HEARTBEAT_EVERY) < HEARTBEAT_EVERY:
        return
    _last_beat[queue] = now
    try:
        cache.set(HEARTBEAT_KEY + queue, time.time(), timeout=None)
    except Exception:
        logger.warning("Could not write the worker heartbeat", exc_info=True)


def _on_task_done(task=None, **_: Any) -> None:
    if task is not None:
        record_heartbeat(tasks.queue_of(task.name))


def _on_worker_ready(sender=None, **_: Any) -> None:
    for queue in getattr(getattr(sender, "task_consumer", None), "queues", ()):
        record_heartbeat(queue.name, force=True)


def connect_signals() -> None:
    """In every process that runs tasks (workspace.apps: web, worker and beat alike)."""
    task_postrun.connect(_on_task_done, weak=False, dispatch_uid="nerstudio.health.heartbeat")
    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="nerstudio.health.ready")
