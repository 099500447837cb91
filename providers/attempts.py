"""The record of every call to a provider (ProviderAttempt rows): lineage for generations and
the source of provider health (providers.health)."""

from collections.abc import Callable
from typing import cast

from providers import chain
from providers.adapters.errors import ProviderError
from providers.chain import Outcome
from providers.models import Provider, ProviderAttempt


def chain_recorder(
    purpose: str, generation_id: int | None = None
) -> Callable[[chain.Attempt], None]:
    """A chain's `on_attempt`: records each attempt of the chain for `purpose`."""

    def on_attempt(attempt: chain.Attempt) -> None:
        ProviderAttempt.objects.create(
            provider_id=cast(int, attempt.provider_id),  # chains here run on provider pks
            generation_id=generation_id,
            purpose=purpose,
            outcome=attempt.outcome,
            latency_ms=attempt.latency_ms,
            error=attempt.error[:2000],
        )

    return on_attempt


def record_attempt(
    provider: Provider,
    purpose: str,
    error: ProviderError | None,
    *,
    latency_ms: int = 0,
    generation_id: int | None = None,
) -> None:
    """Record a call made outside a chain (image submission, poll, result) for health and
    lineage, with what admins need to act on a failure: the provider's own text, the
    HTTP status and the request id."""
    ProviderAttempt.objects.create(
        provider=provider,
        generation_id=generation_id,
        purpose=purpose,
        outcome=Outcome.of(error),
        latency_ms=latency_ms,
        error="" if error is None else error.message[:2000],
        http_status=getattr(error, "status", None),
        request_id=(getattr(error, "request_id", "") or "")[:200],
    )


def record_download_failure(provider: Provider, reason: str, *, generation_id: int) -> None:
    ProviderAttempt.objects.create(
        provider=provider,
        generation_id=generation_id,
        purpose="download",
        outcome=Outcome.PERMANENT,
        error=f"The result could not be downloaded: {reason}",
    )
