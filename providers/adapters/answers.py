"""What we ask language models for, and how we read what they answer.

The one home of the prompt text, the structured-output schemas we send, and the readers for the
answers. Real models do not always follow the schema, even when they accept it: they answer with
other objects, fenced JSON, a sentence before the JSON, numbered or bulleted lists, or a single
paragraph. The readers take the prompts out of any of these, so an answer in an unexpected shape
does not fail a generation. The schema we send and the shapes we accept are tested together, in
tests/providers/test_answers.py. Framework-free like the rest of the adapter layer.

An answer comes from whatever endpoint an admin configured, so reading one takes time about
linear in its length (no regex that backtracks without bound, a bounded number of JSON salvage
tries), and an answer longer than any real one (MAX_ANSWER_CHARS) is not read at all
(tests/providers/test_hostile_endpoints.py).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .errors import InvalidOutput, ProviderError
from .http import loads, provider_message
from .types import ChatResult, VariantsRequest, VisionResult

# --- What we ask for ----------------------------------------------------------------------------

VARIANTS_SYSTEM = (
    "You write prompts for an image-generation model that creates on-brand product imagery. "
    "Each prompt is a single self-contained paragraph describing subject, setting, composition, "
    "lighting and mood. Prompts must be clearly different from one another. Give each a short "
    'title. Answer with JSON only: {"variants": [{"title": "...", "prompt": "..."}]}.'
)

VISION_INSTRUCTION = (
    "Describe this reference image for an art director in 3-5 sentences: subject, composition, "
    "lighting, mood, materials and style. Also list its dominant colours as hex codes, most "
    'dominant first. Answer with JSON only: {"description": "...", "palette": ["#rrggbb"]}.'
)


def _count(n: int, more: bool = False) -> str:
    return f"{n} {'more ' if more else ''}distinct prompt{'' if n == 1 else 's'}"


def variants_user_text(request: VariantsRequest, have: Sequence[str] = ()) -> str:
    """The brief as a user message. With `have` (prompts an earlier answer gave), it asks only for
    the missing ones and lists the others so the model does not repeat them."""
    count = _count(request.n - len(have), more=bool(have))
    lines = [f"Write exactly {count} for this brief:", request.prompt.strip()]
    if request.references:
        lines.append("Match the look of these reference images:")
        lines += [f"- {text.strip()}" for text in request.references if text.strip()]
    if request.products:
        lines.append("The image model receives these product photos; keep the product exactly as")
        lines.append("photographed and describe the scene around it:")
        lines += [f"- {text.strip()}" for text in request.products if text.strip()]
    if have:
        lines.append("We already have these prompts; do not repeat them or write close copies:")
        lines += [f"- {text}" for text in have]
    return "\n".join(lines)


# --- The schemas we send ------------------------------------------------------------------------
# Written once as JSON Schema in the strict form OpenAI's structured outputs require (every object
# closed with additionalProperties false, every property required; PROVIDERS.md §2.2) and sent as
# is to OpenAI and kie.ai; Gemini's OpenAPI-subset `responseSchema` is derived from it.

VARIANTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "variants": {
            "type": "array",
            "description": "The prompts, each a clearly different idea.",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "A short name for the idea."},
                    "prompt": {
                        "type": "string",
                        "description": "The image-generation prompt: one self-contained paragraph.",
                    },
                },
                "required": ["title", "prompt"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["variants"],
    "additionalProperties": False,
}

VISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "description": {"type": "string", "description": "3-5 sentences for an art director."},
        "palette": {
            "type": "array",
            "description": "Dominant colours as #rrggbb, most dominant first.",
            "items": {"type": "string"},
        },
    },
    "required": ["description", "palette"],
    "additionalProperties": False,
}


def json_schema_format(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI-style `response_format` (PROVIDERS.md §2.2)."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


VARIANTS_FORMAT = json_schema_format("prompt_variants", VARIANTS_SCHEMA)
VISION_FORMAT = json_schema_format("image_description", VISION_SCHEMA)


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Gemini's `responseSchema` form of one of our JSON Schemas (PROVIDERS.md §3.1): upper-case
    types, `propertyOrdering` so the fields come in our order, no `additionalProperties`."""
    out: dict[str, Any] = {"type": schema["type"].upper()}
    for key in ("description", "enum", "minItems", "maxItems"):
        if key in schema:
            out[key] = schema[key]
    if "properties" in schema:
        out["properties"] = {k: gemini_schema(v) for k, v in schema["properties"].items()}
        out["required"] = list(schema.get("required", ()))
        out["propertyOrdering"] = list(schema["properties"])
    if "items" in schema:
        out["items"] = gemini_schema(schema["items"])
    return out


