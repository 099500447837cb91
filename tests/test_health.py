"""/healthz/ answers while the process does; /readyz/ checks the database, the cache, the broker and
the storage (503 naming the one that failed, never hanging on it) and reports the workers'
heartbeat and the queues' depths. Failures are simulated at their seam: a cache on a closed port,
a storage folder that cannot exist, a database cursor that refuses or hangs."""

import os
import time
import uuid

import pytest
import redis
from django.db import OperationalError
from django.test import override_settings
from kombu import Queue

from generation.tasks import reconcile
from nerstudio.celery import app as celery_app
from tests.factories import UserFactory
from workspace import health

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (CI sets it)")


TOKEN = "readyz-probe-token"


@pytest.fixture(autouse=True)
def _fresh_heartbeat(monkeypatch, settings):
    """The heartbeat is written at most every few seconds per process, and a verdict is reused
    for a second: start each test afresh, every call a new round of checks."""
    monkeypatch.setattr(health, "_last_beat", {})
    monkeypatch.setattr(health, "_recent", None)
    settings.NERSTUDIO_READYZ_REUSE = 0
    settings.NERSTUDIO_READYZ_TOKEN = TOKEN


def readyz(client, token=TOKEN):
    response = client.get("/readyz/", headers={"Authorization": f"Bearer {token}"})
    return response, response.json()


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz/")  # no database access is allowed in this test

    assert response.status_code == 200
    assert response.content == b"ok"


@pytest.mark.django_db
def test_readyz_is_200_when_every_dependency_answers(client):
    response, body = readyz(client)

    assert response.status_code == 200
    assert body["status"] == "ready"
    assert {"database", "cache", "broker", "storage", "worker", "queues"} <= set(body["checks"])
    for name in ("database", "cache", "storage"):
        check = body["checks"][name]
        assert check["status"] == "ok" and check["required"] is True
        assert isinstance(check["ms"], float)
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
@override_settings(
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://:cache-password@127.0.0.1:9/0",  # nothing listens on port 9
        }
    }
)
def test_readyz_is_503_naming_the_cache_when_it_is_unreachable(client):
    response, body = readyz(client)

    assert response.status_code == 503
    assert body["status"] == "not ready"
    assert body["checks"]["cache"] == {
        "status": "fail",
        "error": "ConnectionError",
        "ms": body["checks"]["cache"]["ms"],
        "required": True,
    }
    assert body["checks"]["database"]["status"] == "ok"
    assert b"cache-password" not in response.content


@pytest.mark.django_db
def test_readyz_is_503_naming_the_storage_when_media_cannot_be_written(client, settings, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "a-file" / "media")},
        },
    }

    response, body = readyz(client)

    assert response.status_code == 503
    assert body["checks"]["storage"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok"


class _Cursor:
    def __init__(self, behaviour):
        self.behaviour = behaviour

    def __enter__(self):
        self.behaviour()
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql):
        pass

    def fetchone(self):
        return (1,)


class _Connection:
    """Stands in for django.db.connection in the readiness check only."""

    def __init__(self, behaviour):
        self.behaviour = behaviour

    def cursor(self):
        return _Cursor(self.behaviour)

    def close(self):
        pass


def test_readyz_is_503_naming_the_database_when_it_refuses(client, monkeypatch):
    def refuse():
        raise OperationalError("connection to server at 10.0.0.5 failed: password=secret")

    monkeypatch.setattr(health, "connection", _Connection(refuse))

    response, body = readyz(client)

    assert response.status_code == 503
    assert body["checks"]["database"]["status"] == "fail"
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert b"secret" not in response.content and b"10.0.0.5" not in response.content


def test_a_hanging_database_makes_readyz_late_by_the_timeout_not_hang(
    client, monkeypatch, settings
):
    settings.NERSTUDIO_READYZ_TIMEOUT = 0.3
    monkeypatch.setattr(health, "connection", _Connection(lambda: time.sleep(1.5)))

    started = time.monotonic()
    response, body = readyz(client)
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert body["checks"]["database"]["status"] == "timeout"
    assert elapsed < 1.0


