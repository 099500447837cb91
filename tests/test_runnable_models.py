"""Only models that can run are offered: a model without a usable key, withdrawn by the platform or
kept to admins never reaches a member's Generate page, and admins see why."""

import pytest
from django.test import Client
from django.urls import reverse

from credits import services as credits
from generation.pipeline import start as services
from providers.models import Provider
from providers.org_registry import clear_registry, providers_for
from tests.factories import OwnKeyProviderFactory
from tests.images import validated

pytestmark = pytest.mark.django_db

GENERATE = reverse("generation:generate")


@pytest.fixture(autouse=True)
def _fresh_registry():
    clear_registry()


def enabled(org, adapter) -> Provider:
    row = org.providers.filter(adapter=adapter).first()
    row.enabled = True
    row.save()
    return row


def model_choices(client) -> str:
    return client.get(GENERATE).context["form"].fields["model"].choices


def test_a_platform_model_without_the_platform_key_is_not_offered(member_client, org):
    nano = enabled(org, "kie-nano-banana-pro")  # enabled, but the platform has no kie.ai key

    choices = dict(model_choices(member_client))

    assert str(nano.public_id) not in choices
    assert nano.unavailable_reason() == "The platform has no kie.ai key configured yet."


def test_it_is_offered_once_the_platform_has_the_key(member_client, org, platform_keys):
    nano = enabled(org, "kie-nano-banana-pro")
    platform_keys(kie="kie-platform-key")

    assert str(nano.public_id) in dict(model_choices(member_client))


def test_a_model_that_cannot_run_is_refused_even_when_posted(member_membership, org):
    nano = enabled(org, "kie-nano-banana-pro")
    credits.top_up(org=org, amount=100)

    with pytest.raises(services.GenerationError, match="enabled image models"):
        services.start_generation(
            membership=member_membership,
            provider=nano,
            prompt="A mug",
            count=1,
            aspect_ratio="1:1",
            quality="1K",
            products=[validated()],
            references=[],
        )


def test_an_own_key_row_whose_key_was_removed_is_not_offered(member_client, org):
    own = OwnKeyProviderFactory(org=org, name="Our Nano Banana")
    Provider.objects.filter(pk=own.pk).update(api_key="")

    assert str(own.public_id) not in dict(model_choices(member_client))
    assert own.__class__.objects.get(pk=own.pk).unavailable_reason().startswith("No API key")


def test_a_model_the_platform_withdrew_is_no_longer_offered(member_client, org):
    local = org.providers.get(adapter="local-image")
    local.catalogue.offered = False
    local.catalogue.save()

    assert str(local.public_id) not in dict(model_choices(member_client))


def test_a_model_kept_from_members_is_offered_to_admins_only(admin, member_client, org):
    own = OwnKeyProviderFactory(org=org, name="Trial model", visible_to_members=False)
    admin_client = Client()
    admin_client.force_login(admin)

    assert str(own.public_id) in dict(model_choices(admin_client))
    assert str(own.public_id) not in dict(model_choices(member_client))


def test_admins_see_why_a_model_is_unavailable(admin_client, org):
    enabled(org, "kie-nano-banana-pro")

    body = admin_client.get(reverse("providers:index")).content.decode()

    assert "unavailable" in body
    assert "The platform has no kie.ai key configured yet." in body


def test_an_unavailable_model_is_never_tried_in_the_prompt_chain(org):
    enabled(org, "kie-chat")  # no platform key: the chain must skip straight to the local writer

    chain = providers_for(org.pk).llm

    assert [p.adapter for p in chain] == ["local-llm"]
