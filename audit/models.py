"""The audit log: one row per admin or operator action, never changed or removed.

Rows are written by audit.services.record_event from the service that made the change. The model
refuses updates and deletes (save of an existing row, delete, and the queryset's update and
delete); the admin shows them read-only. Key values never enter a row: services pass what changed,
and secret fields are replaced by "changed".
"""

from django.conf import settings
from django.db import models

from orgs.models import Organization


class AppendOnly(Exception):
    """An attempt to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Audit events are never changed.")

    def delete(self):
        raise AppendOnly("Audit events are never removed.")

    def for_org(self, org):
        return self.filter(org=org)


class AuditEvent(models.Model):
    # The organization concerned; None for platform-wide operator actions (the catalogue).
    org = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    # As they were at the time, so the row reads the same after renames and deletions.
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=60)  # e.g. "member.role_changed"
    target_type = models.CharField(max_length=60, blank=True)  # e.g. "membership"
    target_id = models.CharField(max_length=64, blank=True)  # the target's public id
    target_label = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["org", "-created_at"], name="audit_org_recent")]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("Audit events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit events are never removed.")
