"""Production logs are JSON lines that say which request (and generation) they belong to, in the
web process and in the tasks it queued; the response names its request id; callback tokens stay
out of the JSON too."""

import io
import json
import logging
import threading

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils.module_loading import import_string

from lib import request_id
from lib.tasks import Task, enqueue
from nerstudio.celery import app as celery_app

task_logger = logging.getLogger("tests.request_logs")
done = threading.Event()


@celery_app.task(name="tests.request_logs.first_step", base=Task)
def first_step(generation_id: int) -> None:
    task_logger.info("first step")
    enqueue(second_step, image_id=generation_id * 10)


@celery_app.task(name="tests.request_logs.second_step", base=Task)
def second_step(image_id: int) -> None:
    task_logger.info("second step")
    done.set()


@pytest.fixture
def json_lines():
    """The configured console handler (with its filters), writing JSON into a buffer."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    config = dict(settings.LOGGING["formatters"]["json"])
    buffer = io.StringIO()
    formatter, stream = handler.formatter, handler.setStream(buffer)
    handler.setFormatter(import_string(config.pop("()"))(**config))
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    handler.setFormatter(formatter)
    handler.setStream(stream)


def test_a_response_names_its_request_id(client):
    generated = client.get("/healthz/")["X-Request-ID"]
    echoed = client.get("/healthz/", HTTP_X_REQUEST_ID="lb-7f3a.42")["X-Request-ID"]
    refused = client.get("/healthz/", HTTP_X_REQUEST_ID="two words\r\nX-Evil: 1")["X-Request-ID"]

    assert len(generated) == 32 and int(generated, 16) >= 0
    assert echoed == "lb-7f3a.42"
    assert refused != "two words\r\nX-Evil: 1" and len(refused) == 32


@pytest.mark.django_db
def test_a_requests_log_lines_are_json_carrying_its_id(client, json_lines):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-404")

    assert response["X-Request-ID"] == "req-404"
    (line,) = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["level"] == "WARNING"
    assert line["message"] == "Not Found: /no-such-page/"
    assert line["request_id"] == "req-404"
    assert line["time"].endswith("+00:00")
    assert "request" not in line  # Django's request object: the id says which


@pytest.mark.django_db(transaction=True)
@override_settings(CELERY_BROKER_URL=None)
def test_tasks_log_the_request_and_generation_ids_that_queued_them(json_lines):
    done.clear()
    with request_id.bound(request_id="req-gen-1"):
        enqueue(first_step, generation_id=7)  # no transaction: sent to the embedded pool at once

    assert done.wait(5)
    lines = {line["message"]: line for line in json_lines() if line["logger"] == task_logger.name}
    first, second = lines["first step"], lines["second step"]
    assert first["request_id"] == second["request_id"] == "req-gen-1"
    assert first["generation_id"] == second["generation_id"] == 7  # passed on by the first step
    assert second["image_id"] == 70
    assert second["task"] == "tests.request_logs.second_step"
    assert first["task_id"] != second["task_id"]


@pytest.mark.django_db
def test_with_a_broker_the_ids_travel_in_the_message_headers(
    memory_broker, django_capture_on_commit_callbacks
):
    from kombu.transport import memory

    with (
        request_id.bound(request_id="req-broker", generation_id=5),
        django_capture_on_commit_callbacks(execute=True),
    ):
        enqueue(second_step, image_id=50)

    messages = []
    for queue in memory.Channel.queues.values():
        while not queue.empty():
            messages.append(queue.get_nowait())
    (message,) = [m for m in messages if m["headers"]["task"] == second_step.name]
    assert message["headers"]["nerstudio_request_id"] == "req-broker"
    assert message["headers"]["nerstudio_generation_id"] == 5


def test_callback_tokens_are_redacted_from_json_lines(json_lines):
    url = "/callbacks/images/0b7e6a1c-0000-4000-8000-000000000000/tok-SECRET-123/"
    with request_id.bound(request_id="req-cb"):
        logging.getLogger("tests.request_logs").warning("Callback %s", url, extra={"path": url})

    (line,) = [line for line in json_lines() if line["request_id"] == "req-cb"]
    assert "tok-SECRET-123" not in json.dumps(line)
    assert line["message"].endswith("/[redacted]/")
    assert line["path"].endswith("/[redacted]/")


@pytest.mark.django_db
def test_each_request_writes_one_access_line_with_its_route_status_and_time(
    client, json_lines, caplog
):
    caplog.set_level(logging.INFO, logger="nerstudio.access")  # production's level
    url = "/callbacks/images/0b7e6a1c-0000-4000-8000-000000000000/tok-SECRET-123/"

    client.get("/healthz/", HTTP_X_REQUEST_ID="req-ok")
    client.post(url, data="{}", content_type="application/json", HTTP_X_REQUEST_ID="req-cb")
    client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-none")

    lines = {
        line["request_id"]: line for line in json_lines() if line["logger"] == "nerstudio.access"
    }
    assert lines["req-ok"]["route"] == "/healthz/"
    assert (lines["req-ok"]["method"], lines["req-ok"]["status"]) == ("GET", 200)
    assert 0 < lines["req-ok"]["ms"] < 10_000
    assert lines["req-cb"]["route"] == "/callbacks/images/<uuid:public_id>/<str:token>/"
    assert lines["req-cb"]["status"] == 404  # no such image
    assert "tok-SECRET-123" not in json.dumps(lines["req-cb"])
    assert (lines["req-none"]["route"], lines["req-none"]["status"]) == ("(no route)", 404)
