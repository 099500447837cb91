"""Database work of websocket consumers, off the web process's single sync thread, in as few
thread hops as a connect can take.

Channels' `database_sync_to_async` is thread-sensitive by default: every call of every consumer
in a process (and the session and user lookups of its AuthMiddleware) queues for the one thread
that also runs Django's sync views. When many browsers connect at once — a deploy restarting the
web processes, a network blip — they waited for each other's queries one by one. Here the same
calls run on a small pool of threads instead: their round trips to the database overlap, and a
slow view does not hold up a connect. Each call closes its database connection when it ends,
which hands it back to the connection pool. (The work itself still shares one interpreter lock:
this removes the queue, not the CPU cost.)

Each hop costs CPU too (a thread handoff, a pooled connection checked out and back, the event
loop woken), so a connect takes one, after its accept, for the access check and the current state:
the session's user is not resolved by the middleware on a hop of its own but on first use, which
is on the consumer's thread beside its access check (`SessionAuthMiddleware`).
"""

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.core.exceptions import SynchronousOnlyOperation
from django.db import close_old_connections
from django.utils.functional import SimpleLazyObject

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


class Handshakes:
    """Handshakes first: in a burst of connects (every open page reconnecting after a deploy or a
    network blip) the work that follows each accept waits until this process has seen no new
    handshake for `QUIET` seconds (at most `LONGEST` after its own), so the burst's handshakes
    are not slowed by the database hops and renders of the sockets accepted before them. Browsers
    wait for the handshake (and give up on it); the state that follows it is already on the page
    they loaded. One per process, used from its event loop only."""

    QUIET = 0.01
    LONGEST = 0.1

    def __init__(self) -> None:
        self.last = 0.0

    def seen(self) -> float:
        """Note a handshake; returns its time, for `settled`."""
        self.last = time.monotonic()
        return self.last

    async def settled(self, since: float) -> None:
        while (now := time.monotonic()) - self.last < self.QUIET and now - since < self.LONGEST:
            await asyncio.sleep(self.QUIET - (now - self.last))


handshakes = Handshakes()


def _session_user(scope):
    """Channels' `get_user`, unchanged: the session's user if its backend is configured, the user
    may still sign in and the session's auth hash matches theirs (a password change signs every
    session out); otherwise AnonymousUser (and a session whose hash failed is flushed)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return get_user.func(scope)
    # The session and the database are read synchronously: never on the event loop.
    raise SynchronousOnlyOperation(
        'scope["user"] is read on first use: use it inside off_the_sync_thread()'
    )


class SessionAuthMiddleware(AuthMiddleware):
    """Channels' AuthMiddleware with `scope["user"]` resolved on first use, on a consumer thread
    (`off_the_sync_thread`), rather than on a thread hop of its own before the consumer runs."""

    def populate_scope(self, scope):
        if "user" not in scope and "session" in scope:
            scope["user"] = SimpleLazyObject(functools.partial(_session_user, scope))
        super().populate_scope(scope)  # requires the session; keeps a user put there above us

    async def resolve_scope(self, scope):
        """Nothing to do here: the user is read when the consumer first needs it."""


def AuthMiddlewareStack(inner):  # Channels' name, so nerstudio/asgi.py reads the same
    return CookieMiddleware(SessionMiddleware(SessionAuthMiddleware(inner)))
