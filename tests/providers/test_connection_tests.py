"""Connection tests and deep tests: which hosts they reach, what their messages claim, and what
they cost. HTTP is faked at the seam; every fake must be used and nothing else may be called."""

import io
import json

import pytest
import responses
from PIL import Image

from providers.adapters.base import (
    DEEP_TEST,
)
from providers.adapters.gemini import GeminiLLMAdapter, GeminiVisionAdapter
from providers.adapters.kie import (
    Flux2EditAdapter,
    KieChatAdapter,
    NanoBananaEditAdapter,
    Seedream45EditAdapter,
)
from providers.adapters.openai import OpenAILLMAdapter, OpenAIVisionAdapter
from providers.adapters.types import ProviderConfig
from providers.models import Provider
from providers.registry import ADAPTERS, build_adapter

from .conftest import sent_json

CREDIT = "https://api.kie.ai/api/v1/chat/credit"
UPLOAD = "https://kieai.redpandaai.co/api/file-base64-upload"
RECORD = "https://api.kie.ai/api/v1/jobs/recordInfo"
BALANCE = {"code": 200, "msg": "success", "data": 35.95}
# kie's upload API answers a request without file data like this (PROVIDERS.md §1.5).
MISSING_DATA = {"success": False, "code": 400, "msg": "Missing required parameter: base64Data"}
BAD_KEY = {"success": False, "code": 401, "msg": "Authentication failed: Invalid API Key"}
TASK_NOT_FOUND = {"code": 404, "msg": "Task not found"}


def kie(cls=Seedream45EditAdapter, **config):
    return cls(ProviderConfig(api_key="kie-key", **config))


# --- kie.ai image models: the API host and the upload host ----------------------------------------


@pytest.mark.parametrize("status", [200, 400])  # kie may answer HTTP 200 for a failed request
def test_the_kie_test_proves_the_api_host_and_the_upload_host_accept_the_key(http, status):
    http.get(CREDIT, json=BALANCE)
    http.post(UPLOAD, status=status, json=MISSING_DATA)

    result = kie().test_connection()

    assert result.ok, result.message
    assert result.message == (
        "Key accepted by https://api.kie.ai (35.95 credits left); upload host "
        "https://kieai.redpandaai.co reachable and accepts the key."
    )
    assert [c.request.headers["Authorization"] for c in http.calls] == ["Bearer kie-key"] * 2


def test_the_upload_check_sends_no_file_so_nothing_is_stored(http):
    http.get(CREDIT, json=BALANCE)
    http.post(UPLOAD, json=MISSING_DATA)

    kie().test_connection()

    assert sent_json(http.calls[1]) == {"uploadPath": "nerstudio/references"}


def test_the_kie_test_fails_when_the_upload_host_rejects_the_key_and_says_what_passed(http):
    http.get(CREDIT, json=BALANCE)
    http.post(UPLOAD, status=401, json=BAD_KEY)

    result = kie().test_connection()

    assert not result.ok
    assert result.message.startswith(
        "Key accepted by https://api.kie.ai (35.95 credits left), but the upload host "
        "https://kieai.redpandaai.co failed: kie.ai rejected the API key."
    )
    assert "Authentication failed: Invalid API Key" in result.message


def test_the_kie_test_fails_when_the_upload_host_is_not_a_kie_upload_api(http):
    """A gateway that fronts only the API answers the upload path with its own 404 page."""
    http.get("https://gateway.test/api/v1/chat/credit", json=BALANCE)
    http.post("https://gateway.test/api/file-base64-upload", status=404, body="<h1>Not found</h1>")

    result = kie(
        base_url="https://gateway.test", upload_base_url="https://gateway.test"
    ).test_connection()

    assert not result.ok
    assert "upload host https://gateway.test failed" in result.message
    assert "does not answer like kie.ai's upload API (HTTP 404)" in result.message


