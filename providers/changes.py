"""Provider changes pushed to every process over Redis pub/sub.

Why Redis and not PostgreSQL LISTEN/NOTIFY: every production process already talks to Redis (Celery
broker, channel layer, cache), a subscriber costs Redis one idle socket, and it leaves PostgreSQL
connections - the resource that saturates first - to requests and tasks; a LISTEN would pin one
more connection per web and worker process, outside the pool. Embedded mode has neither Redis nor
other processes, so it needs no transport at all (see providers.org_registry).

A message is a JSON list of organization ids. Pub/sub channels are shared by all of a Redis server's
databases, so the channel is named after the Django database: two deployments (or test runs) on
one Redis never invalidate each other's organizations.

Nothing here may break the caller: a failed publish is logged and left to the registry's periodic
check, and the listener thread reconnects with backoff for as long as the process lives.
"""

import itertools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable

import redis
from django.db import connections
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0  # seconds to open a connection to Redis
READ_TIMEOUT = 5.0  # seconds any single read or write may block
WAIT_SECONDS = 0.5  # how long one wait for a message blocks (also how fast stop() is noticed)
PING_SECONDS = 5.0  # the listener pings this often ...
SILENCE_SECONDS = 3 * PING_SECONDS  # ... and reconnects after this long without any answer
BACKOFF_MIN, BACKOFF_MAX = 0.1, 10.0  # reconnect delays, doubled after each failure

_names = itertools.count(1)
_publisher: tuple[int, str, redis.Redis] | None = None  # (pid, url, client): one per process
_publisher_lock = threading.Lock()


def channel_name(using: str = "default") -> str:
    return f"nerstudio:provider-changes:{connections[using].settings_dict['NAME']}"


def publish(url: str, channel: str, org_ids: Iterable[int]) -> bool:
    """Tell every listening process that these organizations' providers changed."""
    try:
        _publisher_client(url).publish(channel, json.dumps(sorted(set(org_ids))))
    except redis.RedisError:
        logger.warning(
            "Could not publish a provider change; processes will see it at their "
            "next periodic check",
            exc_info=True,
        )
        return False
    return True


def _publisher_client(url: str) -> redis.Redis:
    """One client per process and URL, made again after a fork (sockets are not shared)."""
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[:2] != (os.getpid(), url):
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=READ_TIMEOUT,
                retry=Retry(NoBackoff(), 1),  # once more on a socket a Redis restart closed
            )
            _publisher = (os.getpid(), url, client)
        return _publisher[2]


def _forked() -> None:
    global _publisher, _publisher_lock
    _publisher, _publisher_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forked)


class Listener:
    """A daemon thread subscribed to the change channel, calling `on_change(org_ids)` per message.

    `on_subscribed()` is called on every (re)subscription: messages sent while it was disconnected
    are lost, so the caller forgets everything it cached. `live` is set while subscribed.
    """

    def __init__(
        self,
        url: str,
        channel: str,
        on_change: Callable[[list[int]], None],
        on_subscribed: Callable[[], None],
    ) -> None:
        self.url, self.channel = url, channel
        self.on_change, self.on_subscribed = on_change, on_subscribed
        self.live = threading.Event()
        self.subscriptions = 0  # successful subscriptions so far (1 + reconnects)
        self.client_name = f"nerstudio-provider-changes-{os.getpid()}-{next(_names)}"
        self._stopping = threading.Event()
        self._delay = BACKOFF_MIN
        self._thread = threading.Thread(target=self._run, name=self.client_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:  # never let the thread die: retry after a pause
                # Once per outage, not once per retry.
                level = logging.WARNING if self._delay == BACKOFF_MIN else logging.DEBUG
                logger.log(level, "Provider change listener: no Redis (%s); retrying", exc)
            self.live.clear()
            if self._stopping.wait(self._delay * random.uniform(0.5, 1.0)):
                break
            self._delay = min(self._delay * 2, BACKOFF_MAX)

    def _listen(self) -> None:
        client = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=READ_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # reconnecting is this loop's job, with backoff
            client_name=self.client_name,
        )
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            heard = next_ping = time.monotonic()
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=WAIT_SECONDS)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    self._handle(message)
                if now >= next_ping:
                    pubsub.ping()  # its answer counts as hearing from Redis
                    next_ping = now + PING_SECONDS
                if now - heard > SILENCE_SECONDS:
                    raise redis.ConnectionError("no answer from Redis")
        finally:
            self.live.clear()
            pubsub.close()
            client.close()

    def _handle(self, message: dict) -> None:
        kind = message["type"]
        try:
            if kind == "subscribe":
                self.subscriptions += 1
                self._delay = BACKOFF_MIN
                self.on_subscribed()
                self.live.set()
            elif kind == "message":
                self.on_change([int(org_id) for org_id in json.loads(message["data"])])
        except Exception:  # a bad message or callback must not drop the subscription
            logger.exception("Provider change listener could not handle %s", kind)
