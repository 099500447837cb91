"""The one egress policy for every outbound call: provider APIs, uploads and result downloads.

Every URL a tenant can influence (a provider's base URL, an upload host, a result URL a provider
reports) is fetched with `fetch()` through `session()`, which

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

`fetch()` bounds each call as a whole: a time limit from the connect to the last byte of the body
(connect, TLS handshake, sending, headers, body), and a size limit on the body. Socket timeouts
alone cannot do that: they bound each read, so a server sending a byte at a time could hold a
call for as long as it liked. A watchdog thread shuts the socket of a call down when its time is
up.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES, InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(requests.RequestException):
    """The policy refused the destination. The message is safe to show to an admin: it names the
    rule, never what lies behind the address (no port-scan oracle)."""


class TimedOut(requests.Timeout):
    """The call as a whole took longer than its time limit (fetch)."""


class TooLarge(requests.RequestException):
    """The body is larger than the caller's size limit (fetch); it was not read."""


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


# --- The watchdog: a time limit on a call as a whole -------------------------------------------


class _Call:
    """One bounded call in flight: its deadline and the sockets it uses."""

    __slots__ = ("connections", "deadline", "done", "expired", "sockets")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False  # the watchdog cut it off
        self.done = False
        self.sockets: list[socket.socket] = []  # duplicates of the connections' descriptors
        self.connections: list[HTTPConnection] = []


class _Watchdog:
    """One daemon thread per process, asleep until the earliest deadline of the calls in flight.
    When a call's time is up it shuts its sockets down: whatever the call is blocked in (connect
    done, TLS handshake, sending, reading headers or body) returns at once with an error or an
    end of file, and fetch() reports the timeout.

    It holds a duplicate of each socket's descriptor, not the socket object: shutting the
    duplicate down cuts the connection for every descriptor of it, whatever became of the
    object (ssl detaches the plain socket it wraps; urllib3 may close it meanwhile), and the
    duplicate cannot be closed and its number reused by another connection while it is held.
    Each call closes its duplicates when it ends, under the same lock as the shutdown."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, _Call]] = []
        self._order = itertools.count()  # ties in deadline never compare calls
        self._live = 0
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> _Call:
        call = _Call(time.monotonic() + seconds)
        with self._lock:
            heapq.heappush(self._heap, (call.deadline, next(self._order), call))
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="egress-watchdog", daemon=True
                )
                self._thread.start()
            self._lock.notify()
        return call

    def watch(self, call: _Call, connection: HTTPConnection, sock: socket.socket) -> None:
        with self._lock:
            if call.done:
                return
            watched = socket.fromfd(sock.fileno(), sock.family, sock.type, sock.proto)
            call.sockets.append(watched)
            call.connections.append(connection)
            if call.expired:
                _cut(watched)

    def end(self, call: _Call) -> bool:
        """Stop watching `call`; whether its time ran out first."""
        with self._lock:
            if not call.done:
                call.done = True
                self._live -= 1
                for watched in call.sockets:
                    watched.close()
                call.sockets.clear()
                if len(self._heap) > 2 * self._live + 64:  # ended calls wait for their turn
                    self._heap = [entry for entry in self._heap if not entry[2].done]
                    heapq.heapify(self._heap)
            return call.expired

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._lock.wait()
                    continue
                left = self._heap[0][0] - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                call = heapq.heappop(self._heap)[2]
                call.expired = True
                for watched in call.sockets:
                    _cut(watched)


def _cut(watched: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer is gone already
        watched.shutdown(socket.SHUT_RDWR)


_watchdog = _Watchdog()


def _new_watchdog() -> None:
    """A forked child has no watchdog thread (and perhaps a lock held by another thread)."""
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_new_watchdog)


def _watch(connection: HTTPConnection, sock: socket.socket, *, new: bool) -> None:
    call: _Call | None = getattr(_local, "call", None)
    if call is None or (not new and connection in call.connections):
        return
    _watchdog.watch(call, connection, sock)


class _WatchedConnection(HTTPConnection):
    """A connection whose socket the bounded call running on this thread (fetch) watches: a new
    one as soon as it is connected, before any TLS handshake; a pooled one when it is reused."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(self, sock, new=True)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:
            _watch(self, self.sock, new=False)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# --- The session --------------------------------------------------------------------------------


