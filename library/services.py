"""What changes the brand library: images coming in (once per organization by content hash),
being used, named, tagged, archived and deleted."""

import math
import re
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from lib import ratelimit
from library.models import SourceImage, Tag, source_image_path, source_thumbnail_path
from library.uploads import CheckedUpload, ValidatedImage
from orgs.models import Membership, Organization

MAX_TAGS = 12


class LibraryError(Exception):
    """A refused library change, with a message safe to show."""


def check_upload_budget(membership: Membership, uploads: Sequence[CheckedUpload]) -> None:
    """Count the uploads' megapixels (from their headers) against the member's and the
    organization's decoding budget per minute, or raise a ValidationError saying when to try
    again: decoding is what an upload costs, and a small file can declare many pixels."""
    megapixels = sum(math.ceil(u.width * u.height / 1_000_000) for u in uploads)
    if not megapixels:
        return
    budgets = [
        (
            f"member:{membership.user_id}",
            settings.NERSTUDIO_UPLOAD_MEGAPIXELS_PER_MEMBER_PER_MINUTE,
        ),
        (f"org:{membership.org_id}", settings.NERSTUDIO_UPLOAD_MEGAPIXELS_PER_ORG_PER_MINUTE),
    ]
    for key, limit in budgets:
        if wait := ratelimit.hit(f"uploads:{key}", limit=limit, window=60, cost=megapixels):
            raise ValidationError(
                "Too many images uploaded in the last minute; try again in %(wait)d s.",
                code="upload_budget",
                params={"wait": wait},
            )


def store_image(*, org: Organization, user, image: ValidatedImage) -> SourceImage:
    """The library entry for `image` (re-encoded by library.uploads.ingest_image): created on
    first upload, reused after, brought back (files and all) if it had been deleted. Files are
    saved outside any transaction; names are content hashes, so a concurrent upload of the same
    bytes keeps one copy."""
    probe = SourceImage(org=org, sha256=image.sha256, format=image.format)
    name = _save_once(source_image_path(probe, ""), image.content())
    thumbnail = _save_once(source_thumbnail_path(probe, ""), ContentFile(image.thumbnail))
    try:
        source, created = SourceImage.objects.get_or_create(
            org=org,
            sha256=image.sha256,
            defaults={
                "file": name,
                "thumbnail": thumbnail,
                "format": image.format,
                "width": image.width,
                "height": image.height,
                "size": image.size,
                "original_name": image.name[:200],
                "uploaded_by": user,
            },
        )
    except IntegrityError:
        if Organization.is_gone(org.pk):
            # Deleted meanwhile (orgs.middleware): its files were listed without these.
            default_storage.delete(name)
            default_storage.delete(thumbnail)
        raise
    if not created and (source.is_deleted or not source.file):
        SourceImage.objects.filter(pk=source.pk).update(
            file=name, thumbnail=thumbnail, deleted_at=None, archived_at=None
        )
        source.refresh_from_db()
    return source


def _save_once(name: str, content) -> str:
    if not default_storage.exists(name):
        saved = default_storage.save(name, content)
        if saved != name:  # the same bytes arrived concurrently: keep one copy
            default_storage.delete(saved)
    return name


def mark_used(sources) -> None:
    """Recent first: the library and the picker list what was used last at the top."""
    SourceImage.objects.filter(pk__in=[s.pk for s in sources]).update(last_used_at=timezone.now())


def parse_tags(text: str) -> list[str]:
    """Tags from what an admin typed: separated by commas, trimmed, lower case, each once."""
    tags = [re.sub(r"\s+", " ", t).strip().lower()[:40] for t in text.split(",")]
    unique = list(dict.fromkeys(t for t in tags if t))
    if len(unique) > MAX_TAGS:
        raise LibraryError(f"At most {MAX_TAGS} tags per image.")
    return unique


@transaction.atomic
def describe_image(*, image: SourceImage, name: str, tags: list[str]) -> SourceImage:
    """Name and tag a library image (tags are shared by the organization's images)."""
    image.name = name.strip()[:120]
    image.save(update_fields=["name"])
    for tag in tags:
        Tag.objects.get_or_create(org_id=image.org_id, name=tag)
    image.tags.set(Tag.objects.filter(org_id=image.org_id, name__in=tags))
    _drop_unused_tags(image.org_id)
    return image


def _drop_unused_tags(org_id: int) -> None:
    """The library offers no tag that no image has (a deleted image keeps none)."""
    Tag.objects.filter(org_id=org_id, images=None).delete()


def archive_image(*, image: SourceImage) -> None:
    """Hidden from Generate's picker and the library's default view; past generations, Reuse and
    Again still use it."""
    SourceImage.objects.filter(pk=image.pk).update(archived_at=timezone.now())


def restore_image(*, image: SourceImage) -> None:
    SourceImage.objects.filter(pk=image.pk).update(archived_at=None)


def delete_image(*, image: SourceImage) -> None:
    """Remove the files for good. The row stays, without files, so past generations' pages still
    say what they used ("deleted from the library"); uploading the same image again brings it
    back. Refused while a generation that uses it is still running."""
    # Generations use library images (generation.models: products, references); one that has
    # not finished may still send this image to its provider.
    running = SourceImage.objects.filter(pk=image.pk).filter(
        Q(used_as_product__isnull=False, used_as_product__finished_at__isnull=True)
        | Q(used_as_reference__isnull=False, used_as_reference__finished_at__isnull=True)
    )
    if running.exists():
        raise LibraryError(
            "A generation that uses this image is still running; delete it once it has finished."
        )
    files = [f.name for f in (image.file, image.thumbnail) if f and f.name]
    with transaction.atomic():
        SourceImage.objects.filter(pk=image.pk).update(
            file="", thumbnail="", deleted_at=timezone.now()
        )
        image.tags.clear()
        _drop_unused_tags(image.org_id)
    for name in files:
        default_storage.delete(name)
