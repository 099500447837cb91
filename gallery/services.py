"""Favourites and collections: what changes them. Every function takes images the caller has
already checked are visible (gallery.search.visible_images) and collections of the caller's
organization."""

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction

from gallery.models import Collection, CollectionItem, Favourite


class CollectionError(Exception):
    """A refused change, with a message safe to show."""


def toggle_favourite(*, user, image) -> bool:
    """Mark or unmark; True when the image is a favourite afterwards."""
    removed, _ = Favourite.objects.filter(user=user, image=image).delete()
    if removed:
        return False
    Favourite.objects.get_or_create(user=user, image=image)
    return True


def create_collection(*, membership, name: str) -> Collection:
    name = _clean_name(name)
    try:
        with transaction.atomic():
            return Collection.objects.create(
                org_id=membership.org_id, name=name, created_by_id=membership.user_id
            )
    except IntegrityError:
        raise CollectionError(f"There is already a collection named “{name}”.") from None


def rename_collection(*, collection: Collection, membership, name: str) -> Collection:
    _check_can_change(collection, membership)
    name = _clean_name(name)
    if Collection.objects.filter(org_id=collection.org_id, name=name).exclude(pk=collection.pk):
        raise CollectionError(f"There is already a collection named “{name}”.")
    collection.name = name
    collection.save(update_fields=["name"])
    return collection


def delete_collection(*, collection: Collection, membership) -> None:
    """The board goes; its images stay where they were."""
    _check_can_change(collection, membership)
    collection.delete()


def add_to_collection(*, collection: Collection, images, membership) -> int:
    """Add images (each once); returns how many were new to the collection."""
    if any(image.org_id != collection.org_id for image in images):
        raise CollectionError("Only your organization's images can go in its collections.")
    existing = set(
        CollectionItem.objects.filter(collection=collection, image__in=images).values_list(
            "image_id", flat=True
        )
    )
    new = [
        CollectionItem(collection=collection, image=image, added_by_id=membership.user_id)
        for image in images
        if image.pk not in existing
    ]
    CollectionItem.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def remove_from_collection(*, collection: Collection, images, membership) -> int:
    """Take images out (the images stay). Whoever made the collection and the organization's
    admins take out any; anyone else only what they added themselves, and a request naming
    another person's addition removes nothing."""
    items = CollectionItem.objects.filter(collection=collection, image__in=images)
    if (
        not collection.can_be_changed_by(membership)
        and items.exclude(added_by_id=membership.user_id).exists()
    ):
        raise CollectionError(
            f"Only whoever added an image, whoever made “{collection}” or an admin can take it "
            "out; nothing was removed."
        )
    removed, _ = items.delete()
    return removed


def _clean_name(name: str) -> str:
    name = " ".join(name.split())[:80]
    if not name:
        raise CollectionError("Give the collection a name.")
    return name


def _check_can_change(collection: Collection, membership) -> None:
    if not collection.can_be_changed_by(membership):
        raise PermissionDenied("Only whoever made this collection, or an admin, can change it.")
