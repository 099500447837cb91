"""OpenAI (or any OpenAI-compatible base URL): chat completions with structured outputs.

Shapes follow ../shared/PROVIDERS.md §2. A 429 is either a rate limit (retry) or exhausted quota
(`insufficient_quota`, never retried: waiting does not add money to the account).
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from .base import (
    VARIANTS_SYSTEM,
    VISION_INSTRUCTION,
    Adapter,
    ChatResult,
    HttpReply,
    InvalidOutput,
    LLMAdapter,
    PermanentError,
    ProviderError,
    RetryableError,
    VariantsRequest,
    VisionAdapter,
    VisionResult,
    chat_completion_text,
    choice,
    image_mime_type,
    parse_variants,
    parse_vision,
    provider_message,
    retry_after_seconds,
    variants_user_text,
)

OPENAI_BASE_URL = "https://api.openai.com/v1"

VARIANTS_SCHEMA = {
    "type": "object",
    "properties": {"variants": {"type": "array", "items": {"type": "string"}}},
    "required": ["variants"],
    "additionalProperties": False,
}
VISION_SCHEMA = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "palette": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["description", "palette"],
    "additionalProperties": False,
}


def json_schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def openai_error(reply: HttpReply) -> ProviderError:
    body = reply.json()
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") or error.get("type")
    message = provider_message(error.get("message"), f"OpenAI answered HTTP {reply.status}.")
    if "insufficient_quota" in (error.get("code"), error.get("type")):
        return PermanentError(
            f"The OpenAI account is out of quota; check its plan and billing. {message}",
            code="insufficient_quota",
        )
    if reply.status in (408, 409, 429) or reply.status >= 500:
        return RetryableError(
            message, code=code or reply.status, retry_after=retry_after_seconds(reply.headers)
        )
    return PermanentError(message, code=code or reply.status)


class _OpenAIChat(Adapter):
    default_base_url: ClassVar[str] = OPENAI_BASE_URL
    default_model: ClassVar[str] = "gpt-4o"
    vendor: ClassVar[str | None] = "openai"

    def _headers(self) -> dict[str, str]:
        if not self.config.api_key:
            raise PermanentError(f"No API key configured for {self.label}.", code="no_key")
        return {"Authorization": f"Bearer {self.config.api_key}"}

    def _chat(self, body: dict[str, Any], timeout: float | None) -> str:
        reply = self._send(
            "POST",
            f"{self.base_url}/chat/completions",
            json={"model": self.model, **body},
            headers=self._headers(),
            timeout=timeout,
        )
        if not reply.ok:
            raise openai_error(reply)
        payload = reply.json()
        if not isinstance(payload, dict):
            raise InvalidOutput(f"{self.label} sent an unexpected response.", code="bad_response")
        return chat_completion_text(payload)

    def _probe(self) -> str:
        """GET /models costs nothing and also tells us whether the configured model exists."""
        reply = self._send("GET", f"{self.base_url}/models", headers=self._headers())
        if not reply.ok:
            raise openai_error(reply)
        payload = reply.json()
        models = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(models, list):
            raise InvalidOutput(f"{self.label} sent an unexpected model list.")
        ids = {m.get("id") for m in models if isinstance(m, dict)}
        if self.model not in ids:
            raise PermanentError(f"Connected, but model '{self.model}' is not available.")
        return f"Connected; model '{self.model}' is available."


class OpenAILLMAdapter(_OpenAIChat, LLMAdapter):
    slug = "openai-chat"
    label = "OpenAI chat"

    def generate_variants(
        self, request: VariantsRequest, *, timeout: float | None = None
    ) -> ChatResult:
        text = self._chat(
            {
                "messages": [
                    {"role": "system", "content": VARIANTS_SYSTEM},
                    {"role": "user", "content": variants_user_text(request)},
                ],
                "response_format": json_schema_format("prompt_variants", VARIANTS_SCHEMA),
            },
            timeout,
        )
        return ChatResult(parse_variants(text, request.n), model=self.model)


class OpenAIVisionAdapter(_OpenAIChat, VisionAdapter):
    slug = "openai-vision"
    label = "OpenAI vision"
    options_spec = {"detail": choice("auto", "low", "high")}

    def describe(self, image: bytes, *, timeout: float | None = None) -> VisionResult:
        data_url = f"data:{image_mime_type(image)};base64,{base64.b64encode(image).decode()}"
        text = self._chat(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": VISION_INSTRUCTION},
                            {
                                "type": "image_url",
                                "image_url": {
                                    "url": data_url,
                                    "detail": self.options.get("detail", "auto"),
                                },
                            },
                        ],
                    }
                ],
                "response_format": json_schema_format("image_description", VISION_SCHEMA),
            },
            timeout,
        )
        return parse_vision(text)
