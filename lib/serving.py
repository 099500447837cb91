"""Stored files leave the server one way: an access-checked view decides who may have the file,
then `serve_file` hands it over. With a bucket (R2/S3) that is a redirect to a presigned URL issued
for this request only, living NERSTUDIO_MEDIA_URL_EXPIRY seconds; without one the server streams
the file itself. Either way the Content-Type is forced to the image type the name says (anything
else is an octet-stream attachment), and `download=True` makes it an attachment named
`filename`."""

from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}


def content_type(name: str) -> str | None:
    return CONTENT_TYPES.get(PurePosixPath(name).suffix.lower())


def serve_file(name: str, *, filename: str, download: bool = False):
    """Redirect to a presigned URL issued now (bucket), or stream the file (local storage)."""
    storage = default_storage
    if isinstance(storage, S3Storage):  # as storage_presigns() says
        return _presigned_redirect(storage, name, filename=filename, download=download)
    response = file_response(name, filename=filename, download=download)
    patch_cache_control(response, private=True, max_age=settings.NERSTUDIO_MEDIA_URL_EXPIRY)
    return response


def _presigned_redirect(
    storage: S3Storage, name: str, *, filename: str, download: bool
) -> HttpResponseRedirect:
    kind = content_type(name)
    parameters = {
        "ResponseContentDisposition": content_disposition_header(
            download or kind is None, filename
        ),
        "ResponseContentType": kind or "application/octet-stream",
    }
    url = storage.url(name, parameters=parameters, expire=settings.NERSTUDIO_MEDIA_URL_EXPIRY)
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"  # the URL is this request's, not a shared one
    return response


def file_response(name: str, *, filename: str, download: bool) -> FileResponse:
    """The file streamed from storage with a forced, safe Content-Type."""
    kind = content_type(name)
    try:
        fh = default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = FileResponse(
        fh,
        as_attachment=download or kind is None,
        filename=filename,
        content_type=kind or "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
