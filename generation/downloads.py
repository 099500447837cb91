"""Downloading provider results without becoming an SSRF proxy.

The URL a provider reports goes through the egress policy (lib.egress: https only, no private or
reserved addresses, the vetted address pinned, no redirects). On top: a size cap
(NERSTUDIO_RESULT_MAX_BYTES: a larger declared length is refused up front, a body growing past
it is cut off), a time limit on the download as a whole (TOTAL_SECONDS, from the connect to the
last byte, however slowly the server sends: egress.fetch), and the bytes must be a whole image
(_checked). Our own signed URLs (the local provider's results) are read from storage under the
same cap: no request to ourselves.
"""

import io

from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image
from requests import RequestException

from lib import egress, fetch_urls
from library.uploads import ALLOWED_FORMATS, max_pixels

CONNECT_TIMEOUT, TOTAL_SECONDS = 5, 60


class DownloadError(Exception):
    pass


def download_image(url: str) -> bytes:
    limit = settings.NERSTUDIO_RESULT_MAX_BYTES
    if (name := fetch_urls.own_file(url)) is not None:
        return _checked(_read_stored(name, limit))
    try:
        egress.check_url(url)
        reply = egress.fetch(
            "GET", url, seconds=TOTAL_SECONDS, max_bytes=limit, connect_seconds=CONNECT_TIMEOUT
        )
    except egress.TooLarge:
        raise DownloadError("the result is larger than allowed") from None
    except egress.TimedOut:
        raise DownloadError("the download took too long") from None
    except RequestException as exc:
        raise DownloadError(egress.describe(exc)) from None
    if reply.status != 200:
        raise DownloadError(f"the result URL answered HTTP {reply.status}")
    return _checked(reply.body)


def _read_stored(name: str, limit: int) -> bytes:
    try:
        with default_storage.open(name, "rb") as stored:
            data = stored.read(limit + 1)
    except OSError:
        raise DownloadError("the result file is missing") from None
    if len(data) > limit:
        raise DownloadError("the result is larger than allowed")
    return data


def _checked(data: bytes) -> bytes:
    """`data` if it is a whole PNG, JPEG or WebP image within the pixels an upload of its format
    may have (library.uploads.max_pixels: a tiny file can declare a huge image, and the thumbnail
    decodes it). A PNG's every chunk is checked against its CRC, which catches a cut or damaged
    file without decoding it (decoding is the thumbnail's work, later); a JPEG is decoded at 1/8
    scale, which reads its whole compressed stream at a fraction of the cost; a WebP is
    decoded."""
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            if image.width * image.height > max_pixels(image.format):
                raise DownloadError("the result has more pixels than allowed")
            if image.format == "PNG":
                image.verify()
            else:
                image.draft(image.mode, (1, 1))  # JPEG only; the others ignore it
                image.load()
    except DownloadError:
        raise
    except Exception:
        raise DownloadError("the result is not a PNG, JPEG or WebP image") from None
    return data
