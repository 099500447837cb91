"""kie.ai Gemini chat: OpenAI-style chat completions with the model in the path."""

import json

import pytest

from providers.adapters.answers import VARIANTS_FORMAT, VARIANTS_SCHEMA
from providers.adapters.errors import InvalidOutput, PermanentError, RetryableError
from providers.adapters.kie import KieChatAdapter
from providers.adapters.types import ProviderConfig, VariantsRequest

from .conftest import sent_json, variants_completion

GEMINI_3 = "https://api.kie.ai/gemini-3-pro/v1/chat/completions"
REQUEST = VariantsRequest(
    prompt="Spring campaign for a linen shirt",
    n=2,
    references=("Soft daylight on sand-coloured linen.",),
)


def make(**config):
    return KieChatAdapter(ProviderConfig(api_key="kie-key", **config))


def test_it_posts_to_the_model_path_with_stream_off_and_a_json_schema(http):
    http.post(GEMINI_3, json=variants_completion(["Prompt one", "Prompt two"]))

    result = make().generate_variants(REQUEST)

    assert result.variants == ("Prompt one", "Prompt two")
    assert result.model == "gemini-3-pro"
    request = http.calls[0].request
    assert request.headers["Authorization"] == "Bearer kie-key"
    body = sent_json(http.calls[0])
    assert body["stream"] is False
    assert "model" not in body  # the path selects the model
    assert body["response_format"] == VARIANTS_FORMAT
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "prompt_variants", "strict": True, "schema": VARIANTS_SCHEMA},
    }
    [message] = body["messages"]
    assert message["role"] == "user"
    assert [part["type"] for part in message["content"]] == ["text", "text"]
    brief = message["content"][1]["text"]
    assert "exactly 2 distinct prompts" in brief
    assert "Spring campaign for a linen shirt" in brief
    assert "- Soft daylight on sand-coloured linen." in brief


def test_it_calls_gemini_2_5_pro_by_its_path(http):
    http.post(
        "https://api.kie.ai/gemini-2.5-pro/v1/chat/completions",
        json=variants_completion(["a", "b"]),
    )

    assert make(model="gemini-2.5-pro").generate_variants(REQUEST).model == "gemini-2.5-pro"


def test_it_can_send_the_bare_schema_shape_of_the_gemini_3_page(http):
    http.post(GEMINI_3, json=variants_completion(["a", "b"]))

    make(options={"response_format": "schema", "reasoning_effort": "low"}).generate_variants(
        REQUEST
    )

    body = sent_json(http.calls[0])
    assert body["response_format"] == VARIANTS_SCHEMA
    assert body["reasoning_effort"] == "low"


def test_it_can_leave_response_format_out(http):
    http.post(GEMINI_3, json=variants_completion(["a", "b"]))

    make(options={"response_format": "none"}).generate_variants(REQUEST)

    assert "response_format" not in sent_json(http.calls[0])


def answer(content):
    completion = variants_completion([])
    completion["choices"][0]["message"]["content"] = content
    return completion


def test_it_accepts_json_wrapped_in_a_code_fence(http):
    http.post(GEMINI_3, json=answer('```json\n{"variants": ["Fenced one", "Fenced two"]}\n```'))

    assert make().generate_variants(REQUEST).variants == ("Fenced one", "Fenced two")


@pytest.mark.parametrize(
    ("contents", "variants", "varied"),
    [
        (
            [json.dumps({"variants": ["only one"]}), '{"variants": ["a second"]}'],
            ("only one", "a second"),
            0,
        ),
        ([json.dumps({"variants": ["same", "Same "]}), '{"variants": ["same"]}'], ("same",), 1),
        ([json.dumps({"variants": ["a", "  "]}), ""], ("a",), 1),
        ([json.dumps({"prompts": ["a", "b"]})], ("a", "b"), 0),
        (["Here are your prompts:\n- a\n- b"], ("a", "b"), 0),
    ],
    ids=["one short", "a repeat", "a blank one", "another key", "a bulleted list"],
)
def test_it_always_returns_exactly_n_distinct_variants(http, contents, variants, varied):
    for content in contents:
        http.post(GEMINI_3, json=answer(content))

    result = make().generate_variants(REQUEST)

    assert result.variants[: len(variants)] == variants
    assert len(set(result.variants)) == REQUEST.n
    assert result.varied == varied
    for call in http.calls:
        assert sent_json(call)["stream"] is False


@pytest.mark.parametrize(
    ("contents", "code"),
    [(["", ""], "empty"), (["", '{"variants": []}'], "no_prompts")],
)
def test_it_fails_when_no_answer_holds_a_prompt(http, contents, code):
    for content in contents:
        http.post(GEMINI_3, json=answer(content))

    with pytest.raises(InvalidOutput) as caught:
        make().generate_variants(REQUEST)

    assert caught.value.code == code


def test_it_rejects_a_truncated_answer(http):
    http.post(GEMINI_3, json=variants_completion(["a", "b"], finish_reason="length"))

    with pytest.raises(InvalidOutput, match="cut off"):
        make().generate_variants(REQUEST)


@pytest.mark.parametrize(
    ("code", "error_class"),
    [(401, PermanentError), (402, PermanentError), (429, RetryableError), (500, RetryableError)],
)
def test_it_maps_kie_envelope_errors_returned_with_http_200(http, code, error_class):
    http.post(GEMINI_3, json={"code": code, "msg": "nope", "data": None})

    with pytest.raises(error_class):
        make().generate_variants(REQUEST)


def test_it_maps_an_openai_style_error_body(http):
    http.post(GEMINI_3, status=503, json={"error": {"message": "overloaded", "type": "server"}})

    with pytest.raises(RetryableError, match="overloaded"):
        make().generate_variants(REQUEST)


def test_it_refuses_a_model_id_that_would_change_the_url_path(http):
    with pytest.raises(PermanentError, match=r"Invalid kie\.ai chat model"):
        make(model="../api/v1/jobs").generate_variants(REQUEST)


def test_the_connection_test_uses_the_credit_balance(http):
    http.get("https://api.kie.ai/api/v1/chat/credit", json={"code": 200, "msg": "ok", "data": 100})

    result = make().test_connection()

    assert result.ok
    assert "100 credits" in result.message


def test_it_validates_its_options_with_its_options_form():
    with pytest.raises(ValueError, match="'response_format': Select a valid choice"):
        KieChatAdapter.validate_options({"response_format": "xml"})
    assert KieChatAdapter.validate_options({"response_format": "", "reasoning_effort": "low"}) == {
        "reasoning_effort": "low"  # blank means the default, and is not stored
    }
