"""What the pipeline and the admin ask of an organization's providers: its fallback chains for
prompt variants and reference descriptions, and the connection test. Each call is recorded
(providers.attempts); provider errors are raised for the caller to act on, never shown here."""

from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from providers import chain
from providers.adapters.errors import PermanentError
from providers.adapters.types import ConnectionTestResult, VariantsRequest
from providers.attempts import chain_recorder, record_attempt
from providers.cooldowns import cooldowns
from providers.models import Provider
from providers.org_registry import providers_for


def write_variants(
    request: VariantsRequest, *, org_id: int, generation_id: int | None = None
) -> chain.ChainResult:
    """Exactly `request.n` prompt variants from the org's LLM chain, falling back in priority
    order. Raises chain.ChainFailed when every provider failed or the deadline passed."""
    providers = providers_for(org_id).llm
    return chain.generate_variants(
        [(p.pk, p.build()) for p in providers],
        request,
        deadline=settings.NERSTUDIO_LLM_CHAIN_DEADLINE,
        cooldowns=cooldowns,
        on_attempt=chain_recorder("variants", generation_id),
    )


def describe_references(
    *, org_id: int, images: list[bytes], generation_id: int | None = None
) -> list:
    """Describe several reference images in parallel with the org's vision chain.

    Returns, per image, a chain.ChainResult or the chain.ChainFailed it raised. Threads only do
    HTTP; attempts are recorded afterwards, on the caller's database connection.
    """
    providers = providers_for(org_id).vision

    def describe(image: bytes):
        try:
            return chain.describe_image(
                [(p.pk, p.build()) for p in providers],
                image,
                deadline=settings.NERSTUDIO_LLM_CHAIN_DEADLINE,
                cooldowns=cooldowns,
            )
        except chain.ChainFailed as failed:
            return failed

    if not images:
        return []
    with ThreadPoolExecutor(max_workers=min(4, len(images))) as pool:
        outcomes = list(pool.map(describe, images))
    record = chain_recorder("vision", generation_id)
    for outcome in outcomes:
        for attempt in outcome.attempts:
            record(attempt)
    return outcomes


def test_connection(provider: Provider, *, deep: bool = False) -> ConnectionTestResult:
    """The free connection test (every host a generation uses; it says what it proved), or with
    `deep` one minimal real call as the adapter's `deep_test_cost` states. Never a paid image.
    The admin tells the person who ran it (providers.admin.report_connection_test)."""
    if reason := provider.unavailable_reason():
        return ConnectionTestResult(False, 0, reason)
    adapter = provider.build()
    result = adapter.deep_test() if deep else adapter.test_connection()
    failure = None if result.ok else PermanentError(result.message)
    record_attempt(provider, "deep-test" if deep else "test", failure, latency_ms=result.latency_ms)
    return result


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