def gemini_variants_schema(n: int) -> dict[str, Any]:
    """Gemini honours array bounds, so its schema also asks for exactly `n` variants."""
    variants = {**VARIANTS_SCHEMA["properties"]["variants"], "minItems": n, "maxItems": n}
    return gemini_schema({**VARIANTS_SCHEMA, "properties": {"variants": variants}})


GEMINI_VISION_SCHEMA = gemini_schema(VISION_SCHEMA)


# --- Reading answers ----------------------------------------------------------------------------

# Real answers are a few KB (a handful of paragraphs); one longer than this is refused unread.
MAX_ANSWER_CHARS = 64 * 1024
TOO_LONG = f"The model's answer was longer than {MAX_ANSWER_CHARS // 1024} KB; it was not read."
# How many places the salvage of "prose, then JSON" tries to parse JSON from before it gives up:
# each failed try may read to the end of the answer.
MAX_SALVAGE_TRIES = 64


def _too_long(text: str) -> bool:
    return len(text) > MAX_ANSWER_CHARS


def chat_completion_text(payload: Mapping[str, Any]) -> str:
    """Text of the first choice of an OpenAI-style chat completion."""
    try:
        first = payload["choices"][0]
        finish = first.get("finish_reason")
        message = first["message"]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise InvalidOutput("The chat answer has no message.", code="bad_response") from None
    if not isinstance(message, dict):
        raise InvalidOutput("The chat answer has no message.", code="bad_response")
    if message.get("refusal"):
        raise InvalidOutput(
            provider_message(message["refusal"], "The model refused."), code="refusal"
        )
    if finish == "length":
        raise InvalidOutput("The model's answer was cut off.", code="truncated")
    if finish == "content_filter":
        raise InvalidOutput("The model's answer was filtered.", code="content_filter")
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


# The info string is matched possessively: backtracking into it made an unclosed fence quadratic.
FENCE = re.compile(r"```[^\n`]*+\n?(.*?)```", re.DOTALL)
OPENER = re.compile(r"[{\[]")
JSON_START = re.compile(r"\s*(?:\{|\[\s*[\"{\[\]])")  # not "[Scene 1] A mug ..."


def _json_block(text: str) -> str | None:
    """The part of an answer that is meant to be JSON: a fenced block or the whole answer that
    starts like JSON. None for prose, lists and paragraphs."""
    for block in (*(m.group(1) for m in FENCE.finditer(text)), text):
        if JSON_START.match(block):
            return block.strip()
    return None


def json_values(text: str) -> Iterator[Any]:
    """The JSON documents in a model's answer, most likely first: the whole answer, each ``` fenced
    block, else an object or array after some prose ("Here you go: {...}") that makes up a good
    part of the answer (not a `["#fff"]` inside a sentence of a plain-text list)."""
    for candidate in (text, *(m.group(1) for m in FENCE.finditer(text))):
        try:
            value = loads(candidate)
        except ValueError:
            continue
        yield value
    if _json_block(text) is not None:
        return  # broken JSON: its inner objects are not the answer; salvage instead
    decoder = json.JSONDecoder()
    position, size, misses = 0, len(text.strip()), 0
    while misses < MAX_SALVAGE_TRIES and (match := OPENER.search(text, position)):
        try:
            value, position = decoder.raw_decode(text, match.start())
        except RecursionError:
            return  # nested deeper than any answer: so is everything inside it
        except ValueError:
            position, misses = match.start() + 1, misses + 1
            continue
        if 3 * (position - match.start()) >= size:
            yield value


