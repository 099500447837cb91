"""kie.ai: Market image jobs (createTask / recordInfo / callbacks), file upload, Gemini chat.

Shapes follow ../shared/PROVIDERS.md §1. kie wraps everything in {"code", "msg", "data"} and may
answer HTTP 200 for a failed request, so the envelope `code` decides, not the HTTP status.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import mimetypes
import re
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from django import forms
from django.template.defaultfilters import pluralize

from .answers import (
    VARIANTS_FORMAT,
    VARIANTS_SCHEMA,
    VARIANTS_SYSTEM,
    chat_completion_text,
)
from .base import DEEP_TEST, ImageAdapter, LLMAdapter
from .errors import (
    GenerationFailed,
    InvalidOutput,
    PermanentError,
    ProviderError,
    RetryableError,
)
from .http import HttpReply, loads, provider_message, reply_details, retry_after_seconds
from .options import AdapterOptions, BaseURLField, choices
from .types import ChatResult, ImageJobRequest, ImageJobStatus, ImageJobSubmitted, VariantsRequest

KIE_BASE_URL = "https://api.kie.ai"
KIE_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
UPLOAD_PATH = "nerstudio/references"
BASE64_UPLOAD_LIMIT = 5 * 1024 * 1024  # larger files go through the multipart stream endpoint

RETRYABLE_CODES = {429, 455, 500}
CODE_MESSAGES = {
    401: "kie.ai rejected the API key.",
    402: "kie.ai credits are exhausted; top up the kie.ai account.",
    404: "kie.ai could not find the resource.",
    422: "kie.ai rejected the request parameters.",
    429: "kie.ai rate limit reached.",
    455: "kie.ai is under maintenance.",
    500: "kie.ai had a server error.",
    501: "kie.ai could not generate the image.",
    505: "This kie.ai feature is disabled.",
}


def kie_error(code: int, msg: Any, reply: HttpReply | None = None) -> ProviderError:
    """Map a kie envelope code (or, without an envelope, the HTTP status) to our error kinds;
    the reply, when given, adds its HTTP status, request id and Retry-After."""
    fallback = CODE_MESSAGES.get(code, f"kie.ai returned code {code}.")
    detail = provider_message(msg, "")
    message = f"{fallback} {detail}".strip() if detail and detail not in fallback else fallback
    details = reply_details(reply) if reply is not None else {}
    if code == 501:
        return GenerationFailed(message, code=code, **details)
    # 505 is "feature disabled"; other 5xx (gateways, unknown) are transient.
    if code in RETRYABLE_CODES or (code >= 500 and code != 505):
        retry_after = retry_after_seconds(reply.headers) if reply is not None else None
        return RetryableError(message, code=code, retry_after=retry_after, **details)
    # 401/402/404/422/505 per kie; 433 and other unknown codes are treated as non-retryable.
    return PermanentError(message, code=code, **details)


def _envelope_code(body: Any) -> int | None:
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isdigit():
        return int(code)
    return None


def kie_data(reply: HttpReply) -> Any:
    """`data` of a successful envelope; raises for any non-200 code, even on HTTP 200."""
    body = reply.json()
    code = _envelope_code(body)
    if code is None:
        if reply.ok:
            raise InvalidOutput(
                "kie.ai sent an unexpected response.", code="bad_envelope", **reply_details(reply)
            )
        raise kie_error(reply.status, None, reply)
    if code != 200:
        # The docs show both "msg" and "message" at the top level.
        raise kie_error(code, body.get("msg") or body.get("message"), reply)
    return body.get("data")


def _probe_credits(adapter: ImageAdapter | LLMAdapter) -> str:
    """Credit balance: free, and exercises the key (PROVIDERS.md §1.6)."""
    reply = adapter._send(
        "GET", f"{adapter.base_url}/api/v1/chat/credit", headers=_auth_headers(adapter)
    )
    data = kie_data(reply)
    try:
        credits = Decimal(str(data))
    except InvalidOperation:
        raise InvalidOutput("kie.ai returned an unreadable credit balance.") from None
    left = f"{credits.normalize():f} credit{pluralize(credits)}"
    return f"Key accepted by {adapter.base_url} ({left} left)."


def _auth_headers(adapter: ImageAdapter | LLMAdapter) -> dict[str, str]:
    if not adapter.config.api_key:
        raise PermanentError(f"No API key configured for {adapter.label}.", code="no_key")
    return {"Authorization": f"Bearer {adapter.config.api_key}"}


# --- Results, callbacks and webhook signatures ------------------------------------------------


def _result_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    raw = data.get("resultJson")
    if isinstance(raw, str) and raw.strip():
        try:
            raw = loads(raw)  # a JSON document inside a JSON string
        except ValueError:
            raise InvalidOutput(
                "kie.ai sent an unreadable resultJson.", code="bad_result"
            ) from None
    urls = raw.get("resultUrls") if isinstance(raw, dict) else None
    if urls is None:
        urls = data.get("resultUrls")
    if not isinstance(urls, list):
        return ()
    return tuple(u for u in urls if isinstance(u, str) and u.startswith(("http://", "https://")))


def status_from_record(
    data: Any, *, task_id: str = "", envelope_failed: bool = False
) -> ImageJobStatus:
    """One parser for recordInfo `data` and callback `data`, which share a shape."""
    if not isinstance(data, dict):
        raise InvalidOutput("kie.ai sent a task record without data.", code="bad_record")
    task_id = str(data.get("taskId") or data.get("task_id") or task_id)
    state = data.get("state")
    if state == "fail" or (envelope_failed and state != "success"):
        return ImageJobStatus(
            task_id,
            "failed",
            error=provider_message(data.get("failMsg"), "kie.ai could not generate the image."),
            error_code=str(data.get("failCode") or ("501" if envelope_failed else "")),
        )
    if state == "success" or (state is None and data.get("resultJson")):
        urls = _result_urls(data)
        if not urls:
            raise InvalidOutput("kie.ai reported success without result URLs.", code="no_result")
        return ImageJobStatus(task_id, "success", result_urls=urls)
    # waiting, queuing, generating, a state kie adds later, or a callback without a result.
    return ImageJobStatus(task_id, "pending")


def callback_task_id(payload: Any) -> str:
    """kie's docs disagree on where the id is; take the first non-empty (PROVIDERS.md §1.4)."""
    if not isinstance(payload, dict):
        return ""
    data = payload.get("data")
    if not isinstance(data, dict):
        data = {}
    for value in (payload.get("taskId"), data.get("taskId"), data.get("task_id")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def parse_callback(body: bytes) -> ImageJobStatus:
    """Status from a callback POST. The body is not signed: match the id against our own jobs and
    re-fetch recordInfo before acting on it."""
    try:
        payload = loads(body)
    except ValueError:
        raise InvalidOutput("The kie.ai callback is not JSON.", code="bad_callback") from None
    task_id = callback_task_id(payload)
    if not task_id:
        raise InvalidOutput("The kie.ai callback has no task id.", code="bad_callback")
    data = payload.get("data")
    return status_from_record(
        data if isinstance(data, dict) else {},
        task_id=task_id,
        envelope_failed=_envelope_code(payload) == 501,
    )


def sign_webhook(task_id: str, timestamp: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: float | None = None,
    window: int = 300,
) -> bool:
    """kie signs `taskId.timestamp`, not the body, so also re-fetch recordInfo before trusting it.

    kie gives no replay window; we reject timestamps more than `window` seconds from now.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = str(lowered.get("x-webhook-timestamp", "")).strip()
    signature = str(lowered.get("x-webhook-signature", "")).strip()
    if not (secret and signature and timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > window:
        return False
    try:
        task_id = callback_task_id(loads(body))
    except ValueError:
        return False
    if not task_id:
        return False
    return hmac.compare_digest(sign_webhook(task_id, timestamp, secret), signature)


# --- Image jobs ---------------------------------------------------------------------------------

NO_SUCH_TASK = "nerstudio-deep-test-no-such-task"


class KieImageOptions(AdapterOptions):
    """What every kie.ai image model takes; each model's form adds the input fields it sends."""

    account_fields = ("upload_base_url",)

    upload_base_url = BaseURLField(
        required=False,
        label="Upload host",
        help_text="Where product photos are uploaded, for a gateway that fronts kie.ai. Blank: "
        "the provider's base URL when set, else kie.ai's public upload host.",
    )


class KieImageAdapter(ImageAdapter):
    """One subclass per family of Market models that take the same input fields.

    Each subclass lists the model ids it can send (`supported_models`): kie's field names depend
    on the model, so any other id is refused rather than sent with the wrong fields.
    """

    default_base_url: ClassVar[str] = KIE_BASE_URL
    vendor: ClassVar[str | None] = "kie"
    images_field: ClassVar[str]
    min_images: ClassVar[int] = 0
    max_prompt_chars: ClassVar[int]
    min_prompt_chars: ClassVar[int] = 1
    ratio_field: ClassVar[str] = "aspect_ratio"
    ratio_values: ClassVar[Mapping[str, str]] = {}  # our ratio -> kie value, when they differ
    quality_field: ClassVar[str | None] = None  # None: the model has no quality levels
    options_form: ClassVar[type[AdapterOptions]] = KieImageOptions
    deep_test_cost: ClassVar[str] = (
        "Free: the credit balance, an upload request without a file (nothing is stored) and the "
        "status of a task that does not exist. No image is generated, so the model id itself is "
        "not tried."
    )

    @property
    def upload_base_url(self) -> str:
        """Where product photos are uploaded. The configuration decides (providers.models
        `Provider.config`); blank means kie's public upload host."""
        return (self.config.upload_base_url or KIE_UPLOAD_BASE_URL).rstrip("/")

    def build_input(self, request: ImageJobRequest) -> dict[str, Any]:
        """The model's `input` object; PermanentError with a user-safe message if out of bounds."""
        if self.model not in self.supported_models:
            raise PermanentError(
                f"{self.label} cannot send model '{self.model}'; it supports "
                f"{', '.join(self.supported_models)}.",
                code="config",
            )
        prompt = request.prompt.strip()
        if not self.min_prompt_chars <= len(prompt) <= self.max_prompt_chars:
            raise PermanentError(
                f"{self.label} needs a prompt of {self.min_prompt_chars} to "
                f"{self.max_prompt_chars} characters.",
                code="invalid_request",
            )
        images = list(request.image_urls)
        if not self.min_images <= len(images) <= self.max_images:
            raise PermanentError(
                f"{self.label} accepts {self.min_images} to {self.max_images} images.",
                code="invalid_request",
            )
        ratio = request.aspect_ratio or self.default_aspect_ratio
        if ratio not in self.aspect_ratios:
            raise PermanentError(
                f"{self.label} does not support aspect ratio {ratio}.", code="invalid_request"
            )
        quality = request.quality or self.default_quality
        if self.qualities and quality not in self.qualities:
            raise PermanentError(
                f"{self.label} does not support quality {quality}.", code="invalid_request"
            )
        if not self.qualities and quality:
            raise PermanentError(
                f"{self.label} has no quality levels (asked for {quality}).",
                code="invalid_request",
            )
        try:
            extra = {**self.options, **self.validate_options(request.options)}
        except ValueError as exc:
            raise PermanentError(str(exc), code="invalid_request") from None
        payload: dict[str, Any] = {"prompt": prompt}
        if images or self.min_images:
            payload[self.images_field] = images
        payload[self.ratio_field] = self.ratio_values.get(ratio, ratio)
        if self.quality_field:
            payload[self.quality_field] = quality
        account = self.options_form.account_fields  # they configure the adapter, not the model
        payload.update((k, v) for k, v in extra.items() if k not in account)
        return payload

    def submit(
        self, request: ImageJobRequest, *, timeout: float | None = None
    ) -> ImageJobSubmitted:
        body: dict[str, Any] = {"model": self.model, "input": self.build_input(request)}
        if request.callback_url:
            body["callBackUrl"] = request.callback_url
        reply = self._send(
            "POST",
            f"{self.base_url}/api/v1/jobs/createTask",
            json=body,
            headers=_auth_headers(self),
            timeout=timeout,
        )
        data = kie_data(reply)
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise InvalidOutput("kie.ai created a task without an id.", code="no_task_id")
        return ImageJobSubmitted(task_id)

    def poll(self, task_id: str, *, timeout: float | None = None) -> ImageJobStatus:
        try:
            data = kie_data(self._record_info(task_id, timeout=timeout))
        except PermanentError as exc:
            if exc.code == "404":  # a poll right after createTask can race the task's creation
                raise RetryableError("kie.ai does not know this task yet.", code=404) from None
            raise
        return status_from_record(data, task_id=task_id)

    def _record_info(self, task_id: str, *, timeout: float | None = None) -> HttpReply:
        return self._send(
            "GET",
            f"{self.base_url}/api/v1/jobs/recordInfo",
            params={"taskId": task_id},
            headers=_auth_headers(self),
            timeout=timeout,
        )

    def parse_callback(self, body: bytes) -> ImageJobStatus:
        return parse_callback(body)

    verify_webhook = staticmethod(verify_webhook)

    def upload_file(self, data: bytes, filename: str, *, timeout: float | None = None) -> str:
        """Upload a private image and return a temporary public URL (kie deletes it in 3 days).

        The name is prefixed with a content hash: kie overwrites files of the same name.
        """
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", filename).strip("-.")[:80] or "image"
        name = f"{hashlib.sha256(data).hexdigest()[:16]}-{safe}"
        base = self.upload_base_url
        headers = _auth_headers(self)
        if len(data) <= BASE64_UPLOAD_LIMIT:
            mime = mimetypes.guess_type(safe)[0] or "application/octet-stream"
            encoded = base64.b64encode(data).decode()
            body = {
                "base64Data": f"data:{mime};base64,{encoded}",
                "uploadPath": UPLOAD_PATH,
                "fileName": name,
            }
            reply = self._send(
                "POST",
                f"{base}/api/file-base64-upload",
                json=body,
                headers=headers,
                timeout=timeout,
            )
        else:
            reply = self._send(
                "POST",
                f"{base}/api/file-stream-upload",
                files={"file": (name, data)},
                data={"uploadPath": UPLOAD_PATH, "fileName": name},
                headers=headers,
                timeout=timeout,
            )
        info = kie_data(reply)
        # The two upload pages document different response fields; downloadUrl is in both.
        link = (info.get("downloadUrl") or info.get("fileUrl")) if isinstance(info, dict) else None
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise InvalidOutput("kie.ai upload returned no URL.", code="no_url")
        return link

    def _probe(self) -> str:
        """The API host (credit balance) and the upload host: a generation uses both."""
        proven = _probe_credits(self).removesuffix(".")
        try:
            self._probe_upload_host()
        except ProviderError as exc:
            raise ProviderError(
                f"{proven}, but the upload host {self.upload_base_url} failed: {exc.message}",
                retryable=exc.retryable,
                code=exc.code,
                status=exc.status,
                request_id=exc.request_id,
            ) from None
        return f"{proven}; upload host {self.upload_base_url} reachable and accepts the key."

    def _probe_upload_host(self) -> None:
        """An upload request without file data, so nothing can be stored. kie checks the key
        first (401, PROVIDERS.md §1.0) and then answers a missing parameter with code 400
        (§1.5), so that answer proves the host speaks kie's upload API and took the key."""
        reply = self._send(
            "POST",
            f"{self.upload_base_url}/api/file-base64-upload",
            json={"uploadPath": UPLOAD_PATH},
            headers=_auth_headers(self),
        )
        _expect_envelope(reply, {200, 400, 422}, self.upload_base_url, "upload API")

    def _deep_probe(self) -> str:
        """Both hosts, then the job-status endpoint for a task that does not exist: kie answers
        "Task not found" (§1.2) once it has accepted the key. Never a createTask, which costs."""
        proven = self._probe().removesuffix(".")
        reply = self._record_info(NO_SUCH_TASK)
        _expect_envelope(reply, {200, 400, 404, 422}, self.base_url, "job status API")
        return (
            f"{proven}; the job status endpoint answers. Free: no image was generated, so the "
            f"model id '{self.model}' itself was not tried."
        )


def _expect_envelope(reply: HttpReply, codes: set[int], host: str, what: str) -> None:
    """A kie envelope with one of `codes`, or the error the answer means."""
    body = reply.json()
    code = _envelope_code(body)
    if code is None:
        if reply.status >= 500:
            raise kie_error(reply.status, None, reply)
        raise PermanentError(
            f"{host} does not answer like kie.ai's {what} (HTTP {reply.status}).",
            code="bad_envelope",
        )
    if code not in codes:
        message = body.get("msg") or body.get("message")
        raise kie_error(code, message, reply)


NANO_BANANA_RATIOS = (
    "1:1",
    "2:3",
    "3:2",
    "3:4",
    "4:3",
    "4:5",
    "5:4",
    "9:16",
    "16:9",
    "21:9",
    "auto",
)


class NanoBananaProOptions(KieImageOptions):
    output_format = forms.ChoiceField(choices=choices("png", "jpg"), required=False)


class _GeminiImageAdapter(KieImageAdapter):
    """Google's image models on kie (Pro and 2): references in `image_input`, output size as
    `resolution` 1K/2K/4K."""

    images_field = "image_input"
    quality_field = "resolution"
    qualities = ("1K", "2K", "4K")
    default_quality = "1K"


class NanoBananaProAdapter(_GeminiImageAdapter):
    slug = "kie-nano-banana-pro"
    label = "Nano Banana Pro (kie.ai)"
    default_model = "nano-banana-pro"
    supported_models = ("nano-banana-pro",)
    max_images = 8
    max_prompt_chars = 10_000
    aspect_ratios = NANO_BANANA_RATIOS
    default_aspect_ratio = "1:1"
    options_form = NanoBananaProOptions


class NanoBanana2Options(KieImageOptions):
    output_format = forms.ChoiceField(choices=choices("jpg", "png"), required=False)
    google_search = forms.BooleanField(
        required=False, help_text="Let the model look things up with Google Search."
    )


class NanoBanana2Adapter(_GeminiImageAdapter):
    slug = "kie-nano-banana-2"
    label = "Nano Banana 2 (kie.ai)"
    default_model = "nano-banana-2"
    supported_models = ("nano-banana-2",)
    max_images = 14
    max_prompt_chars = 20_000
    aspect_ratios = (
        *("auto", "1:1", "1:4", "16:9", "1:8", "21:9", "2:3", "3:2"),
        *("3:4", "4:1", "4:3", "4:5", "5:4", "8:1", "9:16"),
    )
    default_aspect_ratio = "auto"
    options_form = NanoBanana2Options


class NanoBananaEditOptions(KieImageOptions):
    output_format = forms.ChoiceField(choices=choices("png", "jpeg"), required=False)


class NanoBananaEditAdapter(KieImageAdapter):
    """The original Nano Banana (PROVIDERS.md §1.1.3): references in `image_urls`, the ratio in
    `image_size`, `jpeg` rather than `jpg`, and no resolution or quality levels at all."""

    slug = "kie-nano-banana-edit"
    label = "Nano Banana Edit (kie.ai)"
    default_model = "google/nano-banana-edit"
    supported_models = ("google/nano-banana-edit",)
    images_field = "image_urls"
    min_images = 1
    max_images = 10
    max_prompt_chars = 5_000
    ratio_field = "image_size"
    aspect_ratios = (
        *("1:1", "9:16", "16:9", "3:4", "4:3", "3:2"),
        *("2:3", "5:4", "4:5", "21:9", "auto"),
    )
    default_aspect_ratio = "1:1"
    options_form = NanoBananaEditOptions


class Seedream45EditAdapter(KieImageAdapter):
    slug = "kie-seedream-4.5-edit"
    label = "Seedream 4.5 Edit (kie.ai)"
    default_model = "seedream/4.5-edit"
    supported_models = ("seedream/4.5-edit",)
    images_field = "image_urls"
    min_images = 1
    max_images = 14
    max_prompt_chars = 3_000
    aspect_ratios = ("1:1", "4:3", "3:4", "16:9", "9:16", "2:3", "3:2", "21:9")
    default_aspect_ratio = "1:1"
    quality_field = "quality"
    qualities = ("basic", "high")  # 2K / 4K output
    default_quality = "basic"


class SeedreamV4EditOptions(KieImageOptions):
    max_images = forms.IntegerField(
        min_value=1, max_value=6, required=False, help_text="Images per task, 1 to 6."
    )
    seed = forms.IntegerField(
        min_value=0, max_value=2**31 - 1, required=False, help_text="Blank: a random seed."
    )


class SeedreamV4EditAdapter(KieImageAdapter):
    """The only model here with several images per task (`max_images`); say the count in the
    prompt too, as kie recommends."""

    slug = "kie-seedream-v4-edit"
    label = "Seedream 4.0 Edit (kie.ai)"
    default_model = "bytedance/seedream-v4-edit"
    supported_models = ("bytedance/seedream-v4-edit",)
    images_field = "image_urls"
    min_images = 1
    max_images = 10
    max_prompt_chars = 5_000
    ratio_field = "image_size"
    ratio_values = {
        "1:1": "square_hd",
        "3:4": "portrait_4_3",
        "2:3": "portrait_3_2",
        "9:16": "portrait_16_9",
        "4:3": "landscape_4_3",
        "3:2": "landscape_3_2",
        "16:9": "landscape_16_9",
        "21:9": "landscape_21_9",
    }
    aspect_ratios = tuple(ratio_values)
    default_aspect_ratio = "1:1"
    quality_field = "image_resolution"
    qualities = ("1K", "2K", "4K")
    default_quality = "1K"
    options_form = SeedreamV4EditOptions


class Flux2EditAdapter(KieImageAdapter):
    """FLUX.2 image-to-image, Pro and Flex: the same input fields (PROVIDERS.md §1.1.6).

    The slug predates Flex; rows store it, so it stays.
    """

    slug = "kie-flux-2-pro-edit"
    label = "FLUX.2 image-to-image (kie.ai)"
    default_model = "flux-2/pro-image-to-image"
    supported_models = ("flux-2/pro-image-to-image", "flux-2/flex-image-to-image")
    images_field = "input_urls"
    min_images = 1
    max_images = 8
    min_prompt_chars = 3
    max_prompt_chars = 5_000
    aspect_ratios = ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "auto")
    default_aspect_ratio = "1:1"
    quality_field = "resolution"
    qualities = ("1K", "2K")
    default_quality = "1K"


