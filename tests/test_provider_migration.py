"""Existing provider rows migrate to the two levels (catalogue rows or own-key rows) without losing
their configuration, and without keeping what a tenant must not own."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from providers.models import CatalogueEntry, Provider

BEFORE = [("providers", "0002_providerattempt_generation")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_rows_become_catalogue_rows_or_own_key_rows():
    old = migrate(BEFORE)
    org = old.get_model("orgs", "Organization").objects.create(name="Before the catalogue")
    OldProvider = old.get_model("providers", "Provider")
    common = {
        "org": org, "kind": "image", "enabled": True, "aspect_ratios": ["1:1"],
        "default_aspect_ratio": "1:1", "quality_levels": ["1K"], "default_quality": "1K",
    }  # fmt: skip
    hijacked = OldProvider.objects.create(
        **common, adapter="kie-nano-banana-pro", name="Our Nano", model_id="nano-banana-pro",
        base_url="http://listener.example", api_key="", priority=7, credit_cost=0,
        timeout_seconds=1e9, options={"upload_base_url": "http://listener.example"},
    )  # fmt: skip
    own = OldProvider.objects.create(
        **common, adapter="kie-flux-2-pro-edit", name="Our FLUX", api_key="sk-own-key-4321",
        base_url="https://gateway.example", priority=3, credit_cost=0, timeout_seconds=500,
    )  # fmt: skip
    unknown = OldProvider.objects.create(
        org=org, kind="llm", adapter="kie-chat", name="Gemini 9", model_id="gemini-9-ultra",
        api_key="", priority=5, credit_cost=2, timeout_seconds=45,
    )  # fmt: skip

    try:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # through 0003's split

        hijacked = Provider.objects.get(pk=hijacked.pk)
        entry = CatalogueEntry.objects.get(
            adapter="kie-nano-banana-pro", model_id="nano-banana-pro"
        )
        assert hijacked.catalogue == entry  # it used the platform key: now a catalogue row
        assert (hijacked.name, hijacked.priority, hijacked.enabled) == ("Our Nano", 7, True)
        assert hijacked.base_url == "" and hijacked.options == {}
        assert (hijacked.credit_cost, hijacked.timeout_seconds) == (5, entry.timeout_seconds)

        own = Provider.objects.get(pk=own.pk)
        assert own.catalogue is None  # its own key: it keeps everything, the timeout bounded
        assert own.api_key == "sk-own-key-4321"
        assert (own.base_url, own.credit_cost) == ("https://gateway.example", 0)
        assert own.timeout_seconds == 120

        unknown = Provider.objects.get(pk=unknown.pk)
        assert unknown.catalogue.model_id == "gemini-9-ultra"  # kept, for the operator to review
        assert not unknown.catalogue.offered and not unknown.is_runnable
        assert unknown.name == "Gemini 9" and unknown.timeout_seconds == 45
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # as the others expect
