"""Recording who changed what (audit.models.AuditEvent)."""

from typing import Any

from audit.models import COMMAND_LINE, SECRET, AuditEvent
from orgs.models import Invitation, Membership


def record_event(
    *,
    actor,
    action: str,
    org=None,
    target=None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    secret_fields: tuple[str, ...] = (),
) -> AuditEvent:
    """Append one event, in the caller's transaction. `actor` is the signed-in person, or None
    for the command line (an operator's action); `target` is any object with a public_id (or pk)
    and a str(); `before` and `after` are the fields that changed, JSON-able; fields named in
    `secret_fields` are recorded as "changed" only."""
    before, after = _without_secrets(before, secret_fields), _without_secrets(after, secret_fields)
    return AuditEvent.objects.create(
        org=org,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=((getattr(actor, "email", "") or "") if actor else COMMAND_LINE)[:254],
        actor_is_operator=actor is None or bool(getattr(actor, "is_superuser", False)),
        action=action,
        target_type=type(target)._meta.model_name if target is not None else "",
        target_id=str(getattr(target, "public_id", None) or getattr(target, "pk", "") or "")
        if target is not None
        else "",
        target_label=_label_of(target)[:200] if target is not None else "",
        before=before,
        after=after,
    )


def record_announced(sender, signal=None, **event) -> None:
    """Record an action orgs.services announced (orgs.events.admin_action); connected in
    audit.apps."""
    record_event(**event)


def changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only what differs between two snapshots: (before, after)."""
    keys = [k for k in new if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


def _label_of(target) -> str:
    """A member is named by their email (their str() carries a role that may be what changed);
    an invitation by the email it went to."""
    if isinstance(target, Membership):
        return target.user.email
    if isinstance(target, Invitation):
        return target.email
    return str(target)


def _without_secrets(values: dict[str, Any] | None, secret_fields: tuple[str, ...]):
    if values is None:
        return None
    return {k: (SECRET if k in secret_fields and v else v) for k, v in values.items()}
