import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.db import models

from library.models import SourceImage
from orgs.models import Organization
from providers.models import Provider


class GenerationQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def visible_to(self, membership):
        """Admins see their organization's generations; members see their own."""
        qs = self.filter(org_id=membership.org_id)
        return qs if membership.is_admin else qs.filter(user_id=membership.user_id)


class Generation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        ANALYSING = "analysing", "Analysing references"
        WRITING = "writing", "Writing prompts"
        GENERATING = "generating", "Generating"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="generations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="generations"
    )
    provider = models.ForeignKey(
        Provider, null=True, on_delete=models.SET_NULL, related_name="generations"
    )
    provider_name = models.CharField(max_length=80)  # as it was when generating
    credit_cost = models.PositiveIntegerField(help_text="Credits per image when submitted.")
    prompt = models.TextField()
    aspect_ratio = models.CharField(max_length=10)
    quality = models.CharField(max_length=20, blank=True)
    count = models.PositiveSmallIntegerField()
    products = models.ManyToManyField(SourceImage, related_name="used_as_product")
    references = models.ManyToManyField(SourceImage, related_name="used_as_reference", blank=True)
    reference_notes = models.JSONField(default=list, blank=True)
    # "#rrggbb" colours of the references (their analyses, most dominant first), sent to the
    # image model with every image as a hint; written with the notes, read by each submission.
    palette = models.JSONField(default=list, blank=True)
    # Who wrote the image prompts (a provider's name, or the built-in variations when every
    # prompt writer failed), and what the member should know about degraded work.
    prompt_writer = models.CharField(max_length=80, blank=True)
    notices = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "user", "-created_at"])]

    def __str__(self):
        return f"{self.prompt[:40]} ({self.count} × {self.provider_name})"

    def new_images(self, count: int) -> list["GenerationImage"]:
        """This generation's images, unsaved (for bulk_create), with what they copy from it."""
        return [
            GenerationImage(generation=self, index=i, **self._image_copies()) for i in range(count)
        ]

    def _image_copies(self) -> dict:
        return {"org_id": self.org_id, "user_id": self.user_id, "provider_id": self.provider_id}

    def reuse_query(self, *, prompt: str | None = None) -> str:
        """The Generate page's query string for this generation's settings and library images:
        Reuse (and Vary, with one image's prompt). Uses prefetched products and references."""
        params: dict[str, object] = {
            "prompt": prompt or self.prompt,
            "count": self.count,
            "aspect_ratio": self.aspect_ratio,
            "quality": self.quality,
        }
        if self.provider is not None:
            params["model"] = str(self.provider.public_id)
        for role in ("products", "references"):
            sources = getattr(self, role).all()
            params[f"library_{role}"] = [str(s.public_id) for s in sources if not s.is_deleted]
        return urlencode(params, doseq=True)

    @property
    def total_cost(self):
        return self.count * self.credit_cost

    @property
    def is_finished(self):
        return self.status in (self.Status.DONE, self.Status.FAILED)


class GenerationImage(models.Model):
    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        SUBMITTING = "submitting", "Submitting"
        GENERATING = "generating", "Generating"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    # The generation's organization, member and image model, copied so the gallery's filters and
    # order are served by one index each (GALLERY_INDEXES) instead of a join over every image.
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider = models.ForeignKey(Provider, null=True, on_delete=models.SET_NULL, related_name="+")
    index = models.PositiveSmallIntegerField()
    prompt = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.WAITING)
    provider_task_id = models.CharField(max_length=200, blank=True, db_index=True)
    callback_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    polls = models.PositiveSmallIntegerField(default=0)
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Set while one worker confirms and downloads the result, so concurrent duplicate callbacks
    # never store it twice; a claim left by a dead worker lapses at this time.
    collecting_until = models.DateTimeField(null=True, blank=True)
    file = models.FileField(upload_to="generated/", max_length=200, blank=True)
    thumbnail = models.FileField(upload_to="generated/thumbs/", max_length=200, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["generation", "index"]
        constraints = [
            models.UniqueConstraint(fields=["generation", "index"], name="image_unique_index")
        ]
        # The gallery: newest first (flat) or by generation (grouped), for the organization, one
        # member or one model; keyset pagination walks these without sorting.
        indexes = [
            models.Index(
                fields=["org", "status", "-finished_at", "-id"], name="gallery_org_recent"
            ),
            models.Index(
                fields=["org", "user", "status", "-finished_at", "-id"], name="gallery_user_recent"
            ),
            models.Index(
                fields=["org", "provider", "status", "-finished_at", "-id"],
                name="gallery_model_recent",
            ),
            models.Index(
                fields=["org", "status", "-generation", "index"], name="gallery_org_grouped"
            ),
            models.Index(
                fields=["org", "user", "status", "-generation", "index"],
                name="gallery_user_grouped",
            ),
            # The thumbnail sweep (results.add_missing_thumbnails): a handful of rows at most.
            models.Index(
                fields=["finished_at"],
                condition=models.Q(status="done", thumbnail=""),
                name="image_without_thumbnail",
            ),
        ]

    def __str__(self):
        return f"{self.generation_id}#{self.index} {self.status}"

    def save(self, *args, **kwargs):
        if self.org_id is None:  # copied from the generation (see the fields' comment)
            for field, value in self.generation._image_copies().items():
                setattr(self, field, value)
        super().save(*args, **kwargs)

    @property
    def is_finished(self):
        return self.status in (self.Status.DONE, self.Status.FAILED)