@pytest.mark.django_db
def test_readyz_reports_the_age_of_the_workers_heartbeat(client):
    reconcile.apply()  # what the beat sends every 5 s; finishing it writes the heartbeat

    _, body = readyz(client)

    worker = body["checks"]["worker"]
    assert worker["status"] == "ok" and worker["required"] is False
    assert 0 <= worker["heartbeat_age_s"] < 5
    assert "maintenance" in worker["queues"]


@pytest.mark.django_db
def test_a_stale_heartbeat_is_reported_without_taking_the_web_out_of_rotation(client, settings):
    queue = next(iter(health.periodic_queues()))
    health.cache.set(health.HEARTBEAT_KEY + queue, time.time() - 600)

    response, body = readyz(client)

    assert response.status_code == 200
    assert body["checks"]["worker"]["status"] == "stale"
    assert body["checks"]["worker"]["heartbeat_age_s"] >= 600


@pytest.mark.django_db
@override_settings(CELERY_BROKER_URL=None)
def test_without_a_broker_the_in_process_runner_is_the_worker(client):
    response, body = readyz(client)

    assert response.status_code == 200
    assert body["checks"]["broker"]["mode"] == "embedded"
    assert body["checks"]["worker"]["status"] == "ok"
    assert body["checks"]["queues"]["mode"] == "embedded"


def test_queue_names_come_from_celerys_configuration(monkeypatch):
    monkeypatch.setattr(celery_app.conf, "task_queues", [Queue("one"), Queue("two")])
    monkeypatch.setattr(celery_app.conf, "task_routes", {"x.y": {"queue": "three"}})

    assert {"one", "two", "three", celery_app.conf.task_default_queue} <= set(health.queue_names())


@needs_redis
@pytest.mark.django_db
def test_with_redis_readyz_reports_each_queues_depth(client, settings, monkeypatch):
    settings.CELERY_BROKER_URL = REDIS_URL
    name = f"readyz-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(celery_app.conf, "task_queues", [*celery_app.conf.task_queues, Queue(name)])
    broker = redis.Redis.from_url(REDIS_URL)
    broker.rpush(name, "a", "b", "c")
    broker.rpush(f"{name}\x06\x169", "thumbnail")  # kombu's list for priority 9
    try:
        response, body = readyz(client)
    finally:
        broker.delete(name, f"{name}\x06\x169")
        broker.close()

    assert body["checks"]["broker"]["status"] == "ok"
    queues = body["checks"]["queues"]
    assert queues["status"] == "ok"
    assert queues["depths"][name] == 4
    assert isinstance(queues["unacked"], int)
    assert response.status_code == 200


# --- Who sees what, and what a flood of probes costs ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["", "wrong-token", TOKEN + "x"])
def test_without_the_token_readyz_gives_only_the_verdict(client, token):
    response, body = readyz(client, token=token)

    assert response.status_code == 200
    assert body == {"status": "ready"}


def test_without_the_token_a_failure_is_still_a_503_but_names_nothing(client, monkeypatch):
    def refuse():
        raise OperationalError("down")

    monkeypatch.setattr(health, "connection", _Connection(refuse))

    response, body = readyz(client, token="")

    assert response.status_code == 503
    assert body == {"status": "not ready"}


@pytest.mark.django_db
def test_a_signed_in_superuser_sees_the_details_without_a_token(client, settings):
    settings.NERSTUDIO_READYZ_TOKEN = ""  # no token configured: nobody gets in with an empty one

    assert readyz(client, token="")[1] == {"status": "ready"}
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    assert readyz(client, token="")[1]["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_an_org_admin_sees_only_the_verdict(admin_client):
    assert readyz(admin_client, token="")[1] == {"status": "ready"}


@pytest.mark.django_db
def test_a_flood_of_probes_runs_the_checks_once_per_interval(client, settings, monkeypatch):
    settings.NERSTUDIO_READYZ_REUSE = 60
    runs = []
    real = health.check_database

    def counted():
        runs.append(1)
        return real()

    monkeypatch.setattr(health, "check_database", counted)

    for _ in range(20):
        assert readyz(client, token="")[0].status_code == 200
    assert len(runs) == 1

    settings.NERSTUDIO_READYZ_REUSE = 0  # the interval has passed
    readyz(client, token="")
    assert len(runs) == 2
