import math
import uuid
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify

from lib.tokens import hash_token, new_token


class OrgError(Exception):
    """A refused organization change, with a message safe to show the user."""


class OrganizationGone(Exception):
    """The organization was deleted while a request of one of its members was under way
    (orgs.middleware tells them)."""


def time_zone_choices():
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


class OrganizationQuerySet(models.QuerySet):
    def active(self):
        """Not deleted: a deleted one's rows stay until its removal in the background ends."""
        return self.filter(deleted_at__isnull=True)


class Organization(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120)
    # For operators' commands (topup_credits acme-creative): unique, made from the name once.
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped with every provider change so each process's in-memory registry reloads (providers/).
    config_version = models.PositiveIntegerField(default=0, editable=False)
    # Settings an admin changes (workspace: Organization settings).
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        choices=time_zone_choices,
        help_text="Days on the dashboard, in exports and monthly limits start at midnight here.",
    )
    default_monthly_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Credits a new member may spend per calendar month; empty for no limit.",
    )
    low_balance_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Warn the admins when the balance falls below this; empty for no warning.",
    )
    # When the admins were last emailed about a low balance: once per crossing below the
    # threshold, cleared when the balance is back above it.
    low_balance_warned_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When an admin deleted it (workspace.services.delete_organization): its members are gone
    # then, and its rows and files are removed in the background (purge_organization).
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    def is_gone(cls, pk: int) -> bool:
        """Deleted (workspace.services.delete_organization), whether or not its row is left."""
        return not cls.objects.active().filter(pk=pk).exists()

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def save(self, *args, **kwargs):
        if self.slug or not self._state.adding:
            return super().save(*args, **kwargs)
        for attempt in range(5):  # another organization of the same name may take it meanwhile
            self.slug = free_slug(self.name)
            try:
                with transaction.atomic():
                    return super().save(*args, **kwargs)
            except IntegrityError:
                if attempt == 4:
                    raise


def free_slug(name: str) -> str:
    """A slug for `name` no organization has yet: "acme", then "acme-2", "acme-3"…"""
    base = slugify(name)[:50].strip("-") or "organization"
    taken = set(Organization.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


class MembershipQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def admins(self):
        return self.filter(role=Membership.Role.ADMIN)


class Membership(models.Model):
    """A user's place in their one organization."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)
    # Credits this person may spend per calendar month (the organization's time zone); None is no
    # limit. New members start with the organization's default_monthly_limit.
    monthly_limit = models.PositiveIntegerField(null=True, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["joined_at"]

    def __str__(self):
        return f"{self.user} ({self.get_role_display()}, {self.org})"

    @property
    def is_admin(self):
        return self.role == self.Role.ADMIN

    LAST_ADMIN_ERROR = "An organization needs at least one admin: make someone else an admin first."

    def is_last_admin(self) -> bool:
        admins = Membership.objects.filter(org_id=self.org_id, role=self.Role.ADMIN)
        return admins.filter(pk=self.pk).exists() and not admins.exclude(pk=self.pk).exists()

    def ensure_not_last_admin(self):
        """Every organization keeps at least one admin.

        Call inside a transaction, before demoting, removing or leaving: it locks the organization
        row, so two admins demoting each other at once queue up and the second one is refused.
        """
        list(Organization.objects.select_for_update().filter(pk=self.org_id).values_list("pk"))
        if self.is_last_admin():
            raise OrgError(self.LAST_ADMIN_ERROR)


# An invitation nobody accepted, declined or revoked yet (it may have expired): one email has one at
# most.
OPEN_INVITATION = models.Q(
    accepted_at__isnull=True, declined_at__isnull=True, revoked_at__isnull=True
)


class InvitationQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)

    def open(self):
        return self.filter(OPEN_INVITATION)

    def pending(self):
        """Open and not expired: it can still be accepted."""
        return self.open().filter(expires_at__gt=timezone.now())

    def for_email(self, email):
        return self.filter(email__iexact=email)

    def for_any_email(self, emails):
        """Invitations to any of `emails` (none for none)."""
        condition = models.Q(pk__in=[])
        for email in emails:
            condition |= models.Q(email__iexact=email)
        return self.filter(condition)


class Invitation(models.Model):
    """An emailed, single-use, expiring invitation. Only the token's hash is stored.

    Anyone who signs in can found an organization, so an organization's admins are tenants: the
    limits below keep one from using invitations to mail people without end.
    """

    # Pending invitations an organization may have at once.
    MAX_PENDING_PER_ORG = 50
    # An invitation is emailed at most once per this interval (inviting the address again is a
    # re-send).
    RESEND_INTERVAL = timedelta(minutes=10)

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(
        max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    declined_at = models.DateTimeField(null=True, blank=True)  # by the invited person
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "org",
                Lower("email"),
                condition=OPEN_INVITATION,
                name="invitation_one_open_per_email",
            )
        ]

    def __str__(self):
        return f"{self.email} → {self.org}"

    def new_token(self) -> str:
        """Give the invitation a fresh token and expiry; return the token (never stored)."""
        token = new_token()
        self.token_hash = hash_token(token)
        self.sent_at = timezone.now()
        self.expires_at = self.sent_at + timedelta(days=settings.NERSTUDIO_INVITATION_DAYS)
        return token

    def ensure_resendable(self) -> None:
        """Raise OrgError while the last email for this invitation is under RESEND_INTERVAL old,
        so re-sending (or inviting the address again) cannot flood its inbox."""
        wait = self.sent_at + self.RESEND_INTERVAL - timezone.now()
        if wait > timedelta(0):
            minutes = math.ceil(wait.total_seconds() / 60)
            raise OrgError(
                f"An invitation was emailed to {self.email} less than "
                f"{self.RESEND_INTERVAL.seconds // 60} minutes ago. You can send it again in "
                f"{minutes} minute{'s' if minutes != 1 else ''}."
            )

    @property
    def status(self) -> str:
        if self.accepted_at:
            return self.Status.ACCEPTED
        if self.declined_at:
            return self.Status.DECLINED
        if self.revoked_at:
            return self.Status.REVOKED
        if self.expires_at <= timezone.now():
            return self.Status.EXPIRED
        return self.Status.PENDING

    @property
    def is_pending(self):
        return self.status == self.Status.PENDING

    def get_status_display(self):
        return self.Status(self.status).label
