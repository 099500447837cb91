import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from orgs.models import Organization
from providers.models import Provider


class CreditAccount(models.Model):
    """An organization's shared credit pool. `balance` is what is available to spend; it always
    equals the sum of the organization's ledger deltas."""

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="credits")
    balance = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="credit_balance_not_negative")
        ]

    def __str__(self):
        return f"{self.org}: {self.balance} credits"


class LedgerEntry(models.Model):
    """Append-only record of every credit movement. `delta` changes the available balance: a hold
    takes count × cost, each image then either captures its share (delta 0: held credits become
    spent) or releases it (delta +cost)."""

    class Kind(models.TextChoices):
        TOPUP = "topup", "Top-up"
        HOLD = "hold", "Hold"
        CAPTURE = "capture", "Capture"
        RELEASE = "release", "Release"
        ADJUSTMENT = "adjustment", "Adjustment"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="ledger")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    delta = models.BigIntegerField()
    amount = models.PositiveBigIntegerField(help_text="Credits this entry concerns.")
    balance_after = models.BigIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    generation = models.ForeignKey(
        "Generation", null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger"
    )
    image = models.ForeignKey(
        "GenerationImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="ledger"
    )
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "ledger entries"
        constraints = [
            # An image settles once; a generation is held once. Redelivered tasks hit these.
            models.UniqueConstraint(
                fields=["image"], condition=Q(kind__in=["capture", "release"]),
                name="ledger_image_settles_once",
            ),
            models.UniqueConstraint(
                fields=["generation"], condition=Q(kind="hold"), name="ledger_generation_held_once"
            ),
        ]  # fmt: skip

    def __str__(self):
        return f"{self.get_kind_display()} {self.delta:+d} ({self.org})"


def source_image_path(instance, filename):
    return f"uploads/{instance.org.public_id}/{instance.sha256}.{instance.format.lower()}"


class SourceImage(models.Model):
    """An uploaded product or reference image, stored once per organization by content hash."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="source_images")
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=source_image_path, max_length=200)
    format = models.CharField(max_length=8)  # JPEG, PNG, WEBP
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "sha256"], name="source_image_unique_content")
        ]

    def __str__(self):
        return f"{self.sha256[:12]}.{self.format.lower()}"


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
    products = models.ManyToManyField(SourceImage, related_name="+")
    references = models.ManyToManyField(SourceImage, related_name="+", blank=True)
    reference_notes = models.JSONField(default=list, blank=True)
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

    def __str__(self):
        return f"{self.generation_id}#{self.index} {self.status}"

    @property
    def is_finished(self):
        return self.status in (self.Status.DONE, self.Status.FAILED)


class TopUpRequestQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def pending(self):
        return self.filter(status=TopUpRequest.Status.PENDING)


class TopUpRequest(models.Model):
    """An organization admin asking the platform for credits. Organization admins are tenants, so
    they never add credits themselves: a platform operator approves the request (which tops up
    exactly `amount`, once) or declines it, through generation.credits."""

    MIN_AMOUNT = 1
    MAX_AMOUNT = 1_000_000  # far above a real purchase; an operator can still top up more
    MAX_PENDING_PER_ORG = 3

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="top_up_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    amount = models.PositiveIntegerField()
    note = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # The top-up an approval produced. RESTRICT: a ledger entry is never deleted on its own, but
    # deleting the organization still removes both.
    ledger_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.RESTRICT, related_name="top_up_request"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TopUpRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(  # MIN_AMOUNT..MAX_AMOUNT
                condition=Q(amount__gte=1, amount__lte=1_000_000),
                name="top_up_request_amount_in_bounds",
            ),
            # Pending: undecided. Approved: decided, with its ledger entry. Others: decided, none.
            models.CheckConstraint(
                condition=(
                    Q(status="pending", decided_at__isnull=True, ledger_entry__isnull=True)
                    | Q(status="approved", decided_at__isnull=False, ledger_entry__isnull=False)
                    | Q(
                        status__in=["declined", "withdrawn"],
                        decided_at__isnull=False,
                        ledger_entry__isnull=True,
                    )
                ),
                name="top_up_request_decision_consistent",
            ),
        ]
        indexes = [models.Index(fields=["org", "status"])]

    def __str__(self):
        return f"Request {self.reference}: {self.amount} credits for {self.org}"

    @property
    def reference(self) -> str:
        """How messages, emails and the ledger name a request: short, and unlike the row id it
        tells a tenant nothing about other organizations' requests."""
        return self.public_id.hex[:8]

    @property
    def is_pending(self):
        return self.status == self.Status.PENDING