def test_the_kie_test_fails_when_the_upload_host_is_unreachable(http):
    http.get(CREDIT, json=BALANCE)
    http.post(UPLOAD, body=responses.ConnectionError("refused"))

    result = kie().test_connection()

    assert not result.ok
    assert "Could not reach" in result.message


def test_the_kie_test_stops_at_an_api_host_that_rejects_the_key(http):
    http.get(CREDIT, json={"code": 401, "msg": "You do not have access permissions"})

    result = kie().test_connection()

    assert not result.ok
    assert "You do not have access permissions" in result.message
    assert len(http.calls) == 1  # no upload check: the `http` fixture refuses unregistered URLs


def test_the_kie_test_reports_an_unreachable_api_host_without_raising(http):
    http.get(CREDIT, body=responses.ConnectionError("refused"))

    result = kie().test_connection()

    assert not result.ok
    assert "Could not reach" in result.message


def test_an_own_key_row_behind_a_gateway_is_tested_on_the_gateway_for_both_hosts(http):
    http.get("https://gateway.test/kie/api/v1/chat/credit", json=BALANCE)
    http.post("https://gateway.test/kie/api/file-base64-upload", json=MISSING_DATA)
    row = Provider(
        adapter="kie-nano-banana-pro",
        name="Ours",
        api_key="org-key",
        base_url="https://gateway.test/kie",
    )

    result = row.build().test_connection()

    assert result.ok, result.message
    assert result.message == (
        "Key accepted by https://gateway.test/kie (35.95 credits left); upload host "
        "https://gateway.test/kie reachable and accepts the key."
    )


def test_the_kie_chat_test_says_which_host_took_the_key(http):
    http.get(CREDIT, json={"code": 200, "msg": "success", "data": 100})

    result = KieChatAdapter(ProviderConfig(api_key="kie-key")).test_connection()

    assert result.ok
    assert result.message == "Key accepted by https://api.kie.ai (100 credits left)."


# --- kie.ai image models: the deep test -----------------------------------------------------------


def test_the_kie_deep_test_adds_the_job_status_endpoint_and_generates_nothing(http):
    http.get(CREDIT, json=BALANCE)
    http.post(UPLOAD, json=MISSING_DATA)
    http.get(RECORD, json=TASK_NOT_FOUND)

    result = kie(Flux2EditAdapter, model="flux-2/flex-image-to-image").deep_test()

    assert result.ok, result.message
    assert result.message == (
        "Key accepted by https://api.kie.ai (35.95 credits left); upload host "
        "https://kieai.redpandaai.co reachable and accepts the key; the job status endpoint "
        "answers. Free: no image was generated, so the model id 'flux-2/flex-image-to-image' "
        "itself was not tried."
    )
    status_query = http.calls[2].request
    assert status_query.url == f"{RECORD}?taskId=nerstudio-deep-test-no-such-task"
    assert status_query.headers["Authorization"] == "Bearer kie-key"
    # Three free calls and no createTask: the `http` fixture refuses any unregistered URL.
    assert len(http.calls) == 3


def test_the_kie_deep_test_fails_when_the_job_status_endpoint_rejects_the_key(http):
    http.get(CREDIT, json=BALANCE)
    http.post(UPLOAD, json=MISSING_DATA)
    http.get(RECORD, json={"code": 401, "msg": "You do not have access permissions"})

    result = kie(NanoBananaEditAdapter).deep_test()

    assert not result.ok
    assert "You do not have access permissions" in result.message


def test_the_kie_deep_test_cost_is_stated_before_it_runs():
    cost = Seedream45EditAdapter.deep_test_cost

    assert cost.startswith("Free")
    assert "No image is generated" in cost


# --- OpenAI -------------------------------------------------------------------------------------

OPENAI = "https://api.openai.com/v1"
MODEL_LIST = {
    "object": "list",
    "data": [
        {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "system"},
        {"id": "gpt-4.1-mini", "object": "model", "created": 1, "owned_by": "system"},
    ],
}


def completion(content, finish_reason="stop", model="gpt-4o-2024-08-06") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1767225600,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 1, "total_tokens": 15},
    }


