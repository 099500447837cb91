"""Every adapter the admin can choose, by slug. Adding a provider means adding its class here."""

from __future__ import annotations

from .base import Adapter, Kind, ProviderConfig
from .gemini import GeminiLLMAdapter, GeminiVisionAdapter
from .kie import (
    Flux2EditAdapter,
    KieChatAdapter,
    NanoBanana2Adapter,
    NanoBananaEditAdapter,
    NanoBananaProAdapter,
    Seedream45EditAdapter,
    SeedreamV4EditAdapter,
)
from .local import LocalImageAdapter, LocalLLMAdapter, LocalVisionAdapter
from .openai import OpenAILLMAdapter, OpenAIVisionAdapter

_CLASSES: tuple[type[Adapter], ...] = (
    # image
    Seedream45EditAdapter,
    NanoBananaProAdapter,
    NanoBanana2Adapter,
    NanoBananaEditAdapter,
    SeedreamV4EditAdapter,
    Flux2EditAdapter,
    LocalImageAdapter,
    # llm
    KieChatAdapter,
    OpenAILLMAdapter,
    GeminiLLMAdapter,
    LocalLLMAdapter,
    # vision
    OpenAIVisionAdapter,
    GeminiVisionAdapter,
    LocalVisionAdapter,
)

ADAPTERS: dict[str, type[Adapter]] = {cls.slug: cls for cls in _CLASSES}
if len(ADAPTERS) != len(_CLASSES):
    raise RuntimeError("Two provider adapters share a slug.")

KINDS: tuple[Kind, ...] = ("image", "llm", "vision")


def get_adapter_class(slug: str) -> type[Adapter]:
    try:
        return ADAPTERS[slug]
    except KeyError:
        raise LookupError(f"Unknown provider adapter '{slug}'.") from None


def adapters_for_kind(kind: Kind) -> dict[str, type[Adapter]]:
    """Slug -> class for one kind, in registry order (also the order of admin choices)."""
    if kind not in KINDS:
        raise LookupError(f"Unknown provider kind '{kind}'.")
    return {slug: cls for slug, cls in ADAPTERS.items() if cls.kind == kind}


def build_adapter(slug: str, config: ProviderConfig) -> Adapter:
    return get_adapter_class(slug)(config)
