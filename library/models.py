"""The brand library: every product and reference image an organization uploaded, kept once by
content hash, with its vision description (ReferenceAnalysis, cached so a reference never costs
twice). Members pick from it on Generate; admins name, tag, archive and delete. A deleted image
keeps its row (past generations still say what they used) but loses its files."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from orgs.models import Organization
from providers.models import Provider


def source_image_path(instance, filename):
    return f"uploads/{instance.org.public_id}/{instance.sha256}.{instance.format.lower()}"


def source_thumbnail_path(instance, filename):
    return f"uploads/{instance.org.public_id}/thumbs/{instance.sha256}.webp"


class Tag(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=40)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="tag_unique_name")]

    def __str__(self):
        return self.name


class SourceImageQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def in_library(self):
        """Not deleted: shown in the library (archived ones on request)."""
        return self.filter(deleted_at__isnull=True)

    def pickable(self):
        """What Generate offers: in the library and not archived."""
        return self.in_library().filter(archived_at__isnull=True)

    def recent_first(self):
        return self.order_by("-last_used_at", "-pk")

    def matching(self, text: str):
        """Name, file name, tag or vision description containing `text` (any case)."""
        if not text:
            return self
        tagged = SourceImage.tags.through.objects.filter(
            sourceimage_id=models.OuterRef("pk"), tag__name__icontains=text
        )
        described = ReferenceAnalysis.objects.filter(
            org_id=models.OuterRef("org_id"),
            sha256=models.OuterRef("sha256"),
            description__icontains=text,
        )
        return self.filter(
            models.Q(name__icontains=text)
            | models.Q(original_name__icontains=text)
            | models.Exists(tagged)
            | models.Exists(described)
        )

    def with_descriptions(self):
        """Each with `description`: its cached vision description, or None."""
        analysis = ReferenceAnalysis.objects.filter(
            org_id=models.OuterRef("org_id"), sha256=models.OuterRef("sha256")
        )
        return self.annotate(description=models.Subquery(analysis.values("description")[:1]))


class SourceImage(models.Model):
    """An uploaded product or reference image, stored once per organization by content hash."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="source_images")
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=source_image_path, max_length=200, blank=True)
    thumbnail = models.FileField(upload_to=source_thumbnail_path, max_length=200, blank=True)
    format = models.CharField(max_length=8)  # JPEG, PNG, WEBP
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    original_name = models.CharField(max_length=200, blank=True)  # the uploaded file's name
    name = models.CharField(max_length=120, blank=True)  # an admin's name for it
    tags = models.ManyToManyField(Tag, blank=True, related_name="images")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(default=timezone.now)
    archived_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = SourceImageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "sha256"], name="source_image_unique_content")
        ]
        indexes = [models.Index(fields=["org", "-last_used_at", "-id"], name="library_recent")]

    def __str__(self):
        return self.label

    @property
    def label(self) -> str:
        return self.name or self.original_name or f"{self.format} {self.width}×{self.height}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class ReferenceAnalysis(models.Model):
    """The vision provider's description of a reference image, cached per organization by content
    hash so the same reference never costs twice."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    sha256 = models.CharField(max_length=64)
    description = models.TextField()
    palette = models.JSONField(default=list, blank=True)
    provider = models.ForeignKey(Provider, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "reference analyses"
        constraints = [
            models.UniqueConstraint(fields=["org", "sha256"], name="reference_analysis_unique")
        ]

    def __str__(self):
        return f"{self.sha256[:12]}: {self.description[:60]}"
