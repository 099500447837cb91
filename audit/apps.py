from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Who changed what: an append-only record of admins' and operators' actions."""

    name = "audit"
