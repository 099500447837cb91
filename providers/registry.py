"""Every provider class an admin can choose, by slug: the remote adapters (providers/adapters/)
and the offline providers (providers/local/). Adding a provider means adding its class here."""

from __future__ import annotations

from providers.adapters.base import Adapter
from providers.adapters.gemini import GeminiLLMAdapter, GeminiVisionAdapter
from providers.adapters.kie import (
    Flux2EditAdapter,
    KieChatAdapter,
    NanoBanana2Adapter,
    NanoBananaEditAdapter,
    NanoBananaProAdapter,
    Seedream45EditAdapter,
    SeedreamV4EditAdapter,
)
from providers.adapters.openai import OpenAILLMAdapter, OpenAIVisionAdapter
from providers.adapters.types import Kind, ProviderConfig
from providers.local.image import LocalImageAdapter
from providers.local.llm import LocalLLMAdapter
from providers.local.vision import LocalVisionAdapter

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


def get_adapter_class(slug: str) -> type[Adapter]:
    try:
        return ADAPTERS[slug]
    except KeyError:
        raise LookupError(f"Unknown provider adapter '{slug}'.") from None


def adapters_for_kind(kind: Kind | str) -> dict[str, type[Adapter]]:
    """Slug -> class for one kind, in registry order (also the order of admin choices)."""
    if kind not in Kind:
        raise LookupError(f"Unknown provider kind '{kind}'.")
    return {slug: cls for slug, cls in ADAPTERS.items() if cls.kind == kind}


def build_adapter(slug: str, config: ProviderConfig) -> Adapter:
    return get_adapter_class(slug)(config)
