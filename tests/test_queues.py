"""Queues by kind of work (issue 12): each task on its own queue, with a broker and without one,
so a backlog of renders never delays another generation's submission; and polls for late results
that follow each model's expected time and stay capped when many results are late at once."""

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from generation import tasks
from generation.models import Generation, GenerationImage
from generation.pipeline import reconcile
from lib import tasks as task_runner
from lib.tokens import hash_token
from nerstudio.celery import app as celery_app
from providers import attempts
from providers.local import image as local_image
from tests.factories import GenerationFactory, ImageModelFactory, image_bytes

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (CI sets it)")

ROUTES = {
    "generation.tasks.run_generation": "pipeline",
    "generation.tasks.submit_image": "submit",
    "generation.tasks.stage_products": "submit",
    "generation.tasks.collect_result": "results",
    "providers.local.image.render_local_image": "render",
    "generation.tasks.add_thumbnail": "results",
    "generation.tasks.reconcile": "maintenance",
    "providers.local.image.expire_local_results": "maintenance",
    "workspace.tasks.purge_organization": "maintenance",
    "workspace.tasks.purge_deleted_organizations": "maintenance",
    "tests.rename_org": "default",  # anything not routed
}


@pytest.mark.parametrize(("task_name", "queue"), ROUTES.items())
def test_celery_routes_each_kind_of_work_to_its_own_queue(task_name, queue):
    assert celery_app.amqp.router.route({}, task_name)["queue"].name == queue
    assert task_runner.queue_of(task_name) == queue


def test_a_worker_without_q_consumes_every_queue():
    """The test workers (and a worker run without -Q) take all the queues, not only the default."""
    assert set(celery_app.amqp.queues) == set(ROUTES.values())


@needs_redis
def test_with_redis_each_task_lands_on_its_queue():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    queues = sorted(set(ROUTES.values()))
    keys = [key for queue in queues for key in priority_keys(queue)]
    client.delete(*keys)
    try:
        for task_name in ROUTES:
            celery_app.send_task(task_name, kwargs={})
        assert {q: sum(client.llen(k) for k in priority_keys(q)) for q in queues} == {
            q: list(ROUTES.values()).count(q) for q in queues
        }
    finally:
        client.delete(*keys)


def priority_keys(queue: str) -> list[str]:
    """A queue's Redis lists: kombu keeps one per priority step (0, the default, is the name)."""
    return [queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9))]


@needs_redis
def test_a_task_told_to_try_later_goes_back_on_its_queue_however_often_it_did_before():
    """Celery's default cap (3 retries) once failed a fourth "try later" (fair share under load)."""
    import json

    import redis
    from celery.exceptions import Retry

    from tests.tasks_for_tests import always_busy

    client = redis.Redis.from_url(REDIS_URL)
    client.delete("default")
    always_busy.push_request(id=str(uuid.uuid4()), retries=25, called_directly=False)
    try:
        with pytest.raises(Retry) as retried:
            always_busy()
        assert retried.value.when == 0.5
        assert client.llen("default") == 1
        message = json.loads(client.lpop("default"))
        assert message["headers"]["task"] == "tests.always_busy"
        assert message["headers"]["retries"] == 26
    finally:
        always_busy.pop_request()
        client.delete("default")


# --- The embedded mode: a thread pool per queue ---------------------------------------------------


def _render_job() -> dict:
    return {
        "task_id": f"local-{uuid.uuid4().hex}",
        "prompt": "A mug",
        "image_urls": [],
        "palette": [],
        "aspect_ratio": "1:1",
        "max_side": 64,
        "callback_url": "",
    }