class _PinnedAdapter(IPFilterAdapter):
    """requests-hardened resolves the host once, refuses private addresses and pins the
    connection to the address it checked; we re-check that very address with the stricter rule
    above (reserved, multicast, non-global), and allow loopback only with the development
    allowance."""

    def __init__(self, *, is_https: bool, allow_loopback: bool) -> None:
        super().__init__(is_https_proto=is_https, allow_loopback=allow_loopback)
        self.allow_loopback = allow_loopback

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {  # connections the watchdog can cut
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }

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


_this_threads_session = session  # for fetch(), whose `session` argument hides the name


# --- Bounded calls --------------------------------------------------------------------------------

CHUNK = 65536


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def fetch(
    method: str,
    url: str,
    *,
    seconds: float,
    max_bytes: int,
    connect_seconds: float = 5.0,
    session: requests.Session | None = None,
    **kwargs: Any,
) -> Reply:
    """One call through the egress policy (`session`, by default this thread's), bounded as a
    whole: `seconds` from the start to the body's last byte, whatever the server does, and
    `max_bytes` of body (a larger declared length is refused before the body is read, a body
    that grows past it is cut off as it does). Redirects are not followed: a 3xx is a reply.

    Raises TimedOut, TooLarge, EgressRefused, or another requests.RequestException for any
    other network failure (also those of the body's reads, which requests does not wrap). Name
    resolution, before the connect, is bounded by the resolver's own timeouts."""
    if seconds <= 0:
        raise TimedOut("No time was left for the call.")
    call = _watchdog.start(seconds)
    outer, _local.call = getattr(_local, "call", None), call
    try:
        reply = _fetch(
            session or _this_threads_session(),
            method,
            url,
            timeout=(min(connect_seconds, seconds), seconds),
            max_bytes=max_bytes,
            **kwargs,
        )
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        if _end(call, outer):  # whatever broke, the watchdog broke it
            raise TimedOut(f"The call took longer than {seconds:g} s.") from None
        if isinstance(exc, requests.RequestException):
            raise
        if isinstance(exc, urllib3.exceptions.TimeoutError):
            raise requests.Timeout(type(exc).__name__) from None
        raise requests.ConnectionError(type(exc).__name__) from None
    finally:
        _end(call, outer)
    if call.expired:  # an end of file the watchdog caused looks like the end of the body
        raise TimedOut(f"The call took longer than {seconds:g} s.")
    return reply


def _fetch(
    session: requests.Session, method: str, url: str, *, max_bytes: int, **kwargs: Any
) -> Reply:
    with session.request(method, url, stream=True, allow_redirects=False, **kwargs) as response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLarge(f"The body is larger than {max_bytes} bytes.")
        chunks, size = [], 0
        while chunk := response.raw.read1(CHUNK, decode_content=True):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"The body is larger than {max_bytes} bytes.")
            chunks.append(chunk)
    # After a whole body urllib3 has put the connection back in its pool, for the next call.
    return Reply(response.status_code, response.headers, b"".join(chunks))


def _end(call: _Call, outer: _Call | None) -> bool:
    """Stop watching `call`; whether its time ran out. Its connections are then closed: one
    may be back in the pool already, its socket shut down."""
    _local.call = outer
    expired = _watchdog.end(call)
    if expired:
        for connection in call.connections:
            connection.close()
        call.connections.clear()
    return expired


def describe(exc: BaseException) -> str:
    """A short, fixed text for a network failure: the exception's class, never its message (which
    can echo addresses and remote text)."""
    if isinstance(exc, EgressRefused):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return f"network error ({type(exc).__name__})"
