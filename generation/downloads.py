"""Downloading provider results without becoming an SSRF proxy.

requests-hardened resolves the host, refuses private, loopback, link-local and reserved addresses
and pins the connection to the vetted IP (no DNS rebinding); redirects are refused. On top: https
only, a size cap while streaming, a total time limit, and the bytes must decode as an image.
"""

import io
import time
from urllib.parse import urlsplit

from django.conf import settings
from PIL import Image
from requests import RequestException, Timeout
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_SECONDS = 5, 30, 60


class DownloadError(Exception):
    pass


def _manager(allow_private: bool) -> Manager:
    return Manager(
        Config(
            ip_filter_enable=not allow_private,
            ip_filter_allow_loopback_ips=False,
            never_redirect=True,
            default_timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            user_agent_override="NER Studio result fetcher",
        )
    )


def download_image(url: str) -> bytes:
    allow_private = settings.NERSTUDIO_ALLOW_PRIVATE_DOWNLOADS
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise DownloadError("only https result URLs are accepted")
    limit = settings.NERSTUDIO_RESULT_MAX_BYTES
    started = time.monotonic()
    try:
        with (
            _manager(allow_private).get_session() as session,
            session.get(url, stream=True) as response,
        ):
            if response.status_code != 200:
                raise DownloadError(f"the result URL answered HTTP {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise DownloadError("the result is larger than allowed")
            chunks, size = [], 0
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > limit:
                    raise DownloadError("the result is larger than allowed")
                if time.monotonic() - started > TOTAL_SECONDS:
                    raise DownloadError("the download took too long")
                chunks.append(chunk)
    except RequestException as exc:
        raise DownloadError(_describe(exc)) from None
    data = b"".join(chunks)
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            image.verify()
    except Exception:
        raise DownloadError("the result is not a PNG, JPEG or WebP image") from None
    return data


def _describe(exc: RequestException) -> str:
    if isinstance(exc, InvalidIPAddress):
        return "the result URL points to a private or reserved address"
    if isinstance(exc, Timeout):
        return "the download timed out"
    return f"network error ({type(exc).__name__})"