def test_without_a_broker_a_render_backlog_does_not_delay_a_submission(settings, tmp_path):
    settings.CELERY_BROKER_URL = None
    settings.MEDIA_ROOT = tmp_path
    render_threads = task_runner._embedded_pool("render")._max_workers
    release = threading.Event()
    started, finished = [], []
    submitted = threading.Event()
    submit_thread = []

    def slow_render(*args, **kwargs):
        started.append(threading.current_thread().name)
        release.wait(10)
        finished.append(1)
        return image_bytes()

    def submit(image_id):
        submit_thread.append(threading.current_thread().name)
        submitted.set()

    render = local_image.render_local_image.name
    with (
        mock.patch.object(local_image, "render_image", slow_render),
        mock.patch("generation.pipeline.submit.submit_image", submit),
    ):
        try:
            for _ in range(render_threads + 4):  # every render thread busy, and a backlog
                task_runner.submit_embedded(render, _render_job())
            deadline = time.monotonic() + 5
            while len(started) < render_threads and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)
            assert len(started) == render_threads  # the render pool is full, 4 renders wait

            asked = time.monotonic()
            task_runner.submit_embedded(tasks.submit_image.name, {"image_id": 1})
            assert submitted.wait(2), "the submission waited behind the renders"
            assert time.monotonic() - asked < 0.5
            assert submit_thread[0].startswith("nerstudio-task-submit")
            assert all(name.startswith("nerstudio-task-render") for name in started)
            assert not finished
        finally:
            release.set()
            deadline = time.monotonic() + 10
            while len(finished) < render_threads + 4 and time.monotonic() < deadline:
                time.sleep(0.01)
    assert len(finished) == render_threads + 4


# --- Polls for late results -----------------------------------------------------------------------


def _generating_images(model, count, *, overdue_by=1.0, step=1.0):
    """`count` images of a new generation on `model`, submitted, their first poll due already:
    the first image the longest overdue."""
    generation = GenerationFactory(
        org=model.org, provider=model, status=Generation.Status.GENERATING, count=count
    )
    now = timezone.now()
    return [
        GenerationImage.objects.create(
            generation=generation,
            org=model.org,
            index=i,
            status=GenerationImage.Status.GENERATING,
            provider_task_id=f"task-{uuid.uuid4().hex}",
            submitted_at=now - timedelta(seconds=30),
            deadline_at=now + timedelta(minutes=9),
            next_poll_at=now - timedelta(seconds=overdue_by + step * (count - i)),
        )
        for i in range(count)
    ]


@pytest.mark.django_db
def test_a_round_polls_at_most_k_images_per_model_the_longest_overdue_first(org, settings):
    settings.NERSTUDIO_POLLS_PER_ROUND = 3
    busy, quiet = ImageModelFactory(org=org), ImageModelFactory(org=org)
    late = _generating_images(busy, 5)  # late[0] is the longest overdue
    others = _generating_images(quiet, 2)

    first = reconcile.reconcile().collect

    assert sorted(first) == sorted([i.pk for i in late[:3]] + [i.pk for i in others])
    second = reconcile.reconcile().collect
    assert sorted(second) == [i.pk for i in late[3:]]  # the rest, next round
    assert reconcile.reconcile().collect == []  # no image polled twice while not due
    assert set(GenerationImage.objects.values_list("polls", flat=True)) == {1}


@pytest.mark.django_db
def test_polls_follow_the_models_observed_time_to_a_result(org, settings):
    settings.NERSTUDIO_POLL_MIN_SECONDS = 5
    slow, unknown = ImageModelFactory(org=org), ImageModelFactory(org=org)
    for _ in range(3):
        attempts.record_attempt(slow, "result", None, latency_ms=40_000)
    (slow_image,) = _generating_images(slow, 1)
    (new_image,) = _generating_images(unknown, 1)
    now = timezone.now()

    assert sorted(reconcile.reconcile(now=now).collect) == sorted([slow_image.pk, new_image.pk])

    slow_image.refresh_from_db()
    new_image.refresh_from_db()
    assert slow_image.next_poll_at == now + timedelta(seconds=10)  # a quarter of its 40 s median
    assert new_image.next_poll_at == now + timedelta(seconds=5)  # nothing observed: the minimum
    # Then doubling, up to once a minute.
    assert [reconcile.poll_interval(n, 40.0) for n in range(5)] == [10, 20, 40, 60, 60]
    assert [reconcile.poll_interval(n, None) for n in range(5)] == [5, 10, 20, 40, 60]


