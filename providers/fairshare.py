"""Fair share between organizations: a bound on each organization's provider calls in flight.

One organization pointing a model at a server that never answers, and starting many images, would
otherwise occupy every worker until its timeouts expire while other organizations' work waits in
the queue. Each provider call (a generation's reference and prompt stage, an image submission, a
result poll and download) first takes one of its organization's NERSTUDIO_ORG_MAX_INFLIGHT slots.
A task that finds none free is re-queued a moment later (lib.tasks.TryLater) without holding
a worker, so the workers stay free for the organizations that have slots.

Slots live in Redis when REDIS_URL is set (shared by every worker process) and in the process
otherwise (the embedded default is one process). Each slot is a lease: one a crashed worker never
gave back lapses after NERSTUDIO_ORG_SLOT_LEASE_SECONDS.
"""

import random
import threading
import time
import uuid
from contextlib import contextmanager
from functools import cache

import redis
from celery import current_task
from django.conf import settings

from lib.tasks import TryLater


class OrgBusy(TryLater):
    """The organization already has its share of provider calls in flight."""


class LocalSlots:
    def __init__(self) -> None:
        self._held: dict[int, dict[str, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, org_id: int, limit: int, lease: float) -> str | None:
        now = time.monotonic()
        with self._lock:
            held = {t: until for t, until in self._held.get(org_id, {}).items() if until > now}
            if len(held) >= limit:
                self._held[org_id] = held
                return None
            token = uuid.uuid4().hex
            held[token] = now + lease
            self._held[org_id] = held
            return token

    def release(self, org_id: int, token: str) -> None:
        with self._lock:
            self._held.get(org_id, {}).pop(token, None)

    def in_flight(self, org_id: int) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(1 for until in self._held.get(org_id, {}).values() if until > now)


# Drop lapsed leases, then take a slot if one is free: one atomic step on the Redis server.
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisSlots:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._acquire = self.client.register_script(ACQUIRE)

    def _key(self, org_id: int) -> str:
        return f"nerstudio:inflight:{org_id}"

    def acquire(self, org_id: int, limit: int, lease: float) -> str | None:
        now, token = time.time(), uuid.uuid4().hex
        args: list[float | int | str] = [now, limit, now + lease, token, int(lease) + 60]
        return token if self._acquire(keys=[self._key(org_id)], args=args) else None

    def release(self, org_id: int, token: str) -> None:
        self.client.zrem(self._key(org_id), token)

    def in_flight(self, org_id: int) -> int:
        return self.client.zcount(self._key(org_id), time.time(), "+inf")


@cache
def _slots(redis_url: str) -> LocalSlots | RedisSlots:
    return RedisSlots(redis_url) if redis_url else LocalSlots()


def slots() -> LocalSlots | RedisSlots:
    return _slots(settings.REDIS_URL)


# A task's first run waits this long for a slot (most calls are short) before giving its worker
# back.
WAIT_SECONDS, POLL_SECONDS = 0.3, 0.02


@contextmanager
def provider_slot(org_id: int):
    """Hold one of the organization's provider-call slots, or raise OrgBusy (try again soon)."""
    store = slots()
    limit, lease = settings.NERSTUDIO_ORG_MAX_INFLIGHT, settings.NERSTUDIO_ORG_SLOT_LEASE_SECONDS
    # Only a task's first run waits: one that was already sent back does not hold a worker again.
    retried = bool(current_task and current_task.request.retries)
    give_up = time.monotonic() + (0 if retried else WAIT_SECONDS)
    while (token := store.acquire(org_id, limit, lease)) is None:
        if time.monotonic() >= give_up:
            raise OrgBusy(random.uniform(0.2, 0.8))
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        store.release(org_id, token)
