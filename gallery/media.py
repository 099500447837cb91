"""Generated images leave the server through these views: the image, its thumbnail, and zips
of a generation, of a selection or of the whole organization. Each checks that the signed-in
person may see the image (gallery.search.visible_images); everyone else — anonymous visitors,
other organizations, other members — gets 404, never a sign-in redirect or 403, so a URL reveals
nothing about what exists. (The organization's zip has one fixed URL, which names nothing: it is
an admin's page like the others, 403 to members.) lib.serving then hands the file over (a
presigned URL with a bucket, streamed without one).

Downloads are attachments named `<organization>-<prompt>-<n>.<ext>`; zips are streamed as they
are written, one stored file at a time, never built in memory.

Machines without a session (image providers fetching product photos, the pipeline downloading the
local provider's result) get a fetch URL (lib.fetch_urls): presigned with a bucket, otherwise a URL
to `signed_file` whose token is signed over the exact storage name and its lifetime.
"""

import math
from collections.abc import Iterable
from pathlib import PurePosixPath

from django.contrib import messages
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_POST, require_safe
from zipstream import ZIP_STORED, ZipStream

from gallery.search import visible_images
from generation.models import Generation, GenerationImage
from lib import ratelimit
from lib.fetch_urls import fetched_name
from lib.serving import file_response, serve_file
from orgs.access import org_admin_required, org_member_or_404

MAX_ZIP_IMAGES = 200  # a selection larger than this is refused (the grid selects at most a page)
ARCHIVES_PER_HOUR = 3  # whole-organization zips, per organization
ZIP_CHUNK = 256 * 1024


@require_safe
def signed_file(request, token):
    """The file a fetch URL's token names, while the token lasts. No session, no other check:
    the signature is the permission."""
    try:
        name = fetched_name(token)
    except signing.BadSignature as exc:
        raise Http404 from exc
    response = file_response(name, filename=PurePosixPath(name).name, download=False)
    response["Cache-Control"] = "private, no-store"
    return response


def _done_images(membership):
    return (
        visible_images(membership)
        .filter(status=GenerationImage.Status.DONE)
        .exclude(file="")
        .select_related("generation__org")
    )


def org_slug(org) -> str:
    return slugify(org.name)[:32].strip("-") or "ner-studio"


def download_stem(generation: Generation) -> str:
    """`<organization>-<prompt>`: how a generation's downloads begin."""
    return f"{org_slug(generation.org)}-{slugify(generation.prompt)[:48].strip('-') or 'image'}"


def image_filename(image: GenerationImage, name: str, *, suffix: str = "") -> str:
    """`<organization>-<prompt>-<n>[-suffix].<ext>`: what a download is saved as."""
    parts = [download_stem(image.generation), str(image.index + 1), *([suffix] if suffix else [])]
    return "-".join(parts) + PurePosixPath(name).suffix.lower()


@require_safe
@org_member_or_404
def image_file(request, public_id):
    """The image, inline; `?download=1` makes it an attachment."""
    image = get_object_or_404(_done_images(request.membership), public_id=public_id)
    return serve_file(
        image.file.name,
        filename=image_filename(image, image.file.name),
        download=request.GET.get("download") == "1",
    )


@require_safe
@org_member_or_404
def image_thumbnail(request, public_id):
    """The image's thumbnail, or the image itself while it has none (a generated image's
    thumbnail is made just after it is done): not to be cached then, so the browser asks again."""
    image = get_object_or_404(_done_images(request.membership), public_id=public_id)
    name = image.thumbnail.name or image.file.name
    suffix = "thumbnail" if image.thumbnail else ""
    response = serve_file(name, filename=image_filename(image, name, suffix=suffix))
    if not image.thumbnail:
        response["Cache-Control"] = "private, no-store"
    return response


@require_safe
@org_member_or_404
def generation_zip(request, public_id):
    """The finished images of a generation that the person may see (all of their own; a
    colleague's that are in a collection), as one zip."""
    generation = get_object_or_404(
        Generation.objects.for_org(request.org).select_related("org"), public_id=public_id
    )
    images = list(_done_images(request.membership).filter(generation=generation).order_by("index"))
    if not images:
        raise Http404
    return _zip_response(images, f"{download_stem(generation)}.zip")


@require_POST
@org_member_or_404
def selection_zip(request):
    """The selected images (posted `images` ids, from the gallery's selection) as one zip. Every
    id must be an image the person may see: one that is not makes the whole request a 404."""
    wanted = set(request.POST.getlist("images"))
    if not wanted or len(wanted) > MAX_ZIP_IMAGES:
        raise Http404
    try:
        images = list(
            _done_images(request.membership)
            .filter(public_id__in=wanted)
            .order_by("generation_id", "index")
        )
    except ValidationError as exc:  # a malformed id
        raise Http404 from exc
    if len(images) != len(wanted):
        raise Http404
    return _zip_response(images, f"{org_slug(request.org)}-{len(images)}-images.zip")


@require_safe
@org_admin_required
def organization_zip(request):
    """Every finished image of the organization, for its admins: to keep before deleting it, or
    as an archive. Each reads every stored image, so an organization gets ARCHIVES_PER_HOUR."""
    org = request.org
    images = _done_images(request.membership).order_by("generation_id", "index")
    if not images.exists():
        messages.info(request, "No finished images to download yet.")
        return redirect("workspace:settings")
    if wait := ratelimit.hit(f"org-archive:{org.pk}", limit=ARCHIVES_PER_HOUR, window=3600):
        minutes = math.ceil(wait / 60)
        messages.error(
            request,
            f"All of {org}'s images were downloaded {ARCHIVES_PER_HOUR} times this hour, the "
            f"most allowed; try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        )
        return redirect("workspace:settings")
    return _zip_response(images.iterator(chunk_size=2000), f"{org_slug(org)}-images.zip")


def _zip_response(images: Iterable[GenerationImage], filename: str) -> StreamingHttpResponse:
    archive = ZipStream(compress_type=ZIP_STORED)  # images are compressed already
    used: set[str] = set()
    for image in images:
        name = image_filename(image, image.file.name)
        if name in used:  # the same prompt in two generations
            name = image_filename(image, image.file.name, suffix=image.public_id.hex[:8])
        used.add(name)
        archive.add(_chunks(image.file.name), name)
    response = StreamingHttpResponse(archive, content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _chunks(name: str):
    """A stored file, read a chunk at a time when the zip gets to it."""
    with default_storage.open(name, "rb") as fh:
        while chunk := fh.read(ZIP_CHUNK):
            yield chunk
