"""Provider services: the per-process registry, the fallback chains, connection tests, health.

The registry keeps each organization's resolved provider configuration in memory and re-checks the
organization's `config_version` at most every NERSTUDIO_PROVIDER_REFRESH_SECONDS, so a change
saved in the admin reaches every web and worker process within that time, without a restart.
"""

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from orgs.models import Organization
from providers import chain
from providers.adapters.base import ConnectionTestResult, ProviderError, VariantsRequest
from providers.models import Kind, Provider, ProviderAttempt

# --- Registry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgProviders:
    """An organization's enabled providers that can run, each kind in priority order."""

    version: int
    image: tuple[Provider, ...]
    llm: tuple[Provider, ...]
    vision: tuple[Provider, ...]

    def images_for(self, membership) -> tuple[Provider, ...]:
        """The image models this person may choose: admins all, members those shown to them."""
        if membership.is_admin:
            return self.image
        return tuple(p for p in self.image if p.visible_to_members)

    def default_image_for(self, membership) -> Provider | None:
        images = self.images_for(membership)
        return next((p for p in images if p.is_default), images[0] if images else None)


_registry: dict[int, tuple[float, OrgProviders]] = {}
_registry_lock = threading.Lock()


def providers_for(org_id: int) -> OrgProviders:
    now = time.monotonic()
    entry = _registry.get(org_id)
    if entry and now - entry[0] < settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS:
        return entry[1]
    version = (
        Organization.objects.filter(pk=org_id).values_list("config_version", flat=True).first()
    )
    if entry and entry[1].version == version:
        resolved = entry[1]
    else:
        # Read the version before the rows: a change committed in between makes the next check
        # reload again, never the reverse.
        rows = [
            p
            for p in Provider.objects.filter(org_id=org_id, enabled=True)
            .select_related("catalogue")
            .order_by("priority", "pk")
            if p.is_runnable  # a model without a usable key is never offered or tried
        ]
        resolved = OrgProviders(
            version=version or 0,
            image=tuple(p for p in rows if p.kind == Kind.IMAGE),
            llm=tuple(p for p in rows if p.kind == Kind.LLM),
            vision=tuple(p for p in rows if p.kind == Kind.VISION),
        )
    with _registry_lock:
        _registry[org_id] = (now, resolved)
    return resolved


def clear_registry() -> None:
    with _registry_lock:
        _registry.clear()


# --- Fallback chains ------------------------------------------------------------------------------


class CacheCooldownStore:
    """Cooldown state in the Django cache: shared by every process when the cache is Redis."""

    ttl = 3600

    def _key(self, provider_id) -> str:
        return f"nerstudio:provider-cooldown:{provider_id}"

    def get(self, provider_id):
        return cache.get(self._key(provider_id))

    def set(self, provider_id, state) -> None:
        cache.set(self._key(provider_id), state, self.ttl)

    def delete(self, provider_id) -> None:
        cache.delete(self._key(provider_id))


cooldowns = chain.Cooldowns(CacheCooldownStore())


