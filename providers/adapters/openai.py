"""OpenAI (or any OpenAI-compatible base URL): chat completions with structured outputs.

Shapes follow ../shared/PROVIDERS.md §2. A 429 is either a rate limit (retry) or exhausted quota
(`insufficient_quota`, never retried: waiting does not add money to the account).
"""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar

from django import forms

from .answers import (
    VARIANTS_FORMAT,
    VARIANTS_SYSTEM,
    VISION_FORMAT,
    VISION_INSTRUCTION,
    chat_completion_text,
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
from .options import AdapterOptions, choices
from .types import VisionResult

OPENAI_BASE_URL = "https://api.openai.com/v1"


def openai_error(reply: HttpReply) -> ProviderError:
    """The error an unsuccessful reply means, with its HTTP status and request id for admins."""
    return with_reply_details(_openai_error(reply), reply)


GATEWAY_NO_UPSTREAM = re.compile(r"no deployments available|cooldown_list", re.IGNORECASE)


def _openai_error(reply: HttpReply) -> ProviderError:
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
    # A gateway (LiteLLM and the like) answers 429 when every upstream deployment is benched,
    # typically after the upstream refused the key: waiting will not fix that configuration.
    if reply.status == 429 and GATEWAY_NO_UPSTREAM.search(str(error.get("message") or "")):
        return PermanentError(
            f"The gateway has no working upstream model; check the gateway's upstream keys and "
            f"models. {message}",
            code="gateway_no_upstream",
        )
    if reply.headers.get("x-should-retry", "").lower() == "false":  # the server says so
        return PermanentError(message, code=code or reply.status)
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
        """GET /models is free but proves only that the endpoint accepts the key (a gateway may
        answer it itself) and lists the model; `deep_test` runs the model."""
        reply = self._send("GET", f"{self.base_url}/models", headers=self._headers())
        if not reply.ok:
            raise openai_error(reply)
        payload = reply.json()
        models = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(models, list):
            raise InvalidOutput(f"{self.label} sent an unexpected model list.")
        ids = {m.get("id") for m in models if isinstance(m, dict)}
        return self._model_listed(self.model in ids)

    def _deep_chat(self, content: Any, what: str) -> str:
        """One chat call capped at DEEP_TEST.tokens output tokens: proves the endpoint runs the
        model, whatever its answer says."""
        reply = self._send(
            "POST",
            f"{self.base_url}/chat/completions",
            json={
                "model": self.model,
                "messages": [{"role": "user", "content": content}],
                # Not max_tokens: reasoning models refuse it. The cap includes their reasoning.
                "max_completion_tokens": DEEP_TEST.tokens,
            },
            headers=self._headers(),
        )
        if not reply.ok:
            raise openai_error(reply)
        payload = reply.json()
        first = first_item(payload, "choices", "a chat completion")
        message = first.get("message")
        return self._deep_report(
            what=what,
            answer=provider_message(
                message.get("content") if isinstance(message, dict) else "", ""
            ),
            cut_off=first.get("finish_reason") == "length",
            reported=provider_message(payload.get("model"), ""),
        )


class OpenAILLMAdapter(_OpenAIChat, LLMAdapter):
    slug = "openai-chat"
    label = "OpenAI chat"
    deep_test_cost = (
        f"One minimal chat call: about 15 input and at most {DEEP_TEST.tokens} output tokens."
    )

    def _deep_probe(self) -> str:
        return self._deep_chat(DEEP_TEST.prompt, "a one-word request")

    def _ask(self, user_text: str, n: int, timeout: float) -> str:
        messages = [
            {"role": "system", "content": VARIANTS_SYSTEM},
            {"role": "user", "content": user_text},
        ]
        return self._chat({"messages": messages, "response_format": VARIANTS_FORMAT}, timeout)


class OpenAIVisionOptions(AdapterOptions):
    detail = forms.ChoiceField(
        choices=choices("auto", "low", "high"),
        required=False,
        help_text="How closely the model looks at a reference; low costs fewer tokens.",
    )


class OpenAIVisionAdapter(_OpenAIChat, VisionAdapter):
    slug = "openai-vision"
    label = "OpenAI vision"
    options_form = OpenAIVisionOptions
    deep_test_cost = (
        "One minimal chat call with a 1×1 pixel image at low detail: about 100 input tokens on "
        f"GPT-4o (some models count an image as more) and at most {DEEP_TEST.tokens} output "
        "tokens."
    )

    def _deep_probe(self) -> str:
        tiny = f"data:image/png;base64,{DEEP_TEST.image_base64}"
        content = [
            {"type": "text", "text": DEEP_TEST.vision_prompt},
            {"type": "image_url", "image_url": {"url": tiny, "detail": "low"}},
        ]
        return self._deep_chat(content, "a one-word question about a 1×1 pixel image")

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
                "response_format": VISION_FORMAT,
            },
            timeout,
        )
        return parse_vision(text)
