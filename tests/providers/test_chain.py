"""Fallback chain logic and cooldown stepping, with in-process test providers."""

import pytest

from providers.adapters.base import LLMAdapter, VisionAdapter
from providers.adapters.errors import InvalidOutput, PermanentError, RetryableError
from providers.adapters.types import ChatResult, ProviderConfig, VariantsRequest, VisionResult
from providers.chain import (
    ChainFailed,
    Cooldowns,
    CooldownState,
    InMemoryCooldownStore,
    describe_image,
    generate_variants,
    run_chain,
)
from providers.local.llm import LocalLLMAdapter
from providers.local.vision import LocalVisionAdapter

from .conftest import png_bytes

REQUEST = VariantsRequest("Linen shirt", 2)


class ScriptedLLM(LLMAdapter):
    """A provider whose answers are scripted: each call pops the next variants or error."""

    slug = "scripted"
    label = "Scripted"

    def __init__(self, *script, timeout=10.0):
        super().__init__(ProviderConfig(timeout=timeout))
        self.script = list(script)
        self.timeouts = []

    def generate_variants(self, request, *, timeout=None):
        self.timeouts.append(timeout)
        step = self.script.pop(0) if self.script else ("ok 1", "ok 2")
        if isinstance(step, Exception):
            raise step
        return ChatResult(tuple(step), model="scripted")


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_it_uses_the_first_provider_that_answers():
    first, second = ScriptedLLM(("a", "b")), ScriptedLLM(("c", "d"))

    result = generate_variants([("p1", first), ("p2", second)], REQUEST)

    assert result.value.variants == ("a", "b")
    assert result.provider_id == "p1"
    assert [a.outcome for a in result.attempts] == ["success"]
    assert second.timeouts == []


def test_it_falls_back_in_order_and_records_every_attempt():
    recorded = []
    providers = [
        ("retry", ScriptedLLM(RetryableError("kie.ai had a server error.", code=500))),
        ("perm", ScriptedLLM(PermanentError("The OpenAI account is out of quota."))),
        ("short", ScriptedLLM(("just one",))),
        ("junk", ScriptedLLM(InvalidOutput("The model did not return valid JSON."))),
        ("good", ScriptedLLM(("x", "y"))),
        ("unused", ScriptedLLM(("never", "called"))),
    ]

    result = generate_variants(providers, REQUEST, on_attempt=recorded.append)

    assert result.provider_id == "good"
    assert [(a.provider_id, a.outcome) for a in recorded] == [
        ("retry", "retryable"),
        ("perm", "permanent"),
        ("short", "invalid_output"),
        ("junk", "invalid_output"),
        ("good", "success"),
    ]
    assert recorded[0].error == "kie.ai had a server error."
    assert "Expected 2" in recorded[2].error
    assert recorded[4].error == ""
    assert result.attempts == tuple(recorded)
    assert all(a.latency_ms >= 0 for a in recorded)


def test_it_gives_each_provider_its_own_timeout_within_the_deadline():
    fast, patient = ScriptedLLM(RetryableError("x"), timeout=3), ScriptedLLM(timeout=60)

    generate_variants([(1, fast), (2, patient)], REQUEST, deadline=20)

    assert fast.timeouts == [3]
    assert 19 < patient.timeouts[0] <= 20  # capped by what is left of the chain's deadline


def test_it_raises_a_retryable_failure_when_any_provider_might_recover():
    with pytest.raises(ChainFailed) as caught:
        generate_variants(
            [(1, ScriptedLLM(PermanentError("bad key"))), (2, ScriptedLLM(RetryableError("busy")))],
            REQUEST,
        )

    assert caught.value.retryable
    assert "busy" in caught.value.message
    assert [a.outcome for a in caught.value.attempts] == ["permanent", "retryable"]


def test_it_raises_a_permanent_failure_when_every_provider_refused_for_good():
    with pytest.raises(ChainFailed) as caught:
        generate_variants([(1, ScriptedLLM(PermanentError("bad key")))], REQUEST)

    assert not caught.value.retryable


def test_it_fails_permanently_without_providers():
    with pytest.raises(ChainFailed, match="No provider is enabled") as caught:
        generate_variants([], REQUEST)

    assert not caught.value.retryable


def test_it_lets_programming_errors_through():
    class Broken(ScriptedLLM):
        def generate_variants(self, request, *, timeout=None):
            raise KeyError("bug")

    with pytest.raises(KeyError):
        generate_variants([(1, Broken()), (2, ScriptedLLM())], REQUEST)


