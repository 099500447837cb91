"""The one HTTP seam every adapter goes through, and reading what providers send back.

Every call goes through `lib.egress` (its session refuses private addresses, redirects and
platform keys sent elsewhere) and is bounded in time as a whole, from the connect to the body's
last byte, and in size: a reply is at most MAX_REPLY_BYTES.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from lib import egress

from .errors import InvalidOutput, PermanentError, ProviderError, RetryableError

USER_AGENT = "NER-Studio/0.1"
MAX_PROVIDER_MESSAGE = 200
# The largest reply we read: the result-download cap's default (NERSTUDIO_RESULT_MAX_BYTES), room
# for a 4K image sent inline as base64 in a JSON reply (Gemini's generateContent, PROVIDERS.md
# §3.1; a 25 MB PNG is 33 MB of base64). Real JSON replies are otherwise a few KB.
MAX_REPLY_BYTES = 40 * 1024 * 1024


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
    """One outgoing call for the provider `label`. `timeout` bounds the whole call (connect,
    sending, headers and body: egress.fetch), and the reply is at most MAX_REPLY_BYTES."""
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    try:
        reply = egress.fetch(
            method,
            url,
            seconds=timeout,
            max_bytes=MAX_REPLY_BYTES,
            session=session,
            headers=headers,
            **kwargs,
        )
    except egress.EgressRefused as exc:
        raise PermanentError(f"{label}: {exc}", code="egress") from None
    except egress.TooLarge:
        raise PermanentError(
            f"{label} sent a reply larger than {MAX_REPLY_BYTES // (1024 * 1024)} MB; "
            "it was not read.",
            code="too_large",
        ) from None
    except requests.Timeout:
        raise RetryableError(f"{label} timed out.", code="timeout") from None
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise RetryableError(f"Could not reach {label} ({reason}).", code="network") from None
    return HttpReply(reply.status, reply.headers, reply.body)


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
