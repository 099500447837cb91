"""Background tasks and the channel layer, in the embedded default and against real Redis."""

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.test import override_settings

from lib.tasks import enqueue
from nerstudio.celery import app as celery_app
from orgs.models import Organization
from tests import tasks_for_tests
from tests.factories import OrganizationFactory

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (CI sets it)")


@pytest.fixture(autouse=True)
def _reset_task_log():
    tasks_for_tests.runs.clear()
    tasks_for_tests.ran.clear()


@pytest.mark.django_db(transaction=True)
@override_settings(CELERY_BROKER_URL=None)
def test_without_a_broker_a_task_runs_in_the_background_after_commit():
    org = OrganizationFactory(name="Before")
    with transaction.atomic():
        enqueue(tasks_for_tests.rename_org, org_id=org.pk, name="After")
        assert not tasks_for_tests.ran.wait(0.2), "ran before the transaction committed"
    assert tasks_for_tests.ran.wait(5)
    thread_name, _ = tasks_for_tests.runs[0]
    assert thread_name.startswith("nerstudio-task")
    assert thread_name != threading.current_thread().name
    org.refresh_from_db()
    assert org.name == "After"


@pytest.mark.django_db(transaction=True)
@override_settings(CELERY_BROKER_URL=None)
def test_a_rolled_back_transaction_sends_no_task():
    org = OrganizationFactory(name="Before")
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue(tasks_for_tests.rename_org, org_id=org.pk, name="After")
        raise RuntimeError
    assert not tasks_for_tests.ran.wait(0.3)


@pytest.mark.django_db
def test_the_channel_layer_delivers_a_group_message():
    layer = get_channel_layer()

    async def roundtrip():
        channel = await layer.new_channel()
        await layer.group_add("org.test", channel)
        await layer.group_send("org.test", {"type": "gen.update", "html": "<p>hi</p>"})
        message = await layer.receive(channel)
        await layer.group_discard("org.test", channel)
        return message

    assert async_to_sync(roundtrip)() == {"type": "gen.update", "html": "<p>hi</p>"}


@needs_redis
def test_with_redis_the_channel_layer_is_channels_redis():
    assert type(get_channel_layer()).__module__ == "channels_redis.core"


@needs_redis
def test_with_redis_an_idle_receive_outlasts_the_layers_blocking_pop():
    """An open websocket's consumer waits on the layer with nothing to receive; with redis-py 8's
    default 5 s read timeout that wait failed after 5 s and the server closed the socket."""
    layer = get_channel_layer()
    assert layer.brpop_timeout == 5  # if channels-redis changes it, the wait below must too

    async def idle_then_deliver():
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(layer.brpop_timeout + 1.5)
        assert not receiving.done(), receiving.exception() if receiving.done() else None
        await layer.send(channel, {"type": "still.here"})
        return await asyncio.wait_for(receiving, 5)

    assert async_to_sync(idle_then_deliver)() == {"type": "still.here"}


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_with_redis_a_celery_worker_runs_the_enqueued_task():
    from celery.contrib.testing.worker import start_worker

    org = OrganizationFactory(name="Before")
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        with transaction.atomic():
            enqueue(tasks_for_tests.rename_org, org_id=org.pk, name="Via Redis")
        assert tasks_for_tests.ran.wait(20)
    assert Organization.objects.get(pk=org.pk).name == "Via Redis"


@needs_redis
def test_with_redis_pushes_from_sync_threads_arrive_over_one_reused_connection():
    """The pipeline pushes from worker threads; each push used to open (and close) a Redis
    connection of its own, on an event loop made for that one call."""
    import uuid

    import redis

    from generation import live

    layer = get_channel_layer()
    public_id = uuid.uuid4()
    client = redis.Redis.from_url(REDIS_URL)

    async def join():
        channel = await layer.new_channel()
        await layer.group_add(live.group_name(public_id), channel)
        return channel

    channel = async_to_sync(join)()
    live._send(public_id, {"type": "warm.up"})  # the sending loop and its connection
    connections_before = client.info("stats")["total_connections_received"]
    for n in range(20):  # one worker thread after another
        thread = threading.Thread(
            target=live._send, args=(public_id, {"type": "image.changed", "n": n})
        )
        thread.start()
        thread.join()
    connections_after = client.info("stats")["total_connections_received"]

    async def receive_all():
        return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(21)]

    received = async_to_sync(receive_all)()
    assert sorted(m.get("n", -1) for m in received) == list(range(-1, 20))
    assert connections_after == connections_before


def run_in_a_real_worker(task: str, pool: str, reports: int, database=None) -> list[bytes]:
    """Start a real worker (production settings, one process or thread on a queue of its own),
    send it `task` `reports` times, one after the other, and return what the runs pushed to a
    Redis list (each task is given the Redis URL and the list's key)."""
    from celery import Celery

    queue = f"test-{pool}-{uuid.uuid4().hex[:8]}"
    key = f"nerstudio:test:{queue}"
    client = redis.Redis.from_url(REDIS_URL)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "nerstudio.settings.base", "DEBUG": "true"}
    if database:
        env["DATABASE_URL"] = (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        )
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "nerstudio", "worker", "--pool", pool),
            *("--concurrency", "1", "-Q", queue, "--include", "tests.tasks_for_tests"),
            *("--without-mingle", "--without-gossip", "--loglevel", "warning"),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    # A bare app: sending with the project's would add the queue to its list of queues.
    sender = Celery("sender", broker=REDIS_URL, set_as_current=False, fixups=[])
    try:
        for _ in range(reports):
            sender.send_task(task, (REDIS_URL, key), queue=queue)
        deadline = time.monotonic() + 60
        while client.llen(key) < reports and time.monotonic() < deadline:
            time.sleep(0.1)
        return client.lrange(key, 0, -1)
    finally:
        worker.terminate()
        worker.wait(30)
        client.delete(key)


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_prefork_worker_runs_its_tasks_on_its_pooled_database_connections():
    """Celery's Django fixup closed each prefork process's database pool around every task
    (celery/celery#10554), so every task connected anew: lib/celery_fixup.py keeps the pool. A
    real prefork worker with the production settings (pool on) runs six tasks in a row; they
    share the pool's one or two connections."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the database pool is PostgreSQL's")

    pids = run_in_a_real_worker(
        "tests.report_backend_pid", "prefork", 6, database=connection.settings_dict
    )

    assert len(pids) == 6
    assert len(set(pids)) <= 2, f"the tasks connected anew: {pids}"


@needs_redis
@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_worker_runs_its_tasks_with_its_startup_objects_frozen(pool):
    """The objects a worker made to start are left out of full garbage collections (as in the
    web processes): in the prefork pool's process and in a thread pool's worker alike."""
    (frozen,) = run_in_a_real_worker("tests.report_frozen_objects", pool, 1)

    assert int(frozen) > 50_000


def test_the_web_process_freezes_its_startup_objects():
    """nerstudio.asgi, which every web process (and `make run`) loads, freezes what its start
    made: a full garbage collection then leaves those objects alone."""
    code = "import gc, nerstudio.asgi; print(gc.get_freeze_count())"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "nerstudio.settings.base", "DEBUG": "true"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert int(out.stdout.split()[-1]) > 50_000