def openai(cls=OpenAILLMAdapter, **config):
    return cls(ProviderConfig(api_key="sk-test", **config))


def test_the_openai_test_claims_only_that_the_key_was_accepted_and_the_model_listed(http):
    http.get(f"{OPENAI}/models", json=MODEL_LIST)

    result = openai(model="gpt-4.1-mini").test_connection()

    assert result.ok
    assert (
        result.message == "Key accepted by https://api.openai.com/v1; model 'gpt-4.1-mini' listed."
    )
    assert "connected" not in result.message.lower()


def test_the_openai_test_fails_when_the_endpoint_does_not_list_the_model(http):
    http.get(f"{OPENAI}/models", json=MODEL_LIST)

    result = openai(model="gpt-9").test_connection()

    assert not result.ok
    assert result.message == (
        "Key accepted by https://api.openai.com/v1, but model 'gpt-9' is not in its list."
    )


def test_the_openai_deep_test_runs_the_configured_model_once_with_a_tiny_cap(http):
    http.post(f"{OPENAI}/chat/completions", json=completion("OK", model="gpt-4.1-mini-2025"))

    result = openai(model="gpt-4.1-mini").deep_test()

    assert result.ok, result.message
    assert sent_json(http.calls[0]) == {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": DEEP_TEST.prompt}],
        "max_completion_tokens": DEEP_TEST.tokens,
    }
    assert http.calls[0].request.headers["Authorization"] == "Bearer sk-test"
    assert result.message == (
        "Model 'gpt-4.1-mini' at https://api.openai.com/v1 answered a one-word request: 'OK' "
        "(the endpoint reports model 'gpt-4.1-mini-2025'). One minimal chat call: about 15 "
        "input and at most 5 output tokens."
    )


def test_the_openai_deep_test_passes_when_a_reasoning_model_spends_its_tokens_thinking(http):
    http.post(f"{OPENAI}/chat/completions", json=completion("", finish_reason="length"))

    result = openai(model="o4-mini").deep_test()

    assert result.ok
    assert "ran a one-word request but spent all 5 tokens thinking" in result.message


def test_the_openai_deep_test_reports_a_model_the_endpoint_cannot_run(http):
    http.post(
        f"{OPENAI}/chat/completions",
        status=404,
        json={
            "error": {
                "message": "The model `gpt-9` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        },
    )

    result = openai(model="gpt-9").deep_test()

    assert not result.ok
    assert "The model `gpt-9` does not exist" in result.message


def test_the_openai_deep_test_rejects_an_answer_that_is_not_a_chat_completion(http):
    """A gateway that answers anything with 200 proves nothing."""
    http.post("https://gateway.test/v1/chat/completions", json={"status": "ok"})

    result = openai(base_url="https://gateway.test/v1").deep_test()

    assert not result.ok
    assert "did not answer like a chat completion" in result.message


def test_the_openai_vision_deep_test_sends_a_one_pixel_image_at_low_detail(http):
    http.post(f"{OPENAI}/chat/completions", json=completion("Red"))

    result = openai(OpenAIVisionAdapter).deep_test()

    assert result.ok, result.message
    tiny = "data:image/png;base64," + DEEP_TEST.image_base64
    assert sent_json(http.calls[0]) == {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": DEEP_TEST.vision_prompt},
                    {"type": "image_url", "image_url": {"url": tiny, "detail": "low"}},
                ],
            }
        ],
        "max_completion_tokens": DEEP_TEST.tokens,
    }
    assert "answered a one-word question about a 1×1 pixel image: 'Red'" in result.message
    assert OpenAIVisionAdapter.deep_test_cost in result.message


# --- Gemini -------------------------------------------------------------------------------------

GEMINI = "https://generativelanguage.googleapis.com/v1beta"


def answer(text, finish="STOP", version="gemini-2.5-pro-001") -> dict:
    parts = [{"text": text}] if text else []
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 1},
        "modelVersion": version,
    }


