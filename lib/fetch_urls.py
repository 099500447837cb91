"""URLs for machines: a client without a session (an image provider fetching a product photo, the
pipeline downloading the local provider's result) may GET one stored file, and nothing else, until
the URL expires. With a bucket (R2/S3) this is a presigned URL; without one, a URL to the
`gallery:signed-file` view whose token is signed over the exact storage name and its lifetime —
the local equivalent of a presigned URL.

When such a URL comes back to us (the local provider reporting its result), `own_file` names the
file so it is read from storage instead of fetched from ourselves over HTTP."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse
from storages.backends.s3 import S3Storage

FETCH_SALT = "nerstudio.gallery.media.fetch"  # unchanged: URLs already handed out stay valid


def storage_presigns() -> bool:
    """True when files live in a bucket that can issue presigned URLs (R2/S3)."""
    return isinstance(default_storage, S3Storage)


def fetch_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=FETCH_SALT)


def fetch_url(name: str, *, expires: int | None = None) -> str:
    """An absolute URL with which a client without a session may GET the stored file `name`, and
    nothing else, for `expires` seconds (default NERSTUDIO_FETCH_URL_EXPIRY)."""
    expires = expires or settings.NERSTUDIO_FETCH_URL_EXPIRY
    storage = default_storage
    if isinstance(storage, S3Storage):  # as storage_presigns() says
        return storage.url(name, expire=expires)
    token = fetch_signer().sign_object({"name": name, "ttl": expires})
    return settings.NERSTUDIO_PUBLIC_URL + reverse("gallery:signed-file", args=[token])


def fetched_name(token: str) -> str:
    """The storage name a `fetch_url` token grants, or signing.BadSignature once it is forged,
    tampered with or expired."""
    signer = fetch_signer()
    try:
        claim = signer.unsign_object(token)  # the signature, which covers the lifetime…
        signer.unsign_object(token, max_age=claim["ttl"])  # …then the age against it
        return claim["name"]
    except (KeyError, TypeError):
        raise signing.BadSignature("The token names no file.") from None


def own_file(url: str) -> str | None:
    """The storage name behind one of our own signed `fetch_url`s that is still valid, else None
    (anything else, including a forged, tampered or expired token, is an ordinary URL)."""
    if not url.startswith(settings.NERSTUDIO_PUBLIC_URL + "/"):
        return None
    prefix = urlsplit(reverse("gallery:signed-file", args=["-"])).path.removesuffix("-/")
    path = urlsplit(url).path
    if not path.startswith(prefix) or urlsplit(url).query:
        return None
    token = path.removeprefix(prefix).removesuffix("/")
    try:
        return fetched_name(token)
    except signing.BadSignature:
        return None
