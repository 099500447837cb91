"""Timeouts and deadlines against a real, slow HTTP server on 127.0.0.1 (no fakes at the seam)."""

import json
import socket
import time

import pytest

from providers.adapters.errors import PermanentError, RetryableError
from providers.adapters.openai import OpenAILLMAdapter
from providers.adapters.types import ProviderConfig, VariantsRequest
from providers.chain import ChainFailed, Cooldowns, generate_variants

from .conftest import variants_completion

REQUEST = VariantsRequest("Linen shirt", 2)
GOOD = json.dumps(variants_completion(["From the good one", "Also good"])).encode()
SLOW = 2.0  # how long a "slow" provider would take; every test must finish well before it


def llm(base_url, timeout):
    return OpenAILLMAdapter(ProviderConfig(base_url=base_url, api_key="k", timeout=timeout))


def test_a_real_answer_comes_back_through_the_seam(slow_server):
    adapter = llm(slow_server.route("/good", body=GOOD), timeout=2)

    assert adapter.generate_variants(REQUEST).variants == ("From the good one", "Also good")
    assert slow_server.hits[0][0] == "/good/chat/completions"


def test_an_adapter_reuses_its_connection_between_calls(slow_server):
    adapter = llm(slow_server.route("/good", body=GOOD), timeout=2)

    adapter.generate_variants(REQUEST)
    adapter.generate_variants(REQUEST)

    first, second = slow_server.client_ports
    assert first == second  # same TCP connection: no new handshake per call


def test_a_slow_provider_times_out_after_its_own_timeout(slow_server):
    adapter = llm(slow_server.route("/slow", body=GOOD, delay=SLOW), timeout=0.3)

    started = time.monotonic()
    with pytest.raises(RetryableError) as caught:
        adapter.generate_variants(REQUEST)
    elapsed = time.monotonic() - started

    assert caught.value.code == "timeout"
    assert 0.25 < elapsed < 0.8


def test_a_provider_that_trickles_its_body_is_cut_off_at_the_timeout(slow_server):
    adapter = llm(slow_server.route("/drip", body=GOOD, trickle=0.05), timeout=0.4)

    started = time.monotonic()
    with pytest.raises(RetryableError, match="timed out"):
        adapter.generate_variants(REQUEST)

    # Every byte arrives within the read timeout, so only a whole-call deadline stops this.
    assert time.monotonic() - started < 0.8


def test_a_body_that_stalls_late_cannot_outlive_the_timeout(slow_server):
    # Headers after 0.4 s, half the body, then silence: a fresh 0.5 s read timeout would end the
    # call at about 0.9 s; the whole-call deadline ends it at 0.5 s.
    adapter = llm(slow_server.route("/stall", body=GOOD, delay=0.4, stall=SLOW), timeout=0.5)

    started = time.monotonic()
    with pytest.raises(RetryableError, match="timed out"):
        adapter.generate_variants(REQUEST)

    assert time.monotonic() - started < 0.7


def test_an_unreachable_provider_fails_fast_as_retryable(loopback_egress):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before we connect

    with pytest.raises(RetryableError) as caught:
        llm(f"http://127.0.0.1:{port}", timeout=1).generate_variants(REQUEST)

    assert caught.value.code == "network"


def test_the_chain_falls_back_past_failing_and_slow_providers_in_order(slow_server):
    broken = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
    attempts = []
    providers = [
        ("broken", llm(slow_server.route("/broken", status=500, body=broken), timeout=1)),
        ("slow", llm(slow_server.route("/slow", body=GOOD, delay=SLOW), timeout=0.3)),
        ("good", llm(slow_server.route("/good", body=GOOD), timeout=1)),
    ]

    started = time.monotonic()
    result = generate_variants(providers, REQUEST, on_attempt=attempts.append)
    elapsed = time.monotonic() - started

    assert result.provider_id == "good"
    assert [(a.provider_id, a.outcome) for a in attempts] == [
        ("broken", "retryable"),
        ("slow", "retryable"),
        ("good", "success"),
    ]
    assert 250 <= attempts[1].latency_ms < 800
    assert [path for path, _ in slow_server.hits] == [
        "/broken/chat/completions",
        "/slow/chat/completions",
        "/good/chat/completions",
    ]
    assert elapsed < 1.5


