"""The adapter registry, and the promise that the adapter layer stays framework-light."""

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from providers.adapters.base import Adapter
from providers.adapters.types import ProviderConfig
from providers.defaults import CATALOGUE, catalogue_settings
from providers.local.image import LocalImageAdapter
from providers.models import CatalogueEntry
from providers.registry import ADAPTERS, adapters_for_kind, build_adapter, get_adapter_class

REPO = Path(__file__).resolve().parents[2]


def test_it_groups_adapters_by_kind():
    assert set(adapters_for_kind("image")) == {
        "kie-nano-banana-pro",
        "kie-nano-banana-2",
        "kie-nano-banana-edit",
        "kie-seedream-4.5-edit",
        "kie-seedream-v4-edit",
        "kie-flux-2-pro-edit",
        "local-image",
    }
    assert set(adapters_for_kind("llm")) == {"kie-chat", "openai-chat", "gemini-chat", "local-llm"}
    assert set(adapters_for_kind("vision")) == {"openai-vision", "gemini-vision", "local-vision"}
    assert sum(len(adapters_for_kind(k)) for k in ("image", "llm", "vision")) == len(ADAPTERS)


def test_it_covers_the_kie_models_the_issue_names():
    models = {m for cls in adapters_for_kind("image").values() for m in cls.supported_models}

    assert {
        "nano-banana-pro",
        "nano-banana-2",
        "google/nano-banana-edit",
        "seedream/4.5-edit",
        "bytedance/seedream-v4-edit",
        "flux-2/pro-image-to-image",
        "flux-2/flex-image-to-image",
    } <= models


def test_every_kie_image_model_id_belongs_to_exactly_one_adapter():
    """Field names depend on the model, so one id must never be sendable by two adapters."""
    kie = [cls for cls in adapters_for_kind("image").values() if cls.vendor == "kie"]
    ids = [m for cls in kie for m in cls.supported_models]

    assert all(cls.supported_models for cls in kie)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "slug", ["openai-chat", "openai-vision", "gemini-chat", "gemini-vision", "kie-chat"]
)
def test_llm_and_vision_adapters_take_any_well_formed_model_id(slug):
    cls = get_adapter_class(slug)
    for model in ("gpt-4.1-mini", "gemini-3-pro", "gemini-2.5-pro", ""):  # blank: the default
        cls.validate_model(model)
    if slug.startswith("openai-"):  # fine-tuned models, and gateways' vendor/model ids
        cls.validate_model("ft:gpt-4o-mini-2024-07-18:acme::abc123")
        cls.validate_model("openai/gpt-4o")

    for bad in ("gpt 4o", "-rm", "x" * 121, "gpt-4o\n"):
        with pytest.raises(ValueError, match="model id"):
            cls.validate_model(bad)


@pytest.mark.django_db
@pytest.mark.parametrize(("adapter", "name", "model", "priority", "cost"), CATALOGUE)
def test_every_starting_catalogue_entry_passes_the_operators_validation(
    adapter, name, model, priority, cost
):
    """Including the model id check, and a model without quality levels (Nano Banana Edit)."""
    entry = CatalogueEntry(
        adapter=adapter,
        name=name,
        model_id=model,
        priority=priority,
        credit_cost=cost,
        **catalogue_settings(adapter),
    )

    entry.full_clean()


def test_the_starting_catalogue_offers_flux_2_flex_and_nano_banana_edit():
    offered = {(adapter, model): cost for adapter, _, model, _, cost in CATALOGUE}

    assert offered[("kie-flux-2-pro-edit", "flux-2/flex-image-to-image")] == 6
    assert offered[("kie-nano-banana-edit", "google/nano-banana-edit")] == 2


def test_it_looks_adapters_up_by_slug():
    assert get_adapter_class("openai-vision").label == "OpenAI vision"
    with pytest.raises(LookupError, match="Unknown provider adapter 'nope'"):
        get_adapter_class("nope")
    with pytest.raises(LookupError):
        adapters_for_kind("video")


@pytest.mark.parametrize("slug", sorted(ADAPTERS))
def test_every_adapter_builds_from_a_blank_config_and_describes_itself(slug):
    adapter = build_adapter(slug, ProviderConfig())

    assert isinstance(adapter, Adapter)
    assert adapter.slug == slug
    assert adapter.label
    assert adapter.kind in ("image", "llm", "vision")
    assert adapter.model
    remote = not slug.startswith("local-")
    assert bool(adapter.base_url) is remote
    assert (adapter.vendor in ("kie", "openai", "gemini")) is remote


def test_a_configured_base_url_replaces_the_default():
    adapter = build_adapter("openai-chat", ProviderConfig(base_url="http://llm.internal:8080/v1/"))

    assert adapter.base_url == "http://llm.internal:8080/v1"


def test_bad_options_fail_when_the_adapter_is_built():
    with pytest.raises(ValueError, match="Unknown option 'colour'"):
        build_adapter("local-llm", ProviderConfig(options={"colour": "red"}))


# Framework-free: they run on their inputs alone. (The local image provider, with its storage and
# background task, and the registry that lists it are Django-aware by design.)
FRAMEWORK_FREE = [
    *(f"providers.adapters.{m.name}" for m in pkgutil.iter_modules([REPO / "providers/adapters"])),
    "providers.chain",
    "providers.local.llm",
    "providers.local.render",
    "providers.local.vision",
]
CHECK_IMPORTS = """
import importlib, json, sys
from pathlib import Path

for name in sys.argv[2:]:
    importlib.import_module(name)
from django.apps import apps
from django.conf import settings

repo = Path(sys.argv[1])
ours = sorted(
    name
    for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None)
    and Path(module.__file__).is_relative_to(repo)
    and not Path(module.__file__).is_relative_to(repo / ".venv")
)
print(json.dumps({"settings": settings.configured, "apps": apps.apps_ready, "modules": ours}))
"""


def test_the_adapter_layer_needs_no_settings_and_no_other_app():
    """Importing the adapters, the chain and the offline LLM, vision and renderer reads no
    settings, loads no app (so no models) and no project module beyond them and lib.egress. Of
    Django they use the forms, for their options forms."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS, str(REPO), *FRAMEWORK_FREE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert (loaded["settings"], loaded["apps"]) == (False, False)
    packages = {"providers", "providers.adapters", "providers.local", "lib"}
    assert set(loaded["modules"]) - packages == {*FRAMEWORK_FREE, "lib.egress"}


def test_the_registry_lists_the_local_image_provider_as_it_runs():
    """The provider that queues a render task and publishes from storage (test_local.py), not a
    stand-in that start-up code swaps for it."""
    assert get_adapter_class("local-image") is LocalImageAdapter
