"""The one HTTP seam every adapter goes through, and reading what providers send back.

Every call goes through `lib.egress` (its session refuses private addresses, redirects and
platform keys sent elsewhere) and is bounded in time as a whole, body download included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from lib import egress

from .errors import InvalidOutput, PermanentError, ProviderError, RetryableError

USER_AGENT = "NER-Studio/0.1"
MAX_PROVIDER_MESSAGE = 200


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """Parsed body, or None when it is not JSON (gateways answer errors with HTML)."""
        try:
            return loads(self.body)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def send(
    session: requests.Session, method: str, url: str, *, label: str, timeout: float, **kwargs: Any
) -> HttpReply:
    """One outgoing call for the provider `label`. `timeout` bounds the whole call, body
    download included.

    requests' read timeout only bounds each socket read, so a server trickling bytes could hold
    an attempt forever; we stream the body and stop at the deadline instead.
    """
    if timeout <= 0:
        raise RetryableError(f"{label} timed out.", code="timeout")
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    try:
        response = session.request(
            method,
            url,
            headers=headers,
            timeout=(min(5.0, timeout), timeout),
            stream=True,
            allow_redirects=False,
            **kwargs,
        )
        try:
            body = _read_until(response, deadline)
        finally:
            response.close()  # after a full read urllib3 has already pooled the connection
    except egress.EgressRefused as exc:
        raise PermanentError(f"{label}: {exc}", code="egress") from None
    # Body reads go straight to urllib3, whose errors requests does not wrap.
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        raise RetryableError(f"{label} timed out.", code="timeout") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        reason = type(exc).__name__
        raise RetryableError(f"Could not reach {label} ({reason}).", code="network") from None
    if body is None:
        raise RetryableError(f"{label} timed out.", code="timeout")
    return HttpReply(response.status_code, response.headers, body)


def _read_until(response: requests.Response, deadline: float) -> bytes | None:
    """The body, or None when the deadline passes first."""
    chunks: list[bytes] = []
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if sock is not None:
            sock.settimeout(remaining)  # no single read may outlive the deadline
        chunk = response.raw.read1(65536, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def loads(data: str | bytes) -> Any:
    """JSON from an untrusted source: ValueError for anything unparsable, including documents
    nested too deeply for the parser (which raises RecursionError) and bytes that are not UTF-8."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("The JSON is nested too deeply.") from None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def provider_message(text: Any, fallback: str) -> str:
    """A provider's own error text for admins, so they can act on it: one line, printable
    characters only, shortened. (Templates escape it; it is never a raw echo of the body.)"""
    if not isinstance(text, str) or not text.strip():
        return fallback
    text = " ".join("".join(c for c in text if c.isprintable() or c.isspace()).split())
    if not text:
        return fallback
    return text if len(text) <= MAX_PROVIDER_MESSAGE else text[: MAX_PROVIDER_MESSAGE - 1] + "…"


def image_mime_type(data: bytes) -> str:
    """Sniff the few formats the providers accept; anything else is sent as PNG-labelled bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "image/png"


REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "cf-ray")


def reply_details(reply: HttpReply) -> dict[str, Any]:
    """The HTTP status and the provider's request id of a reply, for an error's details."""
    lowered = {k.lower(): v for k, v in reply.headers.items()}
    request_id = next((lowered[h] for h in REQUEST_ID_HEADERS if lowered.get(h)), "")
    return {"status": reply.status, "request_id": str(request_id)[:200]}


def with_reply_details(error: ProviderError, reply: HttpReply) -> ProviderError:
    """`error` carrying the reply's HTTP status and request id, for admins."""
    details = reply_details(reply)
    error.status, error.request_id = details["status"], details["request_id"]
    return error


def first_item(payload: Any, key: str, what: str) -> dict[str, Any]:
    """The first object of the list under `key` (a chat completion's choices, generateContent's
    candidates), or InvalidOutput saying the answer was not `what`."""
    items = payload.get(key) if isinstance(payload, dict) else None
    first = items[0] if isinstance(items, list) and items else None
    if not isinstance(first, dict):
        raise InvalidOutput(f"The endpoint did not answer like {what}.", code="bad_response")
    return first