def _record(purpose: str, generation_id: int | None = None):
    def on_attempt(attempt: chain.Attempt) -> None:
        ProviderAttempt.objects.create(
            provider_id=attempt.provider_id,
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
    lineage, with what admins need to act on a failure: the provider's own text, the HTTP status
    and the request id."""
    outcome = "success" if error is None else ("retryable" if error.retryable else "permanent")
    ProviderAttempt.objects.create(
        provider=provider,
        generation_id=generation_id,
        purpose=purpose,
        outcome=outcome,
        latency_ms=latency_ms,
        error="" if error is None else error.message[:2000],
        http_status=getattr(error, "status", None),
        request_id=(getattr(error, "request_id", "") or "")[:200],
    )


def record_download_failure(provider: Provider, reason: str, *, generation_id: int) -> None:
    ProviderAttempt.objects.create(
        provider=provider, generation_id=generation_id, purpose="download", outcome="permanent",
        error=f"The result could not be downloaded: {reason}",
    )  # fmt: skip


RESULT_LATENCY_CACHE_SECONDS = 60


def result_latency_p50(provider: Provider) -> float | None:
    """Median seconds from submission to a result for this provider over the last day (cached a
    minute per process group); None before any result was seen."""
    key = f"nerstudio:result-p50:{provider.pk}"
    cached = cache.get(key)
    if cached is not None:
        return cached if cached >= 0 else None  # -1 caches "nothing observed yet"
    since = timezone.now() - HEALTH_WINDOW
    latencies = list(
        ProviderAttempt.objects.filter(
            provider=provider, purpose="result", outcome="success", created_at__gte=since
        )
        .order_by("-created_at")
        .values_list("latency_ms", flat=True)[:HEALTH_SAMPLE]
    )
    p50 = statistics.median(latencies) / 1000 if latencies else None
    cache.set(key, -1 if p50 is None else p50, RESULT_LATENCY_CACHE_SECONDS)
    return p50


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
        on_attempt=_record("variants", generation_id),
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
    record = _record("vision", generation_id)
    for outcome in outcomes:
        for attempt in outcome.attempts:
            record(attempt)
    return outcomes


# --- Connection test and health -------------------------------------------------------------------


def test_connection(provider: Provider, *, deep: bool = False) -> ConnectionTestResult:
    """The free connection test (every host a generation uses; it says what it proved), or with
    `deep` one minimal real call as the adapter's `deep_test_cost` states. Never a paid image."""
    if reason := provider.unavailable_reason():
        return ConnectionTestResult(False, 0, reason)
    adapter = provider.build()
    result = adapter.deep_test() if deep else adapter.test_connection()
    ProviderAttempt.objects.create(
        provider=provider,
        purpose="deep-test" if deep else "test",
        outcome="success" if result.ok else "permanent",
        latency_ms=result.latency_ms,
        error="" if result.ok else result.message[:2000],
    )
    return result


test_connection.__test__ = False  # not a pytest test, despite the name


@dataclass(frozen=True)
class Health:
    calls: int
    success_rate: float | None
    p50_ms: int | None
    p95_ms: int | None
    last_error: str
    last_error_at: object
    cooldown_seconds: float


HEALTH_WINDOW = timedelta(hours=24)
HEALTH_FIELDS = (
    "provider_id",
    "outcome",
    "latency_ms",
    "error",
    "http_status",
    "request_id",
    "created_at",
)
HEALTH_SAMPLE = 200


def provider_health(providers) -> dict[int, Health]:
    """Recent success rate, call latency percentiles, last error (with the HTTP status and the
    provider's request id when known) and cooldown, per provider id. A finished image's "result"
    record measures the wait for the image, not a call, so only its failures count here."""
    providers = list(providers)
    since = timezone.now() - HEALTH_WINDOW
    rows = (
        ProviderAttempt.objects.filter(provider__in=providers, created_at__gte=since)
        .exclude(outcome="skipped")
        .exclude(purpose="result", outcome="success")
        .order_by("-created_at")
        .values(*HEALTH_FIELDS)
    )
    by_provider: dict[int, list] = {p.pk: [] for p in providers}
    for row in rows:
        if len(by_provider[row["provider_id"]]) < HEALTH_SAMPLE:
            by_provider[row["provider_id"]].append(row)
    health = {}
    for pk, attempts in by_provider.items():
        latencies = sorted(r["latency_ms"] for r in attempts if r["outcome"] == "success")
        failures = [r for r in attempts if r["outcome"] != "success"]
        last = failures[0] if failures else None
        health[pk] = Health(
            calls=len(attempts),
            success_rate=(len(attempts) - len(failures)) / len(attempts) if attempts else None,
            p50_ms=int(statistics.median(latencies)) if latencies else None,
            p95_ms=_percentile(latencies, 95),
            last_error=_error_line(last) if last else "",
            last_error_at=last["created_at"] if last else None,
            cooldown_seconds=cooldowns.remaining(pk),
        )
    return health


def _error_line(attempt: dict) -> str:
    where = [f"HTTP {attempt['http_status']}"] if attempt["http_status"] else []
    if attempt["request_id"]:
        where.append(f"request {attempt['request_id']}")
    return f"{attempt['error']} ({', '.join(where)})" if where else attempt["error"]


def _percentile(sorted_values: list[int], pct: int) -> int | None:
    if not sorted_values:
        return None
    index = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]