def test_a_hanging_first_provider_leaves_room_for_the_next(slow_server):
    """The first attempt gets half of what is left while another provider follows, so a provider
    that hangs cannot use up the whole budget (issue 8: it used to, and the chain failed)."""
    attempts = []
    providers = [
        ("slow", llm(slow_server.route("/slow", body=GOOD, delay=SLOW), timeout=10)),
        ("good", llm(slow_server.route("/good", body=GOOD), timeout=10)),
    ]

    started = time.monotonic()
    result = generate_variants(providers, REQUEST, deadline=0.8, on_attempt=attempts.append)
    elapsed = time.monotonic() - started

    assert result.provider_id == "good"
    assert [(a.provider_id, a.outcome) for a in attempts] == [
        ("slow", "retryable"),
        ("good", "success"),
    ]
    assert 350 <= attempts[0].latency_ms < 600  # half of 0.8 s
    assert elapsed < 0.8


def test_the_last_provider_gets_all_that_is_left_and_the_chain_stops_at_the_deadline(
    slow_server,
):
    attempts = []
    providers = [("slow", llm(slow_server.route("/slow", body=GOOD, delay=SLOW), timeout=10))]

    started = time.monotonic()
    with pytest.raises(ChainFailed) as caught:
        generate_variants(providers, REQUEST, deadline=0.4, on_attempt=attempts.append)
    elapsed = time.monotonic() - started

    assert 0.35 < elapsed < 0.9
    assert [(a.provider_id, a.outcome) for a in attempts] == [("slow", "retryable")]
    assert caught.value.retryable


def test_the_remaining_time_is_passed_down_to_the_next_attempt(slow_server):
    attempts = []
    providers = [
        ("slow", llm(slow_server.route("/slow", body=GOOD, delay=SLOW), timeout=0.3)),
        ("slower", llm(slow_server.route("/slower", body=GOOD, delay=SLOW), timeout=10)),
    ]

    started = time.monotonic()
    with pytest.raises(ChainFailed):
        generate_variants(providers, REQUEST, deadline=0.6, on_attempt=attempts.append)

    assert time.monotonic() - started < 1.1
    assert [a.outcome for a in attempts] == ["retryable", "retryable"]
    assert 200 <= attempts[1].latency_ms < 600  # only what was left of 0.6 s


def test_a_timeout_cools_the_provider_down_at_once(slow_server):
    """Even one timeout benches it: the next run must not wait for it again (issue 8)."""
    cooldowns = Cooldowns(threshold=2)
    providers = [("slow", llm(slow_server.route("/slow", body=GOOD, delay=SLOW), timeout=10))]

    with pytest.raises(ChainFailed):
        generate_variants(providers, REQUEST, deadline=0.3, cooldowns=cooldowns)

    assert cooldowns.remaining("slow") > 0


def test_a_provider_that_times_out_on_its_own_does_cool_down(slow_server):
    cooldowns = Cooldowns(threshold=1)
    providers = [("slow", llm(slow_server.route("/slow", body=GOOD, delay=SLOW), timeout=0.3))]

    with pytest.raises(ChainFailed):
        generate_variants(providers, REQUEST, deadline=5, cooldowns=cooldowns)

    assert cooldowns.remaining("slow") > 0


def test_a_permanent_error_from_a_real_server_moves_on_and_is_recorded(slow_server):
    denied = json.dumps({"error": {"message": "Incorrect API key", "type": "x"}}).encode()
    attempts = []
    providers = [
        ("denied", llm(slow_server.route("/denied", status=401, body=denied), timeout=1)),
        ("good", llm(slow_server.route("/good", body=GOOD), timeout=1)),
    ]

    generate_variants(providers, REQUEST, on_attempt=attempts.append)

    assert attempts[0].outcome == "permanent"
    assert attempts[0].error == "Incorrect API key"
    with pytest.raises(PermanentError):
        providers[0][1].generate_variants(REQUEST)
