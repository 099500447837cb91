"""Google Gemini API direct: generateContent with JSON output constrained by a response schema.

Shapes follow ../shared/PROVIDERS.md §3. Gemini answers HTTP 200 for a blocked prompt (no
candidates, `promptFeedback.blockReason`) and HTTP 400 for a bad key (`API_KEY_INVALID`).
"""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar

from .answers import (
    GEMINI_VISION_SCHEMA,
    VARIANTS_SYSTEM,
    VISION_INSTRUCTION,
    gemini_variants_schema,
    parse_vision,
)
from .base import DEEP_TEST, Adapter, LLMAdapter, VisionAdapter
from .errors import InvalidOutput, PermanentError, ProviderError, RetryableError
from .http import (
    HttpReply,
    first_item,
    image_mime_type,
    provider_message,
    retry_after_seconds,
    with_reply_details,
)
from .types import VisionResult

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
INLINE_LIMIT = 14 * 1024 * 1024  # inline requests must stay under 20 MB once base64-encoded


def gemini_error(reply: HttpReply) -> ProviderError:
    """The error an unsuccessful reply means, with its HTTP status and request id for admins."""
    return with_reply_details(_gemini_error(reply), reply)


def _gemini_error(reply: HttpReply) -> ProviderError:
    body = reply.json()
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    details = error.get("details")
    if not isinstance(details, list):
        details = []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    message = provider_message(error.get("message"), f"Gemini answered HTTP {reply.status}.")
    status = error.get("status") or reply.status
    if "API_KEY_INVALID" in reasons:
        return PermanentError(f"Google rejected the API key. {message}", code="API_KEY_INVALID")
    if reply.status in (408, 429, 499) or reply.status >= 500:
        return RetryableError(message, code=status, retry_after=retry_after_seconds(reply.headers))
    return PermanentError(message, code=status)


def candidate_text(payload: Any) -> str:
    """The first candidate's answer text; anything but a clean STOP is unusable JSON."""
    if not isinstance(payload, dict):
        raise InvalidOutput("Gemini sent an unexpected response.", code="bad_response")
    feedback = payload.get("promptFeedback")
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if block:
        raise InvalidOutput(f"Gemini blocked the prompt ({block}).", code="blocked")
    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise InvalidOutput("Gemini returned no answer.", code="no_candidates")
    first = candidates[0]
    finish = first.get("finishReason")
    if finish and finish != "STOP":
        raise InvalidOutput(f"Gemini stopped early ({finish}).", code=finish)
    content = first.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    # Thinking models may add thought parts; they are not the answer.
    return "".join(
        p["text"]
        for p in (parts if isinstance(parts, list) else [])
        if isinstance(p, dict) and not p.get("thought") and isinstance(p.get("text"), str)
    )


