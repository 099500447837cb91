"""Fallback across providers of one kind, bounded in time, with per-provider cooldown.

Pure logic (no models, cache or settings): the caller passes enabled providers in priority order,
a cooldown store (in memory here; the Django cache in production, providers.cooldowns) and a
callback that records each attempt (providers.attempts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from providers.adapters.answers import check_variants
from providers.adapters.base import Adapter, LLMAdapter, VisionAdapter
from providers.adapters.errors import InvalidOutput, ProviderError
from providers.adapters.types import ChatResult, VariantsRequest, VisionResult

DEFAULT_DEADLINE = 30.0


class Outcome(StrEnum):
    """How a call to a provider ended. The one definition: attempts are stored with these values
    (with their labels in providers.models)."""

    SUCCESS = "success"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    INVALID_OUTPUT = "invalid_output"
    SKIPPED = "skipped"

    @classmethod
    def of(cls, error: ProviderError | None) -> Outcome:
        """A call's outcome from the error it raised (None: it succeeded)."""
        if error is None:
            return cls.SUCCESS
        return cls.RETRYABLE if error.retryable else cls.PERMANENT


@dataclass(frozen=True)
class Attempt:
    provider_id: Hashable
    latency_ms: int
    outcome: Outcome
    error: str = ""


@dataclass(frozen=True)
class ChainResult[T]:
    value: T
    provider_id: Hashable
    attempts: tuple[Attempt, ...]


class ChainFailed(ProviderError):
    """No provider produced a usable answer. Retryable unless every failure was permanent."""

    def __init__(self, attempts: tuple[Attempt, ...]) -> None:
        failures = [a for a in attempts if a.outcome != Outcome.SKIPPED]
        if not attempts:
            message, retryable = "No provider is enabled.", False
        elif not failures:
            message, retryable = "Every provider is cooling down or out of time; try again.", True
        else:
            message = f"Every provider failed; the last said: {failures[-1].error}"
            retryable = any(a.outcome != Outcome.PERMANENT for a in attempts)
        super().__init__(message, retryable=retryable, code="chain_failed")
        self.attempts = attempts


# --- Cooldown -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CooldownState:
    failures: int = 0  # consecutive
    until: float = 0.0  # wall-clock (time.time()) so several processes can share it


class CooldownStore(Protocol):
    def get(self, provider_id: Hashable) -> CooldownState | None: ...
    def set(self, provider_id: Hashable, state: CooldownState) -> None: ...
    def delete(self, provider_id: Hashable) -> None: ...


class InMemoryCooldownStore:
    def __init__(self) -> None:
        self._states: dict[Hashable, CooldownState] = {}
        self._lock = threading.Lock()

    def get(self, provider_id: Hashable) -> CooldownState | None:
        with self._lock:
            return self._states.get(provider_id)

    def set(self, provider_id: Hashable, state: CooldownState) -> None:
        with self._lock:
            self._states[provider_id] = state

    def delete(self, provider_id: Hashable) -> None:
        with self._lock:
            self._states.pop(provider_id, None)


