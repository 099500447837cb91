"""Recording who changed what (audit.models.AuditEvent)."""

from typing import Any

from audit.models import AuditEvent

SECRET = "changed"  # what a key or secret's before/after reads as: never its value


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
    """Append one event. `target` is any object with a public_id (or pk) and a str(); `before`
    and `after` are the fields that changed, JSON-able; fields named in `secret_fields` are
    recorded as "changed" only."""
    before, after = _without_secrets(before, secret_fields), _without_secrets(after, secret_fields)
    return AuditEvent.objects.create(
        org=org,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=(getattr(actor, "email", "") or "")[:254] if actor else "",
        action=action,
        target_type=type(target)._meta.model_name if target is not None else "",
        target_id=str(getattr(target, "public_id", None) or getattr(target, "pk", "") or "")
        if target is not None
        else "",
        target_label=str(target)[:200] if target is not None else "",
        before=before,
        after=after,
    )


def changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only what differs between two snapshots: (before, after)."""
    keys = [k for k in new if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


def _without_secrets(values: dict[str, Any] | None, secret_fields: tuple[str, ...]):
    if values is None:
        return None
    return {k: (SECRET if k in secret_fields and v else v) for k, v in values.items()}