def _unfenced(text: str) -> str:
    match = FENCE.fullmatch(text.strip())
    return (match.group(1) if match else text).strip()


def _fields(data: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(key).strip().lower(): value for key, value in data.items()}


def _first_text(data: Mapping[str, Any], keys: Sequence[str]) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


# Variants: where the prompt is in an item, and which top-level keys hold the list.
PROMPT_KEYS = ("prompt", "text", "description")
LIST_KEYS = ("variants", "prompts", "items")
NUMBERED_KEY = re.compile(r"(?:(?:image[ _-]?)?prompt|variant|variation|option)?[ _-]?\d{1,2}")


def _prompts_in_json(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, list):
        found = []
        for item in data:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, dict):
                found.append(_first_text(_fields(item), PROMPT_KEYS))
        return found
    if isinstance(data, dict):
        fields = _fields(data)
        for key in LIST_KEYS:
            if key in fields:
                return _prompts_in_json(fields[key])
        if text := _first_text(fields, PROMPT_KEYS):
            return [text]
        lists = [value for value in fields.values() if isinstance(value, list)]
        if len(lists) == 1:  # {"image_prompts": [...]} and the like
            return _prompts_in_json(lists[0])
        numbered = [v for k, v in fields.items() if NUMBERED_KEY.fullmatch(k)]
        if numbered:  # {"prompt_1": "...", "prompt_2": "..."}
            return [v for v in numbered if isinstance(v, str)]
    return []


# At a line start: "1. ", "2) ", "(3) ", "- ", "• ", "**Prompt 1:** ", "### Variant 2 -".
MARKER = re.compile(
    r"""^\s*(?:\#{1,6}\s*)?(?:
        (?:\*\*|__)?(?:prompt|variant|variation|option|concept|idea)\s*\#?\s*\d{1,2}
            \s*[:.)]?\s*(?:\*\*|__)?\s*[:.)\-–—]?
      | \(?\d{1,2}\s*[.):]
      | [-*•·+]
    )(?:\s+|$)""",
    re.IGNORECASE | re.VERBOSE,
)
PROMPT_LABEL = re.compile(
    r"^(?:\*\*|__)?(?:image\s+)?prompt(?:\*\*|__)?\s*:\s*(?:\*\*|__)?\s*", re.IGNORECASE
)
TITLE_LABEL = re.compile(r"^(?:\*\*|__)?title(?:\*\*|__)?\s*:", re.IGNORECASE)
BOLD_TITLE = re.compile(r"^(\*\*|__)([^*_]+?)\1\s*[:\-–—]\s*(?=\S)")
BOLD_LINE = re.compile(r"^(\*\*|__)[^*_]+\1\s*:?$")
QUOTES = (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("`", "`"))


def _is_title(line: str) -> bool:
    """A line that names an idea rather than describing it: "**Golden hour**", "Title: ...",
    "### Morning", "Golden Hour Glow" (a few capitalised words)."""
    words = line.split()
    return (
        not line
        or line.startswith("#")
        or line.endswith(":")
        or bool(BOLD_LINE.match(line) or TITLE_LABEL.match(line))
        or (len(words) <= 6 and all(w[0].isupper() for w in words if len(w) > 3))
    )


def _item_text(lines: list[str]) -> str:
    for i, line in enumerate(lines):
        if label := PROMPT_LABEL.match(line):  # "Title: ...", then "Prompt: ...": the prompt
            return " ".join([line[label.end() :], *lines[i + 1 :]])
    while len(lines) > 1 and _is_title(lines[0]):
        lines = lines[1:]
    return " ".join(lines)


