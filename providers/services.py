"""What the pipeline and the admin ask of an organization's providers: its fallback chains for
prompt variants and reference descriptions, and the connection test. Each call is recorded
(providers.attempts); provider errors are raised for the caller to act on, never shown here.

Catalogue models run on the platform's keys (providers.platform), which the organization does not
pay for directly: a generation that costs nothing runs only the organization's own-key prompt
writers and vision models, an organization admin's deep tests of catalogue models are rate
limited, and a connection test of one does not show the platform's balance or endpoints.
"""

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from lib import ratelimit
from providers import chain
from providers.adapters.errors import PermanentError
from providers.adapters.types import ConnectionTestResult, VariantsRequest
from providers.attempts import chain_recorder, record_attempt
from providers.cooldowns import cooldowns
from providers.models import Provider
from providers.org_registry import providers_for
from providers.platform import platform_account

logger = logging.getLogger(__name__)

# Deep tests make real, paid calls; on a catalogue model they are paid by the platform.
DEEP_TESTS_PER_ORG_PER_HOUR = 5


class TooManyDeepTests(Exception):
    """The organization ran its deep tests of catalogue models for this hour; the message is
    safe to show the admin."""

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, round(retry_after / 60))
        super().__init__(
            "Deep tests of platform models make real calls on the platform's account, so an "
            f"organization may run at most {DEEP_TESTS_PER_ORG_PER_HOUR} deep tests an hour; "
            f"try again in {minutes} min. The free connection test is not limited."
        )
        self.retry_after = retry_after


def _chain_entries(providers: Iterable[Provider], *, own_keys_only: bool) -> list:
    """The chain's (provider id, adapter) entries; with `own_keys_only`, only the organization's
    own-key providers (the platform's keys serve generations that pay)."""
    return [(p.pk, p.build()) for p in providers if p.is_own_key or not own_keys_only]


def write_variants(
    request: VariantsRequest,
    *,
    org_id: int,
    generation_id: int | None = None,
    own_keys_only: bool = False,
) -> chain.ChainResult:
    """Exactly `request.n` prompt variants from the org's LLM chain, falling back in priority
    order; with `own_keys_only` (a generation that costs nothing) from its own-key prompt writers
    only. Raises chain.ChainFailed when every provider failed or the deadline passed, or when
    there was none to try."""
    entries = _chain_entries(providers_for(org_id).llm, own_keys_only=own_keys_only)
    return chain.generate_variants(
        entries,
        request,
        deadline=settings.NERSTUDIO_LLM_CHAIN_DEADLINE,
        cooldowns=cooldowns,
        on_attempt=chain_recorder("variants", generation_id),
    )


def describe_references(
    *,
    org_id: int,
    images: list[bytes],
    generation_id: int | None = None,
    own_keys_only: bool = False,
) -> list:
    """Describe several reference images in parallel with the org's vision chain; with
    `own_keys_only` (a generation that costs nothing) with its own-key vision models only.

    Returns, per image, a chain.ChainResult or the chain.ChainFailed it raised. Threads only do
    HTTP; attempts are recorded afterwards, on the caller's database connection.
    """
    providers = providers_for(org_id).vision

    def describe(image: bytes):
        try:
            return chain.describe_image(
                _chain_entries(providers, own_keys_only=own_keys_only),
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
    The admin tells the person who ran it (providers.admin.report_connection_test).

    On the platform's key (a catalogue model), deep tests count against the organization's
    hourly allowance (TooManyDeepTests), and the result only says whether the platform's account
    works: its balance and endpoints are the operator's, who finds the details in the log."""
    if reason := provider.unavailable_reason():
        return ConnectionTestResult(False, 0, reason)
    if deep and provider.uses_platform_key:
        key = f"deep-test:org:{provider.org_id}"
        if wait := ratelimit.hit(key, limit=DEEP_TESTS_PER_ORG_PER_HOUR, window=3600):
            raise TooManyDeepTests(wait)
    adapter = provider.build()
    result = adapter.deep_test() if deep else adapter.test_connection()
    if provider.uses_platform_key:
        result = _platform_verdict(provider, result, deep=deep)
    failure = None if result.ok else PermanentError(result.message)
    record_attempt(provider, "deep-test" if deep else "test", failure, latency_ms=result.latency_ms)
    return result


def _platform_verdict(
    provider: Provider, result: ConnectionTestResult, *, deep: bool
) -> ConnectionTestResult:
    """What an organization may read of a test on the platform's account: whether it worked."""
    logger.log(
        logging.INFO if result.ok else logging.WARNING,
        "%s of platform model %s (catalogue model %s, organization %s): %s",
        "Deep test" if deep else "Connection test",
        provider.pk,
        provider.catalogue_id,
        provider.org_id,
        result.message,
    )
    account = platform_account(provider.adapter_class.vendor)
    label = account.label if account else provider.adapter_label
    if result.ok:
        message = f"The platform's {label} key was accepted."
        if deep:
            message += f" {provider.deep_test_cost}"
    else:
        message = (
            f"The platform's {label} account did not pass the test; the platform operator can "
            "see why in the server log."
        )
    return ConnectionTestResult(result.ok, result.latency_ms, message)


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
