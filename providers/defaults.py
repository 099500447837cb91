"""The providers a new organization starts with (issue: sensible defaults, admin-editable)."""

from django.conf import settings
from django.db import transaction

from providers.models import Provider

# (adapter, display name, model id, priority, credit cost, platform key that enables it)
KIE = "NERSTUDIO_KIE_API_KEY"
IMAGE = [
    ("kie-seedream-4.5-edit", "Seedream 4.5 Edit", "seedream/4.5-edit", 10, 3, KIE),
    ("kie-nano-banana-pro", "Nano Banana Pro", "nano-banana-pro", 20, 5, KIE),
    ("kie-flux-2-pro-edit", "FLUX.2 Pro", "flux-2/pro-image-to-image", 30, 4, KIE),
]
LLM = [
    ("kie-chat", "Gemini 3 Pro (kie.ai)", "gemini-3-pro", 10, "NERSTUDIO_KIE_API_KEY"),
    ("kie-chat", "Gemini 2.5 Pro (kie.ai)", "gemini-2.5-pro", 20, "NERSTUDIO_KIE_API_KEY"),
    ("gemini-chat", "Gemini 2.5 Pro (Google)", "gemini-2.5-pro", 30, "NERSTUDIO_GEMINI_API_KEY"),
]
VISION = [
    ("openai-vision", "GPT-4o vision (OpenAI)", "gpt-4o", 10, "NERSTUDIO_OPENAI_API_KEY"),
]
LOCAL = {
    "image": ("local-image", "Local renderer (offline)"),
    "llm": ("local-llm", "Local prompt writer (offline)"),
    "vision": ("local-vision", "Local image analysis (offline)"),
}


@transaction.atomic
def install_default_providers(org) -> list[Provider]:
    """Real providers are enabled where a platform key exists; for a kind with none enabled the
    offline local provider is active, so a fresh install works without any key."""
    keys = settings.NERSTUDIO_PLATFORM_KEYS
    rows: list[Provider] = []
    for adapter, name, model, priority, cost, key in IMAGE:
        rows.append(
            _row(org, adapter, name, model, priority, bool(keys.get(key)), credit_cost=cost)
        )
    for adapter, name, model, priority, key in LLM:
        rows.append(_row(org, adapter, name, model, priority, bool(keys.get(key))))
    for adapter, name, model, priority, key in VISION:
        rows.append(_row(org, adapter, name, model, priority, bool(keys.get(key))))
    for kind, (adapter, name) in LOCAL.items():
        real_enabled = any(r.enabled and r.adapter_class.kind == kind for r in rows)
        rows.append(_row(org, adapter, name, "", 90, not real_enabled, credit_cost=1))
    default = next(r for r in rows if r.adapter_class.kind == "image" and r.enabled)
    default.is_default = True
    for row in rows:
        row.full_clean(exclude=["org"])
        row.save()
    return rows


def _row(org, adapter, name, model, priority, enabled, **extra) -> Provider:
    return Provider(
        org=org, adapter=adapter, name=name, model_id=model, priority=priority, enabled=enabled,
        **extra,
    )  # fmt: skip
