"""Fixed-window rate limits in the shared cache (Redis in production, the process's memory in the
embedded default, which is one process).

django-ratelimit was considered: its checks reject Django's own Redis cache backend as unsupported
and the embedded mode's in-process cache as broken, so this counter (two cache calls, atomic with
Redis' INCR) is written here instead.
"""

import time

from django.core.cache import cache


def hit(key: str, *, limit: int, window: int, cost: int = 1) -> int:
    """Count `cost` hits on `key`. Returns 0 while within `limit` hits per `window` seconds, else
    the whole seconds until the window resets (at least 1)."""
    now = time.time()
    start = int(now // window * window)
    slot = f"nerstudio:rate:{key}:{start}"
    cache.add(slot, 0, timeout=window + 1)
    try:
        count = cache.incr(slot, cost)
    except ValueError:  # expired between add and incr
        cache.add(slot, cost, timeout=window + 1)
        count = cost
    if count <= limit:
        return 0
    return max(1, int(start + window - now + 0.999))
