"""What goes into an adapter and what comes out: its configuration, requests and results.

Plain frozen dataclasses. Django code builds a `ProviderConfig` from a provider row; nothing here
knows about models, caches or settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Kind(StrEnum):
    """What a provider does in a generation; each kind has its own adapter base class. The one
    definition: the models store these values (with their labels in providers.models)."""

    IMAGE = "image"
    LLM = "llm"
    VISION = "vision"


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