class Cooldowns:
    """After `threshold` consecutive failures a provider is skipped for `base` seconds, doubling
    with each further failure up to `cap`; one success clears it.

    A single blip does not bench a provider, but a dead one stops costing every request its
    timeout.
    """

    def __init__(
        self,
        store: CooldownStore | None = None,
        *,
        threshold: int = 2,
        base: float = 30.0,
        cap: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store if store is not None else InMemoryCooldownStore()
        self.threshold, self.base, self.cap, self.clock = threshold, base, cap, clock

    def state(self, provider_id: Hashable) -> CooldownState:
        return self.store.get(provider_id) or CooldownState()

    def remaining(self, provider_id: Hashable) -> float:
        """Seconds until the provider may be tried again; 0 when it is available."""
        return max(0.0, self.state(provider_id).until - self.clock())

    def record_failure(self, provider_id: Hashable, *, severe: bool = False) -> CooldownState:
        """One more consecutive failure. A severe one (a timeout: the provider held the whole
        attempt) benches the provider at once, so the next run does not wait for it again."""
        failures = self.state(provider_id).failures + 1
        if severe:
            failures = max(failures, self.threshold)
        until = 0.0
        if failures >= self.threshold:
            step = failures - self.threshold
            until = self.clock() + min(self.cap, self.base * 2 ** min(step, 30))
        state = CooldownState(failures, until)
        self.store.set(provider_id, state)
        return state

    def record_success(self, provider_id: Hashable) -> None:
        if self.store.get(provider_id) is not None:
            self.store.delete(provider_id)


# --- The chain ----------------------------------------------------------------------------------


def _outcome(error: ProviderError) -> Outcome:
    return Outcome.INVALID_OUTPUT if isinstance(error, InvalidOutput) else Outcome.of(error)


def run_chain[A: Adapter, T](
    entries: Iterable[tuple[Hashable, A]],
    call: Callable[[A, float], T],
    *,
    deadline: float = DEFAULT_DEADLINE,
    cooldowns: Cooldowns | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> ChainResult[T]:
    """Try each (provider_id, adapter) in order until `call(adapter, timeout)` succeeds.

    `timeout` is the smaller of the provider's own timeout and a share of the time left before
    `deadline` that leaves room for the next provider: half of it while another provider that is
    not cooling down follows, all of it for the last. So one hanging provider cannot use up the
    budget of those behind it, and the chain as a whole never runs past the deadline. A timeout
    benches the provider at once (cooldown); one that is cooling down costs only a cache read.
    `call` raises ProviderError to fail over.
    """
    ends_at = time.monotonic() + deadline
    entries = list(entries)
    attempts: list[Attempt] = []

    def report(attempt: Attempt) -> None:
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt)

    def cooling(provider_id: Hashable) -> float:
        return cooldowns.remaining(provider_id) if cooldowns is not None else 0.0

    for index, (provider_id, adapter) in enumerate(entries):
        if (wait := cooling(provider_id)) > 0:
            report(Attempt(provider_id, 0, Outcome.SKIPPED, f"Cooling down for {wait:.0f} s."))
            continue
        left = ends_at - time.monotonic()
        if left <= 0:
            report(Attempt(provider_id, 0, Outcome.SKIPPED, "The time budget ran out."))
            continue
        followed = any(cooling(later) == 0 for later, _ in entries[index + 1 :])
        timeout = min(adapter.config.timeout, left / 2 if followed else left)
        started = time.monotonic()
        try:
            value = call(adapter, timeout)
        except ProviderError as error:
            latency = int((time.monotonic() - started) * 1000)
            report(Attempt(provider_id, latency, _outcome(error), error.message))
            if cooldowns is not None:
                cooldowns.record_failure(provider_id, severe=error.code == "timeout")
            continue
        latency = int((time.monotonic() - started) * 1000)
        report(Attempt(provider_id, latency, Outcome.SUCCESS))
        if cooldowns is not None:
            cooldowns.record_success(provider_id)
        return ChainResult(value, provider_id, tuple(attempts))
    raise ChainFailed(tuple(attempts))


def generate_variants(
    entries: Iterable[tuple[Hashable, LLMAdapter]],
    request: VariantsRequest,
    **chain_options: Any,
) -> ChainResult[ChatResult]:
    """The LLM step: the first provider that returns exactly `request.n` usable variants wins."""

    def call(adapter: LLMAdapter, timeout: float) -> ChatResult:
        result = adapter.generate_variants(request, timeout=timeout)
        check_variants(result.variants, request.n)  # every adapter checks; trust none
        return result

    return run_chain(entries, call, **chain_options)


def describe_image(
    entries: Iterable[tuple[Hashable, VisionAdapter]],
    image: bytes,
    **chain_options: Any,
) -> ChainResult[VisionResult]:
    """Vision: the highest-priority provider that answers, falling back like the LLM step."""

    def call(adapter: VisionAdapter, timeout: float) -> VisionResult:
        result = adapter.describe(image, timeout=timeout)
        if not result.description.strip():
            raise InvalidOutput("The provider returned an empty description.")
        return result

    return run_chain(entries, call, **chain_options)
