"""Streamed responses stay streamed under ASGI, and hold no database connection while they send.

Under ASGI, Django sends a streaming response whose body is a synchronous iterator by first
reading all of it into a list ("StreamingHttpResponse must consume synchronous iterators…"): a zip
of 200 images was held whole in a web process's memory before its first byte left.
`async_streaming_middleware` (outermost) hands Django an asynchronous iterator instead, which
pulls one chunk at a time on a worker thread.

The view's database connection is handed back to the pool before the body is sent: a file or
zip needs none, a slow client would otherwise hold one for as long as it takes to read, and
Django closes connections at the end of the response on whichever thread runs the close — not
always the view's once the client has gone (a connection then never went back, and under load
the pool ran dry). So a synchronous streaming body must not use the database; one that does is
an asynchronous iterator itself (the CSV exports: workspace.views) and is left alone here.
"""

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import FileResponse

FILE_CHUNK = 256 * 1024


def async_streaming_middleware(get_response):
    def middleware(request):
        response = get_response(request)
        if isinstance(request, ASGIRequest) and response.streaming and not response.is_async:
            close_old_connections()  # on the view's thread, where they were opened
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


def _next_or_none(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)
