"""ASGI entry point: HTTP through Django (behind the request body caps of lib.http_limits, which
refuse an oversized body before Django receives it), websockets through Channels with session
auth."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nerstudio.settings.base")
django_asgi_app = get_asgi_application()  # before anything imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.cache import caches  # noqa: E402

from lib.consumer_threads import AuthMiddlewareStack  # noqa: E402
from lib.http_limits import RequestBodyLimit  # noqa: E402
from nerstudio.urls import websocket_urlpatterns  # noqa: E402

# Django keeps a cache object per thread and async context, and each Redis cache object opens a
# connection pool of its own (and redis-py 8 reads its version from the package metadata for it):
# the session cache (cached_db) first touched in a websocket connect's task was made anew for
# every connect, which then opened a fresh Redis connection. Made here, on the thread that will
# run the event loop and before the loop starts, one object is inherited by every task on the
# loop, and its connection pool (thread-safe) is shared with the threads that read through it.
caches[settings.SESSION_CACHE_ALIAS]

application = ProtocolTypeRouter(
    {
        "http": RequestBodyLimit(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Everything made so far (modules, models, settings, URL patterns: ~160,000 objects) lives as
# long as the process. Frozen, the garbage collector's full collections no longer walk it: in
# the 50-member load bench (5 in 3 minutes across 2 web processes) each had stopped its process
# for 91–124 ms, every request and socket of it waiting; frozen, 13–24 ms (docs/scaling.md).
gc.freeze()

if settings.NERSTUDIO_EMBEDDED_BEAT:
    from lib.tasks import start_embedded_beat

    start_embedded_beat()
