"""Google Gemini direct: generateContent with a response schema, blocks and odd finishes."""

import base64
import json

import pytest

from providers.adapters.answers import GEMINI_VISION_SCHEMA, gemini_variants_schema
from providers.adapters.errors import InvalidOutput, PermanentError, RetryableError
from providers.adapters.gemini import GeminiLLMAdapter, GeminiVisionAdapter
from providers.adapters.types import ProviderConfig, VariantsRequest

from .conftest import jpeg_bytes, sent_json

BASE = "https://generativelanguage.googleapis.com/v1beta"
GENERATE = f"{BASE}/models/gemini-2.5-pro:generateContent"
REQUEST = VariantsRequest(prompt="Ceramic mug, autumn mood", n=2)


def llm(**config):
    return GeminiLLMAdapter(ProviderConfig(api_key="AIza-test", **config))


def answer(*parts, finish="STOP") -> dict:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": list(parts)},
                "finishReason": finish,
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14},
        "modelVersion": "gemini-2.5-pro",
        "responseId": "r1",
    }


def api_error(code, status, message, reason=None) -> dict:
    details = (
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}] if reason else []
    )
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def test_it_asks_for_json_with_a_response_schema_and_the_key_in_a_header(http):
    http.post(GENERATE, json=answer({"text": json.dumps({"variants": ["One", "Two"]})}))

    result = llm().generate_variants(REQUEST)

    assert result.variants == ("One", "Two")
    request = http.calls[0].request
    assert request.url == GENERATE  # the key is not in the query string
    assert request.headers["x-goog-api-key"] == "AIza-test"
    body = sent_json(http.calls[0])
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": gemini_variants_schema(2),
    }
    variants = body["generationConfig"]["responseSchema"]["properties"]["variants"]
    assert (variants["type"], variants["minItems"], variants["maxItems"]) == ("ARRAY", 2, 2)
    assert variants["items"]["required"] == ["title", "prompt"]
    assert "image-generation model" in body["systemInstruction"]["parts"][0]["text"]
    [content] = body["contents"]
    assert content["role"] == "user"
    assert "Ceramic mug, autumn mood" in content["parts"][0]["text"]


def test_it_skips_thought_parts_and_joins_the_rest(http):
    http.post(
        GENERATE,
        json=answer(
            {"text": "Let me think about mugs...", "thought": True},
            {"text": '{"variants": ["One",'},
            {"text": ' "Two"]}'},
        ),
    )

    assert llm().generate_variants(REQUEST).variants == ("One", "Two")


def test_it_accepts_a_model_named_with_the_models_prefix(http):
    http.post(
        f"{BASE}/models/gemini-2.5-flash:generateContent", json=answer({"text": '["a", "b"]'})
    )

    assert llm(model="models/gemini-2.5-flash").generate_variants(REQUEST).variants == ("a", "b")


def test_it_reports_a_blocked_prompt_that_came_back_with_http_200(http):
    http.post(
        GENERATE,
        json={
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "modelVersion": "x",
        },
    )

    with pytest.raises(InvalidOutput, match=r"blocked the prompt \(SAFETY\)") as caught:
        llm().generate_variants(REQUEST)

    assert caught.value.code == "blocked"


@pytest.mark.parametrize("finish", ["MAX_TOKENS", "SAFETY", "RECITATION", "OTHER"])
def test_it_rejects_any_finish_but_stop(http, finish):
    http.post(GENERATE, json=answer({"text": '{"variants": ["a", "b"]}'}, finish=finish))

    with pytest.raises(InvalidOutput) as caught:
        llm().generate_variants(REQUEST)

    assert caught.value.code == finish


def test_it_reports_no_candidates(http):
    http.post(GENERATE, json={"candidates": [], "usageMetadata": {}})

    with pytest.raises(InvalidOutput, match="no answer"):
        llm().generate_variants(REQUEST)


def test_it_recognises_an_invalid_key_behind_a_400(http):
    http.post(
        GENERATE,
        status=400,
        json=api_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            "API_KEY_INVALID",
        ),
    )

    with pytest.raises(PermanentError, match="rejected the API key") as caught:
        llm().generate_variants(REQUEST)

    assert caught.value.code == "API_KEY_INVALID"


@pytest.mark.parametrize(
    ("code", "status", "error_class"),
    [
        (400, "INVALID_ARGUMENT", PermanentError),
        (400, "FAILED_PRECONDITION", PermanentError),
        (403, "PERMISSION_DENIED", PermanentError),
        (404, "NOT_FOUND", PermanentError),
        (429, "RESOURCE_EXHAUSTED", RetryableError),
        (500, "INTERNAL", RetryableError),
        (503, "UNAVAILABLE", RetryableError),
        (504, "DEADLINE_EXCEEDED", RetryableError),
    ],
)
def test_it_maps_api_errors(http, code, status, error_class):
    http.post(GENERATE, status=code, json=api_error(code, status, f"{status} happened"))

    with pytest.raises(error_class, match=f"{status} happened") as caught:
        llm().generate_variants(REQUEST)

    assert caught.value.code == status


def test_vision_sends_the_image_inline_and_asks_for_a_description_schema(http):
    image = jpeg_bytes()
    http.post(
        GENERATE,
        json=answer({"text": json.dumps({"description": "A red tile.", "palette": ["#C8283C"]})}),
    )

    result = GeminiVisionAdapter(ProviderConfig(api_key="AIza-test")).describe(image)

    assert result.description == "A red tile."
    assert result.palette == ("#c8283c",)
    body = sent_json(http.calls[0])
    inline, text = body["contents"][0]["parts"]
    assert inline == {
        "inline_data": {"mime_type": "image/jpeg", "data": base64.b64encode(image).decode()}
    }
    assert "hex codes" in text["text"]
    assert body["generationConfig"]["responseSchema"] == GEMINI_VISION_SCHEMA


def test_vision_refuses_images_too_large_to_send_inline(http):
    with pytest.raises(PermanentError, match="too large"):
        GeminiVisionAdapter(ProviderConfig(api_key="k")).describe(
            b"\xff\xd8\xff" + b"0" * 15_000_000
        )


def test_the_connection_test_lists_models(http):
    http.get(
        f"{BASE}/models",
        json={
            "models": [
                {"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash"},
                {"name": "models/gemini-2.5-pro", "displayName": "Gemini 2.5 Pro"},
            ],
            "nextPageToken": "",
        },
    )

    result = llm().test_connection()

    assert result.ok, result.message
    request = http.calls[0].request
    assert request.url == f"{BASE}/models?pageSize=1000"
    assert request.headers["x-goog-api-key"] == "AIza-test"


def test_the_connection_test_reports_a_bad_key(http):
    http.get(
        f"{BASE}/models",
        status=400,
        json=api_error(400, "INVALID_ARGUMENT", "API key not valid.", "API_KEY_INVALID"),
    )

    result = llm().test_connection()

    assert not result.ok
    assert "API key not valid." in result.message