@pytest.mark.django_db
def test_an_image_whose_callback_arrived_is_not_polled(
    org, client, django_capture_on_commit_callbacks
):
    local = org.providers.get(adapter="local-image")
    reported, collecting, late = _generating_images(local, 3)
    token = "callback-token-for-queue-tests"
    GenerationImage.objects.filter(pk=reported.pk).update(callback_token_hash=hash_token(token))
    GenerationImage.objects.filter(pk=collecting.pk).update(
        collecting_until=timezone.now() + timedelta(seconds=60)
    )
    result = "https://files.example/result.png"
    body = {"taskId": reported.provider_task_id, "state": "success", "resultUrls": [result]}

    with django_capture_on_commit_callbacks() as queued:
        url = reverse("generation:callback", args=[reported.public_id, token])
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 204, response.content
    assert len(queued) == 1  # its collection

    assert reconcile.reconcile().collect == [late.pk]
    # Should that collection get lost, a poll still comes, a minute later.
    a_minute_on = timezone.now() + timedelta(seconds=reconcile.CALLBACK_GRACE_SECONDS + 1)
    assert reported.pk in reconcile.reconcile(now=a_minute_on).collect


def after_worker_init(printed: str, **popen) -> list[str]:
    """What `printed` (an expression) is before and after a Celery worker's start-up signal, in
    a Django process of its own: a niceness, once raised, cannot be lowered again."""
    code = (
        "import os, django; django.setup(); import nerstudio.celery;"
        f" from celery.signals import worker_init; before = {printed};"
        f" worker_init.send(sender=None); print(before, {printed})"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "nerstudio.settings.test"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        **popen,
    ).stdout.split()


AUTOGROUP_NICE = "open('/proc/self/autogroup').read().split()[-1]"


def autogroup() -> list[str]:
    """This process's autogroup, "/autogroup-<n> nice <n>", or nothing where the kernel (or a
    sandbox's stand-in for it) keeps no such groups."""
    try:
        return Path("/proc/self/autogroup").read_text().split()
    except OSError:
        return []


@pytest.mark.skipif(len(autogroup()) != 3, reason="a kernel with autogroup scheduling")
def test_a_worker_in_a_session_of_its_own_lowers_its_sessions_cpu_share_too(settings):
    """With autogroup scheduling a niceness counts only within a session: a worker leading its
    own (as a process manager starts it) would otherwise compete with the web as an equal."""
    parents = autogroup()[-1]

    own = after_worker_init(AUTOGROUP_NICE, start_new_session=True)
    assert own == ["0", str(settings.NERSTUDIO_WORKER_NICENESS)]
    assert after_worker_init(AUTOGROUP_NICE) == [parents, parents]  # a shared session: left alone


def test_workers_run_at_a_lower_cpu_priority_than_the_web_processes(settings):
    before, after = map(int, after_worker_init("os.nice(0)"))

    assert after == min(19, before + settings.NERSTUDIO_WORKER_NICENESS)
    assert settings.NERSTUDIO_WORKER_NICENESS == 10


@needs_redis
def test_with_redis_a_waiting_result_is_taken_before_a_thumbnail_queued_earlier():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = priority_keys("results")
    client.delete(*keys)
    try:
        tasks.add_thumbnail.apply_async(kwargs={"image_id": 1})
        tasks.collect_result.apply_async(kwargs={"image_id": 2})
        with celery_app.connection_for_read() as connection:
            queue = connection.SimpleQueue("results", no_ack=True)
            taken = [queue.get(timeout=2).headers["task"] for _ in range(2)]
            queue.close()
        assert taken == ["generation.tasks.collect_result", "generation.tasks.add_thumbnail"]
    finally:
        client.delete(*keys)


