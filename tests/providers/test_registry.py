"""The adapter registry, and the promise that this layer stays framework-free."""

import subprocess
import sys
from pathlib import Path

import pytest

from providers.adapters.base import Adapter, ProviderConfig
from providers.adapters.registry import (
    ADAPTERS,
    adapters_for_kind,
    build_adapter,
    get_adapter_class,
)

REPO = Path(__file__).resolve().parents[2]


def test_it_groups_adapters_by_kind():
    assert set(adapters_for_kind("image")) == {
        "kie-nano-banana-pro",
        "kie-nano-banana-2",
        "kie-seedream-4.5-edit",
        "kie-seedream-v4-edit",
        "kie-flux-2-pro-edit",
        "local-image",
    }
    assert set(adapters_for_kind("llm")) == {"kie-chat", "openai-chat", "gemini-chat", "local-llm"}
    assert set(adapters_for_kind("vision")) == {"openai-vision", "gemini-vision", "local-vision"}
    assert sum(len(adapters_for_kind(k)) for k in ("image", "llm", "vision")) == len(ADAPTERS)


def test_it_covers_the_kie_models_the_issue_names():
    models = {cls.default_model for cls in adapters_for_kind("image").values()}

    assert {
        "nano-banana-pro",
        "nano-banana-2",
        "seedream/4.5-edit",
        "bytedance/seedream-v4-edit",
        "flux-2/pro-image-to-image",
    } <= models


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


def test_the_adapter_layer_does_not_import_django():
    code = (
        "import sys, providers.adapters.registry, providers.chain; "
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'django'); "
        "print(leaked); sys.exit(1 if leaked else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
