"""The base classes of every adapter: one per kind (image, LLM, vision) over common machinery.

An adapter is built from a `ProviderConfig` and makes its calls through `_send`, the one HTTP seam
(http.py). Requests and results are in types.py, errors in errors.py, options forms in options.py.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lib import egress

from . import http
from .answers import gather_variants
from .errors import PermanentError, ProviderError
from .options import AdapterOptions, clean_options
from .types import (
    ChatResult,
    ConnectionTestResult,
    ImageJobRequest,
    ImageJobStatus,
    ImageJobSubmitted,
    Kind,
    ProviderConfig,
    VariantsRequest,
    VisionResult,
)

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,119}")


@dataclass(frozen=True)
class DeepTestRequest:
    """What a deep test (Adapter.deep_test) sends: one real call, as small as a model allows."""

    tokens: int = 5
    prompt: str = "Reply with the single word OK."
    vision_prompt: str = "What colour is this image? Answer with one word."
    # A 1×1 red PNG: the smallest image a vision deep test can send.
    image_base64: str = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mO4IycHAALyARlNud"
        "hnAAAAAElFTkSuQmCC"
    )

    @property
    def image(self) -> bytes:
        return base64.b64decode(self.image_base64)


DEEP_TEST = DeepTestRequest()


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
    # What an admin may set for this adapter; the admin shows the form's fields.
    options_form: ClassVar[type[AdapterOptions]] = AdapterOptions
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
        """Options cleaned by the adapter's options form; ValueError messages are shown in the
        admin form."""
        return clean_options(cls.options_form, options)

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

    def _model_listed(self, listed: bool) -> str:
        """The connection test's verdict once the endpoint accepted the key and sent its models."""
        if not listed:
            raise PermanentError(
                f"Key accepted by {self.base_url}, but model '{self.model}' is not in its list.",
                code="model_not_listed",
            )
        return f"Key accepted by {self.base_url}; model '{self.model}' listed."

    def _deep_report(self, *, what: str, answer: str, cut_off: bool, reported: str) -> str:
        """What a deep test proved, in words: the model answered (or ran but gave no text,
        having spent its few tokens thinking), the model the endpoint says it ran, the cost."""
        if answer:
            outcome = f"answered {what}: '{answer}'"
        elif cut_off:
            outcome = f"ran {what} but spent all {DEEP_TEST.tokens} tokens thinking"
        else:
            outcome = f"ran {what} but answered with no text"
        reported = f" (the endpoint reports model '{reported}')" if reported else ""
        return f"Model '{self.model}' at {self.base_url} {outcome}{reported}. {self.deep_test_cost}"

    def _send(
        self, method: str, url: str, *, timeout: float | None = None, **kwargs: Any
    ) -> http.HttpReply:
        """Every outgoing call, within `timeout` (default: the configured one) as a whole."""
        budget = self.config.timeout if timeout is None else timeout
        return http.send(self.session, method, url, label=self.label, timeout=budget, **kwargs)


class ImageAdapter(Adapter):
    """Asynchronous image jobs: submit, then learn the outcome by poll or callback."""

    kind: ClassVar[Kind] = Kind.IMAGE
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
    kind: ClassVar[Kind] = Kind.LLM

    def generate_variants(
        self, request: VariantsRequest, *, timeout: float | None = None
    ) -> ChatResult:
        """The request's prompt variants, asked for with `_ask` (once more for missing ones)."""
        budget = self.config.timeout if timeout is None else timeout
        return gather_variants(request, self._ask, timeout=budget, model=self.model)

    def _ask(self, user_text: str, n: int, timeout: float) -> str:
        """One request for `n` variants; the model's answer text."""
        raise NotImplementedError


class VisionAdapter(Adapter):
    kind: ClassVar[Kind] = Kind.VISION

    def describe(self, image: bytes, *, timeout: float | None = None) -> VisionResult:
        raise NotImplementedError
