"""OpenAI (and OpenAI-compatible) chat completions: structured variants and vision."""

import base64
import json

import pytest

from providers.adapters.answers import VARIANTS_FORMAT, VARIANTS_SCHEMA, VISION_FORMAT
from providers.adapters.errors import InvalidOutput, PermanentError, RetryableError
from providers.adapters.openai import OpenAILLMAdapter, OpenAIVisionAdapter
from providers.adapters.types import ProviderConfig, VariantsRequest

from .conftest import jpeg_bytes, png_bytes, sent_json, variants_completion

CHAT = "https://api.openai.com/v1/chat/completions"
MODELS = "https://api.openai.com/v1/models"
REQUEST = VariantsRequest(prompt="Matte black headphones", n=3, references=("Studio, hard light.",))


def llm(**config):
    return OpenAILLMAdapter(ProviderConfig(api_key="sk-test", **config))


def vision(**config):
    return OpenAIVisionAdapter(ProviderConfig(api_key="sk-test", **config))


def error_body(message, type_, code=None):
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def test_it_asks_for_strict_structured_output(http):
    http.post(CHAT, json=variants_completion(["One", "Two", "Three"]))

    result = llm().generate_variants(REQUEST)

    assert result.variants == ("One", "Two", "Three")
    assert http.calls[0].request.headers["Authorization"] == "Bearer sk-test"
    body = sent_json(http.calls[0])
    assert body["model"] == "gpt-4o"
    assert body["response_format"] == VARIANTS_FORMAT
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "prompt_variants", "schema": VARIANTS_SCHEMA, "strict": True},
    }
    assert VARIANTS_SCHEMA["additionalProperties"] is False
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "exactly 3 distinct prompts" in body["messages"][1]["content"]
    assert "Studio, hard light." in body["messages"][1]["content"]


def test_it_works_with_any_openai_compatible_base_url(http):
    url = "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    http.post(url, json=variants_completion(["a", "b", "c"]))

    adapter = llm(
        base_url="https://generativelanguage.googleapis.com/v1beta/openai/", model="gemini-2.5-pro"
    )
    adapter.generate_variants(REQUEST)

    assert sent_json(http.calls[0])["model"] == "gemini-2.5-pro"


def test_a_short_answer_never_comes_back_short(http):
    http.post(CHAT, json=variants_completion(["a", "b"]))
    http.post(CHAT, json=variants_completion([]))  # the follow-up has nothing to add

    result = llm().generate_variants(REQUEST)

    assert result.variants[:2] == ("a", "b")
    assert len(set(result.variants)) == 3
    assert result.varied == 1
    assert "exactly 1 more distinct prompt" in sent_json(http.calls[1])["messages"][1]["content"]


def test_it_rejects_an_answer_without_any_prompt(http):
    http.post(CHAT, json=variants_completion([]))
    http.post(CHAT, json=variants_completion([]))

    with pytest.raises(InvalidOutput, match="no usable prompt"):
        llm().generate_variants(REQUEST)


