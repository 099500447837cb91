"""Which generated images someone may see, and the gallery's search over them.

Who sees what: an organization's admins see all its images; a member sees their own and those in
the organization's collections (shared boards). Everything else is 404.

The gallery pages with a keyset ("load more" after the last image shown), never an OFFSET or an
exact COUNT, so a deep page costs what the first one does. Every filter and order is served by
one of the GenerationImage indexes (gallery_*), whose columns the queries below follow.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from gallery.models import CollectionItem, Favourite
from generation.models import GenerationImage

PAGE_SIZE = 30
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The largest number a cursor may hold: datetime.max in µs since EPOCH (also below a bigint).
CURSOR_MAX = (datetime.max.replace(tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
FINISHED = (GenerationImage.Status.DONE, GenerationImage.Status.FAILED)


def visible_images(membership) -> QuerySet[GenerationImage]:
    images = GenerationImage.objects.filter(org_id=membership.org_id)
    if membership.is_admin:
        return images
    shared = CollectionItem.objects.filter(image_id=OuterRef("pk"))  # boards are per org
    return images.filter(Q(user_id=membership.user_id) | Exists(shared))


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: (finished_at in µs, id) when flat, (generation id, index) when grouped."""

    first: int
    second: int

    def __str__(self) -> str:
        return f"{self.first}.{self.second}"

    @classmethod
    def parse(cls, text: str | None) -> "Cursor | None":
        """The cursor in a URL, or None (the first page) for anything that is not one."""
        first, _, second = (text or "").partition(".")
        if not (first.isdigit() and second.isdigit() and len(first) < 20 and len(second) < 20):
            return None
        if int(first) > CURSOR_MAX or int(second) > CURSOR_MAX:
            return None
        return cls(int(first), int(second))


@dataclass(frozen=True)
class GalleryQuery:
    """What the gallery's filter form asked for (gallery/forms.py); None means any."""

    everyone: bool = False  # admins: the organization's images, not only their own
    user_id: int | None = None  # admins: one member's
    provider_id: int | None = None
    status: str = GenerationImage.Status.DONE  # or FAILED, or "" for both
    since: date | None = None
    until: date | None = None  # inclusive
    favourites: bool = False
    collection_id: int | None = None
    text: str = ""
    grouped: bool = False


@dataclass(frozen=True)
class GalleryPage:
    images: Sequence[GenerationImage]
    next_cursor: Cursor | None


def find_images(membership, query: GalleryQuery, after: Cursor | None = None) -> GalleryPage:
    """One page of the images `membership` may see that match `query`, newest first (or by
    generation, newest first, each in its order), starting after `after`."""
    images = GenerationImage.objects.filter(org_id=membership.org_id)
    if query.collection_id is not None:
        # A shared board: everyone in the organization sees all of it.
        items = CollectionItem.objects.filter(collection_id=query.collection_id)
        images = images.filter(pk__in=items.values("image_id"))
    elif query.favourites:
        # Favourites: whatever the person marked and may still see (a colleague's image in a
        # collection included).
        images = visible_images(membership)
    elif not (membership.is_admin and query.everyone):
        images = images.filter(user_id=membership.user_id)
    if membership.is_admin and query.user_id is not None:
        images = images.filter(user_id=query.user_id)
    images = images.filter(
        status__in=[query.status] if query.status else FINISHED,
        finished_at__isnull=False,
    )
    if query.provider_id is not None:
        images = images.filter(provider_id=query.provider_id)
    if query.since:
        images = images.filter(finished_at__gte=_start_of(query.since))
    if query.until:
        images = images.filter(finished_at__lt=_start_of(query.until + timedelta(days=1)))
    if query.favourites:  # a person's favourites are few: start from them
        favourites = Favourite.objects.filter(user_id=membership.user_id)
        images = images.filter(pk__in=favourites.values("image_id"))
    if query.text:
        images = images.filter(
            Q(prompt__icontains=query.text) | Q(generation__prompt__icontains=query.text)
        )
    if after is not None:
        images = images.filter(_after(after, grouped=query.grouped))
    order = ("-generation_id", "index") if query.grouped else ("-finished_at", "-id")
    page = list(
        images.order_by(*order)
        .select_related("generation", "user")
        .annotate(
            is_favourite=Exists(
                Favourite.objects.filter(user_id=membership.user_id, image_id=OuterRef("pk"))
            )
        )[: PAGE_SIZE + 1]
    )
    more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    return GalleryPage(page, cursor_of(page[-1], grouped=query.grouped) if more else None)


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _after(cursor: Cursor, *, grouped: bool) -> Q:
    """Rows after the cursor in the page order. The leading bound (≤) lets the index start its
    scan at the cursor; the rest breaks ties within one timestamp or generation."""
    if grouped:
        return Q(generation_id__lte=cursor.first) & (
            Q(generation_id__lt=cursor.first) | Q(index__gt=cursor.second)
        )
    finished = EPOCH + timedelta(microseconds=cursor.first)
    return Q(finished_at__lte=finished) & (Q(finished_at__lt=finished) | Q(id__lt=cursor.second))


def cursor_of(image: GenerationImage, *, grouped: bool) -> Cursor:
    if grouped:
        return Cursor(image.generation_id, image.index)
    assert image.finished_at is not None  # finished images only
    return Cursor((image.finished_at - EPOCH) // timedelta(microseconds=1), image.pk)
