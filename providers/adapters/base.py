"""Provider-neutral types, errors and the one HTTP seam every adapter goes through.

Framework-free on purpose: Django code builds a `ProviderConfig` from a database row and hands it to
an adapter class; nothing here knows about models, caches or settings.
"""

from __future__ import annotations

import base64
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
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,119}")
# Deep tests (Adapter.deep_test): one real call, as small as a model allows.
DEEP_TEST_TOKENS = 5
DEEP_TEST_PROMPT = "Reply with the single word OK."
DEEP_TEST_VISION_PROMPT = "What colour is this image? Answer with one word."
# A 1×1 red PNG: the smallest image a vision deep test can send.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mO4IycHAALyARlNudhnAAAAAElFTkSuQmCC"
)

# --- Errors -------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call failed. `message` is for admins (the provider's own text, shortened); the
    HTTP `status` and the provider's `request_id`, when known, help them act on it. Members get a
    short reason chosen by the pipeline, never this text. `retryable` drives retries."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str | int | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = None if code is None else str(code)
        self.retry_after = retry_after
        self.status = status
        self.request_id = request_id


class PermanentError(ProviderError):
    """Retrying the same call will not help (bad key, no credits, invalid request)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=False, **details)


class RetryableError(ProviderError):
    """Transient: network trouble, timeouts, rate limits, provider overload."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=True, **details)


class GenerationFailed(ProviderError):
    """The provider accepted the job but could not produce a result (kie code 501, state fail)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=False, **details)


class InvalidOutput(ProviderError):
    """The call succeeded but the answer is unusable (wrong count, bad JSON, blocked, truncated).

    Retryable because asking again, or asking another provider, often works.
    """

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, retryable=True, **details)


REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "cf-ray")


def reply_details(reply: HttpReply) -> dict[str, Any]:
    """The HTTP status and the provider's request id of a reply, for an error's details."""
    lowered = {k.lower(): v for k, v in reply.headers.items()}
    request_id = next((lowered[h] for h in REQUEST_ID_HEADERS if lowered.get(h)), "")
    return {"status": reply.status, "request_id": str(request_id)[:200]}


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
    # How many of the variants, at the end, are deterministic variations of the others rather
    # than the model's own (it answered short even after a follow-up); 0 when all are its own.
    varied: int = 0


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
    # The model ids whose request fields this adapter knows (kie's Market models each take their
    # own fields). Empty: any well-formed id, for endpoints that take the id as a plain value.
    supported_models: ClassVar[tuple[str, ...]] = ()
    # What `deep_test` calls and what that costs, for the admin to read before running it.
    deep_test_cost: ClassVar[str] = "Free: the same calls as the connection test."

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

    @classmethod
    def validate_model(cls, model_id: str) -> None:
        """Refuse a model id this adapter cannot send; ValueError messages are shown in the admin
        form. Blank is fine: it means the adapter's default."""
        if not model_id:
            return
        if cls.supported_models:
            if model_id not in cls.supported_models:
                raise ValueError(
                    f"{cls.label} supports the model ids {', '.join(cls.supported_models)}; "
                    "another model takes other request fields."
                )
        elif not MODEL_ID.fullmatch(model_id):
            raise ValueError(
                "A model id is letters, digits and . _ - : / @ + without spaces, starting with a "
                "letter or digit."
            )

    def test_connection(self) -> ConnectionTestResult:
        """Free calls to every host a generation uses; the message says what they proved (a
        gateway may answer a model list itself). Never raises provider errors."""
        return self._timed(self._probe)

    def deep_test(self) -> ConnectionTestResult:
        """One minimal real call, as `deep_test_cost` describes; never raises provider errors."""
        return self._timed(self._deep_probe)

    def _timed(self, probe: Callable[[], str]) -> ConnectionTestResult:
        started = time.monotonic()
        try:
            message = probe()
            ok = True
        except ProviderError as exc:
            message, ok = exc.message, False
        return ConnectionTestResult(ok, int((time.monotonic() - started) * 1000), message)

    def _probe(self) -> str:
        raise NotImplementedError

    def _deep_probe(self) -> str:
        return self._probe()

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


# --- Shared helpers for remote LLM and vision adapters ------------------------------------------
# What we ask models for and how we read their answers is in answers.py.


def image_mime_type(data: bytes) -> str:
    """Sniff the few formats the providers accept; anything else is sent as PNG-labelled bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "image/png"
