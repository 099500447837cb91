"""Provider-neutral types, errors and the one HTTP seam every adapter goes through.

Framework-free on purpose: Django code builds a `ProviderConfig` from a database row and hands it to
an adapter class; nothing here knows about models, caches or settings.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import requests
import urllib3

from lib import egress

USER_AGENT = "NER-Studio/0.1"
MAX_PROVIDER_MESSAGE = 200

# --- Errors -------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call failed; `message` is safe to show to users, `retryable` drives retries."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str | int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = None if code is None else str(code)
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """Retrying the same call will not help (bad key, no credits, invalid request)."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message, retryable=False, code=code)


class RetryableError(ProviderError):
    """Transient: network trouble, timeouts, rate limits, provider overload."""

    def __init__(
        self, message: str, *, code: str | int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retryable=True, code=code, retry_after=retry_after)


class GenerationFailed(ProviderError):
    """The provider accepted the job but could not produce a result (kie code 501, state fail)."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message, retryable=False, code=code)


class InvalidOutput(ProviderError):
    """The call succeeded but the answer is unusable (wrong count, bad JSON, blocked, truncated).

    Retryable because asking again, or asking another provider, often works.
    """

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message, retryable=True, code=code)


# --- Requests and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderConfig:
    """What an admin configured for one provider row; blank base_url means the adapter default."""

    base_url: str = ""
    api_key: str = ""
    model: str = ""
    timeout: float = 30.0
    options: Mapping[str, Any] = field(default_factory=dict)
    upload_base_url: str = ""  # kie.ai's separate upload host; blank: the adapter's default


@dataclass(frozen=True)
class ImageJobRequest:
    prompt: str
    image_urls: tuple[str, ...] = ()
    aspect_ratio: str | None = None  # "1:1", "16:9", ...; None = the model's default
    quality: str | None = None  # model-native level ("1K", "basic", ...); None = default
    callback_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # overrides the config options
    palette: tuple[str, ...] = ()  # "#rrggbb" brand colours from the references (a hint)


@dataclass(frozen=True)
class ImageJobSubmitted:
    task_id: str


JobState = Literal["pending", "success", "failed"]


@dataclass(frozen=True)
class ImageJobStatus:
    task_id: str
    state: JobState
    result_urls: tuple[str, ...] = ()
    error: str = ""
    error_code: str = ""


@dataclass(frozen=True)
class VariantsRequest:
    """Ask an LLM for `n` image-generation prompts built from a brief and reference notes."""

    prompt: str
    n: int
    references: tuple[str, ...] = ()
    products: tuple[str, ...] = ()  # what the product photos are, e.g. "PNG photo, 800×800"


@dataclass(frozen=True)
class ChatResult:
    variants: tuple[str, ...]
    model: str = ""


@dataclass(frozen=True)
class VisionResult:
    description: str
    palette: tuple[str, ...] = ()  # "#rrggbb", most dominant first


@dataclass(frozen=True)
class ConnectionTestResult:
    ok: bool
    latency_ms: int
    message: str


# --- Option validation --------------------------------------------------------------------------

OptionCheck = Callable[[Any], Any]


def choice(*allowed: str) -> OptionCheck:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return check


def int_range(low: int, high: int) -> OptionCheck:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value

    return check


def number_range(low: float, high: float) -> OptionCheck:
    def check(value: Any) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise ValueError(f"must be a number from {low:g} to {high:g}")
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http(s) URL")
    return value.rstrip("/")


# --- HTTP seam ----------------------------------------------------------------------------------


def loads(data: str | bytes) -> Any:
    """JSON from an untrusted source: ValueError for anything unparsable, including documents
    nested too deeply for the parser (which raises RecursionError) and bytes that are not UTF-8."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("The JSON is nested too deeply.") from None


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """Parsed body, or None when it is not JSON (gateways answer errors with HTML)."""
        try:
            return loads(self.body)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def provider_message(text: Any, fallback: str) -> str:
    """A provider's own error text for admins, so they can act on it: one line, printable
    characters only, shortened. (Templates escape it; it is never a raw echo of the body.)"""
    if not isinstance(text, str) or not text.strip():
        return fallback
    text = " ".join("".join(c for c in text if c.isprintable() or c.isspace()).split())
    if not text:
        return fallback
    return text if len(text) <= MAX_PROVIDER_MESSAGE else text[: MAX_PROVIDER_MESSAGE - 1] + "…"


