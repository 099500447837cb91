"""kie.ai callbacks: tolerant parsing of the documented body variants, and HMAC verification."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from providers.adapters.errors import InvalidOutput
from providers.adapters.kie import NanoBananaProAdapter, parse_callback, verify_webhook
from providers.adapters.types import ProviderConfig

SUCCESS = {
    "code": 200,
    "msg": "Playground task completed successfully.",
    "data": {
        "taskId": "task_abc",
        "model": "nano-banana-pro",
        "state": "success",
        "param": json.dumps({"model": "nano-banana-pro", "input": {"prompt": "x"}}),
        "resultJson": json.dumps({"resultUrls": ["https://tempfile.aiquickdraw.com/r.png"]}),
        "costTime": 89,
        "completeTime": 1787567409000,
        "createTime": 1787567320000,
        "updateTime": 1787567409000,
        "creditsConsumed": 61,
    },
}
FAILURE = {
    "code": 501,
    "msg": "Playground task failed.",
    "data": {
        "taskId": "task_abc",
        "model": "nano-banana-pro",
        "state": "fail",
        "failCode": "500",
        "failMsg": "Internal error during generation",
        "resultJson": None,
        "creditsConsumed": 0,
    },
}
# The webhook-verification page's example: top-level taskId plus data.task_id, no result.
VERIFICATION_EXAMPLE = {
    "taskId": "task_abc",
    "code": 200,
    "msg": "success",
    "data": {"task_id": "task_abc", "callbackType": "task_completed"},
}


def body(payload) -> bytes:
    return json.dumps(payload).encode()


def test_it_parses_a_successful_callback():
    status = parse_callback(body(SUCCESS))

    assert status.task_id == "task_abc"
    assert status.state == "success"
    assert status.result_urls == ("https://tempfile.aiquickdraw.com/r.png",)


def test_it_parses_a_failed_callback():
    status = parse_callback(body(FAILURE))

    assert status.state == "failed"
    assert status.error == "Internal error during generation"
    assert status.error_code == "500"


def test_it_treats_a_501_envelope_without_a_state_as_failed():
    payload = {"code": 501, "msg": "Playground task failed.", "data": {"taskId": "task_abc"}}

    status = parse_callback(body(payload))

    assert status.state == "failed"
    assert status.error_code == "501"


@pytest.mark.parametrize(
    "payload",
    [
        {"taskId": "task_abc", "data": {}},
        {"data": {"taskId": "task_abc"}},
        {"data": {"task_id": "task_abc"}},
        {"taskId": "", "data": {"task_id": "task_abc"}},
    ],
)
def test_it_finds_the_task_id_wherever_kie_puts_it(payload):
    assert parse_callback(body({"code": 200, **payload})).task_id == "task_abc"


def test_a_callback_without_a_result_stays_pending_so_the_job_is_polled():
    status = parse_callback(body(VERIFICATION_EXAMPLE))

    assert status.state == "pending"
    assert status.task_id == "task_abc"


def test_a_success_callback_without_urls_is_flagged():
    payload = {**SUCCESS, "data": {**SUCCESS["data"], "resultJson": json.dumps({"resultUrls": []})}}

    with pytest.raises(InvalidOutput):
        parse_callback(body(payload))


@pytest.mark.parametrize("raw", [b"not json", b"[]", body({"code": 200, "data": {}})])
def test_it_rejects_callbacks_it_cannot_attribute(raw):
    with pytest.raises(InvalidOutput):
        parse_callback(raw)


def test_the_adapter_exposes_callback_parsing():
    adapter = NanoBananaProAdapter(ProviderConfig(api_key="k"))

    assert adapter.parse_callback(body(SUCCESS)).state == "success"


# --- HMAC ---------------------------------------------------------------------------------------

SECRET = "whk_test_secret"
NOW = 1769670760


def kie_signature(task_id: str, timestamp: int, key: str) -> str:
    """kie's published Python example, written out independently of the adapter."""
    message = f"{task_id}.{timestamp}".encode()
    return base64.b64encode(hmac.new(key.encode(), message, hashlib.sha256).digest()).decode()


def signed_headers(task_id="task_abc", timestamp=NOW, key=SECRET) -> dict:
    return {
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": kie_signature(task_id, timestamp, key),
    }


def test_it_accepts_a_correct_signature():
    assert verify_webhook(signed_headers(), body(SUCCESS), SECRET, now=NOW + 5)


def test_it_accepts_a_signature_over_the_task_id_in_data_task_id():
    assert verify_webhook(signed_headers(), body(VERIFICATION_EXAMPLE), SECRET, now=NOW)


def test_it_reads_headers_case_insensitively():
    headers = {k.lower(): v for k, v in signed_headers().items()}

    assert verify_webhook(headers, body(SUCCESS), SECRET, now=NOW)


def test_it_rejects_a_signature_made_with_another_key():
    assert not verify_webhook(signed_headers(key="other"), body(SUCCESS), SECRET, now=NOW)


def test_it_rejects_a_body_for_another_task():
    other = {**SUCCESS, "data": {**SUCCESS["data"], "taskId": "task_other"}}

    assert not verify_webhook(signed_headers(), body(other), SECRET, now=NOW)


def test_it_rejects_a_tampered_timestamp():
    headers = {**signed_headers(), "X-Webhook-Timestamp": str(NOW + 1)}

    assert not verify_webhook(headers, body(SUCCESS), SECRET, now=NOW)


@pytest.mark.parametrize("now", [NOW + 301, NOW - 301])
def test_it_rejects_a_stale_or_future_timestamp(now):
    assert not verify_webhook(signed_headers(), body(SUCCESS), SECRET, now=now)


def test_the_replay_window_is_configurable():
    assert verify_webhook(signed_headers(), body(SUCCESS), SECRET, now=NOW + 500, window=600)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Webhook-Timestamp": str(NOW)},
        {"X-Webhook-Signature": kie_signature("task_abc", NOW, SECRET)},
        {"X-Webhook-Timestamp": "12.5", "X-Webhook-Signature": "x"},
    ],
)
def test_it_rejects_missing_or_malformed_headers(headers):
    assert not verify_webhook(headers, body(SUCCESS), SECRET, now=NOW)


def test_it_rejects_everything_when_no_secret_is_configured():
    assert not verify_webhook(signed_headers(key=""), body(SUCCESS), "", now=NOW)


def test_it_rejects_a_body_that_is_not_json():
    assert not verify_webhook(signed_headers(), b"garbage", SECRET, now=NOW)


def test_it_uses_the_current_time_by_default():
    fresh = int(time.time())

    assert verify_webhook(signed_headers(timestamp=fresh), body(SUCCESS), SECRET)
    assert not verify_webhook(signed_headers(timestamp=fresh - 3600), body(SUCCESS), SECRET)
