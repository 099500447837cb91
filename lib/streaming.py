"""Streamed responses stay streamed under ASGI.

Under ASGI, Django sends a streaming response whose body is a synchronous iterator by first
reading all of it into a list on the sync thread ("StreamingHttpResponse must consume synchronous
iterators…"): a zip of 200 images was held whole in a web process's memory before its first byte
left, a file was sent as hundreds of 4 KB writes, and while it was read no other sync view could
run. `AsyncStreamingMiddleware` (outermost) hands Django an asynchronous iterator instead, which
pulls one chunk at a time on the request's sync thread — the thread whose database connection a
CSV export's server-side cursor lives on. Files are read FILE_CHUNK at a time. Under WSGI
nothing changes.
"""

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse

FILE_CHUNK = 256 * 1024


class AsyncStreamingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if isinstance(request, ASGIRequest) and response.streaming and not response.is_async:
            if isinstance(response, FileResponse):
                response.block_size = FILE_CHUNK  # read lazily by the file's iterator
            response.streaming_content = pulled(iter(response.streaming_content))
        return response


async def pulled(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, one `next()` per hop to the sync thread. (The response still closes the file or
    generator underneath when it is done, sent or not.)"""
    pull = sync_to_async(next, thread_sensitive=True)
    while (chunk := await pull(chunks, None)) is not None:
        yield chunk
