from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Who changed what: an append-only record of admins' and operators' actions."""

    name = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from audit.services import record_announced
        from orgs.events import admin_action

        admin_action.connect(record_announced, dispatch_uid="audit_record_announced")
