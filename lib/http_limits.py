"""Request body caps enforced at the ASGI layer, before anything reads or parses the body.

Django's ASGIHandler receives the whole body into a temporary file before any middleware or view
runs, and DATA_UPLOAD_MAX_MEMORY_SIZE does not count file parts: without this, a 50 MB file part
is received and spooled in full before the upload form says it is over 10 MB. RequestBodyLimit
wraps the Django HTTP application (nerstudio/asgi.py) and answers 413 Payload Too Large:

* at once, without asking for the body, when Content-Length is over the route's cap;
* as soon as the bytes received pass the cap (a chunked body has no Content-Length);
* on the upload route, as soon as one multipart part grows past the per-file limit.

The app behind then sees a client disconnect and stops. The response carries Connection: close
so the server does not read the rest of the body to reuse the connection.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.http import parse_header_parameters

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/generate/"  # generation:generate
LIBRARY_UPLOAD_PATH = "/library/upload/"  # library:upload; the only other route that takes files
CALLBACK_PREFIX = "/callbacks/"  # generation:callback and any later provider callbacks
PART_HEADERS_ALLOWANCE = 16 * 1024  # a part's own headers count towards its size

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


@dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    message: str  # why a body over max_bytes is refused, for people
    max_part_bytes: int | None = None  # multipart bodies: the largest single part
    part_message: str = ""
    back_to: str = "/"


def limit_for(path: str, *, multipart: bool = False) -> BodyLimit:
    """The cap for a request, read from settings on every request (tests override them). Only a
    multipart body can carry files, so only that gets the upload route's larger cap."""
    if path in (UPLOAD_PATH, LIBRARY_UPLOAD_PATH) and multipart:
        total = settings.NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES
        per_file = settings.NERSTUDIO_UPLOAD_MAX_BYTES
        return BodyLimit(
            max_bytes=total,
            message=(
                f"Your photos add up to more than {filesizeformat(total)}, the most one upload "
                f"can take. Choose fewer or smaller photos (up to {filesizeformat(per_file)} each)."
            ),
            max_part_bytes=per_file + PART_HEADERS_ALLOWANCE,
            part_message=f"One of the photos is larger than {filesizeformat(per_file)}, the most "
            "one photo may be. Choose a smaller one.",
            back_to=path,
        )
    if path.startswith(CALLBACK_PREFIX):
        total = settings.NERSTUDIO_CALLBACK_MAX_REQUEST_BYTES
        return BodyLimit(total, f"A callback body may be at most {filesizeformat(total)}.")
    total = settings.NERSTUDIO_MAX_REQUEST_BYTES
    return BodyLimit(
        total, f"This request is larger than {filesizeformat(total)}, the most allowed."
    )


class RequestBodyLimit:
    """ASGI middleware for HTTP: refuse bodies over the route's cap with 413 before they are read
    (see the module docstring). Other scope types pass through untouched."""

    def __init__(self, app, limit_for: Callable[..., BodyLimit] = limit_for):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        boundary = _multipart_boundary(headers.get(b"content-type"))
        limit = self.limit_for(path, multipart=boundary is not None)
        declared = _content_length(headers.get(b"content-length"))
        if declared is not None and declared > limit.max_bytes:
            _log(scope, path, f"Content-Length {declared} over {limit.max_bytes}")
            return await refuse(send, limit.message, limit.back_to)

        counter = _BodyCounter(limit, boundary)
        state = {"refused": False, "started": False}

        async def limited_receive() -> dict:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] != "http.request":
                return message
            problem = counter.feed(message.get("body", b""))
            if problem is None:
                return message
            state["refused"] = True
            _log(scope, path, f"body cut off after {counter.received} bytes")
            if not state["started"]:
                await refuse(send, problem, limit.back_to)
            return {"type": "http.disconnect"}  # the app stops as if the client had gone

        async def guarded_send(message: dict) -> None:
            if state["refused"]:
                return  # our 413 was the answer
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


class _BodyCounter:
    """Counts body bytes, and for multipart bodies the bytes since the last part boundary."""

    def __init__(self, limit: BodyLimit, boundary: bytes | None):
        self.limit = limit
        self.received = 0
        # RFC 2046: a part ends at CRLF "--" boundary (the first delimiter, at offset 0, needs no
        # match: counting starts there). The bare boundary inside a file proves nothing.
        self.delimiter = b"\r\n--" + boundary if boundary and limit.max_part_bytes else None
        self.in_part = 0  # bytes since the last delimiter seen
        self.tail = b""  # the end of the previous chunk: a delimiter may span two chunks

    def feed(self, chunk: bytes) -> str | None:
        """The reason to refuse, once the body is over a limit; None while it is within."""
        self.received += len(chunk)
        if self.received > self.limit.max_bytes:
            return self.limit.message
        if self.delimiter is None or not chunk:
            return None
        window = self.tail + chunk
        last = window.rfind(self.delimiter)
        if last == -1:
            self.in_part += len(chunk)
        else:
            self.in_part = len(window) - last - len(self.delimiter)
        self.tail = window[-(len(self.delimiter) - 1) :]
        if self.limit.max_part_bytes is not None and self.in_part > self.limit.max_part_bytes:
            return self.limit.part_message
        return None


async def refuse(send: Send, message: str, back_to: str = "/") -> None:
    """A 413 with a small HTML page (the Generate form is submitted through htmx, which swaps the
    response in, so people read this in place of the page)."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Too large</title></head><body><main>"
        f'<h1>Too large</h1><p role="alert">{escape(message)}</p>'
        f'<p><a href="{escape(back_to)}">Back</a></p></main></body></html>'
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server rejects it; counting still applies


def _multipart_boundary(content_type: bytes | None) -> bytes | None:
    if not content_type:
        return None
    try:
        kind, params = parse_header_parameters(content_type.decode("latin-1"))
    except ValueError:
        return None
    boundary = params.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        return None
    return boundary.encode("latin-1")


def _log(scope, path: str, detail: str) -> None:
    client = (scope.get("client") or ("?",))[0]
    if path.startswith(CALLBACK_PREFIX):
        path = CALLBACK_PREFIX + "…"  # callback URLs carry secret tokens
    logger.warning("413 for %s %s from %s: %s", scope.get("method", "?"), path, client, detail)