# --- Adapters -----------------------------------------------------------------------------------

Kind = Literal["image", "llm", "vision"]


class Adapter:
    """Common machinery: options, timeouts and the single place HTTP happens."""

    slug: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[Kind]
    default_base_url: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    # The platform account (providers.platform) whose key catalogue models of this adapter use;
    # None for the offline local adapters, which need no key.
    vendor: ClassVar[str | None] = None
    options_spec: ClassVar[Mapping[str, OptionCheck]] = {}

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.options = self.validate_options(config.options)
        self.session = egress.session()  # every call goes through the egress policy

    @property
    def base_url(self) -> str:
        return (self.config.base_url or self.default_base_url).rstrip("/")

    @property
    def model(self) -> str:
        return self.config.model or self.default_model

    @classmethod
    def validate_options(cls, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """Clean admin-entered options; ValueError messages are shown in the admin form."""
        cleaned: dict[str, Any] = {}
        for key, value in (options or {}).items():
            check = cls.options_spec.get(key)
            if check is None:
                known = ", ".join(sorted(cls.options_spec)) or "none"
                raise ValueError(f"Unknown option '{key}' (allowed: {known}).")
            try:
                cleaned[key] = check(value)
            except ValueError as exc:
                raise ValueError(f"Option '{key}' {exc}.") from None
        return cleaned

    def test_connection(self) -> ConnectionTestResult:
        """A zero-cost call that proves the key and URL work; never raises provider errors."""
        started = time.monotonic()
        try:
            message = self._probe()
            ok = True
        except ProviderError as exc:
            message, ok = exc.message, False
        return ConnectionTestResult(ok, int((time.monotonic() - started) * 1000), message)

    def _probe(self) -> str:
        raise NotImplementedError

    def _send(
        self, method: str, url: str, *, timeout: float | None = None, **kwargs: Any
    ) -> HttpReply:
        """Every outgoing call. `timeout` bounds the whole call, body download included.

        requests' read timeout only bounds each socket read, so a server trickling bytes could hold
        an attempt forever; we stream the body and stop at the deadline instead.
        """
        budget = self.config.timeout if timeout is None else timeout
        if budget <= 0:
            raise RetryableError(f"{self.label} timed out.", code="timeout")
        deadline = time.monotonic() + budget
        headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
        try:
            response = self.session.request(
                method,
                url,
                headers=headers,
                timeout=(min(5.0, budget), budget),
                stream=True,
                allow_redirects=False,
                **kwargs,
            )
            try:
                body = _read_until(response, deadline)
            finally:
                response.close()  # after a full read urllib3 has already pooled the connection
        except egress.EgressRefused as exc:
            raise PermanentError(f"{self.label}: {exc}", code="egress") from None
        # Body reads go straight to urllib3, whose errors requests does not wrap.
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            raise RetryableError(f"{self.label} timed out.", code="timeout") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            reason = type(exc).__name__
            raise RetryableError(
                f"Could not reach {self.label} ({reason}).", code="network"
            ) from None
        if body is None:
            raise RetryableError(f"{self.label} timed out.", code="timeout")
        return HttpReply(response.status_code, response.headers, body)


def _read_until(response: requests.Response, deadline: float) -> bytes | None:
    """The body, or None when the deadline passes first."""
    chunks = []
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if sock is not None:
            sock.settimeout(remaining)  # no single read may outlive the deadline
        chunk = response.raw.read1(65536, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class ImageAdapter(Adapter):
    """Asynchronous image jobs: submit, then learn the outcome by poll or callback."""

    kind: ClassVar[Kind] = "image"
    aspect_ratios: ClassVar[tuple[str, ...]] = ()
    default_aspect_ratio: ClassVar[str] = "1:1"
    qualities: ClassVar[tuple[str, ...]] = ()
    default_quality: ClassVar[str | None] = None
    max_images: ClassVar[int] = 0

    def submit(
        self, request: ImageJobRequest, *, timeout: float | None = None
    ) -> ImageJobSubmitted:
        raise NotImplementedError

    def poll(self, task_id: str, *, timeout: float | None = None) -> ImageJobStatus:
        raise NotImplementedError

    def parse_callback(self, body: bytes) -> ImageJobStatus:
        raise NotImplementedError


class LLMAdapter(Adapter):
    kind: ClassVar[Kind] = "llm"

    def generate_variants(
        self, request: VariantsRequest, *, timeout: float | None = None
    ) -> ChatResult:
        raise NotImplementedError


class VisionAdapter(Adapter):
    kind: ClassVar[Kind] = "vision"

    def describe(self, image: bytes, *, timeout: float | None = None) -> VisionResult:
        raise NotImplementedError


# --- Shared prompt material for remote LLM and vision adapters ----------------------------------

VARIANTS_SYSTEM = (
    "You write prompts for an image-generation model that creates on-brand product imagery. "
    "Each prompt is a single self-contained paragraph describing subject, setting, composition, "
    "lighting and mood. Prompts must be clearly different from one another. "
    'Answer with JSON only: {"variants": ["...", "..."]}.'
)

VISION_INSTRUCTION = (
    "Describe this reference image for an art director in 3-5 sentences: subject, composition, "
    "lighting, mood, materials and style. Also list its dominant colours as hex codes, most "
    'dominant first. Answer with JSON only: {"description": "...", "palette": ["#rrggbb"]}.'
)


def variants_user_text(request: VariantsRequest) -> str:
    lines = [f"Write exactly {request.n} distinct prompts for this brief:", request.prompt.strip()]
    if request.references:
        lines.append("Match the look of these reference images:")
        lines += [f"- {text.strip()}" for text in request.references if text.strip()]
    if request.products:
        lines.append("The image model receives these product photos; keep the product exactly as")
        lines.append("photographed and describe the scene around it:")
        lines += [f"- {text.strip()}" for text in request.products if text.strip()]
    return "\n".join(lines)


def parse_json_text(text: Any) -> Any:
    """JSON from a model's text answer, tolerating a ```json fence around it."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidOutput("The model returned an empty answer.", code="empty")
    stripped = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, flags=re.DOTALL)
    try:
        return loads(fenced.group(1) if fenced else stripped)
    except ValueError:
        raise InvalidOutput("The model did not return valid JSON.", code="bad_json") from None


def parse_variants(text: Any, n: int) -> tuple[str, ...]:
    """Exactly `n` distinct, non-empty prompts, or InvalidOutput."""
    data = parse_json_text(text)
    items = data.get("variants") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidOutput("The model's JSON has no list of variants.", code="bad_shape")
    variants = tuple(v.strip() for v in items if isinstance(v, str) and v.strip())
    return check_variants(variants, n)


def check_variants(variants: tuple[str, ...] | list[str], n: int) -> tuple[str, ...]:
    variants = tuple(variants)
    if len(variants) != n or any(not isinstance(v, str) or not v.strip() for v in variants):
        raise InvalidOutput(
            f"Expected {n} non-empty prompt variants, got {len(variants)}.", code="wrong_count"
        )
    if len({v.strip().casefold() for v in variants}) != n:
        raise InvalidOutput("The model repeated a prompt variant.", code="duplicates")
    return variants


HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def parse_vision(text: Any) -> VisionResult:
    data = parse_json_text(text)
    description = data.get("description") if isinstance(data, dict) else None
    if not isinstance(description, str) or not description.strip():
        raise InvalidOutput("The model returned no image description.", code="bad_shape")
    palette = data.get("palette") or []
    colours = tuple(
        c.strip().lower() for c in palette if isinstance(c, str) and HEX_COLOUR.match(c.strip())
    )
    return VisionResult(description.strip(), colours)


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


def image_mime_type(data: bytes) -> str:
    """Sniff the few formats the providers accept; anything else is sent as PNG-labelled bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "image/png"