def test_run_chain_is_generic_over_the_call():
    calls = []

    def call(adapter, timeout):
        calls.append(adapter)
        if len(calls) == 1:
            raise RetryableError("the first one is down")
        return f"answered within {timeout:.0f} s"

    result = run_chain([("a", ScriptedLLM()), ("b", ScriptedLLM())], call, deadline=5)

    assert result.value == "answered within 5 s"
    assert result.provider_id == "b"


def test_vision_falls_back_the_same_way():
    class DownVision(VisionAdapter):
        slug, label = "down", "Down"

        def describe(self, image, *, timeout=None):
            raise RetryableError("Could not reach OpenAI vision (ConnectTimeout).", code="network")

    class EmptyVision(VisionAdapter):
        slug, label = "empty", "Empty"

        def describe(self, image, *, timeout=None):
            return VisionResult("   ")

    result = describe_image(
        [
            ("down", DownVision(ProviderConfig())),
            ("empty", EmptyVision(ProviderConfig())),
            ("local", LocalVisionAdapter(ProviderConfig())),
        ],
        png_bytes((20, 10), (51, 102, 204)),
    )

    assert result.provider_id == "local"
    assert result.value.palette == ("#3366cc",)
    assert [a.outcome for a in result.attempts] == ["retryable", "invalid_output", "success"]


def test_the_local_llm_is_a_valid_last_resort():
    result = generate_variants(
        [
            ("kie", ScriptedLLM(RetryableError("down"))),
            ("local", LocalLLMAdapter(ProviderConfig())),
        ],
        VariantsRequest("Linen shirt", 3),
    )

    assert result.provider_id == "local"
    assert len(set(result.value.variants)) == 3


# --- Cooldown -----------------------------------------------------------------------------------


def test_cooldown_steps_up_with_consecutive_failures_and_is_capped():
    clock = Clock()
    cooldowns = Cooldowns(threshold=2, base=30, cap=200, clock=clock)

    periods = []
    for _ in range(6):
        cooldowns.record_failure("kie-3-pro")
        periods.append(cooldowns.remaining("kie-3-pro"))

    assert periods == [0, 30, 60, 120, 200, 200]
    assert cooldowns.state("kie-3-pro").failures == 6


def test_cooldown_expires_with_time_and_clears_on_success():
    clock = Clock()
    cooldowns = Cooldowns(threshold=1, base=30, clock=clock)

    cooldowns.record_failure("p")
    clock.now += 29
    assert cooldowns.remaining("p") == pytest.approx(1)
    clock.now += 1
    assert cooldowns.remaining("p") == 0

    cooldowns.record_success("p")
    assert cooldowns.state("p") == CooldownState()
    cooldowns.record_failure("p")
    assert cooldowns.remaining("p") == 30  # back to the first step


def test_cooldown_is_scoped_to_the_provider():
    cooldowns = Cooldowns(threshold=1, clock=Clock())

    cooldowns.record_failure(1)

    assert cooldowns.remaining(1) > 0
    assert cooldowns.remaining(2) == 0


def test_a_failing_provider_is_skipped_while_it_cools_down():
    clock = Clock()
    cooldowns = Cooldowns(InMemoryCooldownStore(), threshold=2, base=30, clock=clock)
    dead = ScriptedLLM(*[RetryableError("timed out", code="network")] * 10)
    backup = ScriptedLLM(*[("a", "b")] * 10)
    providers = [("dead", dead), ("backup", backup)]

    for _ in range(2):
        generate_variants(providers, REQUEST, cooldowns=cooldowns)
    skipped = generate_variants(providers, REQUEST, cooldowns=cooldowns)

    assert len(dead.timeouts) == 2
    assert skipped.attempts[0].outcome == "skipped"
    assert skipped.attempts[0].latency_ms == 0
    assert "Cooling down for 30 s" in skipped.attempts[0].error

    clock.now += 31
    retried = generate_variants(providers, REQUEST, cooldowns=cooldowns)
    assert retried.attempts[0].outcome == "retryable"
    assert cooldowns.remaining("dead") == pytest.approx(60)  # the next step


def test_permanent_errors_and_invalid_output_also_cool_a_provider_down():
    cooldowns = Cooldowns(threshold=1, clock=Clock())

    with pytest.raises(ChainFailed):
        generate_variants(
            [(1, ScriptedLLM(PermanentError("bad key"))), (2, ScriptedLLM(("one",)))],
            REQUEST,
            cooldowns=cooldowns,
        )

    assert cooldowns.remaining(1) > 0
    assert cooldowns.remaining(2) > 0


def test_a_chain_of_cooling_providers_fails_as_retryable():
    cooldowns = Cooldowns(threshold=1, clock=Clock())
    cooldowns.record_failure("only")

    with pytest.raises(ChainFailed, match="cooling down") as caught:
        generate_variants([("only", ScriptedLLM())], REQUEST, cooldowns=cooldowns)

    assert caught.value.retryable
