"""Private media: every stored file leaves the server through one of these views.

Browsers ask an access-checked view per kind of file: a generated image, its thumbnail, or an
uploaded product/reference image of a generation. A member may fetch the files of the generations
visible to them (admins: the organization's, members: their own); everyone else — anonymous
visitors, other organizations, other members — gets 404, never a sign-in redirect or 403, so a
URL reveals nothing about what exists. With a bucket (R2/S3) the view then redirects to a
presigned URL issued for this request only, living NERSTUDIO_MEDIA_URL_EXPIRY seconds; without
one it streams the file itself.

Machines without a session (image providers fetching product photos, the pipeline downloading the
local provider's result) get `fetch_url`: a presigned URL with a bucket, otherwise a URL to
`signed_file` whose token is signed over the exact storage name and its lifetime — the local
equivalent of a presigned URL, valid for that one file until it expires.
"""

from functools import wraps
from pathlib import PurePosixPath

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_safe

from generation.models import Generation, GenerationImage
from lib.fetch_urls import fetched_name, storage_presigns
from orgs.access import get_membership

CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}


@require_safe
def signed_file(request, token):
    """The file a `fetch_url` token names, while the token lasts. No session, no other check:
    the signature is the permission."""
    try:
        name = fetched_name(token)
    except signing.BadSignature as exc:
        raise Http404 from exc
    response = _file_response(name, filename=PurePosixPath(name).name, download=False)
    response["Cache-Control"] = "private, no-store"
    return response


# --- Views for members ----------------------------------------------------------------------------


def _member_or_404(view):
    """Like orgs.access.org_member_required, but outsiders (anonymous visitors, users without an
    organization) get 404: a file URL must not reveal that it exists."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        membership = get_membership(request)
        if membership is None:
            raise Http404
        request.membership = membership
        request.org = membership.org
        return view(request, *args, **kwargs)

    return wrapper


def _visible_image(membership, public_id) -> GenerationImage:
    images = GenerationImage.objects.select_related("generation").filter(
        status=GenerationImage.Status.DONE,
        generation__in=Generation.objects.visible_to(membership),
    )
    return get_object_or_404(images.exclude(file=""), public_id=public_id)


def image_filename(image: GenerationImage, name: str, *, suffix: str = "") -> str:
    """`ner-studio-<prompt-slug>-<n>[-suffix].<ext>`, what a download is saved as."""
    slug = slugify(image.generation.prompt)[:48].strip("-") or "image"
    parts = ["ner-studio", slug, str(image.index + 1), *([suffix] if suffix else [])]
    return "-".join(parts) + PurePosixPath(name).suffix.lower()


@require_safe
@_member_or_404
def image_file(request, public_id):
    image = _visible_image(request.membership, public_id)
    return _serve(request, image.file.name, filename=image_filename(image, image.file.name))


@require_safe
@_member_or_404
def image_thumbnail(request, public_id):
    """The image's thumbnail, or the image itself when it has none."""
    image = _visible_image(request.membership, public_id)
    name = image.thumbnail.name or image.file.name
    suffix = "thumbnail" if image.thumbnail else ""
    return _serve(request, name, filename=image_filename(image, name, suffix=suffix))


@require_safe
@_member_or_404
def source_file(request, public_id, sha256):
    """An uploaded image, through a visible generation that uses it as a product or reference."""
    generation = get_object_or_404(
        Generation.objects.visible_to(request.membership), public_id=public_id
    )
    source, role = generation.products.filter(sha256=sha256).first(), "product"
    if source is None:
        source, role = generation.references.filter(sha256=sha256).first(), "reference"
    if source is None:
        raise Http404
    suffix = PurePosixPath(source.file.name).suffix.lower()
    return _serve(
        request, source.file.name, filename=f"ner-studio-{role}-{source.sha256[:12]}{suffix}"
    )


# --- Responses ------------------------------------------------------------------------------------


def _content_type(name: str) -> str | None:
    return CONTENT_TYPES.get(PurePosixPath(name).suffix.lower())


def _serve(request, name: str, *, filename: str):
    """Redirect to a presigned URL issued now (bucket), or stream the file (local storage).
    `?download=1` asks for an attachment instead of inline display."""
    download = request.GET.get("download") == "1"
    if storage_presigns():
        return _presigned_redirect(name, filename=filename, download=download)
    response = _file_response(name, filename=filename, download=download)
    patch_cache_control(response, private=True, max_age=settings.NERSTUDIO_MEDIA_URL_EXPIRY)
    return response


def _presigned_redirect(name: str, *, filename: str, download: bool) -> HttpResponseRedirect:
    content_type = _content_type(name)
    parameters = {
        "ResponseContentDisposition": content_disposition_header(
            download or content_type is None, filename
        ),
        "ResponseContentType": content_type or "application/octet-stream",
    }
    url = default_storage.url(
        name, parameters=parameters, expire=settings.NERSTUDIO_MEDIA_URL_EXPIRY
    )
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = "private, no-store"  # the URL is this request's, not a shared one
    return response


def _file_response(name: str, *, filename: str, download: bool) -> FileResponse:
    """The file with a forced, safe Content-Type: anything that is not one of our image formats
    is an octet-stream attachment, never something a browser would render."""
    content_type = _content_type(name)
    try:
        fh = default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = FileResponse(
        fh,
        as_attachment=download or content_type is None,
        filename=filename,
        content_type=content_type or "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
