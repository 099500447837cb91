"""Streamed responses stay streamed under ASGI, and the view's database connection is handed
back before they send.

Under ASGI, Django sends a streaming response whose body is a synchronous iterator by first
reading all of it into a list ("StreamingHttpResponse must consume synchronous iterators…"): a zip
of 200 images was held whole in a web process's memory before its first byte left.
`async_streaming_middleware` (outermost) hands Django an asynchronous iterator instead, which
pulls one chunk at a time on a worker thread.

Django closes a request's database connections when its response closes, on whichever thread
runs that close — once the body is streamed, not always the view's (a connection then never went
back to the pool, and under load the pool ran dry). So the middleware hands the view's
connections back before any body is sent: a file or zip needs none, and a slow reader no longer
holds one. A body that reads the database itself (the CSV exports' server-side cursor) is given
`on_its_own_thread`: every chunk is made on one thread of its own, whose connection is closed
there when the body ends, sent or not.
"""

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import FileResponse

FILE_CHUNK = 256 * 1024


def async_streaming_middleware(get_response):
    def middleware(request):
        response = get_response(request)
        if isinstance(request, ASGIRequest) and response.streaming:
            connections.close_all()  # on the view's thread, where they were opened
            if not response.is_async:
                if isinstance(response, FileResponse):
                    response.block_size = FILE_CHUNK  # read lazily by the file's iterator
                response.streaming_content = pulled(iter(response.streaming_content))
        return response

    return middleware


async def pulled(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, one `next()` per hop to a worker thread (any: it needs no database)."""
    pull = sync_to_async(_next_or_none, thread_sensitive=False)
    while (chunk := await pull(chunks)) is not None:
        yield chunk


async def on_its_own_thread(chunks: Iterator[str]) -> AsyncIterator[str]:
    """`chunks` that read the database: made on one thread of their own (one connection, which a
    server-side cursor needs), closed there at the end, sent or not."""
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream")
    pull = sync_to_async(_next_or_none, thread_sensitive=False, executor=thread)
    try:
        while (chunk := await pull(chunks)) is not None:
            yield chunk
    finally:
        try:  # the close runs on the thread even if this wait is cancelled (a client gone)
            await sync_to_async(_close, thread_sensitive=False, executor=thread)(chunks)
        finally:
            thread.shutdown(wait=False)  # after the close it has queued


def _next_or_none[T](chunks: Iterator[T]) -> T | None:
    return next(chunks, None)


def _close(chunks: Iterator) -> None:
    try:
        if close := getattr(chunks, "close", None):
            close()  # a generator's cleanup: its cursor
    finally:
        connections.close_all()
