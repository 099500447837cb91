"""The Celery broker transport survives Redis going away under a worker (issue 12's fault
"Redis restarted"): a worker holding an unacknowledged task and waiting on Redis must reconnect,
not die with "AttributeError: 'NoneType' object has no attribute 'hostname'"."""

import contextlib
import shutil
import socket
import subprocess
import time

import pytest
import redis as redis_py
from django.conf import settings
from kombu import Connection, Queue
from kombu.common import ignore_errors

from lib.broker import Transport
from nerstudio.celery import app as celery_app

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")


@pytest.fixture
def redis_server():
    """A redis-server of the test's own, so it can be killed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    client = redis_py.Redis(port=port)
    for _ in range(100):
        with contextlib.suppress(redis_py.ConnectionError):
            client.ping()
            break
        time.sleep(0.05)
    yield server, f"redis://127.0.0.1:{port}/0"
    server.kill()
    server.wait()


def test_a_worker_waiting_on_redis_survives_the_server_dying(redis_server):
    server, url = redis_server
    received = []
    with Connection(url, transport=Transport) as connection:
        queue = Queue("work", routing_key="work")
        with connection.Producer() as producer:
            producer.publish({"n": 1}, routing_key="work", declare=[queue])
        consumer = connection.Consumer(queue, callbacks=[lambda body, msg: received.append(body)])
        consumer.consume()
        connection.drain_events(timeout=2)  # delivered, not acknowledged (acks_late)
        with pytest.raises(socket.timeout):
            connection.drain_events(timeout=0.2)  # leaves a BRPOP waiting on the server
        server.kill()
        server.wait()
        # The worker's channel is closed first, as Connection.maybe_close_channel does. Reading
        # the pending BRPOP fails; the channel must still end closed. Half-closed, the next
        # close (below, after the transport has let go of its client) crashed the worker.
        ignore_errors(connection, consumer.channel.close)
        assert consumer.channel.closed
        # What Celery's consumer does when the broker connection is lost, before it reconnects
        # (celery.worker.consumer.Consumer.on_connection_error_after_connected):
        with contextlib.suppress(Exception):
            connection.collect(socket_timeout=1)
        ignore_errors(connection, connection.close)

    assert received == [{"n": 1}]


def test_the_workers_use_that_transport_when_redis_is_the_broker():
    if not settings.CELERY_BROKER_URL:
        assert settings.CELERY_BROKER_TRANSPORT is None  # embedded: no broker at all
    else:
        assert isinstance(celery_app.connection_for_read().transport, Transport)
