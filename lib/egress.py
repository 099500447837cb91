"""The one egress policy for every outbound call: provider APIs, uploads and result downloads.

Every URL a tenant can influence (a provider's base URL, an upload host, a result URL a provider
reports) is fetched through `session()`, which

- accepts https only; plain http only with the development allowance and only to loopback;
- refuses URLs with credentials, and hosts that are or resolve to private, loopback, link-local,
  multicast, reserved or otherwise non-global addresses (IPv4 and IPv6, IPv4-mapped forms and the
  decimal / octal / hex spellings of an IPv4 address alike), and pins the connection to the address
  it vetted, so DNS cannot rebind between the check and the connect (requests-hardened);
- never follows redirects;
- sends a platform secret (a provider API key from the environment) only to the origins the
  platform configured for it, whatever the URL, header or body it is found in.

The development allowance (`NERSTUDIO_EGRESS_ALLOW_LOOPBACK`) exists only with DEBUG on; the
settings refuse it otherwise. It opens loopback and nothing else: private networks stay closed.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES, InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(requests.RequestException):
    """The policy refused the destination. The message is safe to show to an admin: it names the
    rule, never what lies behind the address (no port-scan oracle)."""


# --- Addresses ----------------------------------------------------------------------------------


def is_forbidden_address(ip: IPAddress) -> bool:
    """Anything but a global unicast address: private, loopback, link-local (cloud metadata),
    multicast, reserved, shared (CG-NAT), documentation, translation ranges."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return True
    return any(ip in net for net in EXTRA_BLOCKED_NET_RANGES if net.version == ip.version)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including the forms C's inet_aton accepts
    (2130706433, 0177.0.0.1, 0x7f000001, 127.1); None for a DNS name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


# --- URLs -----------------------------------------------------------------------------------------


def origin(url: str) -> str:
    """scheme://host:port with the default port made explicit, lower-cased."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def check_url(url: str, *, allow_loopback: bool | None = None, base: bool = False) -> None:
    """Refuse a URL the policy forbids, without any network access. `base=True` also refuses a
    query or fragment (a base URL ending in `?x=` would choose any path on the host)."""
    if allow_loopback is None:
        allow_loopback = loopback_allowed()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise EgressRefused("The URL is not valid.") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise EgressRefused("Only https:// URLs are allowed.")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused("URLs may not carry a user name or password.")
    if base and (parts.query or parts.fragment or "?" in url or "#" in url):
        raise EgressRefused("A base URL may not have a query string or fragment.")
    address = literal_address(host)
    named_loopback = host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost")
    loopback = named_loopback or (address is not None and address.is_loopback)
    if parts.scheme == "http" and not (allow_loopback and loopback):
        raise EgressRefused("Only https:// URLs are allowed.")
    forbidden = named_loopback or (address is not None and is_forbidden_address(address))
    if forbidden and not (allow_loopback and loopback):
        raise EgressRefused(FORBIDDEN_ADDRESS)


FORBIDDEN_ADDRESS = "The address is private, loopback, link-local or reserved; it is not allowed."


def loopback_allowed() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "NERSTUDIO_EGRESS_ALLOW_LOOPBACK", False))


# --- Platform secrets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformSecret:
    value: str
    origins: frozenset[str]
    label: str  # "the kie.ai platform key", for messages and logs


def endpoint_origins(*urls: str) -> frozenset[str]:
    """The origins of an account's endpoints: where its key may be sent."""
    return frozenset(origin(url) for url in urls if url)


def platform_secrets() -> tuple[PlatformSecret, ...]:
    """The platform's provider keys and where each may go, from the settings the operator set
    (NERSTUDIO_PLATFORM_ACCOUNTS; providers.platform reads the same)."""
    from django.conf import settings

    return tuple(
        PlatformSecret(
            account["api_key"],
            endpoint_origins(account["base_url"], account.get("upload_base_url", "")),
            f"the {account['label']} platform key",
        )
        for account in settings.NERSTUDIO_PLATFORM_ACCOUNTS.values()
        if account.get("api_key")
    )


def _texts(request: requests.PreparedRequest) -> Iterable[str | bytes]:
    yield request.url or ""
    yield from (str(v) for v in request.headers.values())
    body = request.body
    if isinstance(body, str | bytes):
        yield body


def check_secrets(request: requests.PreparedRequest, secrets: Iterable[PlatformSecret]) -> None:
    """A platform secret goes only to its own origins, wherever in the request it is."""
    destination = origin(request.url or "")
    for secret in secrets:
        if destination in secret.origins:
            continue
        needle = secret.value
        for text in _texts(request):
            found = needle.encode() in text if isinstance(text, bytes) else needle in text
            if found:
                logger.error(
                    "Refused to send %s to %s (allowed: %s)",
                    secret.label,
                    destination,
                    ", ".join(sorted(secret.origins)),
                )
                raise EgressRefused(
                    f"Refused: {secret.label} may only be sent to the platform's own endpoint."
                )


# --- The session --------------------------------------------------------------------------------


class _PinnedAdapter(IPFilterAdapter):
    """requests-hardened resolves the host once, refuses private addresses and pins the
    connection to the address it checked; we re-check that very address with the stricter rule
    above (reserved, multicast, non-global), and allow loopback only with the development
    allowance."""

    def __init__(self, *, is_https: bool, allow_loopback: bool) -> None:
        super().__init__(is_https_proto=is_https, allow_loopback=allow_loopback)
        self.allow_loopback = allow_loopback

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        try:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(
                request, verify, cert
            )
        except InvalidIPAddress:
            raise EgressRefused(FORBIDDEN_ADDRESS) from None
        pinned = ipaddress.ip_address(host_params["host"].strip("[]"))
        loopback_ok = self.allow_loopback and pinned.is_loopback
        if is_forbidden_address(pinned) and not loopback_ok:
            raise EgressRefused(FORBIDDEN_ADDRESS)
        if not self._is_https_proto and not loopback_ok:
            raise EgressRefused("Only https:// URLs are allowed.")
        return host_params, pool_kwargs


class EgressSession(requests.Session):
    def __init__(self, *, allow_loopback: bool) -> None:
        super().__init__()
        self.allow_loopback = allow_loopback
        self.trust_env = False  # no proxies or netrc credentials from the environment
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keep no cookies
        self.mount("https://", _PinnedAdapter(is_https=True, allow_loopback=allow_loopback))
        self.mount("http://", _PinnedAdapter(is_https=False, allow_loopback=allow_loopback))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        check_url(request.url or "", allow_loopback=self.allow_loopback)
        check_secrets(request, platform_secrets())
        kwargs["allow_redirects"] = False
        if not kwargs.get("timeout"):
            kwargs["timeout"] = (5, 30)
        return super().send(request, **kwargs)


_local = threading.local()


def session() -> EgressSession:
    """This thread's session (connections are reused; sessions are not shared across threads).
    A change of the loopback allowance (tests) gives a new one."""
    allow = loopback_allowed()
    current = getattr(_local, "session", None)
    if current is None or current.allow_loopback != allow:
        current = _local.session = EgressSession(allow_loopback=allow)
    return current


def describe(exc: BaseException) -> str:
    """A short, fixed text for a network failure: the exception's class, never its message (which
    can echo addresses and remote text)."""
    if isinstance(exc, EgressRefused):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return f"network error ({type(exc).__name__})"