def test_it_treats_a_refusal_as_unusable_output(http):
    completion = variants_completion([])
    completion["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    http.post(CHAT, json=completion)

    with pytest.raises(InvalidOutput, match=r"I can't help with that\.") as caught:
        llm().generate_variants(REQUEST)

    assert caught.value.code == "refusal"


def test_it_does_not_retry_exhausted_quota(http):
    http.post(
        CHAT,
        status=429,
        json=error_body(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
    )

    with pytest.raises(PermanentError) as caught:
        llm().generate_variants(REQUEST)

    assert caught.value.retryable is False
    assert caught.value.code == "insufficient_quota"


def test_it_retries_a_rate_limit_and_keeps_the_hint(http):
    http.post(
        CHAT,
        status=429,
        json=error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
        headers={"retry-after-ms": "1500"},
    )

    with pytest.raises(RetryableError) as caught:
        llm().generate_variants(REQUEST)

    assert caught.value.retry_after == 1.5
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_it_retries_server_errors(http, status):
    http.post(CHAT, status=status, json=error_body("The server is overloaded", "server_error"))

    with pytest.raises(RetryableError, match="overloaded"):
        llm().generate_variants(REQUEST)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_it_does_not_retry_client_errors(http, status):
    http.post(CHAT, status=status, json=error_body("Incorrect API key provided: sk-te**", "x"))

    with pytest.raises(PermanentError, match="Incorrect API key"):
        llm().generate_variants(REQUEST)


def test_it_handles_an_error_page_that_is_not_json(http):
    http.post(CHAT, status=502, body="<html>bad gateway</html>")

    with pytest.raises(RetryableError, match="HTTP 502"):
        llm().generate_variants(REQUEST)


def test_vision_sends_the_image_as_a_data_url_part(http):
    image = png_bytes()
    answer = {"description": "A red square.", "palette": ["#C8283C", "not a colour", "#fff"]}
    completion = variants_completion([])
    completion["choices"][0]["message"]["content"] = json.dumps(answer)
    http.post(CHAT, json=completion)

    result = vision(options={"detail": "low"}).describe(image)

    assert result.description == "A red square."
    assert result.palette == ("#c8283c", "#ffffff")  # short hex codes are expanded
    body = sent_json(http.calls[0])
    assert body["model"] == "gpt-4o"
    assert body["response_format"] == VISION_FORMAT
    [message] = body["messages"]
    text, picture = message["content"]
    assert text["type"] == "text"
    assert picture == {
        "type": "image_url",
        "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(image).decode(),
            "detail": "low",
        },
    }


def test_vision_labels_jpeg_bytes_as_jpeg(http):
    completion = variants_completion([])
    completion["choices"][0]["message"]["content"] = json.dumps({"description": "x", "palette": []})
    http.post(CHAT, json=completion)

    vision().describe(jpeg_bytes())

    url = sent_json(http.calls[0])["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")


def test_vision_rejects_an_empty_description(http):
    completion = variants_completion([])
    completion["choices"][0]["message"]["content"] = json.dumps({"description": " ", "palette": []})
    http.post(CHAT, json=completion)

    with pytest.raises(InvalidOutput):
        vision().describe(png_bytes())


def test_the_connection_test_lists_models_and_finds_the_configured_one(http):
    http.get(
        MODELS,
        json={
            "object": "list",
            "data": [
                {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "system"},
                {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"},
            ],
        },
    )

    result = vision().test_connection()

    assert result.ok, result.message
    assert http.calls[0].request.headers["Authorization"] == "Bearer sk-test"


def test_the_connection_test_fails_when_the_model_is_not_available(http):
    http.get(MODELS, json={"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})

    result = llm(model="gpt-9").test_connection()

    assert not result.ok
    assert "gpt-9" in result.message


def test_the_connection_test_reports_a_bad_key(http):
    http.get(
        MODELS, status=401, json=error_body("Incorrect API key provided", "invalid_request_error")
    )

    result = llm().test_connection()

    assert not result.ok
    assert "Incorrect API key provided" in result.message


# --- Gateways and what admins need to act on an error (issue 8) ---------------------------------

LITELLM_NO_DEPLOYMENTS = {
    "error": {
        "message": "No deployments available for selected model, Try again in 60 seconds. "
        "Passed model=gpt-4o. pre-call-checks=False, cooldown_list=[('a1b2', {'exception_received"
        "': 'litellm.AuthenticationError: OpenAIException - Incorrect API key provided', "
        "'status_code': '401'})]",
        "type": "None",
        "param": "None",
        "code": "429",
    }
}


def test_a_gateways_429_after_its_upstream_refused_the_key_is_not_treated_as_temporary(http):
    http.post(CHAT, status=429, json=LITELLM_NO_DEPLOYMENTS, headers={"retry-after": "60"})

    with pytest.raises(PermanentError) as caught:
        llm().generate_variants(VariantsRequest(prompt="A lamp", n=2))

    assert caught.value.code == "gateway_no_upstream"
    assert "check the gateway's upstream keys" in caught.value.message


def test_a_server_that_says_not_to_retry_is_believed(http):
    http.post(
        CHAT,
        status=503,
        json={"error": {"message": "Overloaded"}},
        headers={"x-should-retry": "false"},
    )

    with pytest.raises(PermanentError):
        llm().generate_variants(VariantsRequest(prompt="A lamp", n=2))


def test_an_error_carries_the_http_status_and_the_request_id_for_admins(http):
    http.post(
        CHAT,
        status=500,
        json={"error": {"message": "The server had an error"}},
        headers={"x-request-id": "req_8f3b2c"},
    )

    with pytest.raises(RetryableError) as caught:
        llm().generate_variants(VariantsRequest(prompt="A lamp", n=2))

    assert (caught.value.status, caught.value.request_id) == (500, "req_8f3b2c")
    assert caught.value.message == "The server had an error"
