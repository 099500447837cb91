import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.template.defaultfilters import pluralize

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
        return f"{self.org}: {self.balance} credit{pluralize(self.balance)}"


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
    # What the credits were held for or spent on. By name, not import: generation uses credits.
    generation = models.ForeignKey(
        "generation.Generation", models.SET_NULL, null=True, blank=True, related_name="ledger"
    )
    image = models.ForeignKey(
        "generation.GenerationImage", models.SET_NULL, null=True, blank=True, related_name="ledger"
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
                fields=["image"],
                condition=Q(kind__in=["capture", "release"]),
                name="ledger_image_settles_once",
            ),
            models.UniqueConstraint(
                fields=["generation"], condition=Q(kind="hold"), name="ledger_generation_held_once"
            ),
        ]
        # Usage, metrics and monthly limits read one organization's holds, captures or releases
        # in a time range; recent movements and the ledger export read all its kinds in one. Both
        # stay range scans however long the organization's history grows (bench/dashboard.py).
        indexes = [
            models.Index(fields=["org", "kind", "created_at"], name="ledger_org_kind_time"),
            models.Index(fields=["org", "created_at"], name="ledger_org_time"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.delta:+d} ({self.org})"

    @property
    def explanation(self) -> str:
        """The movement in words. A capture changes no balance (its generation's hold already
        took the credits), so it says what it spent rather than showing a bare 0."""
        n = self.amount
        amount = f"{n:,} credit{'' if n == 1 else 's'}"
        return {
            self.Kind.TOPUP: f"Added {amount}",
            self.Kind.HOLD: f"Held {amount} for a generation",
            self.Kind.CAPTURE: f"Spent {amount} of the hold: an image arrived",
            self.Kind.RELEASE: f"Refunded {amount}: an image failed",
            self.Kind.ADJUSTMENT: f"Adjusted the balance by {self.delta:+,}",
        }.get(self.kind, self.get_kind_display())


class TopUpRequestQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def pending(self):
        return self.filter(status=TopUpRequest.Status.PENDING)

    def unanswered(self):
        """Requests the platform did not decide: pending, or withdrawn by the organization."""
        return self.filter(status__in=[TopUpRequest.Status.PENDING, TopUpRequest.Status.WITHDRAWN])


class TopUpRequest(models.Model):
    """An organization admin asking the platform for credits. Organization admins are tenants, so
    they never add credits themselves: a platform operator approves the request (which tops up
    exactly `amount`, once) or declines it, through credits.services."""

    MIN_AMOUNT = 1
    MAX_AMOUNT = 1_000_000  # far above a real purchase; an operator can still top up more
    MAX_PENDING_PER_ORG = 3
    # Each request emails the operators, and withdrawing one frees its pending place: requests an
    # organization makes per UNANSWERED_WINDOW that the platform did not answer, withdrawn ones
    # included.
    MAX_UNANSWERED_PER_DAY = 5
    UNANSWERED_WINDOW = timedelta(hours=24)

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
        amount = f"{self.amount} credit{pluralize(self.amount)}"
        return f"Request {self.reference}: {amount} for {self.org}"

    @property
    def reference(self) -> str:
        """How messages, emails and the ledger name a request: short, and unlike the row id it
        tells a tenant nothing about other organizations' requests."""
        return self.public_id.hex[:8]

    @property
    def is_pending(self):
        return self.status == self.Status.PENDING