def test_without_a_broker_a_thumbnail_waits_until_no_result_is_being_collected(settings):
    """In one process the threads share the interpreter lock, so a thumbnail (priority 9) is
    decoded only once the results queue has nothing else running or waiting."""
    settings.CELERY_BROKER_URL = None
    ran, release, thumbnailed = [], threading.Event(), threading.Event()

    def collect(image_id):
        ran.append(("collect", image_id))
        release.wait(10)
        return False

    def thumbnail(image_id):
        ran.append(("thumbnail", image_id))
        thumbnailed.set()

    with (
        mock.patch("generation.pipeline.results.collect_result", collect),
        mock.patch("generation.pipeline.results.add_thumbnail", thumbnail),
    ):
        try:
            task_runner.submit_embedded(tasks.collect_result.name, {"image_id": 1})
            task_runner.submit_embedded(tasks.add_thumbnail.name, {"image_id": 2})
            time.sleep(0.3)
            assert ran == [("collect", 1)]
            assert task_runner.embedded_backlog()["results"] == 1  # readyz counts it
            assert not task_runner.wait_until_idle(0.1)
        finally:
            release.set()
        assert task_runner.wait_until_idle(5)
    assert thumbnailed.is_set()
    assert ran == [("collect", 1), ("thumbnail", 2)]


def test_without_a_broker_a_thumbnail_waits_for_a_busy_results_queue_only_so_long(settings):
    settings.CELERY_BROKER_URL = None
    release, thumbnailed = threading.Event(), threading.Event()

    def collect(image_id):
        release.wait(10)
        return False  # nothing stored: no thumbnail of its own to queue

    with (
        mock.patch.object(task_runner, "LOW_PRIORITY_WAIT_SECONDS", 0.3),
        mock.patch("generation.pipeline.results.collect_result", collect),
        mock.patch("generation.pipeline.results.add_thumbnail", lambda i: thumbnailed.set()),
    ):
        try:
            task_runner.submit_embedded(tasks.collect_result.name, {"image_id": 1})
            task_runner.submit_embedded(tasks.add_thumbnail.name, {"image_id": 2})
            assert thumbnailed.wait(5), "the thumbnail waited on the collection for ever"
        finally:
            release.set()


def test_without_a_broker_dropping_a_waiting_thumbnail_leaves_the_next_one_to_run(settings):
    settings.CELERY_BROKER_URL = None
    release, thumbnailed = threading.Event(), []

    def collect(image_id):
        release.wait(10)
        return False

    with (
        mock.patch("generation.pipeline.results.collect_result", collect),
        mock.patch("generation.pipeline.results.add_thumbnail", thumbnailed.append),
    ):
        try:
            task_runner.submit_embedded(tasks.collect_result.name, {"image_id": 1})
            task_runner.submit_embedded(tasks.add_thumbnail.name, {"image_id": 2})
            time.sleep(0.2)  # the thumbnail waits for the collection
            assert task_runner.cancel_deferred() == 1
        finally:
            release.set()
        assert task_runner.wait_until_idle(5)
        task_runner.submit_embedded(tasks.add_thumbnail.name, {"image_id": 3})
        assert task_runner.wait_until_idle(5)
    assert thumbnailed == [3]


def test_without_a_broker_the_low_priority_runner_outlives_a_failure_around_its_task(settings):
    """Closing the database connections after a task can raise (the database gone); the pools'
    threads survive that, and so must the thread that runs the thumbnails."""
    settings.CELERY_BROKER_URL = None
    thumbnailed, closes = [], []

    def close_old_connections():
        closes.append(1)
        if len(closes) == 1:
            raise RuntimeError("the database went away")

    with (
        mock.patch.object(task_runner, "close_old_connections", close_old_connections),
        mock.patch("generation.pipeline.results.add_thumbnail", thumbnailed.append),
    ):
        task_runner.submit_embedded(tasks.add_thumbnail.name, {"image_id": 1})
        assert task_runner.wait_until_idle(5)
        task_runner.submit_embedded(tasks.add_thumbnail.name, {"image_id": 2})
        assert task_runner.wait_until_idle(5)
    assert thumbnailed == [1, 2]
