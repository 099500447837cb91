"""A generation that costs nothing (an own-key image model priced at 0 credits) runs only the
organization's own-key prompt writers and vision models: the platform's catalogue ones run on the
platform's keys, for generations that pay. Without an own-key writer the prompts are built-in
variations of the member's; a reference no own-key vision model describes is used without its
description (unless an earlier, paid run described it)."""

import json

import pytest
import responses

from credits import services as credits
from generation.models import Generation
from generation.pipeline import prompts, start
from library.models import ReferenceAnalysis
from tests.factories import OwnKeyProviderFactory
from tests.images import validated

from .conftest import json_completion

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("provider_pipeline")]

OPENAI_CHAT = "https://api.openai.com/v1/chat/completions"
KIE_CHAT = "https://api.kie.ai/gemini-3-pro/v1/chat/completions"
REFERENCE = validated("#e67e22", (100, 100))
DESCRIPTION = {"description": "Warm terracotta tones.", "palette": ["#d35400"]}
VARIANTS = {"variants": ["Mug on linen", "Mug by a window", "Mug on slate"]}


def keys_used(mock) -> list[str]:
    return [c.request.headers.get("Authorization", "") for c in mock.calls]


@pytest.fixture
def tenant(admin_membership, platform_keys):
    """A new tenant (no credits) with the platform's prompt writer and vision model enabled."""
    platform_keys(kie="PLATFORM-KIE-KEY", openai="PLATFORM-OPENAI-KEY")
    org = admin_membership.org
    for name in ("Gemini 3 Pro (kie.ai)", "GPT-4o vision (OpenAI)"):
        row = org.providers.get(name=name)
        row.enabled = True
        row.save()
    return org


def generate(membership, *, credit_cost: int) -> Generation:
    """Start and write the prompts of a generation on an own-key image model at that price."""
    if credit_cost:
        credits.top_up(org=membership.org, amount=100)
    model = OwnKeyProviderFactory(
        org=membership.org, credit_cost=credit_cost, api_key="tenant-own-kie-key"
    )
    generation = start.start_generation(
        membership=membership,
        provider=model,
        prompt="A ceramic mug",
        count=3,
        aspect_ratio="1:1",
        quality="1K",
        products=[validated()],
        references=[REFERENCE],
    )
    prompts.write_prompts(generation.pk)
    generation.refresh_from_db()
    return generation


def platform_answers(mock):
    mock.post(OPENAI_CHAT, json=json_completion(DESCRIPTION))
    mock.post(KIE_CHAT, json=json_completion(VARIANTS))


def test_a_free_generation_runs_nothing_on_the_platforms_keys(admin_membership, tenant):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        platform_answers(mock)
        generation = generate(admin_membership, credit_cost=0)
        keys = keys_used(mock)

    assert keys == []  # neither GPT-4o vision nor Gemini on the platform's keys
    assert generation.prompt_writer == prompts.BUILT_IN_WRITER
    assert len(set(generation.images.values_list("prompt", flat=True))) == 3
    assert generation.reference_notes == []
    notices = " ".join(generation.notices)
    assert "free image models use only your organization's own prompt writers" in notices
    assert "free image models use only your organization's own vision models" in notices
    assert credits.balance_of(tenant) == 0


def test_a_free_generation_uses_the_organizations_own_key_writer_and_vision_model(
    admin_membership, tenant
):
    OwnKeyProviderFactory(
        org=tenant, adapter="openai-chat", model_id="gpt-4.1-mini", api_key="T-LLM"
    )
    OwnKeyProviderFactory(
        org=tenant, adapter="openai-vision", model_id="gpt-4o", api_key="T-VISION"
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(
            responses.POST,
            OPENAI_CHAT,
            callback=lambda request: (
                200,
                {},
                json.dumps(
                    json_completion(
                        DESCRIPTION if "T-VISION" in request.headers["Authorization"] else VARIANTS
                    )
                ),
            ),
        )
        mock.post(KIE_CHAT, json=json_completion(VARIANTS))
        generation = generate(admin_membership, credit_cost=0)
        keys = keys_used(mock)

    assert sorted(keys) == ["Bearer T-LLM", "Bearer T-VISION"]
    assert generation.reference_notes == ["Warm terracotta tones."]
    assert sorted(generation.images.values_list("prompt", flat=True)) == sorted(
        VARIANTS["variants"]
    )
    assert generation.notices == []


def test_a_free_generation_uses_a_reference_description_from_an_earlier_paid_run(
    admin_membership, tenant
):
    ReferenceAnalysis.objects.create(
        org=tenant, sha256=REFERENCE.sha256, description="Described before.", palette=[]
    )
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        platform_answers(mock)
        generation = generate(admin_membership, credit_cost=0)
        keys = keys_used(mock)

    assert keys == []
    assert generation.reference_notes == ["Described before."]
    assert not any("vision" in notice for notice in generation.notices)


def test_a_generation_that_pays_still_uses_the_platforms_writer_and_vision_model(
    admin_membership, tenant
):
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        platform_answers(mock)
        generation = generate(admin_membership, credit_cost=1)
        keys = keys_used(mock)

    assert sorted(keys) == ["Bearer PLATFORM-KIE-KEY", "Bearer PLATFORM-OPENAI-KEY"]
    assert generation.prompt_writer == "Gemini 3 Pro (kie.ai)"
    assert generation.reference_notes == ["Warm terracotta tones."]
