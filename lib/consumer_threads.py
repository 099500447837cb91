"""Database work of websocket consumers, off the web process's single sync thread.

Channels' `database_sync_to_async` is thread-sensitive by default: every call of every consumer
in a process (and the session and user lookups of its AuthMiddleware) queues for the one thread
that also runs Django's sync views. When many browsers connect at once — a deploy restarting the
web processes, a network blip — they waited for each other's queries one by one. Here the same
calls run on a small pool of threads instead: their round trips to the database overlap, and a
slow view does not hold up a connect. Each call closes its database connection when it ends,
which hands it back to the connection pool. (The work itself still shares one interpreter lock:
this removes the queue, not the CPU cost.)
"""

import functools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.db import close_old_connections

# Below the database pool's size (NERSTUDIO_DB_POOL_MAX, 10), so views keep connections too.
_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="consumer-db")


def off_the_sync_thread(fn):
    """`database_sync_to_async(fn)` on the consumers' threads.

    The connections are closed inside the call itself: asgiref runs `fn` in a copy of the
    caller's context, and a connection opened there was not always the one Channels' wrapper
    closed afterwards (under pytest each thread kept one open)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False, executor=_threads)


class ThreadedAuthMiddleware(AuthMiddleware):
    """Channels' AuthMiddleware (the session's user, its hash verified), resolved on the
    consumers' threads."""

    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await off_the_sync_thread(get_user.func)(scope)


def AuthMiddlewareStack(inner):  # Channels' name, so nerstudio/asgi.py reads the same
    return CookieMiddleware(SessionMiddleware(ThreadedAuthMiddleware(inner)))