# --- Chat (Gemini through kie's OpenAI-style endpoint) ------------------------------------------


CHAT_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class KieChatOptions(AdapterOptions):
    response_format = forms.ChoiceField(
        choices=choices("json_schema", "schema", "none"),
        required=False,
        help_text="The shape of response_format sent (kie's pages show two). Blank: json_schema.",
    )
    reasoning_effort = forms.ChoiceField(choices=choices("low", "high"), required=False)


class KieChatAdapter(LLMAdapter):
    """kie's pages show two `response_format` shapes; the option picks one, and the prompt asks
    for JSON either way so the answer is validated, not trusted."""

    slug = "kie-chat"
    label = "Gemini chat (kie.ai)"
    default_base_url = KIE_BASE_URL
    default_model = "gemini-3-pro"
    vendor = "kie"
    options_form = KieChatOptions
    deep_test_cost = (
        f"One minimal chat call (a one-word request, at most {DEEP_TEST.tokens} output tokens): "
        "a fraction of a kie.ai credit."
    )

    def generate_variants(
        self, request: VariantsRequest, *, timeout: float | None = None
    ) -> ChatResult:
        if not CHAT_MODEL_ID.fullmatch(self.model):
            raise PermanentError(f"Invalid kie.ai chat model id '{self.model}'.", code="config")
        return super().generate_variants(request, timeout=timeout)

    def _ask(self, user_text: str, n: int, timeout: float) -> str:
        body: dict[str, Any] = {
            # One user message: kie documents user content parts; system roles are undocumented.
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": VARIANTS_SYSTEM},
                        {"type": "text", "text": user_text},
                    ],
                }
            ],
            "stream": False,  # the default is undocumented; the JSON path needs it off
        }
        style = self.options.get("response_format", "json_schema")
        if style == "json_schema":
            body["response_format"] = VARIANTS_FORMAT
        elif style == "schema":
            body["response_format"] = VARIANTS_SCHEMA
        if "reasoning_effort" in self.options:
            body["reasoning_effort"] = self.options["reasoning_effort"]
        return chat_completion_text(self._chat(body, timeout))

    def _chat(self, body: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """A chat completion from kie's per-model endpoint, or the error its answer means."""
        reply = self._send(
            "POST",
            f"{self.base_url}/{self.model}/v1/chat/completions",
            json=body,
            headers=_auth_headers(self),
            timeout=timeout,
        )
        payload = reply.json()
        if not (reply.ok and isinstance(payload, dict) and "choices" in payload):
            error = payload.get("error") if isinstance(payload, dict) else None
            if isinstance(error, dict):  # OpenAI-style error body
                raise kie_error(reply.status, error.get("message"), reply)
            kie_data(reply)  # raises for an envelope error
            raise InvalidOutput("kie.ai chat sent an unexpected response.", code="bad_response")
        return payload

    @classmethod
    def validate_model(cls, model_id: str) -> None:
        super().validate_model(model_id)
        if model_id and not CHAT_MODEL_ID.fullmatch(model_id):
            raise ValueError("A kie.ai chat model id is letters, digits and . _ - (it is a path).")

    def _probe(self) -> str:
        return _probe_credits(self)

    def _deep_probe(self) -> str:
        proven = _probe_credits(self)
        body = {
            "messages": [{"role": "user", "content": [{"type": "text", "text": DEEP_TEST.prompt}]}],
            "stream": False,
            "max_tokens": DEEP_TEST.tokens,
        }
        choices = self._chat(body, None)["choices"]  # cut off at 5 tokens on purpose
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        text = message.get("content") if isinstance(message, dict) else None
        answer = provider_message(text, "") if isinstance(text, str) else ""
        outcome = f"answered: “{answer}”" if answer else "ran but answered with no text"
        return f"{proven} Model '{self.model}' {outcome}. {self.deep_test_cost}"
