"""What people keep of the generated images: their favourites, and collections (boards) shared by
the organization."""

import uuid

from django.conf import settings
from django.db import models

from generation.models import GenerationImage
from orgs.models import Organization


class Favourite(models.Model):
    """One person's mark on an image they can see; each person has their own."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(GenerationImage, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "image"], name="favourite_once"),
        ]

    def __str__(self):
        return f"{self.user_id} ♥ {self.image_id}"


class CollectionQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def with_covers(self):
        """Each with `image_count` and `cover_id`: the public id of the image added last."""
        last = CollectionItem.objects.filter(
            collection=models.OuterRef("pk"), image__status="done"
        ).order_by("-added_at", "-pk")
        return self.annotate(
            image_count=models.Count("items"),
            cover_id=models.Subquery(last.values("image__public_id")[:1]),
        )


class Collection(models.Model):
    """A board of images, seen by everyone in the organization: a member sees the images in it even
    when someone else made them."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=80)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CollectionQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="collection_unique_name"),
        ]

    def __str__(self):
        return self.name

    def can_be_changed_by(self, membership) -> bool:
        """Renaming, deleting and taking out any image: whoever made it, and the organization's
        admins. Anyone else takes out only the images they added (CollectionItem)."""
        return membership.is_admin or self.created_by_id == membership.user_id


class CollectionItem(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(
        GenerationImage, on_delete=models.CASCADE, related_name="collection_items"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["collection", "image"], name="collection_item_once"),
        ]

    def __str__(self):
        return f"{self.collection_id} ∋ {self.image_id}"

    def can_be_removed_by(self, membership) -> bool:
        mine = self.added_by_id == membership.user_id
        return mine or self.collection.can_be_changed_by(membership)
