"""The platform's starting catalogue, and the providers a new organization starts with."""

from django.db import transaction

from providers.models import CatalogueEntry, Provider
from providers.registry import get_adapter_class

# (adapter, name, model id, priority, credits per image). The operator edits prices and adds
# models in the admin (superusers only); this is only what a fresh platform offers.
CATALOGUE = [
    ("kie-seedream-4.5-edit", "Seedream 4.5 Edit", "seedream/4.5-edit", 10, 3),
    ("kie-nano-banana-pro", "Nano Banana Pro", "nano-banana-pro", 20, 5),
    ("kie-flux-2-pro-edit", "FLUX.2 Pro", "flux-2/pro-image-to-image", 30, 4),
    ("kie-flux-2-pro-edit", "FLUX.2 Flex", "flux-2/flex-image-to-image", 35, 6),
    ("kie-nano-banana-edit", "Nano Banana Edit", "google/nano-banana-edit", 40, 2),
    ("local-image", "Local renderer (offline)", "", 90, 1),
    ("kie-chat", "Gemini 3 Pro (kie.ai)", "gemini-3-pro", 10, 1),
    ("kie-chat", "Gemini 2.5 Pro (kie.ai)", "gemini-2.5-pro", 20, 1),
    ("gemini-chat", "Gemini 2.5 Pro (Google)", "gemini-2.5-pro", 30, 1),
    ("local-llm", "Local prompt writer (offline)", "", 90, 1),
    ("openai-vision", "GPT-4o vision (OpenAI)", "gpt-4o", 10, 1),
    ("local-vision", "Local image analysis (offline)", "", 90, 1),
]


def catalogue_settings(adapter: str) -> dict:
    """What the adapter supports, as a catalogue entry's image settings."""
    cls = get_adapter_class(adapter)
    if cls.kind != "image":
        return {"kind": cls.kind}
    return {
        "kind": cls.kind,
        "aspect_ratios": list(cls.aspect_ratios),
        "default_aspect_ratio": cls.default_aspect_ratio,
        "quality_levels": list(cls.qualities),
        "default_quality": cls.default_quality or "",
        "max_product_images": min(4, cls.max_images) if cls.max_images else 4,
    }


def install_catalogue(entry_model=CatalogueEntry) -> None:
    """Create the starting catalogue (a data migration runs this with its historical model)."""
    for adapter, name, model, priority, cost in CATALOGUE:
        entry_model.objects.get_or_create(
            adapter=adapter,
            model_id=model,
            defaults={
                "name": name,
                "priority": priority,
                "credit_cost": cost,
                **catalogue_settings(adapter),
            },
        )


@transaction.atomic
def install_default_providers(org) -> list[Provider]:
    """One row per offered catalogue model. Those that can run (the platform has their key) are
    enabled; for a kind with none of those the offline local provider is, so a fresh install
    works without any key. A platform whose catalogue is still empty gets the starting one."""
    if not CatalogueEntry.objects.exists():
        install_catalogue()
    entries = list(CatalogueEntry.objects.filter(offered=True))
    rows = [
        Provider(org=org, catalogue=entry, name=entry.name, priority=entry.priority)
        for entry in entries
    ]
    for row in rows:
        row.apply_catalogue()
        local = row.adapter_class.vendor is None
        row.enabled = not local and row.is_runnable
    for row in rows:
        if row.adapter_class.vendor is None:
            row.enabled = not any(r.enabled and r.kind == row.kind for r in rows if r is not row)
    default = next((r for r in rows if r.kind == "image" and r.enabled), None)
    if default is not None:
        default.is_default = True
    for row in rows:
        row.save()
    return rows
