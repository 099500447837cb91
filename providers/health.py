"""How providers have been doing, read back from their recorded attempts: success rate, latency,
last error and cooldown for the admin, and how long a provider's results take for the pipeline."""

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from providers.chain import Outcome
from providers.cooldowns import cooldowns
from providers.models import Provider, ProviderAttempt

HEALTH_WINDOW = timedelta(hours=24)
HEALTH_SAMPLE = 200  # the most recent attempts per provider that count
HEALTH_FIELDS = (
    "provider_id",
    "outcome",
    "latency_ms",
    "error",
    "http_status",
    "request_id",
    "created_at",
)
RESULT_LATENCY_CACHE_SECONDS = 60


@dataclass(frozen=True)
class Health:
    calls: int
    success_rate: float | None
    p50_ms: int | None
    p95_ms: int | None
    last_error: str
    last_error_at: datetime | None
    cooldown_seconds: float


def provider_health(providers) -> dict[int, Health]:
    """Recent success rate, call latency percentiles, last error (with the HTTP status and the
    provider's request id when known) and cooldown, per provider id. A finished image's "result"
    record measures the wait for the image, not a call, so only its failures count here."""
    providers = list(providers)
    since = timezone.now() - HEALTH_WINDOW
    rows = (
        ProviderAttempt.objects.filter(provider__in=providers, created_at__gte=since)
        .exclude(outcome=Outcome.SKIPPED)
        .exclude(purpose="result", outcome=Outcome.SUCCESS)
        .order_by("-created_at")
        .values(*HEALTH_FIELDS)
    )
    by_provider: dict[int, list] = {p.pk: [] for p in providers}
    for row in rows:
        if len(by_provider[row["provider_id"]]) < HEALTH_SAMPLE:
            by_provider[row["provider_id"]].append(row)
    health = {}
    for pk, attempts in by_provider.items():
        latencies = [r["latency_ms"] for r in attempts if r["outcome"] == Outcome.SUCCESS]
        # Cut points between observed latencies ("inclusive"): p95 never exceeds the slowest.
        cuts = statistics.quantiles(latencies, n=20, method="inclusive") if latencies else None
        failures = [r for r in attempts if r["outcome"] != Outcome.SUCCESS]
        last = failures[0] if failures else None
        health[pk] = Health(
            calls=len(attempts),
            success_rate=(len(attempts) - len(failures)) / len(attempts) if attempts else None,
            p50_ms=int(cuts[9]) if cuts else None,
            p95_ms=int(cuts[18]) if cuts else None,
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
            provider=provider, purpose="result", outcome=Outcome.SUCCESS, created_at__gte=since
        )
        .order_by("-created_at")
        .values_list("latency_ms", flat=True)[:HEALTH_SAMPLE]
    )
    p50 = statistics.median(latencies) / 1000 if latencies else None
    cache.set(key, -1 if p50 is None else p50, RESULT_LATENCY_CACHE_SECONDS)
    return p50
