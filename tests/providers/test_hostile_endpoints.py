"""What a hostile provider endpoint can make a call cost us, against a real server on 127.0.0.1.

An organization's admin points an own-key model at any endpoint they like. Whatever it does, a
call is bounded in time as a whole (connect, sending, headers and body), its reply in size,
and reading the model's answer in CPU.
"""

import contextlib
import json
import time

import pytest

from providers.adapters import http
from providers.adapters.errors import InvalidOutput, PermanentError, RetryableError
from providers.adapters.types import VariantsRequest
from tests.factories import OwnKeyProviderFactory
from tests.hostile_server import drip, hold, read_request, serving

from .conftest import png_bytes, variants_completion

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_egress")]

REQUEST = VariantsRequest("A ceramic mug on linen", 2)


def own_model(org, url, adapter="openai-chat"):
    return OwnKeyProviderFactory(
        org=org, adapter=adapter, base_url=url, api_key="org-own-key-0001", timeout_seconds=5
    ).build()


def answering(body: bytes):
    """Every request on a kept-alive connection gets a 200 with `body`."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"

    def answer(conn):
        while read_request(conn):
            conn.sendall(f"{head}\r\n\r\n".encode() + body)

    return answer


def completion(content: str) -> bytes:
    return json.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ]
        }
    ).encode()


# --- The size of a reply ----------------------------------------------------------------------


def test_a_reply_declaring_more_than_the_cap_is_refused_before_its_body_is_read(org):
    def answer(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n{")  # 1 GB
        hold(conn)  # the rest never comes: only refusing up front ends the call early

    with serving(answer) as url:
        started = time.monotonic()
        with pytest.raises(PermanentError) as caught:
            own_model(org, url).generate_variants(REQUEST, timeout=3)

    assert caught.value.code == "too_large"
    assert "larger than" in caught.value.message
    assert time.monotonic() - started < 1


def test_a_reply_that_grows_past_the_cap_is_cut_off_as_it_arrives(org, monkeypatch):
    monkeypatch.setattr(http, "MAX_REPLY_BYTES", 256 * 1024)

    def answer(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")  # no length: until closed
        for _ in range(64):
            conn.sendall(b" " * 65536)  # 4 MB, then silence
        hold(conn)

    with serving(answer) as url:
        started = time.monotonic()
        with pytest.raises(PermanentError) as caught:
            own_model(org, url).generate_variants(REQUEST, timeout=3)

    assert caught.value.code == "too_large"
    assert time.monotonic() - started < 1


def test_a_reply_as_large_as_the_cap_is_read_whole(org, monkeypatch):
    body = json.dumps(variants_completion(["A mug on linen", "A mug on slate"])).encode()
    padded = body + b" " * 100_000  # still one JSON document
    monkeypatch.setattr(http, "MAX_REPLY_BYTES", len(padded))

    with serving(answering(padded)) as url:
        result = own_model(org, url).generate_variants(REQUEST, timeout=3)

    assert result.variants == ("A mug on linen", "A mug on slate")


def test_the_cap_leaves_room_for_an_image_sent_inline_as_base64():
    """Gemini's image models answer generateContent with the image inline, base64-encoded
    (PROVIDERS.md §3.1); a 4K PNG is some 25 MB."""
    assert http.MAX_REPLY_BYTES >= 25 * 1024 * 1024 * 4 // 3 + 64 * 1024


# --- The time a call takes, as a whole --------------------------------------------------------


def test_a_provider_trickling_its_headers_is_cut_off_at_the_timeout(org):
    def answer(conn):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        drip(conn, b"X-Slow: " + b"a" * 40 + b"\r\n", seconds=5)
        conn.sendall(b"Content-Length: 2\r\n\r\n{}")

    with serving(answer) as url:
        started = time.monotonic()
        with pytest.raises(RetryableError) as caught:
            own_model(org, url).generate_variants(REQUEST, timeout=0.5)

    assert caught.value.code == "timeout"
    assert time.monotonic() - started < 1


def test_after_a_call_is_cut_off_the_next_one_gets_a_fresh_connection(org):
    ports = []

    def answer(conn):
        ports.append(conn.getpeername()[1])
        if len(ports) == 1:
            read_request(conn)
            drip(conn, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: a\r\n" * 20, seconds=5)
            return
        answering(json.dumps(variants_completion(["One", "Two"])).encode())(conn)

    with serving(answer) as url:
        model = own_model(org, url)
        with pytest.raises(RetryableError):
            model.generate_variants(REQUEST, timeout=0.3)
        result = model.generate_variants(REQUEST, timeout=2)

    assert result.variants == ("One", "Two")
    assert len(ports) == 2 and ports[0] != ports[1]


# --- Reading the model's answer ---------------------------------------------------------------

HOSTILE_ANSWERS = {
    "brackets after a word": "x" + "[" * 20_000,
    "a fence never closed": "```" + "a" * 20_000,
    "an array of escaped quotes": '["' + '\\"' * 10_000,
    "objects never closed": "Here you go: " + '{"a": [1, ' * 2_000,
}


@pytest.mark.parametrize("content", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_a_hostile_answer_is_read_in_a_moment(org, content):
    """Each of these took from seconds to minutes of CPU, whatever the provider's timeout."""
    with serving(answering(completion(content))) as url:
        model = own_model(org, url)
        started = time.thread_time()
        with contextlib.suppress(InvalidOutput):  # refused or salvaged: either, promptly
            model.generate_variants(REQUEST, timeout=2)

    assert time.thread_time() - started < 1


@pytest.mark.parametrize("content", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
def test_a_hostile_image_description_is_read_in_a_moment(org, content):
    with serving(answering(completion(content))) as url:
        model = own_model(org, url, adapter="openai-vision")
        started = time.thread_time()
        with contextlib.suppress(InvalidOutput):
            model.describe(png_bytes(), timeout=2)

    assert time.thread_time() - started < 1


# Real answers are a few KB; 100 KB of brackets took over ten minutes to read.
TOO_LONG = completion("x" + "[" * 100_000)


def test_an_answer_longer_than_any_real_one_is_refused_unread(org):
    with serving(answering(TOO_LONG)) as url:
        model = own_model(org, url)
        started = time.thread_time()
        with pytest.raises(InvalidOutput) as caught:
            model.generate_variants(REQUEST, timeout=2)

    assert caught.value.code == "too_long"
    assert time.thread_time() - started < 1


def test_an_image_description_longer_than_any_real_one_is_refused_unread(org):
    with serving(answering(TOO_LONG)) as url:
        model = own_model(org, url, adapter="openai-vision")
        started = time.thread_time()
        with pytest.raises(InvalidOutput) as caught:
            model.describe(png_bytes(), timeout=2)

    assert caught.value.code == "too_long"
    assert time.thread_time() - started < 1