def gemini(cls=GeminiLLMAdapter, **config):
    return cls(ProviderConfig(api_key="AIza-test", **config))


def test_the_gemini_test_claims_only_that_the_key_was_accepted_and_the_model_listed(http):
    http.get(
        f"{GEMINI}/models",
        json={"models": [{"name": "models/gemini-2.5-pro"}], "nextPageToken": ""},
    )

    result = gemini().test_connection()

    assert result.ok
    assert result.message == (
        "Key accepted by https://generativelanguage.googleapis.com/v1beta; "
        "model 'gemini-2.5-pro' listed."
    )


def test_the_gemini_deep_test_runs_the_configured_model_once_with_a_tiny_cap(http):
    http.post(f"{GEMINI}/models/gemini-2.5-flash:generateContent", json=answer("OK"))

    result = gemini(model="models/gemini-2.5-flash").deep_test()

    assert result.ok, result.message
    assert sent_json(http.calls[0]) == {
        "contents": [{"role": "user", "parts": [{"text": DEEP_TEST.prompt}]}],
        "generationConfig": {"maxOutputTokens": DEEP_TEST.tokens},
    }
    assert http.calls[0].request.headers["x-goog-api-key"] == "AIza-test"
    assert result.message.startswith(
        "Model 'gemini-2.5-flash' at https://generativelanguage.googleapis.com/v1beta answered "
        "a one-word request: 'OK' (the endpoint reports model 'gemini-2.5-pro-001')."
    )
    assert result.message.endswith(GeminiLLMAdapter.deep_test_cost)


def test_the_gemini_deep_test_passes_when_a_thinking_model_spends_its_tokens_thinking(http):
    http.post(f"{GEMINI}/models/gemini-2.5-pro:generateContent", json=answer("", "MAX_TOKENS"))

    result = gemini().deep_test()

    assert result.ok
    assert "spent all 5 tokens thinking" in result.message


def test_the_gemini_deep_test_reports_a_bad_key(http):
    http.post(
        f"{GEMINI}/models/gemini-2.5-pro:generateContent",
        status=400,
        json={
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"reason": "API_KEY_INVALID"}],
            }
        },
    )

    result = gemini().deep_test()

    assert not result.ok
    assert "API key not valid" in result.message


def test_the_gemini_deep_test_refuses_a_model_id_that_would_change_the_url_path(http):
    result = gemini(model="../files").deep_test()

    assert not result.ok
    assert "Invalid Gemini model id" in result.message


def test_the_gemini_vision_deep_test_sends_a_one_pixel_image(http):
    http.post(f"{GEMINI}/models/gemini-2.5-pro:generateContent", json=answer("Red"))

    result = gemini(GeminiVisionAdapter).deep_test()

    assert result.ok, result.message
    tiny = {"mime_type": "image/png", "data": DEEP_TEST.image_base64}
    assert json.loads(http.calls[0].request.body)["contents"] == [
        {"role": "user", "parts": [{"inline_data": tiny}, {"text": DEEP_TEST.vision_prompt}]}
    ]
    assert "answered a one-word question about a 1×1 pixel image: 'Red'" in result.message


# --- Every adapter ------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", sorted(ADAPTERS))
def test_every_adapter_states_what_its_deep_test_costs(slug):
    cost = ADAPTERS[slug].deep_test_cost

    assert cost.endswith(".")
    assert cost.startswith("Free") or "tokens" in cost


def test_the_tiny_image_is_a_one_pixel_png():
    with Image.open(io.BytesIO(DEEP_TEST.image)) as image:
        assert image.size == (1, 1)


@pytest.mark.parametrize("slug", ["local-image", "local-llm", "local-vision"])
def test_a_local_adapters_deep_test_is_its_free_connection_test(slug):
    result = build_adapter(slug, ProviderConfig()).deep_test()

    assert result.ok
    assert ADAPTERS[slug].deep_test_cost.startswith("Free")
