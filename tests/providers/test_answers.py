"""What we ask LLMs for and how we read their answers, through the real adapters.

Every protocol (kie.ai chat, OpenAI chat completions, Gemini generateContent) gets the same table of
real-world-shaped answers, faked at the HTTP seam. Each row checks the prompts that come back and
what was sent, the schema included: the schema we send and the shapes we accept are tested
together.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from providers.adapters.answers import (
    FOLLOW_UP_MIN_SECONDS,
    GEMINI_VISION_SCHEMA,
    LIGHTS,
    SHOTS,
    VARIANTS_FORMAT,
    VARIANTS_SCHEMA,
    VISION_FORMAT,
    VISION_SCHEMA,
    gemini_schema,
    gemini_variants_schema,
    read_prompts,
    variations,
)
from providers.adapters.errors import InvalidOutput, ProviderError
from providers.adapters.gemini import GeminiLLMAdapter, GeminiVisionAdapter
from providers.adapters.kie import KieChatAdapter
from providers.adapters.openai import OpenAILLMAdapter, OpenAIVisionAdapter
from providers.adapters.types import ProviderConfig, VariantsRequest
from providers.chain import generate_variants
from providers.local.llm import LocalLLMAdapter

from .conftest import png_bytes, sent_json

BRIEF = "Terracotta mug, autumn mood"
REQUEST = VariantsRequest(BRIEF, 3, references=("Warm terracotta tones, soft window light.",))

P1 = (
    "A matte terracotta mug on a weathered oak table, scattered maple leaves, low golden "
    "sunlight raking from the left, shallow depth of field, cosy autumn mood."
)
P2 = (
    "Top-down flat lay of the mug on a chunky wool blanket with cinnamon sticks and an open "
    "paperback, soft overcast window light, warm muted palette."
)
P3 = (
    "The mug steaming on a rain-streaked café windowsill at dusk, amber street lights as bokeh, "
    "moody and intimate."
)
P4 = "The mug held in two hands in a knitted sweater, close crop, soft backlight."
P5 = "The mug on a stone wall beside a pumpkin, crisp morning light, wide shot."


# --- The protocols, as the providers speak them (PROVIDERS.md §1.7, §2, §3) ----------------------


def chat_completion(content: str | None, model: str = "gpt-4o", finish: str = "stop") -> dict:
    return {
        "id": "chatcmpl-9x",
        "object": "chat.completion",
        "created": 1767225600,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 212, "completion_tokens": 180, "total_tokens": 392},
        "system_fingerprint": "fp_1",
    }


def gemini_answer(text: str) -> dict:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 212, "candidatesTokenCount": 180},
        "modelVersion": "gemini-2.5-pro",
        "responseId": "r-1",
    }


@dataclass(frozen=True)
class Protocol:
    id: str
    url: str
    make: Callable[..., Any]
    answer: Callable[[str], dict]  # the answer text -> `http.post` arguments
    failure: dict  # `http.post` arguments for a provider that is down
    user_text: Callable[[dict], str]  # a request body -> the user message we wrote
    schema: Callable[[dict], Any]  # a request body -> the schema we sent
    expected_schema: Callable[[int], Any]  # how many prompts asked for -> the schema answers.py has

    def __str__(self) -> str:
        return self.id


KIE_CHAT = Protocol(
    id="kie-chat",
    url="https://api.kie.ai/gemini-3-pro/v1/chat/completions",
    make=lambda **c: KieChatAdapter(ProviderConfig(api_key="kie-key", **c)),
    answer=lambda text: {"json": chat_completion(text, "gemini-3-pro")},
    failure={"json": {"code": 500, "msg": "Server error", "data": None}},  # kie: HTTP 200
    user_text=lambda body: body["messages"][0]["content"][1]["text"],
    schema=lambda body: body["response_format"],
    expected_schema=lambda n: VARIANTS_FORMAT,
)
OPENAI_CHAT = Protocol(
    id="openai-chat",
    url="https://api.openai.com/v1/chat/completions",
    make=lambda **c: OpenAILLMAdapter(ProviderConfig(api_key="sk-test", **c)),
    answer=lambda text: {"json": chat_completion(text)},
    failure={
        "status": 503,
        "json": {"error": {"message": "The server is overloaded", "type": "server_error"}},
    },
    user_text=lambda body: body["messages"][1]["content"],
    schema=lambda body: body["response_format"],
    expected_schema=lambda n: VARIANTS_FORMAT,
)
GEMINI = Protocol(
    id="gemini",
    url="https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
    make=lambda **c: GeminiLLMAdapter(ProviderConfig(api_key="AIza-test", **c)),
    answer=lambda text: {"json": gemini_answer(text)},
    failure={
        "status": 503,
        "json": {"error": {"code": 503, "message": "Overloaded.", "status": "UNAVAILABLE"}},
    },
    user_text=lambda body: body["contents"][0]["parts"][0]["text"],
    schema=lambda body: body["generationConfig"]["responseSchema"],
    expected_schema=gemini_variants_schema,
)
PROTOCOLS = [KIE_CHAT, OPENAI_CHAT, GEMINI]

DOWN = object()  # in a row's answers: the provider fails this request (HTTP or envelope error)


def fake(http, protocol: Protocol, *answers) -> None:
    for answer in answers:
        http.post(protocol.url, **(protocol.failure if answer is DOWN else protocol.answer(answer)))


def schema_variants(*prompts: str) -> str:
    """An answer that follows the schema we send."""
    titles = ("Harvest table", "Blanket flat lay", "Rainy window", "Warm hands", "Stone wall")
    return json.dumps(
        {"variants": [{"title": t, "prompt": p} for t, p in zip(titles, prompts, strict=False)]}
    )


# --- Variants: one table of answers for every protocol ------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    answers: tuple[Any, ...]  # the first answer, then the follow-up's (if one is expected)
    prompts: tuple[str, ...]  # the model's prompts we keep, in order
    varied: int = 0  # then this many variations of them

    def __str__(self) -> str:
        return self.id


ROWS = [
    Row("schema", (schema_variants(P1, P2, P3),), (P1, P2, P3)),
    Row(
        "the §2.2 example shape, prompt before title",
        (json.dumps({"variants": [{"prompt": p, "title": "Idea"} for p in (P1, P2, P3)]}),),
        (P1, P2, P3),
    ),
    Row("strings under variants", (json.dumps({"variants": [P1, P2, P3]}),), (P1, P2, P3)),
    Row("a bare array of strings", (json.dumps([P1, P2, P3]),), (P1, P2, P3)),
    Row(
        "other keys: prompts, text, description",
        (json.dumps({"prompts": [{"text": P1}, {"description": P2}, {"prompt": P3}]}),),
        (P1, P2, P3),
    ),
    Row(
        "items of objects",
        (
            json.dumps(
                {"items": [{"id": 1, "prompt": P1}, {"id": 2, "prompt": P2}, {"prompt": P3}]}
            ),
        ),
        (P1, P2, P3),
    ),
    Row("fenced", (f"```json\n{schema_variants(P1, P2, P3)}\n```",), (P1, P2, P3)),
    Row(
        "a sentence, then JSON",
        (f"Here are your prompts: {schema_variants(P1, P2, P3)}\nEnjoy!",),
        (P1, P2, P3),
    ),
    Row(
        "a numbered list",
        (
            f"Here are three prompts for your autumn mug:\n\n1. {P1}\n2) {P2}\n"
            f"3. **Rainy Window** — {P3}\n\nLet me know if you'd like any tweaks!",
        ),
        (P1, P2, P3),
    ),
    Row("a bulleted list", (f'- {P1}\n• {P2}\n* "{P3}"',), (P1, P2, P3)),
    Row(
        "bold prompt labels",
        (f"**Prompt 1:** {P1}\n\n**Prompt 2:**\n{P2}\n\n**Prompt 3:** {P3}",),
        (P1, P2, P3),
    ),
    Row(
        "too many: the first three",
        (schema_variants(P1, P2, P3, P4, P5),),
        (P1, P2, P3),
    ),
    Row(
        "empty and repeated entries, then a follow-up",
        (json.dumps({"variants": [P1, "  ", P1.upper(), P2]}), schema_variants(P3)),
        (P1, P2, P3),
    ),
    Row(
        "a single paragraph, then a follow-up",
        (P1, schema_variants(P2, P3)),
        (P1, P2, P3),
    ),
    Row(
        "too few, the follow-up repeats one: variations",
        (schema_variants(P1, P2), schema_variants(P2)),
        (P1, P2),
        varied=1,
    ),
    Row(
        "too few, the follow-up has nothing usable: variations",
        (schema_variants(P1, P2), json.dumps({"variants": []})),
        (P1, P2),
        varied=1,
    ),
    Row(
        "a single paragraph, the follow-up fails: variations",
        (P1, DOWN),
        (P1,),
        varied=2,
    ),
]


def assert_varied(variants: tuple[str, ...], kept: tuple[str, ...]) -> None:
    """Variations re-shoot the kept prompts in turn with one of the shared shots and lights."""
    for i, variant in enumerate(variants):
        base = kept[i % len(kept)]
        assert variant.startswith(f"{base} Alternative take: "), variant
        take = variant.removeprefix(f"{base} Alternative take: ")
        assert any(take.startswith(shot.lower()) for shot in SHOTS), take
        assert any(light in take for light in LIGHTS), take


@pytest.mark.parametrize("row", ROWS, ids=str)
@pytest.mark.parametrize("protocol", PROTOCOLS, ids=str)
def test_variants_are_read_from_every_answer_shape(http, protocol, row):
    fake(http, protocol, *row.answers)

    result = protocol.make().generate_variants(REQUEST)

    kept = len(row.prompts)
    assert result.variants[:kept] == row.prompts
    assert result.varied == row.varied
    assert len(result.variants) == 3
    assert len({v.casefold() for v in result.variants}) == 3
    assert_varied(result.variants[kept:], row.prompts)
    assert len(http.calls) == len(row.answers)
    first = sent_json(http.calls[0])
    assert protocol.schema(first) == protocol.expected_schema(3)
    assert "Write exactly 3 distinct prompts for this brief:" in protocol.user_text(first)
    assert BRIEF in protocol.user_text(first)
    assert "- Warm terracotta tones, soft window light." in protocol.user_text(first)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=str)
def test_the_follow_up_asks_only_for_the_missing_prompts(http, protocol):
    fake(http, protocol, f"Sure! Here are two:\n1. {P1}\n2. {P2}", schema_variants(P3))

    result = protocol.make().generate_variants(REQUEST, timeout=12.0)

    assert result.variants == (P1, P2, P3)
    assert result.varied == 0
    follow_up = sent_json(http.calls[1])
    text = protocol.user_text(follow_up)
    assert "Write exactly 1 more distinct prompt for this brief:" in text
    assert BRIEF in text
    assert "do not repeat them" in text
    assert f"- {P1}\n- {P2}" in text
    assert protocol.schema(follow_up) == protocol.expected_schema(1)
    # The same attempt's budget: the follow-up gets what is left of it.
    first_budget = http.calls[0].request.req_kwargs["timeout"][1]
    follow_up_budget = http.calls[1].request.req_kwargs["timeout"][1]
    assert first_budget == 12.0
    assert 11.0 < follow_up_budget < 12.0


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=str)
def test_without_time_for_a_follow_up_variations_fill_in(http, protocol):
    fake(http, protocol, schema_variants(P1))

    result = protocol.make(timeout=FOLLOW_UP_MIN_SECONDS - 1).generate_variants(REQUEST)

    assert len(http.calls) == 1
    assert result.variants[0] == P1
    assert result.varied == 2
    assert_varied(result.variants[1:], (P1,))


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        (("", ""), "empty"),
        (("   \n", json.dumps({"variants": []})), "no_prompts"),
        ((json.dumps({"variants": [{"title": "Idea", "prompt": ""}]}),) * 2, "no_prompts"),
        (('{"variants": [{"title": "Autumn", "prompt": "A mug on',) * 2, "no_prompts"),
    ],
    ids=["empty twice", "empty, then no variants", "blank prompts", "cut-off JSON"],
)
@pytest.mark.parametrize("protocol", PROTOCOLS, ids=str)
def test_no_usable_prompt_after_the_follow_up_is_a_failure(http, protocol, answers, code):
    fake(http, protocol, *answers)

    with pytest.raises(InvalidOutput) as caught:
        protocol.make().generate_variants(REQUEST)

    assert caught.value.code == code
    assert len(http.calls) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=str)
def test_an_empty_answer_and_a_failed_follow_up_report_the_failure(http, protocol):
    fake(http, protocol, "", DOWN)

    with pytest.raises(ProviderError) as caught:
        protocol.make().generate_variants(REQUEST)

    assert caught.value.retryable
    assert len(http.calls) == 2


def test_a_provider_with_no_usable_prompt_hands_over_to_the_next(http):
    fake(http, OPENAI_CHAT, "I'm sorry, I can't help with that:", "")
    attempts = []

    result = generate_variants(
        [
            ("openai", OPENAI_CHAT.make()),
            ("local", LocalLLMAdapter(ProviderConfig())),
        ],
        REQUEST,
        on_attempt=attempts.append,
    )

    assert result.provider_id == "local"
    assert [(a.provider_id, a.outcome) for a in attempts] == [
        ("openai", "invalid_output"),
        ("local", "success"),
    ]


def test_a_topped_up_answer_passes_the_chain_and_says_how_many_were_varied(http):
    fake(http, KIE_CHAT, P1, DOWN)

    result = generate_variants([("kie", KIE_CHAT.make())], REQUEST)

    assert result.value.variants[0] == P1
    assert result.value.varied == 2


# --- The schemas we send ------------------------------------------------------------------------


def objects_in(schema: dict):
    yield schema
    for child in (*schema.get("properties", {}).values(), schema.get("items")):
        if isinstance(child, dict):
            yield from objects_in(child)


@pytest.mark.parametrize("schema", [VARIANTS_SCHEMA, VISION_SCHEMA], ids=["variants", "vision"])
def test_the_json_schemas_follow_openai_strict_rules(schema):
    for node in objects_in(schema):
        if node["type"] == "object":
            assert node["additionalProperties"] is False
            assert sorted(node["required"]) == sorted(node["properties"])


def test_variants_are_objects_with_a_title_and_a_prompt():
    items = VARIANTS_SCHEMA["properties"]["variants"]["items"]

    assert items["type"] == "object"
    assert set(items["properties"]) == {"title", "prompt"}
    assert VARIANTS_FORMAT == {
        "type": "json_schema",
        "json_schema": {"name": "prompt_variants", "schema": VARIANTS_SCHEMA, "strict": True},
    }
    assert VISION_FORMAT["json_schema"]["schema"] is VISION_SCHEMA


def test_the_gemini_schemas_are_derived_from_the_same_definition():
    schema = gemini_variants_schema(4)

    assert schema["type"] == "OBJECT"
    assert schema["required"] == ["variants"]
    variants = schema["properties"]["variants"]
    assert (variants["type"], variants["minItems"], variants["maxItems"]) == ("ARRAY", 4, 4)
    items = variants["items"]
    assert items["type"] == "OBJECT"
    assert items["propertyOrdering"] == list(
        VARIANTS_SCHEMA["properties"]["variants"]["items"]["properties"]
    )
    assert items["properties"]["prompt"]["type"] == "STRING"
    assert "additionalProperties" not in json.dumps(schema)
    assert gemini_schema(VISION_SCHEMA) == GEMINI_VISION_SCHEMA
    assert GEMINI_VISION_SCHEMA["properties"]["palette"]["items"] == {"type": "STRING"}
    assert "minItems" not in VARIANTS_SCHEMA["properties"]["variants"]  # the source is untouched


# --- More answer shapes, read directly ----------------------------------------------------------

DAWN, CAFE = "A mug at dawn.", "A mug in a café."


@pytest.mark.parametrize(
    ("answer", "prompts"),
    [
        (f'{{"variants": [{{"prompt": "{DAWN}"}}, {{"prompt": "{CAFE}"}},]}}', (DAWN, CAFE)),
        (f'["{DAWN}", "{CAFE}", "A mug b', (DAWN, CAFE)),
        (json.dumps({"image_prompts": [DAWN, CAFE]}), (DAWN, CAFE)),
        (json.dumps({"prompt_1": DAWN, "prompt_2": CAFE}), (DAWN, CAFE)),
        (json.dumps({"title": "Dawn", "prompt": DAWN}), (DAWN,)),
        (json.dumps(DAWN), (DAWN,)),
        (f"1. Golden Hour Glow\n   {DAWN}\n2. Title: Café\n   Prompt: {CAFE}", (DAWN, CAFE)),
        (f"1. **Golden hour**\n\n{DAWN}\n\n2. **Café**\n\n{CAFE}", (DAWN, CAFE)),
        (f"### Golden hour\n{DAWN}\n\n### Café\n{CAFE}", (DAWN, CAFE)),
        (f"Here you go:\n\n{DAWN}\n\n{CAFE}", (DAWN, CAFE)),
        ('1. A mug in ["#fff"] light.\n2. B mug.', ('A mug in ["#fff"] light.', "B mug.")),
        (f"[Scene] {DAWN}", (f"[Scene] {DAWN}",)),
        (f"“{DAWN}”", (DAWN,)),
        ('{"variants": []}', ()),
        ("---", ()),
        ("", ()),
    ],
    ids=[
        "trailing comma",
        "cut-off array",
        "a list under another key",
        "numbered keys",
        "one object",
        "a JSON string",
        "title and prompt lines",
        "bold titles over paragraphs",
        "headings over paragraphs",
        "a lead-in, then paragraphs",
        "an array inside a list item is not the answer",
        "brackets that are not JSON",
        "curly quotes",
        "no variants",
        "no words",
        "nothing",
    ],
)
def test_read_prompts_takes_prompts_from_more_shapes(answer, prompts):
    assert read_prompts(answer) == prompts


def test_variations_are_deterministic_and_distinct():
    many = variations((DAWN,), 40)

    assert many == variations((DAWN,), 40)
    assert len({v.casefold() for v in many}) == 40
    assert DAWN.casefold() not in {v.casefold() for v in many}
    assert all(v.startswith(f"{DAWN} ") for v in many)
    assert variations((DAWN, CAFE), 2)[1].startswith(CAFE)  # the prompts take turns


def test_variations_prefer_shots_and_lights_the_prompt_does_not_name():
    prompt = "A close-up of the mug in moody low-key lighting."

    first = variations((prompt,), 1)[0].removeprefix(f"{prompt} Alternative take: ")

    assert not first.startswith("close-up")
    assert "moody" not in first


# --- Vision: JSON and plain text, for OpenAI and Gemini ------------------------------------------


@dataclass(frozen=True)
class VisionProtocol:
    id: str
    url: str
    make: Callable[[], Any]
    answer: Callable[[str], dict]
    schema: Callable[[dict], Any]
    expected_schema: Any
    instruction: Callable[[dict], str]

    def __str__(self) -> str:
        return self.id


VISION_PROTOCOLS = [
    VisionProtocol(
        id="openai-vision",
        url=OPENAI_CHAT.url,
        make=lambda: OpenAIVisionAdapter(ProviderConfig(api_key="sk-test")),
        answer=OPENAI_CHAT.answer,
        schema=lambda body: body["response_format"],
        expected_schema=VISION_FORMAT,
        instruction=lambda body: body["messages"][0]["content"][0]["text"],
    ),
    VisionProtocol(
        id="gemini-vision",
        url=GEMINI.url,
        make=lambda: GeminiVisionAdapter(ProviderConfig(api_key="AIza-test")),
        answer=GEMINI.answer,
        schema=lambda body: body["generationConfig"]["responseSchema"],
        expected_schema=GEMINI_VISION_SCHEMA,
        instruction=lambda body: body["contents"][0]["parts"][1]["text"],
    ),
]

LOOK = (
    "A terracotta mug on a linen runner, photographed from slightly above. Soft window light "
    "from the left, warm and calm."
)
LOOK_WITH_HEX = f"{LOOK} Dominant colours: #C8283C, #F4E9DC and #2b2b2b."
VISION_ROWS = [
    (
        "schema",
        json.dumps({"description": LOOK, "palette": ["#C8283C", "#f4e9dc"]}),
        LOOK,
        ("#c8283c", "#f4e9dc"),
    ),
    (
        "junk in the palette",
        json.dumps({"description": LOOK, "palette": ["#C8283C", "terracotta", "#fff", 7]}),
        LOOK,
        ("#c8283c", "#ffffff"),
    ),
    (
        "caption and colour objects",
        json.dumps({"caption": LOOK, "colors": [{"name": "brick", "hex": "#C8283C"}]}),
        LOOK,
        ("#c8283c",),
    ),
    (
        "text, colours only in it",
        json.dumps({"text": LOOK_WITH_HEX}),
        LOOK_WITH_HEX,
        ("#c8283c", "#f4e9dc", "#2b2b2b"),
    ),
    (
        "fenced",
        f"```json\n{json.dumps({'description': LOOK, 'palette': ['#c8283c']})}\n```",
        LOOK,
        ("#c8283c",),
    ),
    (
        "a sentence, then JSON",
        "Here is the analysis: " + json.dumps({"description": LOOK, "palette": ["#c8283c"]}),
        LOOK,
        ("#c8283c",),
    ),
    ("plain text with hex codes", LOOK_WITH_HEX, LOOK_WITH_HEX, ("#c8283c", "#f4e9dc", "#2b2b2b")),
    ("plain text", LOOK, LOOK, ()),
]


@pytest.mark.parametrize(
    ("answer", "description", "palette"),
    [r[1:] for r in VISION_ROWS],
    ids=[r[0] for r in VISION_ROWS],
)
@pytest.mark.parametrize("protocol", VISION_PROTOCOLS, ids=str)
def test_vision_reads_json_and_plain_text(http, protocol, answer, description, palette):
    http.post(protocol.url, **protocol.answer(answer))

    result = protocol.make().describe(png_bytes())

    assert result.description == description
    assert result.palette == palette
    body = sent_json(http.calls[0])
    assert protocol.schema(body) == protocol.expected_schema
    assert '{"description": "...", "palette": ["#rrggbb"]}' in protocol.instruction(body)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("", "empty"),
        (" \n ", "empty"),
        (json.dumps({"description": "  ", "palette": ["#c8283c"]}), "bad_shape"),
        (json.dumps({"palette": ["#c8283c"]}), "bad_shape"),
        ('{"palette": ["#c8283c"], "descr', "bad_shape"),
    ],
    ids=["empty", "blank", "blank description", "no description", "cut-off JSON"],
)
@pytest.mark.parametrize("protocol", VISION_PROTOCOLS, ids=str)
def test_vision_without_a_description_is_a_failure(http, protocol, answer, code):
    http.post(protocol.url, **protocol.answer(answer))

    with pytest.raises(InvalidOutput) as caught:
        protocol.make().describe(png_bytes())

    assert caught.value.code == code