def _list_items(body: str) -> list[str]:
    """The items of a numbered or bulleted list; text before it (a preamble) and prose after an
    item, past a blank line, are left out. An item may run on over several lines, and past a
    blank line when it is indented or the item so far is only a title ("1. **Golden hour**")."""
    items: list[list[str]] = []
    blank = outside = False
    for line in body.splitlines():
        if not line.strip():
            blank = True
            continue
        if match := MARKER.match(line):
            items.append([line[match.end() :].strip()])
            blank = outside = False
            continue
        titled = bool(items) and all(_is_title(text) for text in items[-1])
        if items and not outside and (not blank or titled or line[:1].isspace()):
            items[-1].append(line.strip())
        else:
            outside = True
        blank = False
    return [_item_text([line for line in lines if line]) for lines in items if any(lines)]


def _paragraphs(body: str) -> list[str]:
    """Paragraphs without their title lines; a lead-in such as "Here are your prompts:" is left
    out, on its own or at the head of a paragraph."""
    found = []
    for paragraph in re.split(r"\n\s*\n", body):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        while len(lines) > 1 and _is_title(lines[0]):
            lines = lines[1:]
        if lines and not lines[-1].endswith(":"):
            found.append(" ".join(lines))
    return found


# A complete JSON string literal. Possessive, so a string never closed costs one pass, not one per
# escaped quote in it.
STRING = r'"((?:[^"\\]|\\.)*+)"'
# A string literal, closed (group 2) or not: the strings of an array, one after another, so
# none is read twice.
STRING_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*+)(")?')


def _salvage(block: str, keys: Sequence[str]) -> list[str]:
    """From JSON too broken to parse (a trailing comma, a missing brace): the string values of
    `keys`, or for an array, its complete strings."""
    pattern = rf'"(?:{"|".join(keys)})"\s*:\s*{STRING}'
    matches = list(re.finditer(pattern, block, flags=re.IGNORECASE))
    if not matches and re.match(r'\[\s*"', block):
        matches = [match for match in STRING_TOKEN.finditer(block) if match.group(2)]
    found = []
    for match in matches:
        try:
            found.append(loads(f'"{match.group(1)}"'))
        except ValueError:
            continue
    return found


def _clean(text: str) -> str:
    """One prompt without list markers, labels, markdown emphasis or wrapping quotes."""
    text = " ".join(text.split())
    for _ in range(2):  # e.g. a quoted "1. ..." or a bulleted "**Prompt 1:** ..."
        if match := MARKER.match(text):
            text = text[match.end() :]
        text = PROMPT_LABEL.sub("", text, count=1)
        text = BOLD_TITLE.sub("", text, count=1).replace("**", "").strip()
        for opening, closing in QUOTES:
            inner = text[1:-1]
            wrapped = len(text) > 1 and text[0] == opening and text[-1] == closing
            if wrapped and opening not in inner and closing not in inner:
                text = inner.strip()
    return text if re.search(r"\w", text) else ""


def _key(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".!")


def _unique(prompts: Sequence[str]) -> tuple[str, ...]:
    """Cleaned prompts without empty ones and case-insensitive repeats, in order."""
    seen: set[str] = set()
    found = []
    for text in prompts:
        text = _clean(text)
        if text and _key(text) not in seen:
            seen.add(_key(text))
            found.append(text)
    return tuple(found)


def read_prompts(text: Any) -> tuple[str, ...]:
    """Every usable prompt in a model's answer, in order: from JSON that follows our schema or a
    similar one, else from a numbered or bulleted list, else one prompt per paragraph. Empty and
    repeated prompts are dropped; () when there is none (JSON too broken to read, say, or an
    answer longer than MAX_ANSWER_CHARS)."""
    if not isinstance(text, str) or not text.strip() or _too_long(text):
        return ()
    for value in json_values(text):
        if found := _unique(_prompts_in_json(value)):
            return found
    if (block := _json_block(text)) is not None:  # JSON, just not readable as JSON
        return _unique(_salvage(block, PROMPT_KEYS))
    body = _unfenced(text)
    return _unique(_list_items(body) or _paragraphs(body))


def check_variants(variants: Sequence[str], n: int) -> tuple[str, ...]:
    """Exactly `n` distinct, non-empty prompts, or InvalidOutput (the chain checks every answer)."""
    variants = tuple(variants)
    if len(variants) != n or any(not isinstance(v, str) or not v.strip() for v in variants):
        raise InvalidOutput(
            f"Expected {n} non-empty prompt variants, got {len(variants)}.", code="wrong_count"
        )
    if len({v.strip().casefold() for v in variants}) != n:
        raise InvalidOutput("The model repeated a prompt variant.", code="duplicates")
    return variants


# Vision: where the description and the colours may be, in JSON answers.
DESCRIPTION_KEYS = ("description", "text", "caption", "summary", "content", "alt_text", "alt")
PALETTE_KEYS = ("palette", "colours", "colors", "dominant_colours", "dominant_colors", "hex")
HEX_IN_TEXT = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")
HEX_VALUE = re.compile(r"#?(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def _hex(value: str) -> str:
    digits = value.strip().lstrip("#").lower()
    return "#" + (digits if len(digits) == 6 else "".join(c * 2 for c in digits))


def _palette(value: Any) -> tuple[str, ...]:
    """ "#rrggbb" colours from a palette field: strings, or objects with a "hex" (or "color")."""
    if isinstance(value, str):
        return tuple(dict.fromkeys(_hex(c) for c in HEX_IN_TEXT.findall(value)))
    colours = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            item = _first_text(_fields(item), ("hex", "color", "colour", "value"))
        if isinstance(item, str) and HEX_VALUE.fullmatch(item.strip()):
            colours.append(_hex(item))
    return tuple(dict.fromkeys(colours))


def parse_vision(text: Any) -> VisionResult:
    """A description and palette from JSON ({"description", "palette"}, or "text"/"caption" and
    "colors" and the like) or from plain text: then the whole answer is the description and the
    hex colours in it are the palette."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidOutput("The model returned an empty answer.", code="empty")
    if _too_long(text):
        raise InvalidOutput(TOO_LONG, code="too_long")
    for value in json_values(text):
        if isinstance(value, str) and value.strip():
            return VisionResult(value.strip(), _palette(value))
        if not isinstance(value, dict):
            continue
        fields = _fields(value)
        if description := _first_text(fields, DESCRIPTION_KEYS).strip():
            given = next((fields[k] for k in PALETTE_KEYS if k in fields), None)
            return VisionResult(description, _palette(given if given else description))
    if (block := _json_block(text)) is not None:
        salvaged = [s.strip() for s in _salvage(block, DESCRIPTION_KEYS) if s.strip()]
        if not salvaged:
            raise InvalidOutput("The model returned no image description.", code="bad_shape")
        return VisionResult(salvaged[0], _palette(block))
    body = _unfenced(text)
    return VisionResult(body, _palette(body))


# --- Filling a short answer ---------------------------------------------------------------------

# A follow-up gets at least this long, or is not worth sending (it would only time out).
FOLLOW_UP_MIN_SECONDS = 3.0

# Shots, settings and lights: the offline prompt writer crosses the brief with them, and short
# answers are topped up with variations of what the model wrote.
SHOTS = (
    "Eye-level hero shot",
    "Three-quarter view from slightly above",
    "Close-up detail shot",
    "Top-down flat lay",
    "Low-angle shot that makes the product feel monumental",
    "Wide shot with generous negative space",
)
SETTINGS = (
    "on a clean seamless backdrop",
    "on a natural stone surface",
    "in a styled lifestyle scene",
    "on a minimalist pedestal",
    "surrounded by complementary props",
    "against a bold colour-block background",
)
LIGHTS = (
    "soft diffused window light",
    "warm golden-hour sunlight",
    "crisp studio lighting with a gentle rim light",
    "moody low-key lighting",
    "bright high-key lighting",
    "dappled natural light",
)


def _takes(base: str) -> Iterator[str]:
    """Shot, setting and light combinations for `base`, in an order seeded by its text; shots and
    lights it already names come last."""
    rng = random.Random(base)
    lowered = base.lower()

    def order(axis: Sequence[str], *, named_last: bool = True) -> list[str]:
        shuffled = rng.sample(axis, len(axis))
        if not named_last:
            return shuffled
        return sorted(shuffled, key=lambda entry: entry.split()[0].lower() in lowered)

    shots, settings, lights = order(SHOTS), order(SETTINGS, named_last=False), order(LIGHTS)
    for i in range(len(shots) * len(settings)):
        q, r = divmod(i, len(shots))
        yield (
            f"{shots[r].lower()} {settings[(r + q) % len(settings)]}, "
            f"{lights[(r + 2 * q) % len(lights)]}"
        )


def variations(prompts: Sequence[str], count: int) -> tuple[str, ...]:
    """`count` new prompts, each one of `prompts` (in turn) re-shot with another angle, setting
    and light. Deterministic, and distinct from `prompts` and from one another."""
    if count <= 0:
        return ()
    taken = {_key(p) for p in prompts}
    takes = [_takes(p) for p in prompts]
    found: list[str] = []
    i = 0
    while len(found) < count:
        base = prompts[i % len(prompts)].rstrip()
        base += "" if base.endswith((".", "!", "?")) else "."
        take = next(takes[i % len(prompts)], None)
        text = f"{base} Alternative take: {take}." if take else f"{base} Variation {i + 1}."
        if _key(text) not in taken:
            taken.add(_key(text))
            found.append(text)
        i += 1
    return tuple(found)


# (user message, how many prompts, timeout in seconds) -> the model's answer text
Ask = Callable[[str, int, float], str]


def gather_variants(
    request: VariantsRequest, ask: Ask, *, timeout: float, model: str
) -> ChatResult:
    """`request.n` prompts from one provider: its answer; if that is short, one follow-up asking
    only for the missing ones, sent only if at least FOLLOW_UP_MIN_SECONDS of `timeout` (the
    attempt's whole budget) are left; then deterministic variations of what it wrote. The result
    says how many are variations (the last `varied` ones).

    No usable prompt at all is InvalidOutput, so the chain moves on to the next provider. Errors
    of the first request propagate; a failed follow-up only means variations fill the gap.
    """
    n = request.n
    started = time.monotonic()
    answers = [ask(variants_user_text(request), n, timeout)]
    prompts = list(read_prompts(answers[0])[:n])
    left = timeout - (time.monotonic() - started)
    if len(prompts) < n and left >= FOLLOW_UP_MIN_SECONDS:
        try:
            answers.append(ask(variants_user_text(request, prompts), n - len(prompts), left))
        except ProviderError:
            if not prompts:
                raise
        else:
            prompts = list(_unique([*prompts, *read_prompts(answers[-1])])[:n])
    if not prompts:
        if not any(answer.strip() for answer in answers):
            raise InvalidOutput("The model returned an empty answer.", code="empty")
        if all(_too_long(answer) for answer in answers if answer.strip()):
            raise InvalidOutput(TOO_LONG, code="too_long")
        raise InvalidOutput("The model's answer held no usable prompt.", code="no_prompts")
    varied = n - len(prompts)
    prompts += variations(prompts, varied)
    return ChatResult(check_variants(prompts, n), model=model, varied=varied)
