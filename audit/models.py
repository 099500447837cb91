"""The audit log: one row per admin or operator action, never changed or removed.

Rows are written by audit.services.record_event from the service that made the change (orgs sits
below audit, so its services announce theirs through orgs.events, which the audit app records).
The model refuses updates and deletes (save of an existing row, delete, and the queryset's update
and delete); the admin shows them read-only. Key values never enter a row: services pass what
changed, and secret fields are replaced by "changed".

The vocabulary: every action recorded, in ACTIONS below, "<subject>.<what happened>". Use these
names; add one here (with its words) before recording it.

Members and invitations (orgs.services, credits.limits)
    invitation.sent, invitation.resent, invitation.revoked, invitation.accepted,
    invitation.declined, member.role_changed, member.removed, member.left,
    member.limit_changed (monthly_limit)
Organization settings (workspace.services)
    org.settings_changed (name, time_zone, default_monthly_limit, low_balance_threshold)
Credits (credits.services)
    top_up_request.requested, top_up_request.withdrawn, top_up_request.approved,
    top_up_request.declined, credits.topped_up, credits.adjusted
Providers: an organization's platform models and own-key providers (providers.admin)
    provider.added, provider.changed, provider.removed
The platform catalogue: operators only, org None (providers.admin)
    catalogue.added, catalogue.changed, catalogue.removed
"""

from django.conf import settings
from django.db import models

from orgs.models import Organization

# action -> what the actor did, in words (the target follows).
ACTIONS = {
    "invitation.sent": "invited",
    "invitation.resent": "re-sent the invitation to",
    "invitation.revoked": "revoked the invitation to",
    "invitation.accepted": "accepted the invitation to",
    "invitation.declined": "declined the invitation to",
    "member.role_changed": "changed the role of",
    "member.removed": "removed",
    "member.left": "left",
    "member.limit_changed": "changed the monthly limit of",
    "org.settings_changed": "changed the settings of",
    "org.deleted": "deleted the organization",
    "top_up_request.requested": "requested credits:",
    "top_up_request.withdrawn": "withdrew",
    "top_up_request.approved": "approved",
    "top_up_request.declined": "declined",
    "credits.topped_up": "added credits:",
    "credits.adjusted": "adjusted the balance:",
    "provider.added": "added the provider",
    "provider.changed": "changed the provider",
    "provider.removed": "removed the provider",
    "catalogue.added": "added the catalogue model",
    "catalogue.changed": "changed the catalogue model",
    "catalogue.removed": "removed the catalogue model",
}

# group -> (label, the action prefixes in it): the audit page's filter.
GROUPS = {
    "members": ("Members and invitations", ("member.", "invitation.")),
    "settings": ("Organization settings", ("org.",)),
    "credits": ("Credits and top-up requests", ("credits.", "top_up_request.")),
    "providers": ("Providers", ("provider.",)),
    "catalogue": ("Platform catalogue", ("catalogue.",)),
}

SECRET = "changed"  # what a key or secret's before/after reads as: never its value
SECRET_FIELDS = ("api_key", "webhook_secret")  # the providers' keys
COMMAND_LINE = "command line"  # the actor of an action with no signed-in person (manage.py)
PLATFORM = "NER Studio"  # how an operator's action reads to an organization

# What kind of provider row a "provider.*" event's target is.
TARGET_KINDS = {"platformmodel": "platform model", "ownkeyprovider": "own-key provider"}

FIELD_LABELS = {"api_key": "API key", "credit_cost": "credits per image", "base_url": "base URL"}


class AppendOnly(Exception):
    """An attempt to change or remove an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Audit events are never changed.")

    def delete(self):
        raise AppendOnly("Audit events are never removed.")

    def for_org(self, org):
        return self.filter(org=org)

    def in_group(self, group: str):
        condition = models.Q()
        for prefix in GROUPS[group][1]:
            condition |= models.Q(action__startswith=prefix)
        return self.filter(condition)


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
    # A platform operator (a superuser, or the command line): organizations see "NER Studio",
    # never the operator's account, as in their ledger.
    actor_is_operator = models.BooleanField(default=False)
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

    @property
    def action_words(self) -> str:
        return ACTIONS.get(self.action, self.action)

    @property
    def target_kind(self) -> str:
        return TARGET_KINDS.get(self.target_type, "")

    @property
    def tenant_actor_label(self) -> str:
        """Who did it, as the organization's admins see it."""
        return PLATFORM if self.actor_is_operator else self.actor_label

    @property
    def change_lines(self) -> list[str]:
        """The compact diff: "role: member → admin" for a change, "role: admin" for what was
        created or removed, "API key: changed" (or set, removed) for a secret."""
        before, after = self.before or {}, self.after or {}
        lines = []
        for field in [*before, *(f for f in after if f not in before)]:
            label = FIELD_LABELS.get(field, field.replace("_", " "))
            old, new = before.get(field), after.get(field)
            if field in SECRET_FIELDS:
                if SECRET in (old, new):
                    word = SECRET if old == new else "set" if new == SECRET else "removed"
                    lines.append(f"{label}: {word}")
            elif field in before and field in after:
                if old == new:
                    continue
                lines.append(f"{label}: {_shown(old)} → {_shown(new)}")
            else:
                lines.append(f"{label}: {_shown(new if field in after else old)}")
        return lines


def _shown(value, limit: int = 60) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if value is True or value is False:
        return "yes" if value else "no"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k} {_shown(v)}" for k, v in value.items())
    elif isinstance(value, int | float):
        value = f"{value:,}" if isinstance(value, int) else f"{value:g}"
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
