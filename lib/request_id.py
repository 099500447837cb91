"""Every log line says which request, task and generation it belongs to, in the web process and
in the worker alike.

A request's id comes from an incoming X-Request-ID header when it looks like one (a proxy or load
balancer may have set it), else it is generated; the response carries it back. The ids live in a
context variable: `RequestIdMiddleware` binds the request's, Celery's task signals bind a task's
(its generation or image id from its arguments, and the request id the enqueuing code passed in
the message headers: `task_headers`, lib.tasks.enqueue), and the `LogContext` filter, installed
on the log handlers (nerstudio/settings: LOGGING), copies them onto each record.

The middleware also writes one access line per request (logger `nerstudio.access`, INFO in
production): method, the matched route's pattern (never the path itself, which may carry a
callback token), status and milliseconds until the response was ready, for latency by route.
"""

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from celery.signals import task_postrun, task_prerun

HEADER = "X-Request-ID"
# Sane: what proxies and tracing systems send (uuids, hex, dotted or dashed ids), nothing that
# could break a log line or a header.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+-]{0,127}")
FIELDS = ("request_id", "generation_id", "image_id", "task", "task_id")
_HEADER_PREFIX = "nerstudio_"  # Celery message headers: nerstudio_request_id, …
_PROPAGATED = ("request_id", "generation_id")  # what a task passes on to the tasks it enqueues
access_log = logging.getLogger("nerstudio.access")

_context: ContextVar[Mapping[str, Any]] = ContextVar(
    "nerstudio_log_context", default=MappingProxyType({})
)


def current() -> Mapping[str, Any]:
    return _context.get()


def bind(**fields: Any) -> Token:
    """Add fields to the logging context; returns the token that `unbind` restores."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: Token) -> None:
    _context.reset(token)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def new_id() -> str:
    return uuid.uuid4().hex


def accept(value: str | None) -> str:
    """The incoming id when it is sane, else a new one."""
    if value and _SANE.fullmatch(value):
        return value
    return new_id()


# --- Web ------------------------------------------------------------------------------------------
class RequestIdMiddleware:
    """First in MIDDLEWARE, so everything after it — and Django's own "Not Found: …" warnings,
    which name the request (`LogContext` reads `request.request_id`) — logs the id."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token, started = self._start(request), time.perf_counter()
        try:
            response = self.get_response(request)
            _log_access(request, response, started)
        finally:
            unbind(token)
        response[HEADER] = request.request_id
        return response

    async def __acall__(self, request):
        token, started = self._start(request), time.perf_counter()
        try:
            response = await self.get_response(request)
            _log_access(request, response, started)
        finally:
            unbind(token)
        response[HEADER] = request.request_id
        return response

    @staticmethod
    def _start(request) -> Token:
        request.request_id = accept(request.headers.get(HEADER))
        return _context.set({"request_id": request.request_id})


def _log_access(request, response, started: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = f"/{match.route}" if match else "(no route)"
    _access(request.method, route, response.status_code, started)


def log_socket(route: str, *, accepted: bool, started: float) -> None:
    """A websocket connect's access line: WS, its route's pattern, 101 (accepted) or 403
    (refused), and the time until it was decided. (The web server's own per-socket lines are
    off: see LOGGING.)"""
    _access("WS", route, 101 if accepted else 403, started)


def _access(method: str, route: str, status: int, started: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    ms = round((time.perf_counter() - started) * 1000, 1)
    access_log.info(
        "%s %s %s %.1f ms",
        method,
        route,
        status,
        ms,
        extra={"method": method, "route": route, "status": status, "ms": ms},
    )


# --- Tasks ----------------------------------------------------------------------------------------
def task_headers() -> dict[str, Any]:
    """Message headers carrying the current request (and generation) id into a task."""
    context = _context.get()
    return {_HEADER_PREFIX + key: context[key] for key in _PROPAGATED if key in context}


@task_prerun.connect(weak=False, dispatch_uid="nerstudio.request_id.bind_task")
def _bind_task(task_id=None, task=None, kwargs=None, **_: Any) -> None:
    """Bind a task's ids while it runs: in a worker, and on the embedded runner's threads."""
    headers = getattr(task.request, "headers", None) or {}
    fields = {key: headers.get(_HEADER_PREFIX + key) for key in _PROPAGATED}
    fields.update({k: v for k, v in (kwargs or {}).items() if k in ("generation_id", "image_id")})
    task.request.nerstudio_log_token = bind(task=task.name, task_id=task_id, **fields)


@task_postrun.connect(weak=False, dispatch_uid="nerstudio.request_id.unbind_task")
def _unbind_task(task=None, **_: Any) -> None:
    token = getattr(task.request, "nerstudio_log_token", None)
    if token is not None:
        task.request.nerstudio_log_token = None
        with contextlib.suppress(ValueError):  # set in another context: nothing to restore
            unbind(token)


# --- Logging --------------------------------------------------------------------------------------
class LogContext(logging.Filter):
    """Copy the bound ids onto every record (None when unknown), for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for key in FIELDS:
            if getattr(record, key, None) is None:
                setattr(record, key, context.get(key))
        if record.request_id is None:  # type: ignore[attr-defined]
            request = getattr(record, "request", None)  # Django's request logs name it
            record.request_id = getattr(request, "request_id", None)
        return True
