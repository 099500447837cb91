"""Announcing the actions the audit log records.

orgs sits below audit in the layering, so its services cannot call audit.services.record_event.
They call `announce` with record_event's arguments (actor, action, org, target, before, after);
the audit app connects its recorder to `admin_action` (audit.apps), so each announcement becomes
one audit event in the service's own transaction, and fails it if it cannot be recorded.
"""

from django.dispatch import Signal

admin_action = Signal()


def announce(**event) -> None:
    admin_action.send(sender=None, **event)