GEMINI_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class _GeminiClient(Adapter):
    default_base_url: ClassVar[str] = GEMINI_BASE_URL
    default_model: ClassVar[str] = "gemini-2.5-pro"
    vendor: ClassVar[str | None] = "gemini"

    @property
    def model(self) -> str:
        return super().model.removeprefix("models/")

    @classmethod
    def validate_model(cls, model_id: str) -> None:
        super().validate_model(model_id)
        if model_id and not GEMINI_MODEL_ID.fullmatch(model_id.removeprefix("models/")):
            raise ValueError(
                "A Gemini model id is letters, digits and . _ - (e.g. gemini-2.5-pro)."
            )

    def _headers(self) -> dict[str, str]:
        if not self.config.api_key:
            raise PermanentError(f"No API key configured for {self.label}.", code="no_key")
        return {"x-goog-api-key": self.config.api_key}  # header, so keys stay out of URL logs

    def _generate(self, body: dict[str, Any], timeout: float | None) -> str:
        if not GEMINI_MODEL_ID.fullmatch(self.model):
            raise PermanentError(f"Invalid Gemini model id '{self.model}'.", code="config")
        reply = self._send(
            "POST",
            f"{self.base_url}/models/{self.model}:generateContent",
            json=body,
            headers=self._headers(),
            timeout=timeout,
        )
        if not reply.ok:
            raise gemini_error(reply)
        return candidate_text(reply.json())

    def _probe(self) -> str:
        reply = self._send(
            "GET", f"{self.base_url}/models", params={"pageSize": 1000}, headers=self._headers()
        )
        if not reply.ok:
            raise gemini_error(reply)
        payload = reply.json()
        models = payload.get("models") if isinstance(payload, dict) else None
        if not isinstance(models, list):
            raise InvalidOutput("Gemini sent an unexpected model list.")
        names = {m.get("name") for m in models if isinstance(m, dict)}
        return self._model_listed(f"models/{self.model}" in names)

    def _deep_generate(self, parts: list[dict[str, Any]], what: str) -> str:
        """One generateContent call capped at DEEP_TEST.tokens answer tokens: proves the endpoint
        runs the model, whatever its answer says."""
        if not GEMINI_MODEL_ID.fullmatch(self.model):
            raise PermanentError(f"Invalid Gemini model id '{self.model}'.", code="config")
        reply = self._send(
            "POST",
            f"{self.base_url}/models/{self.model}:generateContent",
            json={
                "contents": [{"role": "user", "parts": parts}],
                "generationConfig": {"maxOutputTokens": DEEP_TEST.tokens},
            },
            headers=self._headers(),
        )
        if not reply.ok:
            raise gemini_error(reply)
        payload = reply.json()
        first = first_item(payload, "candidates", "generateContent")
        content = first.get("content")
        found = content.get("parts") if isinstance(content, dict) else None
        text = "".join(
            p["text"]
            for p in (found if isinstance(found, list) else [])
            if isinstance(p, dict) and not p.get("thought") and isinstance(p.get("text"), str)
        )
        return self._deep_report(
            what=what,
            answer=provider_message(text, ""),
            cut_off=first.get("finishReason") == "MAX_TOKENS",
            reported=provider_message(payload.get("modelVersion"), ""),
        )


class GeminiLLMAdapter(_GeminiClient, LLMAdapter):
    slug = "gemini-chat"
    label = "Google Gemini"
    deep_test_cost = (
        f"One minimal generateContent call: about 10 input and at most {DEEP_TEST.tokens} answer "
        "tokens (a thinking model may bill some thinking tokens too)."
    )

    def _deep_probe(self) -> str:
        return self._deep_generate([{"text": DEEP_TEST.prompt}], "a one-word request")

    def _ask(self, user_text: str, n: int, timeout: float) -> str:
        return self._generate(
            {
                "systemInstruction": {"parts": [{"text": VARIANTS_SYSTEM}]},
                "contents": [{"role": "user", "parts": [{"text": user_text}]}],
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseSchema": gemini_variants_schema(n),
                },
            },
            timeout,
        )


class GeminiVisionAdapter(_GeminiClient, VisionAdapter):
    slug = "gemini-vision"
    label = "Google Gemini vision"
    deep_test_cost = (
        "One minimal generateContent call with a 1×1 pixel image: about 270 input tokens (Gemini "
        f"counts a small image as 258) and at most {DEEP_TEST.tokens} answer tokens (a thinking "
        "model may bill some thinking tokens too)."
    )

    def _deep_probe(self) -> str:
        tiny = {"mime_type": "image/png", "data": DEEP_TEST.image_base64}
        return self._deep_generate(
            [{"inline_data": tiny}, {"text": DEEP_TEST.vision_prompt}],
            "a one-word question about a 1×1 pixel image",
        )

    def describe(self, image: bytes, *, timeout: float | None = None) -> VisionResult:
        if len(image) > INLINE_LIMIT:
            raise PermanentError("The image is too large for Gemini (about 14 MB at most).")
        inline = {"mime_type": image_mime_type(image), "data": base64.b64encode(image).decode()}
        text = self._generate(
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"inline_data": inline}, {"text": VISION_INSTRUCTION}],
                    }
                ],
                "generationConfig": {
                    "responseMimeType": "application/json",
                    "responseSchema": GEMINI_VISION_SCHEMA,
                },
            },
            timeout,
        )
        return parse_vision(text)
